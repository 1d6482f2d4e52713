/*
 * A block allocated inside a scope that owns its pool and still live
 * when the scope ends: the report lists it as escaped.
 */
#include <stdio.h>
#include <stdlib.h>

#include "smp/annotate.h"

static void *escaped;

__attribute__((noinline)) static void open_session(void)
{
    smp_scope_enter_new("session");
    escaped = malloc(72);
    smp_scope_exit();
}

int main(void)
{
    if (!smp_annotate_available()) {
        printf("no runtime\n");
        return 2;
    }
    open_session();
    printf("escape done\n");
    return 0;
}
