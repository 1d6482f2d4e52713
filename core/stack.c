/*
 * Stack capture and the stack depot.
 *
 * Stacks are walked by walk.c, with the unwind rules of each return
 * address and the thread's memory of its recent stacks; the frames it
 * does not cover go to libunwind's unw_backtrace, which is exact
 * everywhere but costs several times more. Neither calls malloc. A stack
 * the thread walked before keeps its depot id, so capturing it again
 * costs the walk's check and no depot look-up.
 *
 * The depot keeps each distinct stack once. Records live in 1 MiB chunks
 * of bookkeeping memory and hang off a fixed table of hash chains; both
 * grow without a lock (a compare-and-swap per insert), so a thread that
 * forks or is stopped by the leak scan can never leave a lock held.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "meta.h"
#include "options.h"
#include "stack.h"
#include "unwind.h"
#include "walk.h"

/* a capture at the default depth, and the two frames it leaves out */
_Static_assert(SMPI_STACK_DEPTH_DEFAULT + 2 <= SMPI_WALK_HELD,
               "captures at the default depth would step every frame");

#define CHUNK_SHIFT 20
#define CHUNK_SIZE ((size_t)1 << CHUNK_SHIFT)
#define CHUNKS_MAX 4096 /* 4 GiB of distinct stacks */
#define HEADS_SHIFT 14

typedef struct record {
    _Atomic uint32_t next; /* id of the next record in the chain */
    uint32_t hash;
    uint32_t count;
    uint32_t generation;   /* what the addresses meant: see symbolize.h */
    uintptr_t pcs[];
} record;

static _Atomic(char *) chunks[CHUNKS_MAX];
static _Atomic uint64_t cursor; /* chunk << CHUNK_SHIFT | offset */
static _Atomic(_Atomic uint32_t *) heads;

/* Ids count 8-byte units from the start of chunk 0; 0 means none. */
static record *lookup(uint32_t id)
{
    uint64_t at = ((uint64_t)id - 1) << 3;
    uint64_t chunk = at >> CHUNK_SHIFT;
    char *base;

    if (id == 0 || chunk >= CHUNKS_MAX)
        return NULL;
    base = atomic_load_explicit(&chunks[chunk], memory_order_acquire);
    if (!base || (at & (CHUNK_SIZE - 1)) + sizeof(record) > CHUNK_SIZE)
        return NULL;
    return (record *)(base + (at & (CHUNK_SIZE - 1)));
}

static char *chunk_base(uint64_t chunk)
{
    char *base = atomic_load_explicit(&chunks[chunk], memory_order_acquire);
    char *fresh;

    if (base)
        return base;
    fresh = smpi_meta_alloc(CHUNK_SIZE);
    if (!fresh)
        return NULL;
    if (atomic_compare_exchange_strong(&chunks[chunk], &base, fresh))
        return fresh;
    smpi_meta_free(fresh, CHUNK_SIZE); /* another thread was first */
    return base;
}

