/*
 * Statistics arithmetic: every counter of smp_stats followed through a known
 * sequence of allocations, frees and scopes.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "smp/smp.h"

static smp_stats stats_of(const smp_pool *pool)
{
    smp_stats st;

    cr_assert_eq(smp_pool_stats(pool, &st), 0);
    return st;
}

static const size_t sizes[] = { 1, 16, 17, 100, 256, 1000, 4096, 5000, 70000 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

Test(stats, a_new_pool_starts_at_zero)
{
    smp_pool *pool = smp_pool_create("fresh");
    smp_stats st = stats_of(pool);

    cr_assert_str_eq(st.pool_name, "fresh");
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_eq(st.peak_bytes, 0);
    cr_assert_eq(st.total_bytes, 0);
    cr_assert_eq(st.allocations, 0);
    cr_assert_eq(st.frees, 0);
    cr_assert_eq(st.lock_failures, 0);
    cr_assert_eq(st.scope_entries, 0);
    cr_assert_eq(st.scope_exits, 0);
    cr_assert_eq(st.escaped_blocks, 0);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(stats, counters_follow_allocations_and_frees)
{
    smp_pool *pool = smp_pool_create("arithmetic");
    void *blocks[NSIZES];
    size_t sum = 0, live, peak;
    smp_stats st;

    for (size_t i = 0; i < NSIZES; i++) {
        blocks[i] = smp_alloc(pool, sizes[i]);
        cr_assert_not_null(blocks[i]);
        sum += sizes[i];
        st = stats_of(pool);
        cr_assert_eq(st.allocations, i + 1);
        cr_assert_eq(st.live_blocks, i + 1);
        cr_assert_eq(st.live_bytes, sum, "live %zu, want %zu", st.live_bytes,
                     sum);
        cr_assert_eq(st.total_bytes, sum);
        cr_assert_eq(st.peak_bytes, sum);
    }
    peak = sum;

    /* Frees lower live figures only. */
    live = sum;
    for (size_t i = 0; i < NSIZES; i += 2) {
        smp_free(blocks[i]);
        live -= sizes[i];
    }
    st = stats_of(pool);
    cr_assert_eq(st.frees, (NSIZES + 1) / 2);
    cr_assert_eq(st.live_blocks, NSIZES / 2);
    cr_assert_eq(st.live_bytes, live);
    cr_assert_eq(st.peak_bytes, peak);
    cr_assert_eq(st.total_bytes, sum);

    /* A small block after that leaves the peak where it was... */
    blocks[0] = smp_allocate(pool, "12345678", 8);
    st = stats_of(pool);
    cr_assert_eq(st.live_bytes, live + 8);
    cr_assert_eq(st.total_bytes, sum + 8);
    cr_assert_eq(st.peak_bytes, peak);
    cr_assert_eq(st.allocations, NSIZES + 1);

    /* ...and one that goes above it raises the peak. */
    blocks[2] = smp_alloc(pool, peak);
    st = stats_of(pool);
    cr_assert_eq(st.peak_bytes, live + 8 + peak);
    cr_assert_eq(st.total_bytes, sum + 8 + peak);

    smp_free(blocks[0]);
    smp_free(blocks[2]);
    for (size_t i = 1; i < NSIZES; i += 2)
        smp_free(blocks[i]);
    st = stats_of(pool);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_eq(st.allocations, st.frees);
    cr_assert_eq(st.allocations, NSIZES + 2);
    cr_assert_eq(st.peak_bytes, live + 8 + peak);
    cr_assert_eq(st.escaped_blocks, 0);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(stats, locked_bytes_cover_the_live_bytes)
{
    smp_pool *pool = smp_pool_create("locked");
    void *blocks[NSIZES];
    size_t sum = 0;
    smp_stats st;

    cr_assert_eq(smp_get_mlock_policy(), SMP_MLOCK_TRY, "try is the default");
    for (size_t i = 0; i < NSIZES; i++) {
        blocks[i] = smp_alloc(pool, sizes[i]);
        sum += sizes[i];
    }
    st = stats_of(pool);
    /* The tests run with an mlock limit these few pages fit in. */
    cr_assert_eq(st.lock_failures, 0);
    cr_assert_geq(st.locked_bytes, sum, "locked %zu < live %zu",
                  st.locked_bytes, sum);
    cr_assert_eq(st.locked_bytes % 4096, 0, "whole pages are locked");

    for (size_t i = 0; i < NSIZES; i++)
        smp_free(blocks[i]);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

/*
 * A class a pool uses a little locks a small chunk; one it fills gets
 * full chunks from then on.
 */
Test(stats, a_class_locks_little_until_it_fills)
{
    enum { FIRST = 16 << 10, FULL = 64 << 10, SIZE = 32 };
    smp_pool *pool = smp_pool_create("chunks");
    void *blocks[FIRST / SIZE + 1];
    smp_stats st;

    blocks[0] = smp_alloc(pool, SIZE);
    st = stats_of(pool);
    cr_assert_eq(st.locked_bytes, FIRST, "locked %zu", st.locked_bytes);

    for (size_t i = 1; i < FIRST / SIZE; i++)
        blocks[i] = smp_alloc(pool, SIZE);
    cr_assert_eq(stats_of(pool).locked_bytes, FIRST, "one chunk holds all");
    blocks[FIRST / SIZE] = smp_alloc(pool, SIZE);
    st = stats_of(pool);
    cr_assert_eq(st.locked_bytes, FIRST + FULL, "locked %zu",
                 st.locked_bytes);

    for (size_t i = 0; i <= FIRST / SIZE; i++)
        smp_free(blocks[i]);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

/*
 * Blocks that come and go in waves: a chunk that empties while another
 * chunk of its class has room stays for the next wave, rather than being
 * unlocked and unmapped now and mapped and locked again then. A second
 * empty chunk of the class goes.
 */
Test(stats, a_class_keeps_one_empty_chunk)
{
    enum { FIRST = 512, MORE = 100, SIZE = 32 };
    smp_pool *pool = smp_pool_create("waves");
    static void *blocks[FIRST + MORE];

    for (int i = 0; i < FIRST + MORE; i++)
        cr_assert_not_null(blocks[i] = smp_alloc(pool, SIZE));
    cr_assert_eq(stats_of(pool).locked_bytes, (16 + 64) << 10);

    /* the first chunk gets room; the second one empties */
    smp_free(blocks[0]);
    for (int i = FIRST; i < FIRST + MORE; i++)
        smp_free(blocks[i]);
    cr_assert_eq(stats_of(pool).locked_bytes, (16 + 64) << 10,
                 "the empty chunk was given back");

    /* the first chunk empties too: one empty chunk is enough */
    for (int i = 1; i < FIRST; i++)
        smp_free(blocks[i]);
    cr_assert_eq(stats_of(pool).locked_bytes, 64 << 10);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(stats, each_pool_counts_only_its_own_blocks)
{
    smp_pool *a = smp_pool_create("left");
    smp_pool *b = smp_pool_create("right");
    void *x = smp_alloc(a, 100);
    void *y = smp_alloc(b, 300);
    void *z = smp_alloc(b, 5);

    cr_assert_eq(stats_of(a).live_bytes, 100);
    cr_assert_eq(stats_of(b).live_bytes, 305);
    cr_assert_eq(stats_of(b).live_blocks, 2);
    smp_free(y);
    cr_assert_eq(stats_of(a).live_bytes, 100);
    cr_assert_eq(stats_of(b).live_bytes, 5);
    cr_assert_eq(stats_of(b).frees, 1);
    cr_assert_eq(stats_of(a).frees, 0);
    smp_free(x);
    smp_free(z);
    cr_assert_eq(smp_pool_destroy(a), 0);
    cr_assert_eq(smp_pool_destroy(b), 0);
}

Test(stats, scope_counters_in_an_owned_pool)
{
    smp_pool *owned = smp_scope_enter_new("scoped-stats");
    void *block = smp_alloc(NULL, 77);
    smp_stats st = stats_of(owned);

    cr_assert_eq(st.scope_entries, 1);
    cr_assert_eq(st.scope_exits, 0);
    cr_assert_eq(st.live_bytes, 77);

    /* Borrowing the same pool again from inside counts one more entry. */
    cr_assert_eq(smp_scope_enter(owned), 0);
    cr_assert_eq(stats_of(owned).scope_entries, 2);
    cr_assert_eq(smp_scope_exit(), 0);
    st = stats_of(owned);
    cr_assert_eq(st.scope_exits, 1);
    cr_assert_eq(st.live_blocks, 1);

    smp_free(block);
    cr_assert_eq(smp_scope_exit(), 0);
}
