/*
 * smp: secure memory pools.
 *
 * Memory handed out by a pool is locked in RAM (mlock), excluded from core
 * dumps (MADV_DONTDUMP), zeroed when freed, and zeroed and unlocked before
 * it goes back to the system. Each thread has a stack of scopes; the
 * innermost scope names the thread's current pool. With no scope open the
 * current pool is the thread's own pool named "default".
 *
 * Errors: functions that return a pointer return NULL and set errno;
 * functions that return int return 0 on success and -1 with errno set.
 * Misuse that would corrupt memory (a double free, a pointer that is not a
 * live pool block) prints one line on stderr and aborts.
 */
#ifndef SMP_SMP_H
#define SMP_SMP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SMP_BUILDING)
#define SMP_API __attribute__((visibility("default")))
#else
#define SMP_API
#endif

/* Longest pool name, terminating NUL included. */
#define SMP_NAME_MAX 64

/* Deepest scope nesting a thread may have. */
#define SMP_SCOPE_DEPTH_MAX 128

typedef struct smp_pool smp_pool;

/* A snapshot of one pool's counters. */
typedef struct smp_stats {
    char   pool_name[SMP_NAME_MAX];
    size_t live_blocks;    /* allocated and not yet freed */
    size_t live_bytes;     /* bytes asked for by the live blocks */
    size_t peak_bytes;     /* highest live_bytes ever */
    size_t total_bytes;    /* bytes asked for by every allocation */
    size_t allocations;
    size_t frees;
    size_t locked_bytes;   /* pool memory locked in RAM right now */
    size_t lock_failures;  /* mlock calls the kernel refused */
    size_t scope_entries;
    size_t scope_exits;
    size_t escaped_blocks; /* live when the scope owning the pool ended */
} smp_stats;

/*
 * What to do when the kernel refuses to lock pool memory (RLIMIT_MEMLOCK).
 * The default is SMP_MLOCK_TRY.
 */
typedef enum smp_mlock_policy {
    SMP_MLOCK_REQUIRE, /* the allocation fails with ENOMEM */
    SMP_MLOCK_TRY,     /* go on unlocked; counted; one warning line */
    SMP_MLOCK_OFF      /* never lock */
} smp_mlock_policy;

/* What happens to blocks still live when a scope that owns its pool ends. */
typedef enum smp_scope_exit_policy {
    SMP_SCOPE_EXIT_WIPE, /* default: counted, wiped, address range fenced */
    SMP_SCOPE_EXIT_KEEP  /* moved into the enclosing scope's pool */
} smp_scope_exit_policy;

/*
 * Pools made by these functions may be used by any thread: they take a
 * lock, which costs little when one thread uses them. The name is copied.
 * Fails with EINVAL when the name is empty or longer than SMP_NAME_MAX - 1.
 */
SMP_API smp_pool *smp_pool_create(const char *name);
/* A pool named "isolated-CONTEXT". */
SMP_API smp_pool *smp_pool_create_isolated(const char *context);
/* A pool named "temp-<unix seconds>", with "-N" added to stay unique. */
SMP_API smp_pool *smp_pool_create_temporary(void);

/*
 * Counts the live blocks as escaped, wipes and unlocks the pool's memory
 * and fences its address range, so later use of a stale pointer faults.
 * Destroying a pool that a scope still uses, or a thread's own default
 * pool, is refused with EBUSY (return -1).
 */
SMP_API int smp_pool_destroy(smp_pool *pool);

/* Wipes and releases every block of the pool; the pool stays usable. */
SMP_API void smp_pool_cleanup_all(smp_pool *pool);

/* A zeroed block of pool (the current pool when pool is NULL). */
SMP_API void *smp_alloc(smp_pool *pool, size_t size);
/* A block of pool holding a copy of size bytes of data. */
SMP_API void *smp_allocate(smp_pool *pool, const void *data, size_t size);
/* Wipes and frees a block of any pool, from any thread. NULL is ignored. */
SMP_API void smp_free(void *ptr);
/* 1 when ptr lies in memory that smp manages, else 0. */
SMP_API int smp_owns(const void *ptr);

/* The innermost scope's pool, or this thread's "default" pool. */
SMP_API smp_pool *smp_current_pool(void);
/* Opens a scope that borrows pool; leaving it leaves the pool intact. */
SMP_API int smp_scope_enter(smp_pool *pool);
/* Opens a scope that owns a new pool; leaving it destroys the pool. */
SMP_API smp_pool *smp_scope_enter_new(const char *name);
/* Leaves the innermost scope. Without an open scope: -1, errno EPERM. */
SMP_API int smp_scope_exit(void);
/* How many scopes this thread has open. */
SMP_API int smp_scope_depth(void);

SMP_API const char *smp_pool_name(const smp_pool *pool);
SMP_API int smp_pool_stats(const smp_pool *pool, smp_stats *out);

SMP_API void smp_set_mlock_policy(smp_mlock_policy policy);
SMP_API smp_mlock_policy smp_get_mlock_policy(void);
SMP_API void smp_set_scope_exit_policy(smp_scope_exit_policy policy);
SMP_API smp_scope_exit_policy smp_get_scope_exit_policy(void);

/*
 * SMP_SCOPE("name") { ... } runs its body inside a scope that owns a new
 * pool. The scope is left however the body ends: at its closing brace, by
 * break, by continue, by return, or by goto out of it. The macro is a loop
 * of one pass, so break and continue end the scope only: they never reach
 * a loop around it.
 */
typedef struct smp_scope_guard {
    int entered;
    int done;
} smp_scope_guard;

static inline smp_scope_guard smp_scope_guard_open(const char *name)
{
    smp_scope_guard guard = { smp_scope_enter_new(name) != NULL, 0 };
    return guard;
}

static inline void smp_scope_guard_close(smp_scope_guard *guard)
{
    if (guard->entered)
        smp_scope_exit();
}

#define SMP_SCOPE(name)                                                  \
    for (smp_scope_guard smp_scope_guard_                                \
             __attribute__((cleanup(smp_scope_guard_close))) =           \
                 smp_scope_guard_open(name);                             \
         !smp_scope_guard_.done; smp_scope_guard_.done = 1)

#ifdef __cplusplus
}
#endif

#endif
