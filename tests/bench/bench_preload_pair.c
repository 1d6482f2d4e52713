/*
 * malloc+free pairs through whatever allocator serves the process: run
 * plainly for glibc's figure, under libsmp_preload.so for the preload's.
 * Prints the best of 31 rounds, in CPU nanoseconds per pair, per size.
 * usage: bench_preload_pair [pairs-per-round]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CPU time of this thread: time spent descheduled on a busy machine is left out. */
static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The pointer escapes through here, so the pair cannot be optimized out. */
static void *volatile sink;

static double pair_ns(size_t size, long pairs)
{
    double best = 1e9;

    for (int round = 0; round < 31; round++) {
        double start = now();

        for (long i = 0; i < pairs; i++) {
            void *p = malloc(size);
            sink = p;
            free(p);
        }
        double ns = (now() - start) * 1e9 / (double)pairs;
        if (ns < best)
            best = ns;
    }
    return best;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = { 32, 64, 128, 256 };
    long pairs = argc > 1 ? atol(argv[1]) : 300000;

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        printf("%zu %.2f\n", sizes[i], pair_ns(sizes[i], pairs));
    return 0;
}