/* Room for one record; its id, or 0 when memory ran out. */
static uint32_t reserve(size_t size)
{
    uint64_t at = atomic_load_explicit(&cursor, memory_order_relaxed);
    uint64_t start, end;

    for (;;) {
        start = at;
        if ((start & (CHUNK_SIZE - 1)) + size > CHUNK_SIZE)
            start = ((start >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;
        end = start + size;
        if ((start >> CHUNK_SHIFT) >= CHUNKS_MAX)
            return 0;
        if (atomic_compare_exchange_weak(&cursor, &at, end))
            break;
    }
    if (!chunk_base(start >> CHUNK_SHIFT))
        return 0;
    return (uint32_t)((start >> 3) + 1);
}

static _Atomic uint32_t *chain_heads(void)
{
    _Atomic uint32_t *table = atomic_load_explicit(&heads,
                                                   memory_order_acquire);
    _Atomic uint32_t *fresh;
    size_t size = sizeof(uint32_t) << HEADS_SHIFT;

    if (table)
        return table;
    fresh = smpi_meta_alloc(size);
    if (!fresh)
        return NULL;
    if (atomic_compare_exchange_strong(&heads, &table, fresh))
        return fresh;
    smpi_meta_free(fresh, size);
    return table;
}

/* Four lanes, so that the multiplications do not wait for each other. */
static uint32_t hash_of(const uintptr_t *pcs, int n)
{
    uint64_t lane[4] = { 0x9e3779b97f4a7c15u ^ (uint64_t)n, 1, 2, 3 };
    uint64_t h;
    int i;

    for (i = 0; i + 4 <= n; i += 4) {
        for (int j = 0; j < 4; j++)
            lane[j] = (lane[j] ^ pcs[i + j]) * 0xff51afd7ed558ccdu;
    }
    for (; i < n; i++)
        lane[0] = (lane[0] ^ pcs[i]) * 0xff51afd7ed558ccdu;
    h = lane[0] ^ (lane[1] >> 7) ^ (lane[2] >> 13) ^ (lane[3] >> 29);
    h ^= h >> 32;
    return (uint32_t)(h * 0xc4ceb9fe1a85ec53u >> 32);
}

static int same(const record *r, uint32_t hash, uint32_t generation,
                const uintptr_t *pcs, int n)
{
    return r->hash == hash && r->count == (uint32_t)n &&
           r->generation == generation &&
           memcmp(r->pcs, pcs, (size_t)n * sizeof *pcs) == 0;
}

/* Walks the chain from id down to stop (exclusive) looking for pcs. */
static uint32_t find(uint32_t id, uint32_t stop, uint32_t hash,
                     uint32_t generation, const uintptr_t *pcs, int n)
{
    while (id && id != stop) {
        record *r = lookup(id);
        if (same(r, hash, generation, pcs, n))
            return id;
        id = atomic_load_explicit(&r->next, memory_order_acquire);
    }
    return 0;
}

/*
 * The id of pcs as captured in generation: addresses from before and
 * after a dlclose may name different objects, so they are two stacks.
 */
static uint32_t depot_put(const uintptr_t *pcs, int n, uint32_t generation)
{
    _Atomic uint32_t *table = chain_heads();
    uint32_t hash = hash_of(pcs, n) ^ generation * 0x9e3779b9u;
    uint32_t head, seen = 0, mine = 0, found;
    _Atomic uint32_t *slot;

    if (!table)
        return 0;
    slot = &table[hash & ((1u << HEADS_SHIFT) - 1)];
    head = atomic_load_explicit(slot, memory_order_acquire);
    for (;;) {
        /* only records pushed since the last look can be new */
        found = find(head, seen, hash, generation, pcs, n);
        if (found)
            return found; /* a record of ours, if any, stays unused */
        if (!mine) {
            mine = reserve(sizeof(record) + (size_t)n * sizeof *pcs);
            if (!mine)
                return 0;
            record *r = lookup(mine);
            r->hash = hash;
            r->count = (uint32_t)n;
            r->generation = generation;
            memcpy(r->pcs, pcs, (size_t)n * sizeof *pcs);
        }
        atomic_store_explicit(&lookup(mine)->next, head,
                              memory_order_relaxed);
        seen = head;
        if (atomic_compare_exchange_weak_explicit(slot, &head, mine,
                                                  memory_order_release,
                                                  memory_order_acquire))
            return mine;
    }
}

/* The libunwind walk; drop counts this function's own frame. */
__attribute__((noinline)) static int slow_walk(uintptr_t *pcs, int max,
                                               unsigned drop)
{
    void *buf[SMPI_STACK_DEPTH_MAX + 64];
    int want = max + (int)drop;
    int n;

    if (want > (int)(sizeof buf / sizeof buf[0]))
        want = (int)(sizeof buf / sizeof buf[0]);
    n = unw_backtrace(buf, want) - (int)drop;
    if (n <= 0)
        return 0;
    if (n > max)
        n = max;
    memcpy(pcs, buf + drop, (size_t)n * sizeof *pcs);
    return n;
}

/*
 * Leaves out drop frames above this function's caller: drop 0 keeps the
 * return address into the caller first. A frame pointer is forced here,
 * so the first frame needs no rule.
 */
__attribute__((noinline)) static int walk(uintptr_t *pcs, int max,
                                          unsigned drop)
{
    const uintptr_t *fp = __builtin_frame_address(0);
    smpi_walk_frame f = { fp[1], (uintptr_t)(fp + 2), fp[0] };
    int n;

    if (max <= 0 || drop > 64)
        return 0;
    n = smpi_walk(f, pcs, max, drop);
    if (n < 0)
        n = slow_walk(pcs, max, drop + 2); /* slow_walk's frame and ours */
    __asm__ volatile("" ::: "memory"); /* no tail call: fp must stay */
    return n;
}

/* The same walk, for what its stack stands for (smpi_walk_memo). */
__attribute__((noinline)) static uint64_t
walk_memo(int max, unsigned drop, const smpi_memo_req *req)
{
    const uintptr_t *fp = __builtin_frame_address(0);
    smpi_walk_frame f = { fp[1], (uintptr_t)(fp + 2), fp[0] };
    uintptr_t pcs[SMPI_STACK_DEPTH_MAX];
    uint64_t value;
    int n;

    if (smpi_walk_memo(f, max, drop, req, &value) < 0) {
        n = slow_walk(pcs, max, drop + 2);
        value = req->make(pcs, n, req->ctx);
    }
    __asm__ volatile("" ::: "memory");
    return value;
}

__attribute__((noinline)) int smpi_stack_walk(uintptr_t *pcs, int max,
                                              unsigned skip)
{
    /* our own frame */
    int n = walk(pcs, max, skip + 1);

    __asm__ volatile("" ::: "memory"); /* keeps this call from a tail jump */
    return n;
}

__attribute__((noinline)) uint64_t smpi_stack_memo(int max, unsigned skip,
                                                   const smpi_memo_req *req)
{
    uint64_t value = walk_memo(max, skip + 1, req);

    __asm__ volatile("" ::: "memory");
    return value;
}

static uint64_t make_id(const uintptr_t *pcs, int n, void *ctx)
{
    (void)ctx;
    return n > 0 ? depot_put(pcs, n, smpi_unwind_generation()) : 0;
}

__attribute__((noinline)) uint32_t smpi_stack_capture(unsigned skip)
{
    int depth = smpi_opt.malloc_context_size;
    smpi_memo_req req = { SMPI_MEMO_DEPOT, 0, make_id, NULL };
    uint32_t id;

    if (depth <= 0)
        return 0;
    if (depth > SMPI_STACK_DEPTH_MAX)
        depth = SMPI_STACK_DEPTH_MAX;
    /* ids depend on the frames kept: a depth of its own, a key of its own */
    req.key = (uint64_t)depth << 8 | (skip + 1) | (uint64_t)1 << 63;
    id = (uint32_t)walk_memo(depth, skip + 1, &req);
    __asm__ volatile("" ::: "memory");
    return id;
}

/* Kept for the benchmark: the libunwind walk alone. */
__attribute__((noinline)) int smpi_stack_walk_libunwind(uintptr_t *pcs,
                                                        int max,
                                                        unsigned skip)
{
    int n = slow_walk(pcs, max, skip + 2);

    __asm__ volatile("" ::: "memory");
    return n;
}

unsigned smpi_stack_generation(uint32_t id)
{
    const uintptr_t *pcs;

    return smpi_stack_frames(id, &pcs) ? lookup(id)->generation : 0;
}

int smpi_stack_frames(uint32_t id, const uintptr_t **pcs)
{
    record *r = lookup(id);

    if (!r || atomic_load_explicit(&cursor, memory_order_acquire) <
                  ((uint64_t)id << 3)) {
        *pcs = NULL;
        return 0;
    }
    *pcs = r->pcs;
    return (int)r->count;
}
