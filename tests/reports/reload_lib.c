/*
 * Built twice with different WORDS: the same code at the same offsets,
 * with frames of different sizes, so that one unwind rule read for the
 * first copy is wrong for the second loaded at the same address.
 */
#include <stdint.h>
#include <stdlib.h>

void *volatile reload_sink;

void reload_make(uintptr_t fill);

__attribute__((noinline)) void reload_make(uintptr_t fill)
{
    volatile uintptr_t buf[WORDS];

    /* what a stale rule would take for the caller's return address */
    for (int i = 0; i < WORDS; i++)
        buf[i] = fill;
    reload_sink = malloc(27);
    buf[0] = buf[WORDS - 1];
}
