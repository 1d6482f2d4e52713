/*
 * Call stacks of routed allocations: walked exactly (walk.c), as return
 * addresses only, and stored once per distinct stack in a depot, so memory
 * grows with the number of distinct stacks rather than of blocks.
 */
#ifndef SMP_STACK_H
#define SMP_STACK_H

#include <stdint.h>

#include "walk.h"

/* Most frames malloc_context_size may ask for, and its default. */
#define SMPI_STACK_DEPTH_MAX 64
#define SMPI_STACK_DEPTH_DEFAULT 30

/*
 * Captures the calling thread's stack, leaving out its skip innermost
 * frames, keeping at most smpi_opt.malloc_context_size frames. Returns the
 * depot id, or 0 when capture is off or failed. Never calls malloc.
 */
uint32_t smpi_stack_capture(unsigned skip);

/* Fills pcs with up to max return addresses; returns how many. */
int smpi_stack_walk(uintptr_t *pcs, int max, unsigned skip);

/*
 * What the calling thread's stack stands for under req (see walk.h), the
 * frames taken as smpi_stack_walk takes them: kept with the thread's
 * memory of the stack, so that a stack seen before is not worked out
 * again. max is at most SMPI_WALK_MEMO_MAX.
 */
uint64_t smpi_stack_memo(int max, unsigned skip, const smpi_memo_req *req);

/* The same walk done by libunwind alone (benchmarks and tests). */
int smpi_stack_walk_libunwind(uintptr_t *pcs, int max, unsigned skip);

/*
 * The unwind generation a depot id was captured in (see symbolize.h), 0
 * for an unknown id.
 */
unsigned smpi_stack_generation(uint32_t id);

/* The frames of a depot id; returns their count (0 for an unknown id). */
int smpi_stack_frames(uint32_t id, const uintptr_t **pcs);

#endif
