/*
 * A leak in a program that leaves stdio to exit: more standard output
 * than one buffer holds, and a stream it opened and never closed. Its
 * FILE object is a pool block, wiped with the pools at exit.
 */
#include <stdio.h>
#include <stdlib.h>

void *volatile last;

int main(int argc, char **argv)
{
    FILE *f = argc > 1 ? fopen(argv[1], "w") : NULL;

    if (!f)
        return 2;
    fprintf(f, "leak_stdio file\n");
    for (int i = 0; i < 5000; i++)
        printf("leak_stdio line %d\n", i);
    last = malloc(45);
    last = NULL;
    printf("leak_stdio done\n");
    return 0;
}
