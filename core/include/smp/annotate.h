/*
 * smp/annotate.h: optional scopes for programs run under
 * libsmp_preload.so.
 *
 * The smp functions below are weak references. A program that uses them
 * links without libsmp; at load time they bind to the preload's
 * definitions when LD_PRELOAD=libsmp_preload.so is set, and stay NULL
 * when it is not. The helpers test for that, so one binary runs either
 * way: without the preload the scopes do nothing, with it every
 * allocation made inside a scope, by the program or by any library it
 * calls (strdup, a parser, a TLS library), lands in the scope's pool and
 * is wiped when freed.
 *
 *     #include <smp/annotate.h>
 *
 *     SMP_ANNOTATE_SCOPE("login") {
 *         char *password = strdup(line);
 *         check(password);
 *         free(password);
 *     }
 *
 * A scope made by SMP_ANNOTATE_SCOPE or smp_annotate_enter owns a new pool:
 * blocks still live when it ends are counted as escaped, wiped, and their
 * addresses fenced. Free what the scope allocated before it ends, or keep
 * long-lived secrets in a pool of their own (smp_pool_create with
 * smp_annotate_enter_pool).
 */
#ifndef SMP_ANNOTATE_H
#define SMP_ANNOTATE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct smp_pool smp_pool;

/* The subset of smp.h an annotated program may need; NULL without smp. */
extern smp_pool *smp_scope_enter_new(const char *name)
    __attribute__((weak));
extern int smp_scope_enter(smp_pool *pool) __attribute__((weak));
extern int smp_scope_exit(void) __attribute__((weak));
extern int smp_scope_depth(void) __attribute__((weak));
extern smp_pool *smp_pool_create(const char *name) __attribute__((weak));
extern int smp_pool_destroy(smp_pool *pool) __attribute__((weak));
extern int smp_owns(const void *ptr) __attribute__((weak));

/* 1 when the smp runtime is loaded, else 0. */
static inline int smp_annotate_available(void)
{
    return smp_scope_enter_new != NULL && smp_scope_exit != NULL;
}

/*
 * Opens a scope that owns a new pool named name. Returns 1 when a scope
 * was opened (pair it with smp_annotate_exit), 0 when smp is absent or the
 * scope could not be made (then nothing is routed and nothing to close).
 */
static inline int smp_annotate_enter(const char *name)
{
    return smp_annotate_available() && smp_scope_enter_new(name) != NULL;
}

/* Opens a scope that borrows pool (made by smp_pool_create); as above. */
static inline int smp_annotate_enter_pool(smp_pool *pool)
{
    return pool != NULL && smp_scope_enter != NULL &&
           smp_scope_exit != NULL && smp_scope_enter(pool) == 0;
}

/* Closes the scope opened by a call that returned 1. */
static inline void smp_annotate_exit(void)
{
    if (smp_scope_exit != NULL)
        smp_scope_exit();
}

/* A pool named name that any thread may use; NULL without smp. */
static inline smp_pool *smp_annotate_pool(const char *name)
{
    return smp_pool_create != NULL ? smp_pool_create(name) : NULL;
}

/*
 * SMP_ANNOTATE_SCOPE("name") { ... } runs its body inside a scope that
 * owns a new pool, when smp is loaded. The scope is left however the body
 * ends: at its closing brace, by break, by continue, by return, or by goto
 * out of it; break and continue end the scope only, never a loop around
 * it. Without smp the body simply runs.
 */
typedef struct smp_annotate_guard {
    int entered;
    int done;
} smp_annotate_guard;

static inline smp_annotate_guard smp_annotate_guard_open(const char *name)
{
    smp_annotate_guard guard = { smp_annotate_enter(name), 0 };
    return guard;
}

static inline void smp_annotate_guard_close(smp_annotate_guard *guard)
{
    if (guard->entered)
        smp_annotate_exit();
}

#define SMP_ANNOTATE_SCOPE(name)                                         \
    for (smp_annotate_guard smp_annotate_guard_                          \
             __attribute__((cleanup(smp_annotate_guard_close))) =        \
                 smp_annotate_guard_open(name);                          \
         !smp_annotate_guard_.done; smp_annotate_guard_.done = 1)

#ifdef __cplusplus
}
#endif

#endif
