/*
 * A leak in a program that changes its directory before it ends, as git
 * does: relative json and suppressions paths must still mean the
 * directory it started in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void *volatile last;

int main(int argc, char **argv)
{
    if (argc < 2 || chdir(argv[1]) != 0)
        return 2;
    last = malloc(53);
    last = NULL;
    printf("leak_chdir done\n");
    return 0;
}
