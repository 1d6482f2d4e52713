/*
 * The interposed malloc family. Each allocation is routed in this order:
 * inside the runtime (the thread's guard is set) it passes through; with a
 * scope open on the thread it goes to the innermost scope's pool; when an
 * SMP_POOL_SCOPE rule matches it goes to this thread's instance of that
 * rule's pool; otherwise it passes through to the next allocator.
 *
 * Pass-through is the common case and must cost next to nothing: a few
 * predictable tests of thread-local and global words, then a tail call.
 * Everything routed lives out of line.
 *
 * free, realloc and malloc_usable_size find a block's home by address:
 * pool blocks lie in the runtime's region, bootstrap blocks in the static
 * buffer, everything else belongs to the next allocator. A block stays in
 * the home it came from, whatever scope is open when it is resized.
 *
 * Alignment, size and error rules follow glibc 2.36 (where aligned_alloc
 * and memalign are one function).
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * The runtime's internal names all live in this object: declared hidden,
 * the hooks reach them directly rather than through the GOT.
 */
#pragma GCC visibility push(hidden)
#include "os.h"
#include "options.h"
#include "pool.h"
#include "preload.h"
#include "rules.h"
#include "stack.h"
#include "symbolize.h"
#include "thread.h"
#include "unwind.h"
#pragma GCC visibility pop

#define HOOK __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define CALLER() ((uintptr_t)__builtin_return_address(0))

/* Alignment every block has anyway; asking for less asks for nothing. */
#define MIN_ALIGN 16u

/*
 * The thread's first allocation for a rule makes the thread's instance
 * of its pool; the allocations that takes pass.
 */
static __attribute__((noinline)) smp_pool *make_rule_pool(int index)
{
    smp_pool *pool;

    smpi_guard = 1;
    pool = smpi_rule_pool((unsigned)index, smpi_rules_pool_name(index));
    smpi_guard = 0;
    return pool;
}

/*
 * This thread's instance of the pool a rule gives, or NULL. Matching
 * never allocates: a walk for fn: rules holds the guard itself.
 */
static inline smp_pool *rule_pool(size_t size, uintptr_t caller)
{
    int index = smpi_rules_match(size, caller);
    smp_pool *pool;

    if (likely(index < 0))
        return NULL;
    pool = smpi_rule_pool_of(smpi_self, (unsigned)index);
    return likely(pool) ? pool : make_rule_pool(index);
}

/* The routing decision past the common case: guard, scope, rules. */
static __attribute__((noinline)) smp_pool *route_slow(size_t size,
                                                      uintptr_t caller)
{
    smp_pool *pool;

    if (smpi_guard)
        return NULL;
    pool = smpi_scope_pool();
    if (!pool && smpi_rules_active)
        pool = rule_pool(size, caller);

    /* after the exit report, pools take nothing new */
    return !pool || unlikely(smpi_preload_done) ? NULL : pool;
}

/* No scope open on this thread and no rules: nothing can be routed. */
static inline int plain(void)
{
    smpi_thread *t = smpi_self;

    return (!t || !t->depth) && !smpi_rules_active;
}

/*
 * The pool an allocation goes to, or NULL to pass it through. The common
 * case costs one thread-local and one global load; the guard matters only
 * past it. A macro, so that the caller's address is the hook's own and is
 * read on the slow path only.
 */
#define ROUTE(size) \
    (likely(plain()) ? NULL : route_slow((size), CALLER()))

/* The same, for paths that were handed the caller's address. */
static inline smp_pool *route(size_t size, uintptr_t caller)
{
    return likely(plain()) ? NULL : route_slow(size, caller);
}

/*
 * The routed paths live out of line, and the hooks call them without a
 * tail jump, so that the hook is the innermost frame a captured stack
 * keeps (skip 1 leaves out the helper): reports start at malloc, calloc...
 */
#define KEEP_FRAME(p) __asm__ volatile("" : "+r"(p))

static inline uint32_t capture(void)
{
    return smpi_opt.malloc_context_size > 0 ? smpi_stack_capture(1) : 0;
}

static __attribute__((noinline)) void *
pool_alloc(smp_pool *pool, size_t size, size_t align)
{
    void *p;

    smpi_guard = 1;
    p = smpi_pool_alloc(pool, size, align, capture());
    smpi_guard = 0;
    return p;
}

static __attribute__((noinline)) void pool_free(void *p, const char *who)
{
    int saved = errno;
    int guard = smpi_guard;

    /* after the exit report the pools only wait to be wiped as a whole */
    if (unlikely(smpi_preload_done))
        return;
    smpi_guard = 1;
    smpi_free(p, who);
    smpi_guard = guard;
    errno = saved;
}

