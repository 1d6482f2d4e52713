/*
 * Pools and threads: each thread's own default pool, blocks that outlive
 * the thread that made them, pools returned when threads end, and a pool
 * the program hands to several threads.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "smp/smp.h"
#include "testutil.h"

#define THREE 3

typedef struct seen {
    pthread_barrier_t *all_asked;
    smp_pool *pool;
    char name[SMP_NAME_MAX];
    int depth;
} seen;

static void *ask_current_pool(void *arg)
{
    seen *s = arg;

    s->pool = smp_current_pool();
    snprintf(s->name, sizeof s->name, "%s", smp_pool_name(s->pool));
    s->depth = smp_scope_depth();
    /* Stay alive until all have asked, so no pool can be reused. */
    pthread_barrier_wait(s->all_asked);
    return NULL;
}

Test(threads, three_threads_get_three_default_pools)
{
    pthread_barrier_t barrier;
    pthread_t threads[THREE];
    seen s[THREE];

    pthread_barrier_init(&barrier, NULL, THREE);
    for (int i = 0; i < THREE; i++) {
        s[i].all_asked = &barrier;
        cr_assert_eq(pthread_create(&threads[i], NULL, ask_current_pool, &s[i]),
                     0);
    }
    for (int i = 0; i < THREE; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);

    for (int i = 0; i < THREE; i++) {
        cr_assert_not_null(s[i].pool);
        cr_assert_str_eq(s[i].name, "default");
        cr_assert_eq(s[i].depth, 0);
        for (int j = 0; j < i; j++)
            cr_assert_neq(s[i].pool, s[j].pool,
                          "threads %d and %d share a pool", i, j);
    }
}

Test(threads, a_new_thread_does_not_get_the_main_default_pool)
{
    pthread_barrier_t barrier;
    pthread_t thread;
    smp_pool *mine = smp_current_pool();
    seen s;

    pthread_barrier_init(&barrier, NULL, 1);
    s.all_asked = &barrier;
    cr_assert_eq(pthread_create(&thread, NULL, ask_current_pool, &s), 0);
    pthread_join(thread, NULL);
    pthread_barrier_destroy(&barrier);
    cr_assert_neq(s.pool, mine);
    cr_assert_str_eq(s.name, "default");
}

#define LEFT 50

typedef struct leftovers {
    char *blocks[LEFT];
    char *scoped;
    smp_pool *pool;
} leftovers;

static void *leave_blocks_behind(void *arg)
{
    leftovers *l = arg;

    for (int i = 0; i < LEFT; i++) {
        l->blocks[i] = smp_alloc(NULL, 16 + (size_t)i * 8);
        if (l->blocks[i])
            snprintf(l->blocks[i], 16, "block %d", i);
    }
    l->pool = smp_pool_create("made-by-thread");
    l->scoped = smp_allocate(l->pool, "thread pool", 12);
    return NULL;
}

Test(threads, blocks_outlive_the_thread_that_made_them)
{
    leftovers l;
    pthread_t thread;
    smp_stats st;

    memset(&l, 0, sizeof l);
    cr_assert_eq(pthread_create(&thread, NULL, leave_blocks_behind, &l), 0);
    pthread_join(thread, NULL);

    for (int i = 0; i < LEFT; i++) {
        char want[16];

        cr_assert_not_null(l.blocks[i]);
        snprintf(want, sizeof want, "block %d", i);
        cr_assert_str_eq(l.blocks[i], want);
        cr_assert_eq(smp_owns(l.blocks[i]), 1);
    }
    cr_assert_str_eq(l.scoped, "thread pool");

    /* Freed here, from the thread that did not make them. */
    for (int i = 0; i < LEFT; i++)
        smp_free(l.blocks[i]);
    smp_free(l.scoped);
    cr_assert_eq(smp_pool_stats(l.pool, &st), 0);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.frees, 1);
    cr_assert_eq(smp_pool_destroy(l.pool), 0);
}

static void *alloc_and_free(void *arg)
{
    void *blocks[20];

    (void)arg;
    for (int i = 0; i < 20; i++)
        blocks[i] = smp_alloc(NULL, 24 + (size_t)i * 100);
    for (int i = 0; i < 20; i++)
        smp_free(blocks[i]);
    return NULL;
}

static void run_threads(int n)
{
    for (int i = 0; i < n; i++) {
        pthread_t thread;

        cr_assert_eq(pthread_create(&thread, NULL, alloc_and_free, NULL), 0);
        pthread_join(thread, NULL);
    }
}

Test(threads, pools_of_ended_threads_are_returned)
{
    long warm, later;

    /* Let any cache settle first; then 300 more threads must not add up. */
    run_threads(8);
    warm = vmlck_kb();
    cr_assert_geq(warm, 0);
    run_threads(300);
    later = vmlck_kb();
    cr_assert_leq(later, warm + 1024,
                  "locked memory grew from %ld to %ld kB over 300 threads",
                  warm, later);
}

#define SHARERS 4
#define ROUNDS 20000

static void *use_shared_pool(void *arg)
{
    smp_pool *pool = arg;

    for (int i = 0; i < ROUNDS; i++) {
        size_t size = 8 + (size_t)(i % 61) * 8;
        unsigned char *p = smp_alloc(pool, size);

        if (!p)
            return (void *)1;
        memset(p, i & 0xff, size);
        if (p[size - 1] != (unsigned char)(i & 0xff))
            return (void *)1;
        smp_free(p);
    }
    return NULL;
}

Test(threads, a_created_pool_serves_many_threads)
{
    smp_pool *pool = smp_pool_create("handed-around");
    pthread_t threads[SHARERS];
    smp_stats st;

    for (int i = 0; i < SHARERS; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, use_shared_pool, pool),
                     0);
    for (int i = 0; i < SHARERS; i++) {
        void *failed;

        pthread_join(threads[i], &failed);
        cr_assert_null(failed, "thread %d saw a bad block", i);
    }
    cr_assert_eq(smp_pool_stats(pool, &st), 0);
    cr_assert_eq(st.allocations, (size_t)SHARERS * ROUNDS);
    cr_assert_eq(st.frees, (size_t)SHARERS * ROUNDS);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}
