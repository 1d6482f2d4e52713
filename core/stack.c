/*
 * Stack capture and the stack depot.
 *
 * Capture uses unw_backtrace: libunwind's per-thread trace cache makes it
 * the cheapest exact walk available here (a unw_step loop or libgcc's
 * _Unwind_Backtrace costs about 0.7 us a frame on these machines; see
 * tests/bench/bench_stacks.c). Neither calls malloc.
 *
 * The depot keeps each distinct stack once. Records live in 1 MiB chunks
 * of bookkeeping memory and hang off a fixed table of hash chains; both
 * grow without a lock (a compare-and-swap per insert), so a thread that
 * forks or is stopped by the leak scan can never leave a lock held.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <stdatomic.h>
#include <string.h>

#include "meta.h"
#include "options.h"
#include "stack.h"

#define CHUNK_SHIFT 20
#define CHUNK_SIZE ((size_t)1 << CHUNK_SHIFT)
#define CHUNKS_MAX 4096 /* 4 GiB of distinct stacks */
#define HEADS_SHIFT 16

typedef struct record {
    _Atomic uint32_t next; /* id of the next record in the chain */
    uint32_t hash;
    uint32_t count;
    uint32_t unused;
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

static uint32_t hash_of(const uintptr_t *pcs, int n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n;

    for (int i = 0; i < n; i++) {
        h ^= pcs[i];
        h *= 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    return (uint32_t)h;
}

static int same(const record *r, uint32_t hash, const uintptr_t *pcs,
                int n)
{
    return r->hash == hash && r->count == (uint32_t)n &&
           memcmp(r->pcs, pcs, (size_t)n * sizeof *pcs) == 0;
}

/* Walks the chain from id down to stop (exclusive) looking for pcs. */
static uint32_t find(uint32_t id, uint32_t stop, uint32_t hash,
                     const uintptr_t *pcs, int n)
{
    while (id && id != stop) {
        record *r = lookup(id);
        if (same(r, hash, pcs, n))
            return id;
        id = atomic_load_explicit(&r->next, memory_order_acquire);
    }
    return 0;
}

static uint32_t depot_put(const uintptr_t *pcs, int n)
{
    _Atomic uint32_t *table = chain_heads();
    uint32_t hash = hash_of(pcs, n);
    uint32_t head, seen = 0, mine = 0, found;
    _Atomic uint32_t *slot;

    if (!table)
        return 0;
    slot = &table[hash & ((1u << HEADS_SHIFT) - 1)];
    head = atomic_load_explicit(slot, memory_order_acquire);
    for (;;) {
        /* only records pushed since the last look can be new */
        found = find(head, seen, hash, pcs, n);
        if (found)
            return found; /* a record of ours, if any, stays unused */
        if (!mine) {
            mine = reserve(sizeof(record) + (size_t)n * sizeof *pcs);
            if (!mine)
                return 0;
            record *r = lookup(mine);
            r->hash = hash;
            r->count = (uint32_t)n;
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

/* Leaves out drop innermost frames, counting this function's own. */
__attribute__((noinline)) static int walk(uintptr_t *pcs, int max,
                                          unsigned drop)
{
    void *buf[SMPI_STACK_DEPTH_MAX + 64];
    int want = max + (int)drop;
    int n;

    if (max <= 0 || drop > 64)
        return 0;
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

__attribute__((noinline)) int smpi_stack_walk(uintptr_t *pcs, int max,
                                              unsigned skip)
{
    /* walk's frame and ours */
    int n = walk(pcs, max, skip + 2);

    __asm__ volatile("" ::: "memory"); /* keeps this call from a tail jump */
    return n;
}

__attribute__((noinline)) uint32_t smpi_stack_capture(unsigned skip)
{
    uintptr_t pcs[SMPI_STACK_DEPTH_MAX];
    int depth = smpi_opt.malloc_context_size;
    int n;

    if (depth <= 0)
        return 0;
    if (depth > SMPI_STACK_DEPTH_MAX)
        depth = SMPI_STACK_DEPTH_MAX;
    n = walk(pcs, depth, skip + 2);
    if (n <= 0)
        return 0;
    return depot_put(pcs, n);
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
