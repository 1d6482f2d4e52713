/*
 * What the kernel and the bytes say about pool memory: released blocks read
 * as zero, pool pages are locked and left out of core dumps, a destroyed
 * pool's range faults, and a large block has a guard page behind it.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "region.h"
#include "smp/smp.h"
#include "testutil.h"

static int reads_as_zero(const void *p, size_t n)
{
    const volatile unsigned char *bytes = p;

    for (size_t i = 0; i < n; i++)
        if (bytes[i] != 0)
            return 0;
    return 1;
}

static void zeroed_after_free(smp_pool *pool, size_t size)
{
    /* The neighbour keeps the chunk in use, so the freed bytes stay mapped. */
    unsigned char *keep = smp_alloc(pool, size);
    unsigned char *secret = smp_alloc(pool, size);

    cr_assert(keep && secret, "size %zu", size);
    memset(keep, 0x5A, size);
    memset(secret, 0xC3, size);
    smp_free(secret);

    cr_assert(reads_as_zero(secret, size),
              "a freed block of %zu bytes still holds data", size);
    for (size_t i = 0; i < size; i++)
        cr_assert_eq(keep[i], 0x5A, "the neighbour was touched");
    smp_free(keep);
}

Test(memory, freed_blocks_read_as_zero)
{
    static const size_t sizes[] = { 8, 32, 48, 256, 1000, 2048 };
    smp_pool *pool = smp_pool_create("wiped");

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        zeroed_after_free(pool, sizes[i]);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(memory, freed_blocks_of_the_default_pool_read_as_zero)
{
    zeroed_after_free(NULL, 32);
    zeroed_after_free(NULL, 512);
}

/* A block freed by another thread is wiped as well. */
static void *free_it(void *p)
{
    smp_free(p);
    return NULL;
}

Test(memory, blocks_freed_by_another_thread_read_as_zero)
{
    unsigned char *keep = smp_alloc(NULL, 64);
    unsigned char *secret = smp_alloc(NULL, 64);
    pthread_t thread;

    memset(secret, 0x77, 64);
    cr_assert_eq(pthread_create(&thread, NULL, free_it, secret), 0);
    pthread_join(thread, NULL);
    cr_assert(reads_as_zero(secret, 64));
    smp_free(keep);
}

static void expect_locked_and_undumped(const void *block, const char *what)
{
    mapping_facts m;

    cr_assert_eq(smaps_lookup(block, &m), 0, "%s: no mapping holds %p", what,
                 block);
    cr_assert(has_vmflag(&m, "lo"), "%s: VmFlags '%s' lack lo", what,
              m.vmflags);
    cr_assert(has_vmflag(&m, "dd"), "%s: VmFlags '%s' lack dd", what,
              m.vmflags);
    cr_assert_gt(m.locked_kb, 0, "%s: Locked: 0 kB", what);
}

Test(memory, pool_pages_are_locked_and_left_out_of_dumps)
{
    smp_pool *pool = smp_pool_create("smaps");
    char *small = smp_allocate(pool, "key", 4);
    char *large = smp_alloc(pool, 1 << 20);
    char *deflt = smp_alloc(NULL, 200);

    cr_assert(small && large && deflt);
    large[0] = large[(1 << 20) - 1] = 1;
    expect_locked_and_undumped(small, "small block");
    expect_locked_and_undumped(large, "large block");
    expect_locked_and_undumped(large + (1 << 20) - 1, "large block's end");
    expect_locked_and_undumped(deflt, "default pool block");

    smp_free(small);
    smp_free(large);
    smp_free(deflt);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

static void read_byte(void *p)
{
    volatile unsigned char *byte = p;

    (void)*byte;
}

static void write_byte(void *p)
{
    volatile unsigned char *byte = p;

    *byte = 1;
}

/*
 * Touching p kills a child with SIGSEGV, after the runtime's fault handler
 * has said on stderr which pool the address belonged to.
 */
static void expect_fault(void (*touch)(void *), void *p, const char *what,
                         const char *pool)
{
    child_result child;
    char hex[32], quoted[SMP_NAME_MAX + 2];

    run_in_child(touch, p, &child);
    cr_assert_eq(child_signal(&child), SIGSEGV,
                 "%s at %p: status %#x, stderr '%s'", what, p, child.status,
                 child.err);

    snprintf(hex, sizeof hex, "%p", p);
    snprintf(quoted, sizeof quoted, "'%s'", pool);
    cr_assert_eq(strncmp(child.err, "smp: ", 5), 0,
                 "%s: no explanation, stderr '%s'", what, child.err);
    cr_assert(strstr(child.err, hex) && strstr(child.err, quoted),
              "%s: the explanation names neither %s nor pool %s: '%s'", what,
              hex, quoted, child.err);
}

Test(memory, a_destroyed_pool_is_fenced)
{
    smp_pool *pool = smp_pool_create("fenced");
    char *small = smp_alloc(pool, 64);
    char *large = smp_alloc(pool, 200000);

    cr_assert(small && large);
    memset(small, 1, 64);
    memset(large, 1, 200000);
    cr_assert_eq(smp_pool_destroy(pool), 0);

    expect_fault(read_byte, small, "reading a block of a destroyed pool",
                 "fenced");
    expect_fault(write_byte, small, "writing a block of a destroyed pool",
                 "fenced");
    expect_fault(read_byte, large + 100000, "reading a destroyed large block",
                 "fenced");
    cr_assert_eq(smp_owns(small), 1, "the range stays reserved");
}

Test(memory, a_large_block_has_a_guard_page_behind_it)
{
    size_t size = 1 << 20;
    char *large = smp_alloc(NULL, size);
    child_result child;

    cr_assert_not_null(large);
    memset(large, 2, size);

    /* The last byte is fine; the first byte past the span faults. */
    run_in_child(read_byte, large + size - 1, &child);
    cr_assert_eq(child_exit_code(&child), 0);
    expect_fault(read_byte, large + size, "reading past a large block",
                 "default");
    smp_free(large);
}

/* A child made by fork may write pool memory without the parent seeing it. */
Test(memory, pool_memory_survives_in_the_parent_after_fork)
{
    char *block = smp_allocate(NULL, "parent data", 12);
    child_result child;

    run_in_child(write_byte, block, &child);
    cr_assert_eq(child_exit_code(&child), 0);
    cr_assert_str_eq(block, "parent data");
    smp_free(block);
}

typedef struct span {
    const unsigned char *p;
    size_t size;
} span;

/* Exits 1 if any byte of the span still holds data; may fault instead. */
static void scan_for_data(void *arg)
{
    const span *s = arg;

    if (!reads_as_zero(s->p, s->size))
        _exit(1);
}

/* Released memory is either still mapped and zero, or no longer readable. */
static void expect_no_data(const void *p, size_t size, const char *what)
{
    span s = { p, size };
    child_result child;

    run_in_child(scan_for_data, &s, &child);
    cr_assert(child_exit_code(&child) == 0 || child_signal(&child) == SIGSEGV,
              "%s: released bytes still hold data (status %#x)", what,
              child.status);
}

Test(memory, cleanup_all_leaves_no_data_behind)
{
    smp_pool *pool = smp_pool_create("cleaned-up");
    unsigned char *small[20];
    unsigned char *large = smp_alloc(pool, 300000);

    for (int i = 0; i < 20; i++) {
        small[i] = smp_alloc(pool, 200);
        memset(small[i], 0xEE, 200);
    }
    memset(large, 0xEE, 300000);
    smp_pool_cleanup_all(pool);

    for (int i = 0; i < 20; i++)
        expect_no_data(small[i], 200, "a small block after cleanup_all");
    expect_no_data(large, 300000, "a large block after cleanup_all");
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(memory, a_freed_large_block_leaves_no_data_behind)
{
    size_t sizes[] = { 9000, 65536, 1 << 20 };

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *large = smp_alloc(NULL, sizes[i]);

        cr_assert_not_null(large);
        memset(large, 0xD7, sizes[i]);
        smp_free(large);
        expect_no_data(large, sizes[i], "a freed large block");
    }
}

/*
 * Freed large spans are kept for reuse: wiped, and within a bound. Forty
 * 12 KiB blocks freed leave at most 1 MiB locked, and each block made
 * again from them is all zeroes.
 */
Test(memory, reused_large_spans_are_wiped_and_bounded)
{
    enum { N = 40, SIZE = 12 << 10 };
    smp_pool *pool = smp_pool_create("large-reuse");
    unsigned char *blocks[N];
    smp_stats st;

    for (int i = 0; i < N; i++) {
        blocks[i] = smp_alloc(pool, SIZE);
        cr_assert_not_null(blocks[i]);
        memset(blocks[i], 0xA5, SIZE);
    }
    for (int i = 0; i < N; i++)
        smp_free(blocks[i]);
    cr_assert_eq(smp_pool_stats(pool, &st), 0);
    cr_assert_leq(st.locked_bytes, (size_t)1 << 20, "locked %zu",
                  st.locked_bytes);

    for (int i = 0; i < N; i++) {
        blocks[i] = smp_alloc(pool, SIZE);
        cr_assert_not_null(blocks[i]);
        cr_assert(reads_as_zero(blocks[i], SIZE), "block %d", i);
    }
    for (int i = 0; i < N; i++)
        smp_free(blocks[i]);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

/*
 * Ownership checks keep the region's base in registers and on stacks; a
 * block there would look reachable to the leak scan from those copies.
 */
Test(memory, no_block_starts_at_the_region_base)
{
    smp_pool *pool = smp_pool_create("first");
    void *small = smp_alloc(pool, 24);
    void *large = smp_alloc(pool, 1 << 20);

    cr_assert(small && large);
    cr_assert_neq((uintptr_t)small, smpi_region_base);
    cr_assert_neq((uintptr_t)large, smpi_region_base);
    cr_assert(smp_owns(small) && smp_owns(large));
    smp_pool_destroy(pool);
}
