/*
 * The lock a pool takes: one atomic exchange to take it and a plain store
 * to give it back, so a pool used by one thread pays little. Waiters spin
 * briefly, then yield; pool operations are short.
 */
#ifndef SMP_LOCK_H
#define SMP_LOCK_H

#include <sched.h>

typedef struct smpi_lock {
    int held;
} smpi_lock;

static inline void smpi_lock_slow(smpi_lock *lock)
{
    for (unsigned spins = 0;; spins++) {
        if (!__atomic_load_n(&lock->held, __ATOMIC_RELAXED) &&
            !__atomic_exchange_n(&lock->held, 1, __ATOMIC_ACQUIRE))
            return;
        if (spins < 64)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
}

static inline void smpi_lock_take(smpi_lock *lock)
{
    if (__atomic_exchange_n(&lock->held, 1, __ATOMIC_ACQUIRE))
        smpi_lock_slow(lock);
}

static inline void smpi_lock_give(smpi_lock *lock)
{
    __atomic_store_n(&lock->held, 0, __ATOMIC_RELEASE);
}

/* In a child after fork: whoever held it does not exist there. */
static inline void smpi_lock_reset(smpi_lock *lock)
{
    __atomic_store_n(&lock->held, 0, __ATOMIC_RELAXED);
}

#endif
