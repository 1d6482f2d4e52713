/*
 * The pool factory: named, isolated and temporary pools, and the names they
 * carry into their statistics.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smp/smp.h"

static void assert_named(const smp_pool *pool, const char *name)
{
    smp_stats st;

    cr_assert_not_null(pool);
    cr_assert_str_eq(smp_pool_name(pool), name);
    cr_assert_eq(smp_pool_stats(pool, &st), 0);
    cr_assert_str_eq(st.pool_name, name);
}

Test(factory, named_pool_copies_its_name)
{
    char name[] = "session";
    smp_pool *pool = smp_pool_create(name);

    assert_named(pool, "session");
    memset(name, 'x', sizeof name - 1);
    assert_named(pool, "session");
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(factory, pools_are_distinct_objects)
{
    smp_pool *a = smp_pool_create("twin");
    smp_pool *b = smp_pool_create("twin");

    cr_assert(a && b);
    cr_assert_neq(a, b);
    cr_assert_neq(a, smp_current_pool());
    cr_assert_eq(smp_pool_destroy(a), 0);
    cr_assert_eq(smp_pool_destroy(b), 0);
}

Test(factory, name_length_is_checked)
{
    char longest[SMP_NAME_MAX];
    char too_long[SMP_NAME_MAX + 1];
    smp_pool *pool;

    memset(longest, 'n', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    pool = smp_pool_create(longest);
    assert_named(pool, longest);
    cr_assert_eq(smp_pool_destroy(pool), 0);

    memset(too_long, 'n', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    errno = 0;
    cr_assert_null(smp_pool_create(too_long));
    cr_assert_eq(errno, EINVAL);

    errno = 0;
    cr_assert_null(smp_pool_create(""));
    cr_assert_eq(errno, EINVAL);
}

Test(factory, isolated_pool_name_shows_in_statistics)
{
    smp_pool *pool = smp_pool_create_isolated("session-123");
    void *block;
    smp_stats st;

    assert_named(pool, "isolated-session-123");
    block = smp_alloc(pool, 64);
    cr_assert_not_null(block);
    cr_assert_eq(smp_pool_stats(pool, &st), 0);
    cr_assert_str_eq(st.pool_name, "isolated-session-123");
    cr_assert_eq(st.live_blocks, 1);
    smp_free(block);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

/* Splits "temp-<secs>" or "temp-<secs>-<n>"; n is -1 when absent. */
static int parse_temp(const char *name, long long *secs, long long *n)
{
    char *end;

    if (strncmp(name, "temp-", 5) != 0 || name[5] < '0' || name[5] > '9')
        return -1;
    *secs = strtoll(name + 5, &end, 10);
    *n = -1;
    if (*end == '\0')
        return 0;
    if (end[0] != '-' || end[1] < '0' || end[1] > '9')
        return -1;
    *n = strtoll(end + 1, &end, 10);
    return *end == '\0' ? 0 : -1;
}

#define TEMP_COUNT 300

Test(factory, temporary_names_carry_the_time_and_stay_unique)
{
    static smp_pool *pools[TEMP_COUNT];
    static char names[TEMP_COUNT][SMP_NAME_MAX];
    long long before = (long long)time(NULL), after;

    for (int i = 0; i < TEMP_COUNT; i++) {
        pools[i] = smp_pool_create_temporary();
        cr_assert_not_null(pools[i]);
        snprintf(names[i], SMP_NAME_MAX, "%s", smp_pool_name(pools[i]));
    }
    after = (long long)time(NULL);

    for (int i = 0; i < TEMP_COUNT; i++) {
        long long secs, n;

        cr_assert_eq(parse_temp(names[i], &secs, &n), 0,
                     "'%s' is not temp-<secs>[-N]", names[i]);
        cr_assert(secs >= before && secs <= after,
                  "'%s' is not between %lld and %lld", names[i], before, after);
        if (i == 0)
            cr_assert_eq(n, -1, "the first of a second needs no number: %s",
                         names[i]);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(names[i], names[j], "made twice: %s", names[i]);
    }

    for (int i = 0; i < TEMP_COUNT; i++)
        cr_assert_eq(smp_pool_destroy(pools[i]), 0);
}

#define TEMP_THREADS 4
#define TEMP_PER_THREAD 64

typedef struct temp_batch {
    char names[TEMP_PER_THREAD][SMP_NAME_MAX];
    smp_pool *pools[TEMP_PER_THREAD];
} temp_batch;

static void *make_temporaries(void *arg)
{
    temp_batch *batch = arg;

    for (int i = 0; i < TEMP_PER_THREAD; i++) {
        batch->pools[i] = smp_pool_create_temporary();
        if (batch->pools[i])
            snprintf(batch->names[i], SMP_NAME_MAX, "%s",
                     smp_pool_name(batch->pools[i]));
    }
    return NULL;
}

Test(factory, temporary_names_stay_unique_across_threads)
{
    static temp_batch batches[TEMP_THREADS];
    pthread_t threads[TEMP_THREADS];
    enum { total = TEMP_THREADS * TEMP_PER_THREAD };
    static const char *all[total];
    int k = 0;

    for (int t = 0; t < TEMP_THREADS; t++)
        cr_assert_eq(
            pthread_create(&threads[t], NULL, make_temporaries, &batches[t]),
            0);
    for (int t = 0; t < TEMP_THREADS; t++)
        pthread_join(threads[t], NULL);

    for (int t = 0; t < TEMP_THREADS; t++)
        for (int i = 0; i < TEMP_PER_THREAD; i++) {
            cr_assert_not_null(batches[t].pools[i]);
            all[k++] = batches[t].names[i];
        }
    for (int i = 0; i < total; i++)
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(all[i], all[j], "made twice: %s", all[i]);

    /* Pools made by one thread may be destroyed by another. */
    for (int t = 0; t < TEMP_THREADS; t++)
        for (int i = 0; i < TEMP_PER_THREAD; i++)
            cr_assert_eq(smp_pool_destroy(batches[t].pools[i]), 0);
}
