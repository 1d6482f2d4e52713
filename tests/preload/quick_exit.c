/*
 * A program that leaves by _exit: nothing of the runtime runs after it
 * (no report, no teardown; the kernel releases the locked pages). What
 * the program flushed itself is all there is, and its status stands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "smp/annotate.h"

int main(void)
{
    char *leaked = malloc(64);

    CHECK(smp_owns(leaked));
    printf("before _exit\n");
    fflush(stdout);
    printf("never flushed\n");
    _exit(7);
}
