/*
 * Deliberate misuse, each in a child process: smp_free given a block twice,
 * or a pointer that is not a live pool block, prints one line on stderr
 * (what, where, which pool) and aborts. The pointers are made in the test
 * process before the fork, so the child sees the same addresses.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smp/smp.h"
#include "testutil.h"

static void free_given(void *p)
{
    smp_free(p);
}

static void free_given_twice(void *p)
{
    smp_free(p);
    smp_free(p);
}

/* Runs the misuse in a child: it must abort after one "smp: " line. */
static void expect_abort(void (*misuse)(void *), void *p, const char *what,
                         child_result *child)
{
    char hex[32];

    run_in_child(misuse, p, child);
    cr_assert_eq(child_signal(child), SIGABRT, "%s: status %#x, stderr '%s'",
                 what, child->status, child->err);
    cr_assert_eq(count_lines(child->err), 1, "%s: want one line, got '%s'",
                 what, child->err);
    cr_assert_eq(strncmp(child->err, "smp: ", 5), 0,
                 "%s: the line starts with 'smp: ', got '%s'", what,
                 child->err);
    cr_assert_eq(child->err[child->err_len - 1], '\n',
                 "%s: the line is complete", what);

    /* The line says where: the address, as %p prints it. */
    snprintf(hex, sizeof hex, "%p", p);
    cr_assert(contains_nocase(child->err, hex), "%s: '%s' does not name %s",
              what, child->err, hex);
}

Test(misuse, double_free_aborts_with_one_line)
{
    smp_pool *pool = smp_pool_create("misuse-pool");
    char *keep = smp_alloc(pool, 32);
    char *block = smp_alloc(pool, 32);
    child_result child;

    cr_assert(keep && block);
    expect_abort(free_given_twice, block, "double free", &child);
    cr_assert(contains_nocase(child.err, "double"),
              "the line says it is a double free: '%s'", child.err);
    cr_assert(contains_nocase(child.err, "misuse-pool"),
              "the line names the pool: '%s'", child.err);
}

Test(misuse, a_block_freed_before_the_fork_aborts_when_freed_again)
{
    smp_pool *pool = smp_pool_create("freed-pool");
    char *keep = smp_alloc(pool, 64);
    char *gone = smp_alloc(pool, 64);
    child_result child;

    cr_assert(keep && gone);
    smp_free(gone);
    expect_abort(free_given, gone, "freed block", &child);
    cr_assert(contains_nocase(child.err, "double"),
              "the line says it is a double free: '%s'", child.err);
    smp_free(keep);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(misuse, a_stack_pointer_aborts_with_one_line)
{
    char local[32] = "not a pool block";
    child_result child;

    expect_abort(free_given, local, "stack pointer", &child);
    cr_assert_str_eq(local, "not a pool block");
}

Test(misuse, a_malloc_pointer_aborts_with_one_line)
{
    void *from_libc = malloc(48);
    child_result child;

    cr_assert_not_null(from_libc);
    expect_abort(free_given, from_libc, "malloc pointer", &child);
    free(from_libc);
}

Test(misuse, a_pointer_into_a_block_aborts_with_one_line)
{
    smp_pool *pool = smp_pool_create("interior-pool");
    char *block = smp_alloc(pool, 64);
    child_result child;
    smp_stats st;

    cr_assert_not_null(block);
    expect_abort(free_given, block + 16, "interior pointer", &child);
    cr_assert(contains_nocase(child.err, "interior-pool"),
              "the line names the pool: '%s'", child.err);

    /* The block itself is still live and can be freed properly. */
    cr_assert_eq(smp_pool_stats(pool, &st), 0);
    cr_assert_eq(st.live_blocks, 1);
    smp_free(block);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}
