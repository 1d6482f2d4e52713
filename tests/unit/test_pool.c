/*
 * Blocks of a pool: zeroed allocation, copying allocation, alignment, sizes
 * from the smallest class to a large span, ownership, errno, cleanup_all
 * and destroying a pool that still has live blocks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "smp/smp.h"

static smp_stats stats_of(const smp_pool *pool)
{
    smp_stats st;

    cr_assert_eq(smp_pool_stats(pool, &st), 0);
    return st;
}

static int all_bytes_are(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

Test(pool, alloc_gives_zeroed_memory_even_when_reused)
{
    static const size_t sizes[] = { 1, 8, 16, 24, 100, 512, 4096, 20000 };
    smp_pool *pool = smp_pool_create("zeroed");

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];

        for (int round = 0; round < 3; round++) {
            unsigned char *p = smp_alloc(pool, n);

            cr_assert_not_null(p, "size %zu", n);
            cr_assert(all_bytes_are(p, n, 0), "size %zu round %d", n, round);
            memset(p, 0xA5, n);
            smp_free(p);
        }
    }
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(pool, allocate_copies_the_data)
{
    static const char secret[] = "correct horse battery staple";
    char *copy = smp_allocate(NULL, secret, sizeof secret);

    cr_assert_not_null(copy);
    cr_assert_neq(copy, secret);
    cr_assert_str_eq(copy, secret);
    cr_assert_eq(stats_of(smp_current_pool()).live_bytes, sizeof secret);
    smp_free(copy);
}

Test(pool, blocks_are_aligned_and_do_not_overlap)
{
    enum { count = 400 };
    static unsigned char *blocks[count];
    static size_t sizes[count];
    smp_pool *pool = smp_pool_create("layout");

    for (int i = 0; i < count; i++) {
        /* Sizes walk through many classes, with a few large spans. */
        sizes[i] = i % 50 == 49 ? 70000 + (size_t)i : 1 + (size_t)i * 13;
        blocks[i] = smp_alloc(pool, sizes[i]);
        cr_assert_not_null(blocks[i], "size %zu", sizes[i]);
        cr_assert_eq((uintptr_t)blocks[i] % 16, 0, "size %zu at %p", sizes[i],
                     (void *)blocks[i]);
        memset(blocks[i], i & 0xff, sizes[i]);
    }
    for (int i = 0; i < count; i++)
        cr_assert(all_bytes_are(blocks[i], sizes[i], i & 0xff),
                  "block %d (size %zu) was overwritten", i, sizes[i]);
    for (int i = 0; i < count; i++)
        smp_free(blocks[i]);
    cr_assert_eq(stats_of(pool).live_blocks, 0);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(pool, every_alignment_holds_for_small_and_large_sizes)
{
    static const size_t sizes[] = { 0, 1, 100, 4096, 5000, 8192, 70000 };
    smp_pool *pool = smp_pool_create("aligned");

    /* alignments above a page too: a chunk itself starts on a page only */
    for (size_t align = 16; align <= 65536; align *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p[3];

            for (int k = 0; k < 3; k++) {
                p[k] = smpi_pool_alloc(pool, sizes[i], align, 0);
                cr_assert_not_null(p[k], "size %zu align %zu", sizes[i],
                                   align);
                cr_assert_eq((uintptr_t)p[k] % align, 0,
                             "size %zu align %zu at %p", sizes[i], align,
                             p[k]);
            }
            for (int k = 0; k < 3; k++)
                smp_free(p[k]);
        }
    }
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(pool, realloc_moves_every_usable_byte)
{
    static const size_t sizes[] = { 1, 40, 100, 3000, 9000, 70000 };
    smp_pool *pool = smp_pool_create("resized");

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = smp_alloc(pool, sizes[i]);
        size_t usable = smpi_usable_size(p, "test");

        /* the bytes past the size asked for are the program's too */
        cr_assert_geq(usable, sizes[i]);
        memset(p, 0x3c, usable);
        p = smpi_realloc(p, 4 * usable + 100, 0);
        cr_assert_not_null(p, "size %zu", sizes[i]);
        cr_assert(all_bytes_are(p, usable, 0x3c), "size %zu: usable %zu",
                  sizes[i], usable);
        cr_assert(all_bytes_are(p + usable, 3 * usable + 100, 0),
                  "size %zu: the new bytes are zero", sizes[i]);
        smp_free(p);
    }
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(pool, ownership_is_known)
{
    int on_stack = 0;
    void *from_libc = malloc(32);
    char *block = smp_alloc(NULL, 32);

    cr_assert_eq(smp_owns(block), 1);
    cr_assert_eq(smp_owns(block + 31), 1);
    cr_assert_eq(smp_owns(&on_stack), 0);
    cr_assert_eq(smp_owns(from_libc), 0);
    cr_assert_eq(smp_owns(NULL), 0);
    free(from_libc);
    smp_free(block);
}

