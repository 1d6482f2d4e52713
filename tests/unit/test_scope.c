/*
 * The scope stack: which pool is current, borrowing versus owning, the
 * SMP_SCOPE form however its body is left, and what leaving does.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "pool.h"
#include "smp/smp.h"
#include "testutil.h"

static const char *current_name(void)
{
    return smp_pool_name(smp_current_pool());
}

static smp_stats stats_of(const smp_pool *pool)
{
    smp_stats st;

    cr_assert_eq(smp_pool_stats(pool, &st), 0);
    return st;
}

Test(scope, default_pool_when_none_is_open)
{
    smp_pool *pool = smp_current_pool();

    cr_assert_not_null(pool);
    cr_assert_str_eq(smp_pool_name(pool), "default");
    cr_assert_str_eq(stats_of(pool).pool_name, "default");
    cr_assert_eq(smp_scope_depth(), 0);
    cr_assert_eq(smp_current_pool(), pool, "the default pool is made once");
}

Test(scope, named_scope_is_current_inside_and_default_after)
{
    smp_pool *def = smp_current_pool();
    smp_pool *inner = smp_scope_enter_new("user-session");
    void *block;

    cr_assert_not_null(inner);
    cr_assert_neq(inner, def);
    cr_assert_eq(smp_current_pool(), inner);
    cr_assert_str_eq(current_name(), "user-session");
    cr_assert_eq(smp_scope_depth(), 1);

    /* A NULL pool means the current one. */
    block = smp_alloc(NULL, 32);
    cr_assert_not_null(block);
    cr_assert_eq(stats_of(inner).live_blocks, 1);
    cr_assert_eq(stats_of(def).live_blocks, 0);
    smp_free(block);

    cr_assert_eq(smp_scope_exit(), 0);
    cr_assert_eq(smp_current_pool(), def);
    cr_assert_str_eq(current_name(), "default");
    cr_assert_eq(smp_scope_depth(), 0);
}

Test(scope, macro_scope_is_current_inside_and_default_after)
{
    smp_pool *def = smp_current_pool();
    int ran = 0;

    SMP_SCOPE("macro-session") {
        cr_assert_str_eq(current_name(), "macro-session");
        cr_assert_neq(smp_current_pool(), def);
        cr_assert_eq(smp_scope_depth(), 1);
        ran++;
    }
    cr_assert_eq(ran, 1, "the body runs exactly once");
    cr_assert_eq(smp_current_pool(), def);
    cr_assert_str_eq(current_name(), "default");
    cr_assert_eq(smp_scope_depth(), 0);
}

Test(scope, macro_scope_left_by_break_and_continue)
{
    smp_pool *def = smp_current_pool();
    volatile int after_break = 0, after_continue = 0;

    SMP_SCOPE("left-by-break") {
        cr_assert_eq(smp_scope_depth(), 1);
        if (smp_scope_depth() == 1)
            break;
        after_break = 1;
    }
    cr_assert_eq(after_break, 0);
    cr_assert_eq(smp_scope_depth(), 0);
    cr_assert_eq(smp_current_pool(), def);

    SMP_SCOPE("left-by-continue") {
        if (smp_scope_depth() == 1)
            continue;
        after_continue = 1;
    }
    cr_assert_eq(after_continue, 0);
    cr_assert_eq(smp_scope_depth(), 0);
    cr_assert_eq(smp_current_pool(), def);
}

/* Breaking out of a loop around the scope leaves the scope too. */
Test(scope, macro_scope_in_a_loop)
{
    for (int i = 0; i < 50; i++) {
        SMP_SCOPE("loop") {
            cr_assert_eq(smp_scope_depth(), 1);
            smp_free(smp_alloc(NULL, 24));
        }
        cr_assert_eq(smp_scope_depth(), 0);
    }
    cr_assert_str_eq(current_name(), "default");
}

/* The name is copied: the pool is gone once the scope is left. */
static int leave_by_return(int *depth_inside, char *name_inside)
{
    SMP_SCOPE("left-by-return") {
        *depth_inside = smp_scope_depth();
        snprintf(name_inside, SMP_NAME_MAX, "%s", current_name());
        return 7;
    }
    return -1;
}