HOOK void *malloc(size_t size)
{
    smp_pool *pool = ROUTE(size);
    void *p;

    if (likely(!pool))
        return smpi_next.malloc(size);
    p = pool_alloc(pool, size, 0);
    KEEP_FRAME(p);
    return p;
}

HOOK void free(void *p)
{
    if (unlikely(smpi_in_region(p))) {
        pool_free(p, "free");
        return;
    }
    if (unlikely(smpi_boot_owns(p)))
        return;
    smpi_next.free(p);
}

HOOK void *calloc(size_t n, size_t size)
{
    smp_pool *pool;
    size_t total;
    void *p;

    if (unlikely(__builtin_mul_overflow(n, size, &total))) {
        errno = ENOMEM;
        return NULL;
    }
    pool = ROUTE(total);
    if (likely(!pool))
        return smpi_next.calloc(n, size);

    /* pool blocks are handed out zeroed */
    p = pool_alloc(pool, total, 0);
    KEEP_FRAME(p);
    return p;
}

/* A bootstrap block moves out to wherever a new block of size goes. */
static __attribute__((noinline)) void *
boot_move(void *p, size_t size, uintptr_t caller)
{
    size_t old = smpi_boot_size(p);
    smp_pool *pool;
    void *q;

    if (size == 0)
        return NULL;
    pool = route(size, caller);
    q = pool ? pool_alloc(pool, size, 0) : smpi_next.malloc(size);
    if (q)
        memcpy(q, p, old < size ? old : size);
    return q;
}

/*
 * After the exit report the pools are wiped but stay mapped: a block a
 * late destructor resizes moves out to the next allocator, with what is
 * left of its contents (zeroes).
 */
static __attribute__((noinline, cold)) void *late_realloc(void *p,
                                                          size_t size)
{
    int guard = smpi_guard;
    size_t old;
    void *q;

    smpi_guard = 1;
    old = smpi_usable_size(p, "realloc");
    smpi_guard = guard;
    q = smpi_next.malloc(size);
    if (q)
        memcpy(q, p, old < size ? old : size);
    return q;
}

static __attribute__((noinline)) void *pool_realloc(void *p, size_t size)
{
    int guard = smpi_guard;
    void *q;

    /* as glibc: realloc(p, 0) frees p and returns NULL */
    if (size == 0) {
        pool_free(p, "realloc");
        return NULL;
    }
    if (unlikely(smpi_preload_done))
        return late_realloc(p, size);

    smpi_guard = 1;
    q = smpi_realloc(p, size, guard ? 0 : capture());
    smpi_guard = guard;
    return q;
}

static inline __attribute__((always_inline)) void *
do_realloc(void *p, size_t size, uintptr_t caller)
{
    smp_pool *pool;
    void *q;

    if (unlikely(smpi_in_region(p))) {
        q = pool_realloc(p, size);
        KEEP_FRAME(q);
        return q;
    }
    if (unlikely(smpi_boot_owns(p)))
        return boot_move(p, size, caller);

    /* realloc(NULL, size) is malloc(size), routed like it */
    if (!p) {
        pool = route(size, caller);
        if (pool) {
            q = pool_alloc(pool, size, 0);
            KEEP_FRAME(q);
            return q;
        }
    }
    return smpi_next.realloc(p, size);
}

HOOK void *realloc(void *p, size_t size)
{
    return do_realloc(p, size, CALLER());
}

HOOK void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;

    if (unlikely(__builtin_mul_overflow(n, size, &total))) {
        errno = ENOMEM;
        return NULL;
    }
    return do_realloc(p, total, CALLER());
}

/*
 * The alignment glibc's memalign really uses: at most MIN_ALIGN means the
 * plain alignment (0 for the pool), anything else is rounded up to a power
 * of two. SIZE_MAX when no power of two is large enough (EINVAL).
 */
static size_t memalign_align(size_t align)
{
    size_t a = MIN_ALIGN * 2;

    if (align <= MIN_ALIGN)
        return 0;
    if (align > SIZE_MAX / 2 + 1)
        return SIZE_MAX;
    while (a < align)
        a <<= 1;
    return a;
}