Test(pool, free_keeps_errno_and_ignores_null)
{
    void *block = smp_alloc(NULL, 40);

    errno = 4242;
    smp_free(block);
    cr_assert_eq(errno, 4242);
    smp_free(NULL);
    cr_assert_eq(errno, 4242);
}

Test(pool, impossible_sizes_fail_with_enomem)
{
    smp_pool *pool = smp_pool_create("huge");

    errno = 0;
    cr_assert_null(smp_alloc(pool, SIZE_MAX));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(smp_alloc(pool, SIZE_MAX / 2));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(stats_of(pool).live_blocks, 0);
    cr_assert_eq(stats_of(pool).allocations, 0, "failures are not counted");
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(pool, blocks_of_any_pool_can_be_freed)
{
    smp_pool *a = smp_pool_create("a");
    smp_pool *b = smp_pool_create_isolated("b");
    void *x = smp_alloc(a, 10), *y = smp_alloc(b, 10);
    void *z = smp_alloc(NULL, 10);

    cr_assert(x && y && z);
    smp_free(y);
    smp_free(z);
    smp_free(x);
    cr_assert_eq(stats_of(a).live_blocks, 0);
    cr_assert_eq(stats_of(b).live_blocks, 0);
    cr_assert_eq(stats_of(smp_current_pool()).live_blocks, 0);
    cr_assert_eq(smp_pool_destroy(a), 0);
    cr_assert_eq(smp_pool_destroy(b), 0);
}

Test(pool, cleanup_all_releases_every_block_and_keeps_the_pool)
{
    smp_pool *pool = smp_pool_create("cleaned");
    smp_stats st;
    char *after;

    for (int i = 0; i < 100; i++)
        cr_assert_not_null(smp_alloc(pool, 16 + (size_t)i * 40));
    cr_assert_not_null(smp_alloc(pool, 100000));
    cr_assert_eq(stats_of(pool).live_blocks, 101);

    smp_pool_cleanup_all(pool);
    st = stats_of(pool);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_str_eq(st.pool_name, "cleaned");

    /* The pool goes on working. */
    after = smp_allocate(pool, "again", 6);
    cr_assert_not_null(after);
    cr_assert_str_eq(after, "again");
    st = stats_of(pool);
    cr_assert_eq(st.live_blocks, 1);
    cr_assert_eq(st.live_bytes, 6);
    cr_assert_eq(st.allocations, 102);
    smp_free(after);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(pool, cleanup_all_of_the_current_pool)
{
    smp_pool *def = smp_current_pool();

    for (int i = 0; i < 10; i++)
        cr_assert_not_null(smp_alloc(NULL, 64));
    smp_pool_cleanup_all(def);
    cr_assert_eq(stats_of(def).live_blocks, 0);
    cr_assert_not_null(smp_alloc(NULL, 64));
    cr_assert_eq(stats_of(def).live_blocks, 1);
}

typedef struct escape_count {
    const char *pool;
    size_t blocks, bytes;
} escape_count;

static void count_escape(const smpi_escape *e, void *ctx)
{
    escape_count *c = ctx;

    if (strcmp(e->pool_name, c->pool) == 0) {
        c->blocks++;
        c->bytes += e->block.size;
    }
}

typedef struct retired_search {
    const char *name;
    smp_stats stats;
    int seen;
} retired_search;

static void find_retired(const smpi_pool_info *info, void *ctx)
{
    retired_search *s = ctx;

    if (!info->pool && strcmp(info->stats.pool_name, s->name) == 0) {
        s->stats = info->stats;
        s->seen++;
    }
}

Test(pool, destroy_with_live_blocks_counts_them_as_escaped)
{
    retired_search retired = { .name = "destroyed-live" };
    smp_pool *pool = smp_pool_create("destroyed-live");
    escape_count count = { "destroyed-live", 0, 0 };
    smp_stats st;

    for (int i = 0; i < 5; i++)
        cr_assert_not_null(smp_alloc(pool, 30));
    smp_free(smp_alloc(pool, 30));
    st = stats_of(pool);
    cr_assert_eq(st.live_blocks, 5);
    cr_assert_eq(st.escaped_blocks, 0);

    cr_assert_eq(smp_pool_destroy(pool), 0);
    smpi_foreach_escape(count_escape, &count);
    cr_assert_eq(count.blocks, 5, "escaped blocks remembered: %zu",
                 count.blocks);
    cr_assert_eq(count.bytes, 150);

    /* The reports still see the pool's counters, escapes included. */
    smpi_foreach_pool(find_retired, &retired);
    cr_assert_eq(retired.seen, 1, "the destroyed pool is reported once");
    cr_assert_eq(retired.stats.escaped_blocks, 5);
    cr_assert_eq(retired.stats.allocations, 6);
    cr_assert_eq(retired.stats.total_bytes, 180);
}
