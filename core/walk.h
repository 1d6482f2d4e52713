/*
 * The stack walk behind stack capture and fn: rules: exact frames (the
 * ones libunwind would give) from each return address's unwind rule, and
 * a memory of the thread's recent stacks, so that a stack walked before
 * costs one check of the words it was read from, not a walk.
 */
#ifndef SMP_WALK_H
#define SMP_WALK_H

#include <stdint.h>

/* A frame: a return address, the caller's stack pointer, and rbp. */
typedef struct smpi_walk_frame {
    uintptr_t ip, sp, rbp;
} smpi_walk_frame;

/*
 * Walks of at most this many frames (those kept and those left out) use
 * the thread's memory of its stacks; deeper ones step every frame.
 */
#define SMPI_WALK_HELD 44

/*
 * Fills pcs with the return addresses from f outward, leaving out the
 * drop innermost and keeping at most max. Returns how many, or -1 when a
 * frame is not covered by the unwind rules (a signal frame, code without
 * unwind tables): the caller then asks libunwind. Never calls malloc.
 */
int smpi_walk(smpi_walk_frame f, uintptr_t *pcs, int max, unsigned drop);

/*
 * What a stack stands for, worked out once per distinct stack and kept
 * with the walk the thread remembers: its depot id, the fn: rules it
 * matches. make gives the value from the frames; key says which value
 * (a different key makes it again), never 0.
 */
enum { SMPI_MEMO_DEPOT, SMPI_MEMO_RULES, SMPI_MEMO_KINDS };

typedef struct smpi_memo_req {
    unsigned kind;
    uint64_t key;
    uint64_t (*make)(const uintptr_t *pcs, int n, void *ctx);
    void *ctx;
} smpi_memo_req;

/* The most frames smpi_walk_memo keeps for make. */
#define SMPI_WALK_MEMO_MAX 64

/*
 * The value for this stack's frames (walked as smpi_walk does), from the
 * thread's memory when it holds this exact stack, else from req->make.
 * 0 with *value set, or -1 when a frame is not covered by the rules or
 * max exceeds SMPI_WALK_MEMO_MAX.
 */
int smpi_walk_memo(smpi_walk_frame f, int max, unsigned drop,
                   const smpi_memo_req *req, uint64_t *value);

#endif
