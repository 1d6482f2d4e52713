/*
 * The simplest leak, written the way a first try is: no scrubbing of the
 * stack afterwards. The scan must find it although the exit path has
 * stale copies of its address on the stack below the report.
 */
#include <stdio.h>
#include <stdlib.h>

void *volatile last;

__attribute__((noinline)) static void lose(int n)
{
    char *p = malloc((size_t)n);

    last = p;
    last = NULL;
}

int main(int argc, char **argv)
{
    (void)argv;
    lose(30 + argc);
    printf("leak_plain done\n");
    return 0;
}
