/*
 * Thread state and the scope stack. All of it is per thread: there is no
 * global current pool. A thread's state is made on first use and handed
 * back by a pthread key destructor when the thread exits.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "log.h"
#include "meta.h"
#include "pool_types.h"
#include "rules.h"

__thread smpi_thread *smpi_self SMPI_TLS;
__thread int smpi_guard SMPI_TLS;
void (*smpi_stop_hook)(void);

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static pthread_mutex_t threads_mutex = PTHREAD_MUTEX_INITIALIZER;
static smpi_thread *threads;

static void thread_exit(void *state);

static void make_key(void)
{
    pthread_key_create(&exit_key, thread_exit);
}

static void threads_add(smpi_thread *t)
{
    smpi_mutex_take(&threads_mutex);
    t->next = threads;
    threads = t;
    smpi_mutex_give(&threads_mutex);
}

static void threads_remove(smpi_thread *t)
{
    smpi_mutex_take(&threads_mutex);
    for (smpi_thread **link = &threads; *link; link = &(*link)->next) {
        if (*link == t) {
            *link = t->next;
            break;
        }
    }
    smpi_mutex_give(&threads_mutex);
}

smpi_thread *smpi_thread_get(void)
{
    smpi_thread *t = smpi_self;
    if (t)
        return t;

    /* pthread_setspecific may allocate: keep that out of the pools */
    smpi_guard++;
    t = smpi_meta_alloc(sizeof *t);
    if (t) {
        t->tid = smpi_os_tid();
        pthread_once(&key_once, make_key);
        pthread_setspecific(exit_key, t);
        threads_add(t);
        smpi_self = t;
    }
    smpi_guard--;
    return t;
}

void smpi_foreach_thread(void (*fn)(smpi_thread *t, void *ctx), void *ctx)
{
    smpi_mutex_take(&threads_mutex);
    for (smpi_thread *t = threads; t; t = t->next)
        fn(t, ctx);
    smpi_mutex_give(&threads_mutex);
}

void smpi_thread_forget_others(void)
{
    /* the other threads' states stay allocated: cheap, and never reused */
    pthread_mutex_init(&threads_mutex, NULL);
    threads = smpi_self;
    if (threads)
        threads->next = NULL;
}

/* ------------------------------------------------------------------ */
/* the current pool                                                     */

static smp_pool *default_pool(smpi_thread *t)
{
    if (!t->default_pool) {
        t->default_pool = smpi_pool_new_local("default");
        if (t->default_pool)
            t->default_pool->is_default = 1;
    }
    return t->default_pool;
}

smp_pool *smp_current_pool(void)
{
    smpi_thread *t = smpi_thread_get();

    if (!t)
        return NULL;
    if (t->depth)
        return t->scopes[t->depth - 1].pool;
    return default_pool(t);
}

smp_pool *smpi_rule_pool(unsigned rule, const char *name)
{
    smpi_thread *t = smpi_thread_get();

    if (!t || rule >= SMPI_RULES_MAX)
        return NULL;
    if (!t->rule_pools[rule])
        t->rule_pools[rule] = smpi_pool_new_local(name);
    return t->rule_pools[rule];
}

smp_pool *smpi_thread_pool_named(const char *name)
{
    smpi_thread *t = smpi_thread_get();

    if (!t)
        return NULL;
    for (int i = t->depth - 1; i >= 0; i--)
        if (!strcmp(t->scopes[i].pool->name, name))
            return t->scopes[i].pool;
    for (unsigned r = 0; r < SMPI_RULES_MAX; r++)
        if (t->rule_pools[r] && !strcmp(t->rule_pools[r]->name, name))
            return t->rule_pools[r];

    /* a rule's pool this thread has not used yet: its instance begins */
    const char *rule_name;
    for (int r = 0; (rule_name = smpi_rules_pool_name(r)) != NULL; r++)
        if (!strcmp(rule_name, name))
            return smpi_rule_pool((unsigned)r, rule_name);
    return default_pool(t);
}

