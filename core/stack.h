/*
 * Call stacks of routed allocations: walked exactly (walk.c), as return
 * addresses only, and stored once per distinct stack in a depot, so memory
 * grows with the number of distinct stacks rather than of blocks.
 */
#ifndef SMP_STACK_H
#define SMP_STACK_H

#include <stdint.h>

/* Most frames malloc_context_size may ask for. */
#define SMPI_STACK_DEPTH_MAX 64

/*
 * Captures the calling thread's stack, leaving out its skip innermost
 * frames, keeping at most smpi_opt.malloc_context_size frames. Returns the
 * depot id, or 0 when capture is off or failed. Never calls malloc.
 */
uint32_t smpi_stack_capture(unsigned skip);

/* Fills pcs with up to max return addresses; returns how many. */
int smpi_stack_walk(uintptr_t *pcs, int max, unsigned skip);

/* The same walk done by libunwind alone (benchmarks and tests). */
int smpi_stack_walk_libunwind(uintptr_t *pcs, int max, unsigned skip);

/* The frames of a depot id; returns their count (0 for an unknown id). */
int smpi_stack_frames(uint32_t id, const uintptr_t **pcs);

#endif