static int leave_by_goto(void)
{
    SMP_SCOPE("left-by-goto") {
        if (smp_scope_depth() == 1)
            goto out;
    }
    return -1;
out:
    return smp_scope_depth();
}

Test(scope, macro_scope_left_by_return_and_goto)
{
    smp_pool *def = smp_current_pool();
    char name[SMP_NAME_MAX] = "";
    int depth = 0;

    cr_assert_eq(leave_by_return(&depth, name), 7);
    cr_assert_eq(depth, 1);
    cr_assert_str_eq(name, "left-by-return");
    cr_assert_eq(smp_scope_depth(), 0);
    cr_assert_eq(smp_current_pool(), def);

    cr_assert_eq(leave_by_goto(), 0, "the scope is closed at the label");
    cr_assert_eq(smp_current_pool(), def);
}

Test(scope, nested_scopes_unwind_in_order)
{
    smp_pool *def = smp_current_pool();
    smp_pool *shared = smp_pool_create("shared-keys");
    smp_pool *outer, *inner;

    cr_assert_not_null(shared);
    outer = smp_scope_enter_new("outer");
    cr_assert_not_null(outer);
    cr_assert_eq(smp_scope_enter(shared), 0);
    cr_assert_eq(smp_current_pool(), shared);
    inner = smp_scope_enter_new("inner");
    cr_assert_not_null(inner);
    cr_assert_eq(smp_scope_depth(), 3);
    cr_assert_str_eq(current_name(), "inner");

    cr_assert_eq(smp_scope_exit(), 0);
    cr_assert_eq(smp_current_pool(), shared);
    cr_assert_eq(smp_scope_exit(), 0);
    cr_assert_eq(smp_current_pool(), outer);
    cr_assert_str_eq(current_name(), "outer");
    cr_assert_eq(smp_scope_exit(), 0);
    cr_assert_eq(smp_current_pool(), def);
    cr_assert_eq(smp_scope_depth(), 0);

    cr_assert_eq(smp_pool_destroy(shared), 0);
}

