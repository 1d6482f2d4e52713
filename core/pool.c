/*
 * Pool objects: the factory, the registry of every pool instance, the
 * statistics, and what happens to pools at destroy, fork and exit. Block
 * handling is in block.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "log.h"
#include "meta.h"
#include "pool_types.h"

#define ESCAPES_MAX 65536

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_error;

static int mlock_policy = SMP_MLOCK_TRY;
static int scope_exit_policy = SMP_SCOPE_EXIT_WIPE;
static int mlock_warned;
int smpi_teardown_done;

/* every pool instance, and the statistics of those already gone */
static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static smp_pool *registry;
static smp_stats *retired;
static size_t nretired, retired_cap;

/* blocks that were live when their scope ended */
static pthread_mutex_t escape_mutex = PTHREAD_MUTEX_INITIALIZER;
static smpi_escape *escapes;
static size_t nescapes;

static void init_region(void)
{
    init_error = smpi_region_init();
    if (!init_error)
        smpi_fault_install();
}

int smpi_init(void)
{
    pthread_once(&init_once, init_region);
    if (init_error) {
        errno = init_error;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* policies                                                             */

void smp_set_mlock_policy(smp_mlock_policy policy)
{
    __atomic_store_n(&mlock_policy, policy, __ATOMIC_RELAXED);
}

smp_mlock_policy smp_get_mlock_policy(void)
{
    return __atomic_load_n(&mlock_policy, __ATOMIC_RELAXED);
}

void smp_set_scope_exit_policy(smp_scope_exit_policy policy)
{
    __atomic_store_n(&scope_exit_policy, policy, __ATOMIC_RELAXED);
}

smp_scope_exit_policy smp_get_scope_exit_policy(void)
{
    return __atomic_load_n(&scope_exit_policy, __ATOMIC_RELAXED);
}

/* One line per process, the first time memory cannot be locked. */
static void warn_lock_failure(int err, int policy)
{
    struct rlimit lim;

    if (__atomic_exchange_n(&mlock_warned, 1, __ATOMIC_RELAXED))
        return;
    getrlimit(RLIMIT_MEMLOCK, &lim);
    if (policy == SMP_MLOCK_REQUIRE)
        smpi_log(SMPI_LOG_WARN,
                 "cannot lock pool memory in RAM (mlock: %s; RLIMIT_MEMLOCK "
                 "is %llu KiB): allocations past it fail (mlock=require); "
                 "raise the limit with 'ulimit -l' or LimitMEMLOCK=, or set "
                 "mlock=try to go on unlocked",
                 strerror(err), (unsigned long long)lim.rlim_cur / 1024);
    else
        smpi_log(SMPI_LOG_WARN,
                 "cannot lock pool memory in RAM (mlock: %s; RLIMIT_MEMLOCK "
                 "is %llu KiB): continuing unlocked, so secrets may reach "
                 "swap; raise the limit with 'ulimit -l' or LimitMEMLOCK=, or "
                 "set mlock=require to refuse instead",
                 strerror(err), (unsigned long long)lim.rlim_cur / 1024);
}

int smpi_lock_memory(smp_pool *pool, void *p, size_t bytes, int *locked)
{
    int policy = smp_get_mlock_policy();
    int saved_errno = errno;

    *locked = 0;
    if (policy == SMP_MLOCK_OFF)
        return 0;
    int err = smpi_os_lock(p, bytes);
    if (!err) {
        *locked = 1;
        SMPI_STAT_ADD(pool->c.locked_bytes, bytes);
        return 0;
    }
    SMPI_STAT_ADD(pool->c.lock_failures, 1);
    warn_lock_failure(err, policy);
    if (policy == SMP_MLOCK_REQUIRE)
        return ENOMEM;

    /* the allocation goes on and succeeds: it must not leave mlock's errno */
    errno = saved_errno;
    return 0;
}

void smpi_unlock_memory(smp_pool *pool, void *p, size_t bytes, int locked)
{
    if (!locked)
        return;
    smpi_os_unlock(p, bytes);
    SMPI_STAT_ADD(pool->c.locked_bytes, 0 - bytes);
}

/* ------------------------------------------------------------------ */
/* the registry                                                         */

static void registry_add(smp_pool *pool)
{
    smpi_mutex_take(&registry_mutex);
    pool->reg_prev = NULL;
    pool->reg_next = registry;
    if (registry)
        registry->reg_prev = pool;
    registry = pool;
    smpi_mutex_give(&registry_mutex);
}

static void snapshot(const smp_pool *pool, smp_stats *out);

static void add_stats(smp_stats *sum, const smp_stats *s)
{
    sum->live_blocks += s->live_blocks;
    sum->live_bytes += s->live_bytes;
    sum->total_bytes += s->total_bytes;
    sum->allocations += s->allocations;
    sum->frees += s->frees;
    sum->locked_bytes += s->locked_bytes;
    sum->lock_failures += s->lock_failures;
    sum->scope_entries += s->scope_entries;
    sum->scope_exits += s->scope_exits;
    sum->escaped_blocks += s->escaped_blocks;
    if (s->peak_bytes > sum->peak_bytes)
        sum->peak_bytes = s->peak_bytes;
}

/* Keeps a gone pool's counters, added up with others of its name. */
static void retire_stats(const smp_pool *pool)
{
    smp_stats s;
    size_t i;

    snapshot(pool, &s);
    for (i = 0; i < nretired; i++)
        if (!strcmp(retired[i].pool_name, s.pool_name))
            break;
    if (i == nretired) {
        if (nretired == retired_cap) {
            size_t cap = retired_cap ? 2 * retired_cap : 16;
            smp_stats *grown = smpi_meta_alloc(cap * sizeof *grown);
            if (!grown)
                return;
            if (retired)
                memcpy(grown, retired, nretired * sizeof *grown);
            smpi_meta_free(retired, retired_cap * sizeof *retired);
            retired = grown;
            retired_cap = cap;
        }
        memset(&retired[i], 0, sizeof retired[i]);
        memcpy(retired[i].pool_name, s.pool_name, SMP_NAME_MAX);
        nretired++;
    }
    add_stats(&retired[i], &s);
}

void smpi_pool_free_object(smp_pool *pool)
{
    smpi_mutex_take(&registry_mutex);
    retire_stats(pool);
    if (pool->reg_prev)
        pool->reg_prev->reg_next = pool->reg_next;
    else
        registry = pool->reg_next;
    if (pool->reg_next)
        pool->reg_next->reg_prev = pool->reg_prev;
    smpi_mutex_give(&registry_mutex);
    smpi_meta_free(pool, sizeof *pool);
}

/* ------------------------------------------------------------------ */
/* the factory                                                          */

static smp_pool *pool_new(const char *name, int shared)
{
    if (!name || !*name || strlen(name) >= SMP_NAME_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if (smpi_init())
        return NULL;
    smp_pool *pool = smpi_meta_alloc(sizeof *pool);
    if (!pool)
        return NULL;
    memcpy(pool->name, name, strlen(name) + 1);
    pool->shared = shared;
    registry_add(pool);
    return pool;
}

smp_pool *smpi_pool_new_local(const char *name)
{
    smpi_thread *self = smpi_thread_get();
    if (!self)
        return NULL;
    smp_pool *pool = pool_new(name, 0);
    if (pool)
        pool->owner = self;
    return pool;
}

smp_pool *smp_pool_create(const char *name)
{
    return pool_new(name, 1);
}

smp_pool *smp_pool_create_isolated(const char *context)
{
    char name[SMP_NAME_MAX + 16];

    if (!context || !*context) {
        errno = EINVAL;
        return NULL;
    }
    snprintf(name, sizeof name, "isolated-%s", context);
    if (strlen(name) >= SMP_NAME_MAX) {
        errno = EINVAL;
        return NULL;
    }
    return pool_new(name, 1);
}

smp_pool *smp_pool_create_temporary(void)
{
    static pthread_mutex_t temp_mutex = PTHREAD_MUTEX_INITIALIZER;
    static long long last_second = -1;
    static unsigned sequence;
    char name[SMP_NAME_MAX];
    long long now = (long long)time(NULL);

    smpi_mutex_take(&temp_mutex);
    if (now == last_second) {
        snprintf(name, sizeof name, "temp-%lld-%u", now, ++sequence);
    } else {
        last_second = now;
        sequence = 0;
        snprintf(name, sizeof name, "temp-%lld", now);
    }
    smpi_mutex_give(&temp_mutex);
    return pool_new(name, 1);
}

/* ------------------------------------------------------------------ */
/* statistics                                                           */

static void snapshot(const smp_pool *pool, smp_stats *out)
{
    const smpi_counters *k = &pool->c;
    size_t pending = __atomic_load_n(&pool->remote_blocks, __ATOMIC_RELAXED);
    size_t pending_bytes = __atomic_load_n(&pool->remote_bytes,
                                           __ATOMIC_RELAXED);

    memset(out, 0, sizeof *out);
    memcpy(out->pool_name, pool->name, SMP_NAME_MAX);
    /* frees by other threads count as soon as they are made */
    out->live_blocks = SMPI_STAT_GET(k->live_blocks) - pending;
    out->live_bytes = SMPI_STAT_GET(k->live_bytes) - pending_bytes;
    out->frees = SMPI_STAT_GET(k->frees) + pending;
    out->peak_bytes = SMPI_STAT_GET(k->peak_bytes);
    out->total_bytes = SMPI_STAT_GET(k->total_bytes);
    out->allocations = SMPI_STAT_GET(k->allocations);
    out->locked_bytes = SMPI_STAT_GET(k->locked_bytes);
    out->lock_failures = SMPI_STAT_GET(k->lock_failures);
    out->scope_entries = SMPI_STAT_GET(k->scope_entries);
    out->scope_exits = SMPI_STAT_GET(k->scope_exits);
    out->escaped_blocks = SMPI_STAT_GET(k->escaped_blocks);
}

int smp_pool_stats(const smp_pool *pool, smp_stats *out)
{
    if (!pool || !out) {
        errno = EINVAL;
        return -1;
    }
    snapshot(pool, out);
    return 0;
}

const char *smp_pool_name(const smp_pool *pool)
{
    return pool ? pool->name : NULL;
}

/* ------------------------------------------------------------------ */
/* blocks through the public API                                       */

void *smp_alloc(smp_pool *pool, size_t size)
{
    if (!pool && !(pool = smp_current_pool()))
        return NULL;
    return smpi_pool_alloc(pool, size, 0, 0);
}

void *smp_allocate(smp_pool *pool, const void *data, size_t size)
{
    void *p = smp_alloc(pool, size);

    if (p && size)
        memcpy(p, data, size);
    return p;
}

void smp_free(void *ptr)
{
    if (!ptr || __atomic_load_n(&smpi_teardown_done, __ATOMIC_RELAXED))
        return;
    if (!smpi_in_region(ptr))
        smpi_fatal("smp_free(%p): not a block of any pool (it was not "
                   "allocated by smp_alloc); the program has a memory bug",
                   ptr);
    smpi_free(ptr, "smp_free");
}

int smp_owns(const void *ptr)
{
    return ptr && smpi_in_region(ptr);
}

/* ------------------------------------------------------------------ */
/* whole pools                                                          */

/* Another thread's pool may be changed only by that thread. */
static int may_change(const smp_pool *pool)
{
    return pool->shared || !pool->owner || pool->owner == smpi_self;
}

int smp_pool_destroy(smp_pool *pool)
{
    if (!pool) {
        errno = EINVAL;
        return -1;
    }
    if (pool->is_default ||
        __atomic_load_n(&pool->scope_refs, __ATOMIC_ACQUIRE)) {
        errno = EBUSY;
        return -1;
    }
    if (!may_change(pool)) {
        errno = EPERM;
        return -1;
    }
    smpi_pool_release_all(pool, 1);
    smpi_pool_free_object(pool);
    return 0;
}

void smp_pool_cleanup_all(smp_pool *pool)
{
    if (!pool || !may_change(pool))
        return;
    smpi_lock_take(&pool->lock);
    smpi_pool_release_all(pool, 0);
    smpi_lock_give(&pool->lock);
}

/* An orphan (its thread exited) gives its memory back once empty. */
void smpi_pool_retire_if_empty(smp_pool *pool)
{
    if (!pool->owner && !pool->shared && pool->c.live_blocks == 0)
        smpi_pool_release_all(pool, 0);
}

/* ------------------------------------------------------------------ */
/* escapes                                                              */

void smpi_note_escape(const smp_pool *pool, const smpi_block *block)
{
    smpi_mutex_take(&escape_mutex);
    if (!escapes)
        escapes = smpi_meta_alloc(ESCAPES_MAX * sizeof *escapes);
    if (escapes && nescapes < ESCAPES_MAX) {
        smpi_escape *e = &escapes[nescapes];
        memcpy(e->pool_name, pool->name, SMP_NAME_MAX);
        e->block = *block;
        __atomic_store_n(&nescapes, nescapes + 1, __ATOMIC_RELEASE);
    }
    smpi_mutex_give(&escape_mutex);
}

void smpi_foreach_escape(void (*fn)(const smpi_escape *escape, void *ctx),
                         void *ctx)
{
    smpi_mutex_take(&escape_mutex);
    for (size_t i = 0; i < nescapes; i++)
        fn(&escapes[i], ctx);
    smpi_mutex_give(&escape_mutex);
}

/* For the fault handler: no lock, since the faulting thread may hold it. */
int smpi_find_escape(const void *addr, smpi_escape *out)
{
    size_t n = __atomic_load_n(&nescapes, __ATOMIC_ACQUIRE);

    for (size_t i = n; i-- > 0;) {
        if ((uintptr_t)addr - escapes[i].block.addr < escapes[i].block.usable) {
            *out = escapes[i];
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* visiting every pool                                                  */

void smpi_foreach_pool(void (*fn)(const smpi_pool_info *info, void *ctx),
                       void *ctx)
{
    smpi_pool_info info;

    smpi_mutex_take(&registry_mutex);
    for (smp_pool *pool = registry; pool; pool = pool->reg_next) {
        smpi_thread *owner = pool->owner;
        info.pool = pool;
        info.owner_tid = owner ? owner->tid : 0;
        snapshot(pool, &info.stats);
        fn(&info, ctx);
    }
    for (size_t i = 0; i < nretired; i++) {
        info.pool = NULL;
        info.owner_tid = 0;
        info.stats = retired[i];
        fn(&info, ctx);
    }
    smpi_mutex_give(&registry_mutex);
}

/* ------------------------------------------------------------------ */
/* fork and exit                                                        */

void smpi_fork_prepare(void)
{
    smpi_mutex_take(&registry_mutex);
    for (smp_pool *pool = registry; pool; pool = pool->reg_next)
        smpi_lock_take(&pool->lock);
    smpi_mutex_take(&escape_mutex);
    smpi_region_lock();
    smpi_meta_lock();
}

void smpi_fork_parent(void)
{
    smpi_meta_unlock();
    smpi_region_unlock();
    smpi_mutex_give(&escape_mutex);
    for (smp_pool *pool = registry; pool; pool = pool->reg_next)
        smpi_lock_give(&pool->lock);
    smpi_mutex_give(&registry_mutex);
}

void smpi_fork_child(void)
{
    smpi_thread *self = smpi_self;

    smpi_fork_parent();
    for (smp_pool *pool = registry; pool; pool = pool->reg_next) {
        /* only the forking thread lives on: the others' pools are orphans */
        if (!pool->shared && pool->owner != self)
            pool->owner = NULL;
        smpi_pool_relock(pool);
    }
    smpi_thread_forget_others();
}

void smpi_teardown(void)
{
    if (__atomic_exchange_n(&smpi_teardown_done, 1, __ATOMIC_ACQ_REL))
        return;
    smpi_mutex_take(&registry_mutex);
    for (smp_pool *pool = registry; pool; pool = pool->reg_next)
        smpi_pool_wipe_live(pool);
    smpi_mutex_give(&registry_mutex);
}

int smpi_torn_down(void)
{
    return __atomic_load_n(&smpi_teardown_done, __ATOMIC_RELAXED);
}
