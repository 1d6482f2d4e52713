/*
 * A leak made inside a function inlined into its caller, built with -O2:
 * the report must show the inlined function with its own line, then the
 * function it was inlined into with the line of the call.
 */
#include <stdio.h>
#include <stdlib.h>

void *volatile last;

static inline __attribute__((always_inline)) char *make(size_t n)
{
    char *p = malloc(n); /* the inlined frame's line */

    p[0] = 1;
    return p;
}

__attribute__((noinline)) static void lose(size_t n)
{
    last = make(n); /* the outer frame's line */
    last = NULL;
}

int main(int argc, char **argv)
{
    (void)argv;
    lose(40 + (size_t)argc);
    printf("leak_inline done\n");
    return 0;
}
