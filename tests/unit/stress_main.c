/*
 * The stress workload as a plain program, for builds where Criterion
 * cannot run (ThreadSanitizer). Prints one result line.
 */
#include <stdio.h>

#include "stress.h"

int main(void)
{
    char why[512] = "";

    if (stress_run(why, sizeof why) != 0) {
        printf("stress: FAILED: %s\n", why);
        return 1;
    }
    printf("stress: passed\n");
    return 0;
}
