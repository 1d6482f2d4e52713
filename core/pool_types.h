/*
 * The layout of pools and of the descriptors of their memory. Shared by
 * pool.c (pool objects, factory, statistics) and block.c (blocks).
 *
 * A small block lives in a chunk of equal blocks; a large block has a span
 * of its own with a guard page behind it. Everything the allocator knows
 * about a block sits in the descriptor, outside the block's memory, so an
 * overflow cannot rewrite it, and free blocks hold nothing but zeroes.
 */
#ifndef SMP_POOL_TYPES_H
#define SMP_POOL_TYPES_H

#include <pthread.h>
#include <stdint.h>

#include "lock.h"
#include "pool.h"
#include "region.h"
#include "thread.h"

#define SMPI_CHUNK_PAGES 16
#define SMPI_CHUNK_SIZE (SMPI_CHUNK_PAGES * SMPI_PAGE_SIZE)
/* A pool's first chunk of a class: most pools use most classes little */
#define SMPI_CHUNK_FIRST_PAGES 4
#define SMPI_SMALL_MAX 8192
#define SMPI_NCLASSES 32
/* freed large spans a pool keeps for reuse, wiped, locked and mapped */
#define SMPI_LARGE_CACHE 32
#define SMPI_LARGE_CACHE_PAGES 256

typedef struct smpi_chunk {
    smpi_span_head head;
    uint16_t cls;
    uint16_t nblocks;
    uint16_t nfree;
    uint16_t hint;         /* lowest bitmap word that may have a free bit */
    uint16_t pages;        /* the chunk's size */
    uint32_t block_size;
    uint32_t magic;        /* (offset * magic) >> 32 == offset / block_size */
    smp_pool *pool;
    uintptr_t base;
    struct smpi_chunk *next, *prev;    /* the pool's chunks with room */
    struct smpi_chunk *all_next, *all_prev; /* all the pool's chunks */
    struct smpi_chunk *remote_next;    /* the pool's remote-free list */
    int queued;                        /* on that list (atomic) */
    int locked;                        /* mlock succeeded */
    uint16_t *sizes;                   /* bytes asked for, per block */
    uint32_t *stacks;                  /* stack ids; made on first use */
    uint64_t *free_bits;               /* set: block is free */
    uint64_t *remote_bits;             /* set: freed by another thread */
} smpi_chunk;

typedef struct smpi_large {
    smpi_span_head head;
    smp_pool *pool;
    uintptr_t base;        /* the span: leading pad, data, guard page */
    size_t span_pages;
    uintptr_t data;
    size_t data_pages;
    size_t size;
    uint32_t stack;
    int live;
    int remote_freed;      /* atomic */
    int locked;
    struct smpi_large *next, *prev;    /* the pool's live large blocks */
    struct smpi_large *remote_next;
} smpi_large;

typedef struct smpi_counters {
    size_t live_blocks, live_bytes, peak_bytes, total_bytes;
    size_t allocations, frees, locked_bytes, lock_failures;
    size_t scope_entries, scope_exits, escaped_blocks;
} smpi_counters;

struct smp_pool {
    char name[SMP_NAME_MAX];
    int shared;              /* every operation takes the lock */
    smpi_thread *owner;      /* a thread's own pool; NULL once orphaned */
    int is_default;
    int scope_refs;          /* open scopes using the pool (atomic) */
    smpi_lock lock;
    smpi_chunk *chunks;      /* every chunk, full ones included */
    smpi_chunk *avail[SMPI_NCLASSES];
    uint32_t grown;          /* classes past their first chunk: a bit each */
    uint8_t empty[SMPI_NCLASSES]; /* empty chunks each class keeps: 0, 1 */
    smpi_large *large_live;
    smpi_large *large_cache[SMPI_LARGE_CACHE]; /* oldest first */
    int ncache;
    size_t cached_pages;
    /* frees by threads other than the owner, collected by the owner */
    smpi_chunk *remote_chunks;
    smpi_large *remote_large;
    size_t remote_blocks, remote_bytes;
    int inflight;
    smpi_counters c;
    struct smp_pool *reg_next, *reg_prev;
};

/* Statistics counters have one writer; readers may be other threads. */
#define SMPI_STAT_ADD(field, n)                                         \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) \
                     + (n), __ATOMIC_RELAXED)
#define SMPI_STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* block.c */
void smpi_collect_remote(smp_pool *pool);
void smpi_pool_release_all(smp_pool *pool, int destroying);
void smpi_pool_adopt(smp_pool *parent, smp_pool *child);
size_t smpi_class_size(unsigned cls);
void smpi_chunk_foreach_live(const smpi_chunk *c,
                             void (*fn)(const smpi_block *b, void *ctx),
                             void *ctx);
void smpi_pool_relock(smp_pool *pool);
void smpi_pool_wipe_live(smp_pool *pool);

/* pool.c */
void smpi_pool_free_object(smp_pool *pool);
void smpi_note_escape(const smp_pool *pool, const smpi_block *block);
/* 0 or an errno value; *locked says whether the pages are locked. */
int smpi_lock_memory(smp_pool *pool, void *p, size_t bytes, int *locked);
void smpi_unlock_memory(smp_pool *pool, void *p, size_t bytes, int locked);
void smpi_pool_retire_if_empty(smp_pool *pool);

#endif
