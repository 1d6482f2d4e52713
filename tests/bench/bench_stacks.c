/*
 * Cost of one stack capture, by method, at the depth reports keep (30
 * frames) from a call chain about 40 frames deep:
 *   libunwind   unw_backtrace, what a fresh walk costs
 *   rules       smpi_stack_walk: per-address frame rules from .eh_frame
 *   capture     smpi_stack_capture: the walk plus the depot look-up
 * Usage: bench_stacks [iterations]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "options.h"
#include "stack.h"

static volatile uintptr_t sink;
static long iterations = 1000000;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void by_libunwind(void)
{
    uintptr_t pcs[64];
    sink += (uintptr_t)smpi_stack_walk_libunwind(pcs, 30, 0);
}

static void by_rules(void)
{
    uintptr_t pcs[64];
    sink += (uintptr_t)smpi_stack_walk(pcs, 30, 0);
}

static void by_capture(void)
{
    sink += smpi_stack_capture(0);
}

static void measure(const char *name, void (*fn)(void))
{
    double start = now();

    for (long i = 0; i < iterations; i++)
        fn();
    printf("%-10s %8.1f ns per capture\n", name,
           (now() - start) / (double)iterations);
}

/* Builds the call chain; the captures run at its bottom. */
__attribute__((noinline)) static void deep(int depth)
{
    if (depth > 0) {
        deep(depth - 1);
        sink++;
        return;
    }
    measure("libunwind", by_libunwind);
    measure("rules", by_rules);
    measure("capture", by_capture);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        iterations = atol(argv[1]);
    smpi_opt.malloc_context_size = 30;
    deep(40);
    return 0;
}
