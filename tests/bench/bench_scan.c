/*
 * Memory for the leak scan to read: a chain of BLOCKS blocks of SIZE
 * bytes, each pointing at the next, held by a global, so that the scan at
 * exit reads every byte of them; every eighth block is dropped from the
 * chain and leaks. Run under the preload with SMP_POOL_SCOPE='all=*'.
 * usage: bench_scan [MiB] (default 1024)
 */
#include <stdlib.h>
#include <string.h>

#define SIZE 1024

static void **head;

int main(int argc, char **argv)
{
    long blocks = (argc > 1 ? atol(argv[1]) : 1024) * 1024;
    void **last = NULL;

    for (long i = 0; i < blocks; i++) {
        void **b = malloc(SIZE);
        if (!b)
            return 1;
        memset(b, 0x11, SIZE);
        b[0] = NULL;
        if (i % 8 == 7)
            continue; /* lost: nothing points at it */
        if (last)
            last[0] = b;
        else
            head = b;
        last = b;
    }
    return head ? 0 : 1;
}