HOOK void *memalign(size_t align, size_t size)
{
    smp_pool *pool = ROUTE(size);
    void *p;

    if (likely(!pool))
        return smpi_next.memalign(align, size);
    align = memalign_align(align);
    if (align == SIZE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    p = pool_alloc(pool, size, align);
    KEEP_FRAME(p);
    return p;
}

/* In glibc 2.36 aligned_alloc is memalign. */
HOOK void *aligned_alloc(size_t align, size_t size)
{
    smp_pool *pool = ROUTE(size);
    void *p;

    if (likely(!pool))
        return smpi_next.aligned_alloc(align, size);
    align = memalign_align(align);
    if (align == SIZE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    p = pool_alloc(pool, size, align);
    KEEP_FRAME(p);
    return p;
}

HOOK int posix_memalign(void **out, size_t align, size_t size)
{
    smp_pool *pool = ROUTE(size);
    int saved;
    void *p;

    if (likely(!pool))
        return smpi_next.posix_memalign(out, align, size);

    /* a power of two and a multiple of sizeof(void *); errno untouched */
    if (align == 0 || align % sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    saved = errno;
    p = pool_alloc(pool, size, align <= MIN_ALIGN ? 0 : align);
    KEEP_FRAME(p);

    /* as glibc: no memory sets errno too, success leaves it alone */
    if (!p) {
        errno = ENOMEM;
        return ENOMEM;
    }
    errno = saved;
    *out = p;
    return 0;
}

HOOK void *valloc(size_t size)
{
    smp_pool *pool = ROUTE(size);
    void *p;

    if (likely(!pool))
        return smpi_next.valloc(size);
    p = pool_alloc(pool, size, SMPI_PAGE_SIZE);
    KEEP_FRAME(p);
    return p;
}

HOOK void *pvalloc(size_t size)
{
    smp_pool *pool = ROUTE(size);
    size_t rounded;
    void *p;

    if (likely(!pool))
        return smpi_next.pvalloc(size);

    /* the size is rounded up to whole pages */
    if (__builtin_add_overflow(size, SMPI_PAGE_SIZE - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    rounded &= ~(size_t)(SMPI_PAGE_SIZE - 1);
    p = pool_alloc(pool, rounded, SMPI_PAGE_SIZE);
    KEEP_FRAME(p);
    return p;
}

static __attribute__((noinline)) size_t pool_usable_size(void *p)
{
    int guard = smpi_guard;
    size_t n;

    smpi_guard = 1;
    n = smpi_usable_size(p, "malloc_usable_size");
    smpi_guard = guard;
    return n;
}

HOOK size_t malloc_usable_size(void *p)
{
    if (unlikely(smpi_in_region(p)))
        return pool_usable_size(p);
    if (unlikely(smpi_boot_owns(p)))
        return smpi_boot_size(p);
    return smpi_next.malloc_usable_size(p);
}

/*
 * Rules name functions and libraries by address range, so they are
 * resolved again whenever objects come or go. Without rules dlopen is a
 * tail call: glibc then sees the program's own return address and searches
 * the caller's RUNPATH, as it would without the preload.
 */
static void refresh_rules(void)
{
    int saved = errno;

    /* the runtime's own dlopen calls happen while it resolves anyway */
    if (smpi_guard)
        return;
    smpi_guard = 1;
    smpi_rules_refresh();
    smpi_guard = 0;
    errno = saved;
}

/*
 * With rules, glibc takes the preload for the caller of dlopen: a bare
 * name is looked for among loaded objects, then along the real caller's
 * search path, before glibc's own search.
 */
static __attribute__((noinline)) void *
dlopen_refresh(const char *file, int mode, const void *caller)
{
    char path[4096];
    void *handle = NULL;

    if (file && !strchr(file, '/')) {
        handle = smpi_next.dlopen(file, mode | RTLD_NOLOAD);
        if (!handle && smpi_caller_search(file, caller, path, sizeof path))
            handle = smpi_next.dlopen(path, mode);
    }
    if (!handle)
        handle = smpi_next.dlopen(file, mode);
    if (handle)
        refresh_rules();
    return handle;
}

HOOK void *dlopen(const char *file, int mode)
{
    if (likely(!smpi_rules_active))
        return smpi_next.dlopen(file, mode);
    return dlopen_refresh(file, mode, __builtin_return_address(0));
}

HOOK int dlclose(void *handle)
{
    int ret = smpi_next.dlclose(handle);

    if (ret != 0)
        return ret;
    /*
     * The next object loaded may take the same addresses with other
     * frame layouts: unwind rules kept by return address are stale now.
     */
    smpi_unwind_forget();
    /* frames captured from now on may name another object there */
    smpi_symbolize_note_unload(smpi_unwind_generation());
    if (smpi_rules_active)
        refresh_rules();
    return ret;
}
