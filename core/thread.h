/*
 * Per-thread state: the scope stack, the thread's own pools, and the guard
 * that keeps the runtime's own allocations out of pools. Thread-locals use
 * the initial-exec model: the general model may call malloc on first use.
 */
#ifndef SMP_THREAD_H
#define SMP_THREAD_H

#include <pthread.h>
#include <signal.h>

#include "smp/smp.h"

#define SMPI_TLS __attribute__((tls_model("initial-exec")))
#define SMPI_RULES_MAX 64

typedef struct smpi_scope {
    smp_pool *pool;
    int owned;
} smpi_scope;

typedef struct smpi_thread {
    int depth;
    smpi_scope scopes[SMP_SCOPE_DEPTH_MAX];
    smp_pool *default_pool;
    smp_pool *rule_pools[SMPI_RULES_MAX];
    int tid;
    /* Set while the thread works inside a pool; see smpi_thread_stop. */
    volatile sig_atomic_t busy;
    volatile sig_atomic_t stop_pending;
    struct smpi_thread *next;
} smpi_thread;

/* NULL until the thread first needs state. */
extern __thread smpi_thread *smpi_self SMPI_TLS;
/* Non-zero while the runtime itself runs on this thread. */
extern __thread int smpi_guard SMPI_TLS;

/*
 * The runtime's mutexes are held inside the guard. A thread that the leak
 * scan or the end of the process stops must not hold one, since the
 * stopping thread takes them next: inside the guard the stop signal lets
 * the thread go on, and asks again a moment later.
 */
static inline void smpi_mutex_take(pthread_mutex_t *mutex)
{
    smpi_guard++;
    pthread_mutex_lock(mutex);
}

static inline void smpi_mutex_give(pthread_mutex_t *mutex)
{
    pthread_mutex_unlock(mutex);
    smpi_guard--;
}

/* This thread's state, made on first use; NULL only if memory ran out. */
smpi_thread *smpi_thread_get(void);

/*
 * This thread's pool of that name: a scope's, a rule's (made if need be),
 * else its default pool.
 */
smp_pool *smpi_thread_pool_named(const char *name);

/* In a child after fork: drop the state of threads that did not survive. */
void smpi_thread_forget_others(void);

/* Visit every thread's state (the leak scan uses this). */
void smpi_foreach_thread(void (*fn)(smpi_thread *t, void *ctx), void *ctx);

/* This thread's instance of the pool of rule index rule. */
smp_pool *smpi_rule_pool(unsigned rule, const char *name);

/* The same once made: NULL before the thread's first use of it. */
static inline smp_pool *smpi_rule_pool_of(const smpi_thread *t,
                                          unsigned rule)
{
    return t && rule < SMPI_RULES_MAX ? t->rule_pools[rule] : 0;
}

/* The pool a routed allocation goes to when a scope is open, else NULL. */
static inline smp_pool *smpi_scope_pool(void)
{
    smpi_thread *t = smpi_self;
    return t && t->depth ? t->scopes[t->depth - 1].pool : 0;
}

/*
 * A pool operation runs between busy = 1 and busy = 0. A thread that must
 * be stopped while busy (the leak scan) is asked to stop when it leaves
 * the pool: the hook below runs then. Set by the leak scanner.
 */
extern void (*smpi_stop_hook)(void);

#endif