/* ------------------------------------------------------------------ */
/* scopes                                                               */

static int push(smpi_thread *t, smp_pool *pool, int owned)
{
    if (t->depth == SMP_SCOPE_DEPTH_MAX) {
        errno = EOVERFLOW;
        return -1;
    }
    t->scopes[t->depth++] = (smpi_scope){ pool, owned };
    __atomic_fetch_add(&pool->scope_refs, 1, __ATOMIC_RELEASE);
    SMPI_STAT_ADD(pool->c.scope_entries, 1);
    return 0;
}

int smp_scope_enter(smp_pool *pool)
{
    smpi_thread *t = smpi_thread_get();

    if (!pool) {
        errno = EINVAL;
        return -1;
    }
    if (!t)
        return -1;
    /* another thread's own pool may only be used by that thread */
    if (!pool->shared && pool->owner != t) {
        errno = EPERM;
        return -1;
    }
    return push(t, pool, 0);
}

smp_pool *smp_scope_enter_new(const char *name)
{
    smpi_thread *t = smpi_thread_get();
    smp_pool *pool = t ? smpi_pool_new_local(name) : NULL;

    if (!pool)
        return NULL;
    if (push(t, pool, 1)) {
        smpi_pool_free_object(pool);
        return NULL;
    }
    return pool;
}

/* Ends a pool that a scope owned: its live blocks have escaped. */
static void end_owned(smpi_thread *t, smp_pool *pool)
{
    if (smp_get_scope_exit_policy() == SMP_SCOPE_EXIT_KEEP) {
        smp_pool *parent = t->depth ? t->scopes[t->depth - 1].pool
                                    : default_pool(t);
        if (parent) {
            if (parent->shared)
                smpi_lock_take(&parent->lock);
            smpi_pool_adopt(parent, pool);
            if (parent->shared)
                smpi_lock_give(&parent->lock);
        }
    }
    /* wait for frees other threads are making right now */
    pool->owner = NULL;
    while (__atomic_load_n(&pool->inflight, __ATOMIC_SEQ_CST))
        ;
    smpi_pool_release_all(pool, 1);
    smpi_pool_free_object(pool);
}

int smp_scope_exit(void)
{
    smpi_thread *t = smpi_self;

    if (!t || !t->depth) {
        errno = EPERM;
        return -1;
    }
    smpi_scope s = t->scopes[--t->depth];
    SMPI_STAT_ADD(s.pool->c.scope_exits, 1);
    __atomic_fetch_sub(&s.pool->scope_refs, 1, __ATOMIC_RELEASE);
    if (s.owned)
        end_owned(t, s.pool);
    return 0;
}

int smp_scope_depth(void)
{
    smpi_thread *t = smpi_self;
    return t ? t->depth : 0;
}

/* ------------------------------------------------------------------ */
/* thread exit                                                          */

/*
 * A pool of an exiting thread is wiped and returned when it holds no live
 * block; otherwise it becomes an orphan that the last free retires.
 */
static void end_own_pool(smp_pool *pool)
{
    __atomic_store_n(&pool->owner, NULL, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&pool->inflight, __ATOMIC_SEQ_CST))
        ;
    smpi_lock_take(&pool->lock);
    smpi_collect_remote(pool);
    int empty = pool->c.live_blocks == 0;
    if (empty)
        smpi_pool_release_all(pool, 0);
    smpi_lock_give(&pool->lock);
    if (empty)
        smpi_pool_free_object(pool);
}

static void thread_exit(void *state)
{
    smpi_thread *t = state;

    smpi_guard++;
    while (t->depth)
        smp_scope_exit();
    if (t->default_pool)
        end_own_pool(t->default_pool);
    for (unsigned r = 0; r < SMPI_RULES_MAX; r++)
        if (t->rule_pools[r])
            end_own_pool(t->rule_pools[r]);
    threads_remove(t);
    smpi_self = NULL;
    smpi_guard--;
    smpi_meta_free(t, sizeof *t);
}