Test(scope, borrowing_leaves_the_pool_intact)
{
    smp_pool *pool = smp_pool_create("borrowed");
    char *before, *inside;
    smp_stats st;

    cr_assert_not_null(pool);
    before = smp_alloc(pool, 48);
    cr_assert_not_null(before);
    memset(before, 'b', 48);

    cr_assert_eq(smp_scope_enter(pool), 0);
    cr_assert_eq(smp_current_pool(), pool);
    inside = smp_allocate(NULL, "borrowed secret", 16);
    cr_assert_not_null(inside);
    cr_assert_eq(smp_scope_exit(), 0);

    /* Both blocks are still live and readable after the scope. */
    st = stats_of(pool);
    cr_assert_eq(st.live_blocks, 2);
    cr_assert_eq(st.escaped_blocks, 0);
    cr_assert_eq(st.scope_entries, 1);
    cr_assert_eq(st.scope_exits, 1);
    cr_assert_str_eq(inside, "borrowed secret");
    for (int i = 0; i < 48; i++)
        cr_assert_eq(before[i], 'b');

    smp_free(before);
    smp_free(inside);
    cr_assert_eq(stats_of(pool).live_blocks, 0);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(scope, entries_and_exits_are_counted_per_pool)
{
    smp_pool *pool = smp_pool_create("counted");
    smp_stats st;

    cr_assert_eq(smp_scope_enter(pool), 0);
    cr_assert_eq(smp_scope_enter(pool), 0);
    st = stats_of(pool);
    cr_assert_eq(st.scope_entries, 2);
    cr_assert_eq(st.scope_exits, 0);

    cr_assert_eq(smp_scope_exit(), 0);
    cr_assert_eq(stats_of(pool).scope_exits, 1);
    cr_assert_eq(smp_scope_exit(), 0);
    st = stats_of(pool);
    cr_assert_eq(st.scope_entries, 2);
    cr_assert_eq(st.scope_exits, 2);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(scope, an_owned_scope_pool_counts_its_entry)
{
    SMP_SCOPE("owned-counts") {
        smp_stats st = stats_of(smp_current_pool());

        cr_assert_str_eq(st.pool_name, "owned-counts");
        cr_assert_eq(st.scope_entries, 1);
        cr_assert_eq(st.scope_exits, 0);
    }
}

typedef struct escape_search {
    uintptr_t addr;
    const char *pool;
    size_t size;
    int seen;
} escape_search;

static void find_escape(const smpi_escape *e, void *ctx)
{
    escape_search *s = ctx;

    if (e->block.addr == s->addr && strcmp(e->pool_name, s->pool) == 0 &&
        e->block.size == s->size)
        s->seen++;
}

static void read_byte(void *p)
{
    volatile unsigned char *byte = p;

    (void)*byte;
}

Test(scope, leaving_an_owning_scope_destroys_its_pool)
{
    escape_search search = { 0, "owning", 40, 0 };
    child_result child;
    char *freed, *escaped;

    cr_assert_not_null(smp_scope_enter_new("owning"));
    freed = smp_alloc(NULL, 40);
    escaped = smp_alloc(NULL, 40);
    cr_assert(freed && escaped);
    memset(escaped, 's', 40);
    smp_free(freed);
    cr_assert_eq(smp_scope_exit(), 0);

    /* The block still live at the end is remembered as escaped... */
    search.addr = (uintptr_t)escaped;
    smpi_foreach_escape(find_escape, &search);
    cr_assert_eq(search.seen, 1, "the escaped block is recorded once");
    search.addr = (uintptr_t)freed;
    search.seen = 0;
    smpi_foreach_escape(find_escape, &search);
    cr_assert_eq(search.seen, 0, "a freed block did not escape");

    /* ...and its memory is fenced: touching it faults. */
    run_in_child(read_byte, escaped, &child);
    cr_assert_eq(child_signal(&child), SIGSEGV,
                 "reading an escaped block: status %#x", child.status);
    cr_assert(strstr(child.err, "smp: ") == child.err &&
                  strstr(child.err, "'owning'"),
              "the fault is explained with the scope's pool: '%s'", child.err);
    cr_assert_str_eq(current_name(), "default");
}

Test(scope, exit_without_an_open_scope_fails)
{
    errno = 0;
    cr_assert_eq(smp_scope_exit(), -1);
    cr_assert_eq(errno, EPERM);

    cr_assert_not_null(smp_scope_enter_new("once"));
    cr_assert_eq(smp_scope_exit(), 0);
    errno = 0;
    cr_assert_eq(smp_scope_exit(), -1);
    cr_assert_eq(errno, EPERM);
    cr_assert_eq(smp_scope_depth(), 0);
}

Test(scope, nesting_stops_at_the_maximum_depth)
{
    smp_pool *pool = smp_pool_create("deep");

    for (int i = 0; i < SMP_SCOPE_DEPTH_MAX; i++)
        cr_assert_eq(smp_scope_enter(pool), 0, "depth %d", i);
    cr_assert_eq(smp_scope_depth(), SMP_SCOPE_DEPTH_MAX);
    cr_assert_eq(smp_scope_enter(pool), -1);
    cr_assert_null(smp_scope_enter_new("too-deep"));
    cr_assert_eq(smp_scope_depth(), SMP_SCOPE_DEPTH_MAX);
    cr_assert_eq(smp_current_pool(), pool);

    for (int i = 0; i < SMP_SCOPE_DEPTH_MAX; i++)
        cr_assert_eq(smp_scope_exit(), 0);
    cr_assert_eq(smp_scope_depth(), 0);
    cr_assert_eq(smp_pool_destroy(pool), 0);
}

Test(scope, a_pool_in_use_or_the_default_cannot_be_destroyed)
{
    smp_pool *pool = smp_pool_create("in-use");

    cr_assert_eq(smp_scope_enter(pool), 0);
    errno = 0;
    cr_assert_eq(smp_pool_destroy(pool), -1);
    cr_assert_eq(errno, EBUSY);
    cr_assert_eq(smp_scope_exit(), 0);
    cr_assert_eq(smp_pool_destroy(pool), 0);

    errno = 0;
    cr_assert_eq(smp_pool_destroy(smp_current_pool()), -1);
    cr_assert_eq(errno, EBUSY);
    cr_assert_str_eq(current_name(), "default");
}

Test(scope, keep_policy_moves_escaped_blocks_to_the_enclosing_pool)
{
    smp_pool *outer = smp_pool_create("outer-keep");
    char *kept;

    cr_assert_eq(smp_get_scope_exit_policy(), SMP_SCOPE_EXIT_WIPE,
                 "wiping is the default");
    smp_set_scope_exit_policy(SMP_SCOPE_EXIT_KEEP);
    cr_assert_eq(smp_get_scope_exit_policy(), SMP_SCOPE_EXIT_KEEP);

    cr_assert_eq(smp_scope_enter(outer), 0);
    cr_assert_not_null(smp_scope_enter_new("inner-keep"));
    kept = smp_allocate(NULL, "kept across the scope", 22);
    cr_assert_not_null(kept);
    cr_assert_eq(smp_scope_exit(), 0);

    cr_assert_str_eq(kept, "kept across the scope");
    cr_assert_eq(stats_of(outer).live_blocks, 1);
    cr_assert_eq(stats_of(outer).live_bytes, 22);
    smp_free(kept);
    cr_assert_eq(stats_of(outer).live_blocks, 0);

    cr_assert_eq(smp_scope_exit(), 0);
    cr_assert_eq(smp_pool_destroy(outer), 0);
}

Test(scope, keep_policy_without_enclosing_scope_keeps_in_default)
{
    smp_pool *def = smp_current_pool();
    char *kept = NULL;

    smp_set_scope_exit_policy(SMP_SCOPE_EXIT_KEEP);
    SMP_SCOPE("kept-to-default") {
        kept = smp_allocate(NULL, "to default", 11);
    }
    cr_assert_not_null(kept);
    cr_assert_str_eq(kept, "to default");
    cr_assert_eq(stats_of(def).live_blocks, 1);
    smp_free(kept);
    cr_assert_eq(stats_of(def).live_blocks, 0);
}

typedef struct other_view {
    smp_pool *pool;
    char name[SMP_NAME_MAX];
    int depth;
} other_view;

static void *look_from_other_thread(void *arg)
{
    other_view *v = arg;

    v->pool = smp_current_pool();
    snprintf(v->name, sizeof v->name, "%s", smp_pool_name(v->pool));
    v->depth = smp_scope_depth();
    return NULL;
}

Test(scope, scopes_belong_to_their_thread)
{
    other_view view = { 0 };
    pthread_t thread;

    SMP_SCOPE("main-only") {
        cr_assert_eq(
            pthread_create(&thread, NULL, look_from_other_thread, &view), 0);
        pthread_join(thread, NULL);
        cr_assert_neq(view.pool, smp_current_pool());
    }
    cr_assert_eq(view.depth, 0);
    cr_assert_str_eq(view.name, "default");
}

typedef struct retired_search {
    const char *name;
    smp_stats stats;
    int seen;
} retired_search;

/* Pools that are gone show in the reports' view under their name. */
static void find_retired(const smpi_pool_info *info, void *ctx)
{
    retired_search *s = ctx;

    if (!info->pool && strcmp(info->stats.pool_name, s->name) == 0) {
        s->stats = info->stats;
        s->seen++;
    }
}

Test(scope, escaped_blocks_are_counted_in_the_pool_statistics)
{
    retired_search search = { .name = "escaping" };
    void *kept[3];

    SMP_SCOPE("escaping") {
        for (int i = 0; i < 3; i++)
            kept[i] = smp_alloc(NULL, 100);
        smp_free(kept[1]);
    }

    smpi_foreach_pool(find_retired, &search);
    cr_assert_eq(search.seen, 1, "the ended scope's pool is reported once");
    cr_assert_eq(search.stats.escaped_blocks, 2);
    cr_assert_eq(search.stats.allocations, 3);
    cr_assert_eq(search.stats.scope_entries, 1);
    cr_assert_eq(search.stats.scope_exits, 1);
}
