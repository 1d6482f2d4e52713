/*
 * Blocks: allocation, free, realloc, and the frees that other threads
 * make. A thread's own pool is touched only by its owner; another thread
 * that frees one of its blocks wipes it, marks it in the chunk's remote
 * bitmap and queues the chunk, and the owner folds those frees in later.
 */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "meta.h"
#include "pool_types.h"

/* the few helpers of the malloc and free paths, inlined there */
#define SMPI_HOT __attribute__((always_inline)) inline


/* ------------------------------------------------------------------ */
/* size classes: 16-byte steps to 128, then four steps per doubling     */

size_t smpi_class_size(unsigned cls)
{
    if (cls < 8)
        return 16u * (cls + 1);
    unsigned shift = 7 + (cls - 8) / 4;
    return ((size_t)1 << shift) + ((cls - 8) % 4 + 1) * ((size_t)1 << (shift - 2));
}

static SMPI_HOT unsigned class_of(size_t size)
{
    if (size <= 128)
        return size ? (unsigned)((size + 15) >> 4) - 1 : 0;
    size_t s = size - 1;
    unsigned top = 63 - (unsigned)__builtin_clzl(s);
    return 8 + (top - 7) * 4 + (unsigned)((s >> (top - 2)) & 3);
}

/*
 * The smallest class that fits size and whose blocks keep align. A chunk
 * starts on a page, so its blocks keep no alignment above one page: those
 * are large blocks, placed by their own span.
 */
static SMPI_HOT int class_for(size_t size, size_t align)
{
    if (size > SMPI_SMALL_MAX || align > SMPI_PAGE_SIZE)
        return -1;
    unsigned cls = class_of(size);
    if (align <= 16)
        return (int)cls;
    for (; cls < SMPI_NCLASSES; cls++)
        if (smpi_class_size(cls) % align == 0)
            return (int)cls;
    return -1;
}

/* ------------------------------------------------------------------ */
/* the busy mark the leak scan waits for                               */

static SMPI_HOT smpi_thread *enter(void)
{
    smpi_thread *t = smpi_self;
    if (t) {
        t->busy = 1;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    return t;
}

static SMPI_HOT void leave(smpi_thread *t)
{
    if (!t)
        return;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->busy = 0;
    if (t->stop_pending && smpi_stop_hook)
        smpi_stop_hook();
}

/* ------------------------------------------------------------------ */
/* chunks                                                              */

static void avail_push(smp_pool *pool, smpi_chunk *c)
{
    smpi_chunk **head = &pool->avail[c->cls];
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void avail_unlink(smp_pool *pool, smpi_chunk *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        pool->avail[c->cls] = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void all_link(smp_pool *pool, smpi_chunk *c)
{
    c->all_prev = NULL;
    c->all_next = pool->chunks;
    if (c->all_next)
        c->all_next->all_prev = c;
    pool->chunks = c;
}

static void all_unlink(smp_pool *pool, smpi_chunk *c)
{
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        pool->chunks = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
}

static size_t chunk_desc_size(size_t nblocks)
{
    size_t words = (nblocks + 63) / 64;
    return sizeof(smpi_chunk) + 2 * words * sizeof(uint64_t)
           + nblocks * sizeof(uint16_t);
}

static size_t chunk_bytes(const smpi_chunk *c)
{
    return (size_t)c->pages * SMPI_PAGE_SIZE;
}

static void chunk_layout(smpi_chunk *c, unsigned cls, size_t pages)
{
    size_t bs = smpi_class_size(cls);
    size_t n = pages * SMPI_PAGE_SIZE / bs;
    size_t words = (n + 63) / 64;

    c->head.kind = SMPI_SPAN_SMALL;
    c->cls = (uint16_t)cls;
    c->pages = (uint16_t)pages;
    c->nblocks = (uint16_t)n;
    c->nfree = (uint16_t)n;
    c->block_size = (uint32_t)bs;
    c->magic = (uint32_t)((((uint64_t)1) << 32) / bs + 1);
    c->free_bits = (uint64_t *)(c + 1);
    c->remote_bits = c->free_bits + words;
    c->sizes = (uint16_t *)(c->remote_bits + words);
    /* sizes are written by each allocation; the bitmap says which hold */
    for (size_t i = 0; i < n; i++)
        c->free_bits[i / 64] |= (uint64_t)1 << (i % 64);
}

/* Commits, locks and marks fresh pool memory; 0 or an errno value. */
static int prepare_memory(smp_pool *pool, void *p, size_t bytes,
                          int *locked)
{
    char name[SMP_NAME_MAX + 8];
    int err = smpi_os_commit(p, bytes);

    if (err)
        return err;
    err = smpi_lock_memory(pool, p, bytes, locked);
    if (err) {
        smpi_os_decommit(p, bytes);
        return err;
    }
    smpi_os_dontdump(p, bytes);
    memcpy(name, "smp:", 4);
    memcpy(name + 4, pool->name, strlen(pool->name) + 1);
    smpi_os_name(p, bytes, name);
    return 0;
}

/*
 * A pool's first chunk of a class is small: whatever a pool holds of a
 * class it uses little stays cheap to lock (RLIMIT_MEMLOCK is small for
 * ordinary users). Classes that fill it get full chunks from then on.
 */
static size_t chunk_pages_for(smp_pool *pool, unsigned cls)
{
    uint32_t bit = (uint32_t)1 << cls;

    if (pool->grown & bit)
        return SMPI_CHUNK_PAGES;
    pool->grown |= bit;
    return SMPI_CHUNK_FIRST_PAGES;
}

static smpi_chunk *chunk_new(smp_pool *pool, unsigned cls)
{
    size_t pages = chunk_pages_for(pool, cls);
    size_t n = pages * SMPI_PAGE_SIZE / smpi_class_size(cls);
    smpi_chunk *c = smpi_meta_alloc(chunk_desc_size(n));
    void *mem = c ? smpi_region_take(pages) : NULL;
    int locked = 0;
    int err = mem ? prepare_memory(pool, mem, pages * SMPI_PAGE_SIZE,
                                   &locked)
                  : ENOMEM;

    if (err) {
        if (mem)
            smpi_region_give(mem, pages, NULL);
        smpi_meta_free(c, c ? chunk_desc_size(n) : 0);
        errno = err;
        return NULL;
    }
    chunk_layout(c, cls, pages);
    c->locked = locked;
    c->pool = pool;
    c->base = (uintptr_t)mem;
    smpi_region_map(mem, pages, &c->head);
    avail_push(pool, c);
    all_link(pool, c);
    pool->empty[cls]++;
    return c;
}

/* Gives an empty chunk's memory back; its blocks are zero already. */
static void chunk_release(smp_pool *pool, smpi_chunk *c)
{
    void *mem = (void *)c->base;
    int saved = errno;  /* free must keep errno */

    avail_unlink(pool, c);
    all_unlink(pool, c);
    smpi_unlock_memory(pool, mem, chunk_bytes(c), c->locked);
    smpi_region_give(mem, c->pages, NULL);
    if (c->stacks)
        smpi_meta_free(c->stacks, c->nblocks * sizeof(uint32_t));
    smpi_meta_free(c, chunk_desc_size(c->nblocks));
    errno = saved;
}

static SMPI_HOT unsigned block_index(const smpi_chunk *c, const void *p)
{
    uint64_t offset = (uintptr_t)p - c->base;
    return (unsigned)((offset * c->magic) >> 32);
}

/* ------------------------------------------------------------------ */
/* statistics                                                           */

static SMPI_HOT void count_alloc(smp_pool *pool, size_t size)
{
    smpi_counters *k = &pool->c;
    size_t live = k->live_bytes + size;

    SMPI_STAT_ADD(k->allocations, 1);
    SMPI_STAT_ADD(k->live_blocks, 1);
    SMPI_STAT_ADD(k->total_bytes, size);
    __atomic_store_n(&k->live_bytes, live, __ATOMIC_RELAXED);
    if (live > k->peak_bytes)
        __atomic_store_n(&k->peak_bytes, live, __ATOMIC_RELAXED);
}

static SMPI_HOT void count_free(smp_pool *pool, size_t size)
{
    SMPI_STAT_ADD(pool->c.frees, 1);
    SMPI_STAT_ADD(pool->c.live_blocks, (size_t)-1);
    SMPI_STAT_ADD(pool->c.live_bytes, 0 - size);
}

/* ------------------------------------------------------------------ */
/* small blocks                                                         */

static SMPI_HOT void set_stack(smpi_chunk *c, unsigned i, uint32_t stack)
{
    if (!c->stacks) {
        if (!stack)
            return;
        c->stacks = smpi_meta_alloc(c->nblocks * sizeof(uint32_t));
        if (!c->stacks)
            return;
    }
    c->stacks[i] = stack;
}

static SMPI_HOT void *small_alloc(smp_pool *pool, unsigned cls, size_t size,
                         uint32_t stack)
{
    smpi_chunk *c = pool->avail[cls];

    if (!c) {
        smpi_collect_remote(pool);
        c = pool->avail[cls];
    }
    if (!c && !(c = chunk_new(pool, cls)))
        return NULL;

    unsigned w = c->hint;
    while (!c->free_bits[w])
        w++;
    unsigned bit = (unsigned)__builtin_ctzll(c->free_bits[w]);
    unsigned i = w * 64 + bit;
    /* other threads' frees read the bitmap: atomic, but no lock prefix */
    __atomic_store_n(&c->free_bits[w], c->free_bits[w] & ~((uint64_t)1 << bit),
                     __ATOMIC_RELAXED);
    c->hint = (uint16_t)w;
    if (c->nfree == c->nblocks)
        pool->empty[cls]--;
    if (--c->nfree == 0)
        avail_unlink(pool, c);

    c->sizes[i] = (uint16_t)size;
    set_stack(c, i, stack);
    count_alloc(pool, size);
    return (void *)(c->base + (uintptr_t)i * c->block_size);
}

/* Marks block i free; its memory must be zero already. */
static SMPI_HOT void small_release(smp_pool *pool, smpi_chunk *c, unsigned i)
{
    size_t size = c->sizes[i];

    /* a free block's size and stack id are never read again: the bitmap
       says it is free, and the next allocation writes both */
    __atomic_store_n(&c->free_bits[i / 64],
                     c->free_bits[i / 64] | (uint64_t)1 << (i % 64),
                     __ATOMIC_RELAXED);
    if (i / 64 < c->hint)
        c->hint = (uint16_t)(i / 64);
    count_free(pool, size);
    if (c->nfree++ == 0)
        avail_push(pool, c);
    if (c->nfree < c->nblocks)
        return;
    /* each class keeps one empty chunk, so that a class whose blocks come
     * and go in waves does not map, lock, unlock and unmap a chunk each
     * wave; a second empty one goes back */
    if (pool->empty[c->cls])
        chunk_release(pool, c);
    else
        pool->empty[c->cls]++;
}

__attribute__((noreturn))
static void misuse(const char *who, const char *what, const void *p,
                   const smp_pool *pool)
{
    if (pool)
        smpi_fatal("%s(%p): %s (pool '%s'); the program has a memory bug",
                   who, p, what, pool->name);
    smpi_fatal("%s(%p): %s; the program has a memory bug", who, p, what);
}

/* What meeting a freed block means, for the entry point that met it. */
static const char *freed_misuse(const char *who)
{
    if (!strcmp(who, "free") || !strcmp(who, "smp_free"))
        return "double free of a pool block";
    return "use of a pool block that was already freed";
}

/* Index of the block p points to; aborts unless p starts a live block. */
static SMPI_HOT unsigned small_check(const smpi_chunk *c, const void *p,
                            const char *who)
{
    unsigned i = block_index(c, p);

    if (i >= c->nblocks || c->base + (uintptr_t)i * c->block_size
                           != (uintptr_t)p)
        misuse(who, "pointer into the middle of a pool block", p, c->pool);
    uint64_t bit = (uint64_t)1 << (i % 64);
    if ((__atomic_load_n(&c->free_bits[i / 64], __ATOMIC_RELAXED) & bit) ||
        (__atomic_load_n(&c->remote_bits[i / 64], __ATOMIC_RELAXED) & bit))
        misuse(who, freed_misuse(who), p, c->pool);
    return i;
}

/* ------------------------------------------------------------------ */
/* large blocks                                                         */

static void large_link(smp_pool *pool, smpi_large *l)
{
    l->prev = NULL;
    l->next = pool->large_live;
    if (l->next)
        l->next->prev = l;
    pool->large_live = l;
}

static void large_unlink(smp_pool *pool, smpi_large *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        pool->large_live = l->next;
    if (l->next)
        l->next->prev = l->prev;
}

static smpi_large *cache_take(smp_pool *pool, int k)
{
    smpi_large *l = pool->large_cache[k];

    pool->ncache--;
    memmove(&pool->large_cache[k], &pool->large_cache[k + 1],
            (size_t)(pool->ncache - k) * sizeof l);
    pool->cached_pages -= l->data_pages;
    return l;
}

/* The most recently freed span that fits without wasting a quarter. */
static smpi_large *large_from_cache(smp_pool *pool, size_t data_pages,
                                    size_t align)
{
    for (int k = pool->ncache - 1; k >= 0; k--) {
        smpi_large *l = pool->large_cache[k];
        if (l->data_pages < data_pages || l->data_pages > data_pages * 5 / 4
            || (l->data & (align - 1)))
            continue;
        return cache_take(pool, k);
    }
    return NULL;
}

static smpi_large *large_new(smp_pool *pool, size_t data_pages, size_t align)
{
    size_t pad = align > SMPI_PAGE_SIZE ? align / SMPI_PAGE_SIZE - 1 : 0;
    size_t span = pad + data_pages + 1;
    smpi_large *l = smpi_meta_alloc(sizeof *l);
    void *mem = l ? smpi_region_take(span) : NULL;

    if (!mem) {
        smpi_meta_free(l, sizeof *l);
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t data = ((uintptr_t)mem + align - 1) & ~(uintptr_t)(align - 1);
    size_t bytes = data_pages * SMPI_PAGE_SIZE;
    int locked = 0;
    int err = prepare_memory(pool, (void *)data, bytes, &locked);
    if (err) {
        smpi_region_give(mem, span, NULL);
        smpi_meta_free(l, sizeof *l);
        errno = err;
        return NULL;
    }
    *l = (smpi_large){ .head = { SMPI_SPAN_LARGE }, .base = (uintptr_t)mem,
                       .span_pages = span, .data = data,
                       .data_pages = data_pages, .locked = locked };
    smpi_region_map(mem, span, &l->head);
    return l;
}

static void *large_alloc(smp_pool *pool, size_t size, size_t align,
                         uint32_t stack)
{
    size_t data_pages = (size + SMPI_PAGE_SIZE - 1) / SMPI_PAGE_SIZE;
    smpi_large *l;

    if (size > ((size_t)1 << 46)) {
        errno = ENOMEM;
        return NULL;
    }
    if (align < SMPI_PAGE_SIZE)
        align = SMPI_PAGE_SIZE;
    if (!data_pages)
        data_pages = 1;
    l = large_from_cache(pool, data_pages, align);
    if (!l && !(l = large_new(pool, data_pages, align)))
        return NULL;
    l->pool = pool;
    l->size = size;
    l->stack = stack;
    l->live = 1;
    l->remote_freed = 0;
    large_link(pool, l);
    count_alloc(pool, size);
    return (void *)l->data;
}

static void large_destroy(smp_pool *pool, smpi_large *l)
{
    void *data = (void *)l->data;
    size_t bytes = l->data_pages * SMPI_PAGE_SIZE;
    int saved = errno;  /* free must keep errno */

    smpi_unlock_memory(pool, data, bytes, l->locked);
    smpi_region_give((void *)l->base, l->span_pages, NULL);
    smpi_meta_free(l, sizeof *l);
    errno = saved;
}

/*
 * The block's memory must be zero already. Its span is kept for the next
 * large block, as programs free and allocate large buffers in turns:
 * reuse costs no system call, a new span about six. The oldest spans go
 * when the cache is full.
 */
static void large_release(smp_pool *pool, smpi_large *l)
{
    large_unlink(pool, l);
    l->live = 0;
    count_free(pool, l->size);
    if (l->data_pages > SMPI_LARGE_CACHE_PAGES) {
        large_destroy(pool, l);
        return;
    }
    while (pool->ncache == SMPI_LARGE_CACHE ||
           pool->cached_pages + l->data_pages > SMPI_LARGE_CACHE_PAGES)
        large_destroy(pool, cache_take(pool, 0));
    pool->large_cache[pool->ncache++] = l;
    pool->cached_pages += l->data_pages;
}

static void large_check(const smpi_large *l, const void *p, const char *who)
{
    if ((uintptr_t)p != l->data)
        misuse(who, "pointer into the middle of a pool block", p, l->pool);
    if (!l->live || __atomic_load_n(&l->remote_freed, __ATOMIC_RELAXED))
        misuse(who, freed_misuse(who), p, l->pool);
}

/* ------------------------------------------------------------------ */
/* finding a block                                                      */

static SMPI_HOT smpi_span_head *span_check(const void *p, const char *who)
{
    smpi_span_head *h = smpi_span_of(p);

    if (!h)
        misuse(who, "not a live block of any pool", p, NULL);
    if (h->kind == SMPI_SPAN_TOMB)
        smpi_fatal("%s(%p): block of pool '%s', which was destroyed; the "
                   "program uses memory after its scope ended", who,
                   p, ((smpi_tomb *)h)->pool_name);
    return h;
}

static SMPI_HOT smp_pool *span_pool(const smpi_span_head *h)
{
    return h->kind == SMPI_SPAN_SMALL ? ((const smpi_chunk *)h)->pool
                                      : ((const smpi_large *)h)->pool;
}

static void lock_pool(smp_pool *pool)
{
    smpi_lock_take(&pool->lock);
}

static void unlock_pool(smp_pool *pool)
{
    smpi_lock_give(&pool->lock);
}

/* ------------------------------------------------------------------ */
/* allocation                                                           */

static SMPI_HOT void *alloc_in(smp_pool *pool, size_t size, size_t align,
                      uint32_t stack)
{
    int cls = class_for(size, align);

    if (cls >= 0)
        return small_alloc(pool, (unsigned)cls, size, stack);
    return large_alloc(pool, size, align, stack);
}

void *smpi_pool_alloc(smp_pool *pool, size_t size, size_t align,
                      uint32_t stack)
{
    if (align & (align - 1)) {
        errno = EINVAL;
        return NULL;
    }
    if (!pool->shared) {
        if (pool->owner != smpi_self || !pool->owner) {
            errno = EPERM;
            return NULL;
        }
        smpi_thread *t = enter();
        void *p = alloc_in(pool, size, align, stack);
        leave(t);
        return p;
    }

    smpi_thread *t = smpi_thread_get();
    enter();
    lock_pool(pool);
    void *p = alloc_in(pool, size, align, stack);
    unlock_pool(pool);
    leave(t);
    return p;
}

/* ------------------------------------------------------------------ */
/* free                                                                 */

/* Frees a checked block of a pool the caller may change. */
static SMPI_HOT void free_checked(smp_pool *pool, smpi_span_head *h, void *p,
                         const char *who)
{
    if (h->kind == SMPI_SPAN_SMALL) {
        smpi_chunk *c = (smpi_chunk *)h;
        unsigned i = small_check(c, p, who);
        smpi_wipe(p, c->block_size);
        small_release(pool, c, i);
    } else {
        smpi_large *l = (smpi_large *)h;
        large_check(l, p, who);
        smpi_wipe(p, l->data_pages * SMPI_PAGE_SIZE);
        large_release(pool, l);
    }
}

static void queue_chunk(smp_pool *pool, smpi_chunk *c)
{
    if (__atomic_exchange_n(&c->queued, 1, __ATOMIC_SEQ_CST))
        return;
    smpi_chunk *head = __atomic_load_n(&pool->remote_chunks, __ATOMIC_RELAXED);
    do
        c->remote_next = head;
    while (!__atomic_compare_exchange_n(&pool->remote_chunks, &head, c, 1,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

static void queue_large(smp_pool *pool, smpi_large *l)
{
    smpi_large *head = __atomic_load_n(&pool->remote_large, __ATOMIC_RELAXED);
    do
        l->remote_next = head;
    while (!__atomic_compare_exchange_n(&pool->remote_large, &head, l, 1,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* Wipes the block now and leaves the bookkeeping to the owner. */
static void free_remote_marked(smp_pool *pool, smpi_span_head *h, void *p,
                               const char *who)
{
    size_t size;

    if (h->kind == SMPI_SPAN_SMALL) {
        smpi_chunk *c = (smpi_chunk *)h;
        unsigned i = small_check(c, p, who);
        uint64_t bit = (uint64_t)1 << (i % 64);
        size = c->sizes[i];
        smpi_wipe(p, c->block_size);
        if (__atomic_fetch_or(&c->remote_bits[i / 64], bit,
                              __ATOMIC_SEQ_CST) & bit)
            misuse(who, freed_misuse(who), p, pool);
        queue_chunk(pool, c);
    } else {
        smpi_large *l = (smpi_large *)h;
        large_check(l, p, who);
        size = l->size;
        smpi_wipe(p, l->data_pages * SMPI_PAGE_SIZE);
        if (__atomic_exchange_n(&l->remote_freed, 1, __ATOMIC_SEQ_CST))
            misuse(who, freed_misuse(who), p, pool);
        queue_large(pool, l);
    }
    __atomic_fetch_add(&pool->remote_blocks, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&pool->remote_bytes, size, __ATOMIC_RELAXED);
}

/* Free from a thread that does not own the pool, or of an orphan. */
static void free_remote(smp_pool *pool, smpi_span_head *h, void *p,
                        const char *who)
{
    __atomic_fetch_add(&pool->inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&pool->owner, __ATOMIC_SEQ_CST)) {
        free_remote_marked(pool, h, p, who);
        __atomic_fetch_sub(&pool->inflight, 1, __ATOMIC_RELEASE);
        return;
    }
    /* the owner has exited: whoever frees does the owner's work */
    __atomic_fetch_sub(&pool->inflight, 1, __ATOMIC_RELEASE);
    smpi_thread *t = smpi_thread_get();
    enter();
    lock_pool(pool);
    smpi_collect_remote(pool);
    free_checked(pool, h, p, who);
    smpi_pool_retire_if_empty(pool);
    unlock_pool(pool);
    leave(t);
}

void smpi_free(void *p, const char *who)
{
    if (smpi_teardown_done)
        return;
    smpi_span_head *h = span_check(p, who);
    smp_pool *pool = span_pool(h);

    if (!pool->shared) {
        smpi_thread *self = smpi_self;
        if (self && __atomic_load_n(&pool->owner, __ATOMIC_RELAXED) == self) {
            enter();
            free_checked(pool, h, p, who);
            leave(self);
        } else {
            free_remote(pool, h, p, who);
        }
        return;
    }
    smpi_thread *t = smpi_thread_get();
    enter();
    lock_pool(pool);
    free_checked(pool, h, p, who);
    unlock_pool(pool);
    leave(t);
}

/* ------------------------------------------------------------------ */
/* collecting other threads' frees                                     */

static void collect_chunk(smp_pool *pool, smpi_chunk *c)
{
    uint64_t taken[SMPI_CHUNK_SIZE / 16 / 64];
    size_t words = ((size_t)c->nblocks + 63) / 64;

    /* take every bit first: the last release may free the chunk */
    __atomic_store_n(&c->queued, 0, __ATOMIC_SEQ_CST);
    for (size_t w = 0; w < words; w++)
        taken[w] = __atomic_exchange_n(&c->remote_bits[w], 0,
                                       __ATOMIC_ACQUIRE);
    for (size_t w = 0; w < words; w++) {
        while (taken[w]) {
            unsigned i = (unsigned)(w * 64) + (unsigned)__builtin_ctzll(taken[w]);
            taken[w] &= taken[w] - 1;
            __atomic_fetch_sub(&pool->remote_blocks, 1, __ATOMIC_RELAXED);
            __atomic_fetch_sub(&pool->remote_bytes, c->sizes[i],
                               __ATOMIC_RELAXED);
            small_release(pool, c, i);
        }
    }
}

void smpi_collect_remote(smp_pool *pool)
{
    smpi_chunk *c = __atomic_exchange_n(&pool->remote_chunks, NULL,
                                        __ATOMIC_ACQUIRE);
    while (c) {
        smpi_chunk *next = c->remote_next;
        collect_chunk(pool, c);
        c = next;
    }

    smpi_large *l = __atomic_exchange_n(&pool->remote_large, NULL,
                                        __ATOMIC_ACQUIRE);
    while (l) {
        smpi_large *next = l->remote_next;
        __atomic_fetch_sub(&pool->remote_blocks, 1, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&pool->remote_bytes, l->size, __ATOMIC_RELAXED);
        large_release(pool, l);
        l = next;
    }
}

/* ------------------------------------------------------------------ */
/* realloc and sizes                                                    */

static size_t block_usable(const smpi_span_head *h)
{
    if (h->kind == SMPI_SPAN_SMALL)
        return ((const smpi_chunk *)h)->block_size;
    return ((const smpi_large *)h)->data_pages * SMPI_PAGE_SIZE;
}

static void check_live(smpi_span_head *h, const void *p, const char *who)
{
    if (h->kind == SMPI_SPAN_SMALL)
        small_check((const smpi_chunk *)h, p, who);
    else
        large_check((const smpi_large *)h, p, who);
}

size_t smpi_usable_size(const void *p, const char *who)
{
    smpi_span_head *h = span_check(p, who);
    check_live(h, p, who);
    return block_usable(h);
}

/* A small block keeps its place when the new size is of its class. */
static int resize_in_place(smp_pool *pool, smpi_span_head *h, void *p,
                           size_t size)
{
    if (h->kind != SMPI_SPAN_SMALL || size > SMPI_SMALL_MAX)
        return 0;
    smpi_chunk *c = (smpi_chunk *)h;
    if (class_of(size) != c->cls)
        return 0;

    unsigned i = block_index(c, p);
    size_t old = c->sizes[i];
    if (size < old)
        smpi_wipe((char *)p + size, old - size);
    c->sizes[i] = (uint16_t)size;
    SMPI_STAT_ADD(pool->c.live_bytes, size - old);
    if (size > old)
        SMPI_STAT_ADD(pool->c.total_bytes, size - old);
    if (pool->c.live_bytes > pool->c.peak_bytes)
        __atomic_store_n(&pool->c.peak_bytes, pool->c.live_bytes,
                         __ATOMIC_RELAXED);
    return 1;
}

void *smpi_realloc(void *p, size_t size, uint32_t stack)
{
    smpi_span_head *h = span_check(p, "realloc");
    smp_pool *pool = span_pool(h);
    smpi_thread *self = smpi_self;
    int mine = pool->shared || (self && pool->owner == self);

    check_live(h, p, "realloc");
    if (mine) {
        if (pool->shared)
            lock_pool(pool);
        enter();
        int done = resize_in_place(pool, h, p, size);
        leave(self);
        if (pool->shared)
            unlock_pool(pool);
        if (done)
            return p;
    }

    /* another thread's pool: the copy goes to this thread's namesake */
    smp_pool *home = mine ? pool : smpi_thread_pool_named(pool->name);
    void *q = home ? smpi_pool_alloc(home, size, 0, stack) : NULL;
    if (!q)
        return NULL;

    /*
     * All of the old block moves, as with glibc: a program may fill what
     * malloc_usable_size reported beyond the size it asked for.
     */
    size_t old = block_usable(h);
    memcpy(q, p, old < size ? old : size);
    smpi_free(p, "realloc");
    return q;
}

/* ------------------------------------------------------------------ */
/* whole pools                                                          */

void smpi_chunk_foreach_live(const smpi_chunk *c,
                             void (*fn)(const smpi_block *b, void *ctx),
                             void *ctx)
{
    for (unsigned i = 0; i < c->nblocks; i++) {
        if (c->free_bits[i / 64] & ((uint64_t)1 << (i % 64)))
            continue;
        smpi_block b = {
            .addr = c->base + (uintptr_t)i * c->block_size,
            .size = c->sizes[i],
            .usable = c->block_size,
            .stack = c->stacks ? c->stacks[i] : 0,
        };
        fn(&b, ctx);
    }
}

static smpi_block large_block(const smpi_large *l)
{
    return (smpi_block){ .addr = l->data, .size = l->size,
                         .usable = l->data_pages * SMPI_PAGE_SIZE,
                         .stack = l->stack };
}

static void foreach_chunk(const smp_pool *pool,
                          void (*fn)(smpi_chunk *c, void *ctx), void *ctx)
{
    smpi_chunk *c = pool->chunks;
    while (c) {
        smpi_chunk *next = c->all_next;
        fn(c, ctx);
        c = next;
    }
}

typedef struct block_visit {
    void (*fn)(const smpi_block *b, void *ctx);
    void *ctx;
} block_visit;

static void visit_chunk(smpi_chunk *c, void *ctx)
{
    block_visit *v = ctx;
    smpi_chunk_foreach_live(c, v->fn, v->ctx);
}

void smpi_foreach_block(const smp_pool *pool,
                        void (*fn)(const smpi_block *block, void *ctx),
                        void *ctx)
{
    block_visit v = { fn, ctx };

    foreach_chunk(pool, visit_chunk, &v);
    for (const smpi_large *l = pool->large_live; l; l = l->next) {
        smpi_block b = large_block(l);
        fn(&b, ctx);
    }
}

/* Wipes the live blocks of a chunk, noting them as escaped if asked. */
typedef struct release_ctx {
    smp_pool *pool;
    int destroying;
    size_t blocks;
} release_ctx;

static void wipe_block(const smpi_block *b, void *ctx)
{
    release_ctx *r = ctx;
    if (r->destroying)
        smpi_note_escape(r->pool, b);
    smpi_wipe((void *)b->addr, b->usable);
    r->blocks++;
}

static smpi_tomb *tomb_for(const smp_pool *pool, int destroying)
{
    if (!destroying)
        return NULL;
    smpi_tomb *t = smpi_meta_alloc(sizeof *t);
    if (t) {
        t->head.kind = SMPI_SPAN_TOMB;
        memcpy(t->pool_name, pool->name, sizeof t->pool_name);
    }
    return t;
}

static void release_chunk(smpi_chunk *c, void *ctx)
{
    release_ctx *r = ctx;
    smpi_chunk_foreach_live(c, wipe_block, r);
    smpi_unlock_memory(r->pool, (void *)c->base, chunk_bytes(c),
                       c->locked);
    smpi_region_give((void *)c->base, c->pages,
                     tomb_for(r->pool, r->destroying));
    if (c->stacks)
        smpi_meta_free(c->stacks, c->nblocks * sizeof(uint32_t));
    smpi_meta_free(c, chunk_desc_size(c->nblocks));
}

static void release_large(smp_pool *pool, smpi_large *l, release_ctx *r)
{
    smpi_block b = large_block(l);
    wipe_block(&b, r);
    smpi_unlock_memory(pool, (void *)l->data, b.usable, l->locked);
    smpi_region_give((void *)l->base, l->span_pages,
                     tomb_for(pool, r->destroying));
    smpi_meta_free(l, sizeof *l);
}

/*
 * The whole-pool operations run inside the guard, like the runtime's
 * mutexes: a thread stopped halfway through one would leave chunks half
 * released for the thread that stopped it, which walks every pool next.
 */
void smpi_pool_release_all(smp_pool *pool, int destroying)
{
    release_ctx r = { pool, destroying, 0 };

    smpi_guard++;
    smpi_collect_remote(pool);
    foreach_chunk(pool, release_chunk, &r);
    while (pool->large_live) {
        smpi_large *l = pool->large_live;
        pool->large_live = l->next;
        release_large(pool, l, &r);
    }
    while (pool->ncache > 0)
        large_destroy(pool, cache_take(pool, pool->ncache - 1));
    pool->chunks = NULL;
    memset(pool->avail, 0, sizeof pool->avail);
    memset(pool->empty, 0, sizeof pool->empty);

    if (destroying)
        SMPI_STAT_ADD(pool->c.escaped_blocks, r.blocks);
    else
        SMPI_STAT_ADD(pool->c.frees, r.blocks);
    __atomic_store_n(&pool->c.live_blocks, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->c.live_bytes, 0, __ATOMIC_RELAXED);
    smpi_guard--;
}

static void sum_block(const smpi_block *b, void *ctx)
{
    *(size_t *)ctx += b->size;
}

/* Moves the live blocks' counts from one pool to another. */
static void move_counts(smp_pool *from, smp_pool *to, size_t blocks,
                        size_t bytes, size_t locked)
{
    SMPI_STAT_ADD(from->c.locked_bytes, 0 - locked);
    SMPI_STAT_ADD(to->c.locked_bytes, locked);
    SMPI_STAT_ADD(from->c.escaped_blocks, blocks);
    SMPI_STAT_ADD(from->c.live_blocks, 0 - blocks);
    SMPI_STAT_ADD(from->c.live_bytes, 0 - bytes);
    SMPI_STAT_ADD(to->c.live_blocks, blocks);
    SMPI_STAT_ADD(to->c.live_bytes, bytes);
    if (to->c.live_bytes > to->c.peak_bytes)
        __atomic_store_n(&to->c.peak_bytes, to->c.live_bytes,
                         __ATOMIC_RELAXED);
}

static void adopt_chunk(smp_pool *parent, smp_pool *child, smpi_chunk *c)
{
    size_t bytes = 0;

    all_unlink(child, c);
    if (c->nfree)
        avail_unlink(child, c);
    smpi_chunk_foreach_live(c, sum_block, &bytes);
    c->pool = parent;
    all_link(parent, c);
    if (c->nfree)
        avail_push(parent, c);
    move_counts(child, parent, (size_t)(c->nblocks - c->nfree), bytes,
                c->locked ? chunk_bytes(c) : 0);
}

/* Hands the child's live blocks to parent; the child ends up empty. */
void smpi_pool_adopt(smp_pool *parent, smp_pool *child)
{
    smpi_guard++;
    smpi_collect_remote(child);
    while (child->chunks) {
        smpi_chunk *c = child->chunks;
        if (c->nfree == c->nblocks) {
            child->empty[c->cls]--;
            chunk_release(child, c);
        } else {
            adopt_chunk(parent, child, c);
        }
    }
    while (child->large_live) {
        smpi_large *l = child->large_live;
        large_unlink(child, l);
        l->pool = parent;
        large_link(parent, l);
        move_counts(child, parent, 1, l->size,
                    l->locked ? l->data_pages * SMPI_PAGE_SIZE : 0);
    }
    while (child->ncache > 0)
        large_destroy(child, cache_take(child, child->ncache - 1));
    smpi_guard--;
}

static void relock_chunk(smpi_chunk *c, void *ctx)
{
    (void)ctx;
    if (c->locked)
        smpi_os_lock((void *)c->base, chunk_bytes(c));
}

/* Locks are not inherited by fork: the child takes them again. */
void smpi_pool_relock(smp_pool *pool)
{
    if (!pool->c.locked_bytes)
        return;
    foreach_chunk(pool, relock_chunk, NULL);
    for (smpi_large *l = pool->large_live; l; l = l->next)
        if (l->locked)
            smpi_os_lock((void *)l->data, l->data_pages * SMPI_PAGE_SIZE);
    for (int k = 0; k < pool->ncache; k++) {
        smpi_large *l = pool->large_cache[k];
        if (l->locked)
            smpi_os_lock((void *)l->data, l->data_pages * SMPI_PAGE_SIZE);
    }
}

static void wipe_only(const smpi_block *b, void *ctx)
{
    (void)ctx;
    smpi_wipe((void *)b->addr, b->usable);
}

static void wipe_chunk(smpi_chunk *c, void *ctx)
{
    smp_pool *pool = ctx;
    smpi_chunk_foreach_live(c, wipe_only, NULL);
    smpi_unlock_memory(pool, (void *)c->base, chunk_bytes(c), c->locked);
    c->locked = 0;
}

/* At exit: live blocks wiped and unlocked, but left mapped. */
void smpi_pool_wipe_live(smp_pool *pool)
{
    foreach_chunk(pool, wipe_chunk, pool);
    for (smpi_large *l = pool->large_live; l; l = l->next) {
        size_t bytes = l->data_pages * SMPI_PAGE_SIZE;
        smpi_wipe((void *)l->data, bytes);
        smpi_unlock_memory(pool, (void *)l->data, bytes, l->locked);
        l->locked = 0;
    }
}
