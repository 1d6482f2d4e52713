/*
 * Matching by address: caller:, fn: and lib: against functions of this
 * program, of a linked library and of a library opened with dlopen, plus
 * the warnings and the verbosity=1 lines that resolution prints.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "capture.h"
#include "helper.h"
#include "log.h"
#include "rules.h"

#define KEEP(x) __asm__ volatile("" : "+r"(x))

static size_t probe_size = 16;

/* Stands for the allocator: it asks the rules about its own caller. */
static __attribute__((noinline)) int probe(void)
{
    int r =
        smpi_rules_match(probe_size, (uintptr_t)__builtin_return_address(0));
    KEEP(r);
    return r;
}

__attribute__((noinline)) int direct_caller(void);
__attribute__((noinline)) int middle(void);
__attribute__((noinline)) int outer_fn(void);

int direct_caller(void)
{
    int r = probe();
    KEEP(r);
    return r;
}

static __attribute__((noinline)) int static_caller(void)
{
    int r = probe();
    KEEP(r);
    return r;
}

int middle(void)
{
    int r = probe();
    KEEP(r);
    return r;
}

int outer_fn(void)
{
    int r = middle();
    KEEP(r);
    return r;
}

static void load(const char *text)
{
    const char *log;

    cr_assert_eq(capture_load(text, &log), 0, "%s: %s", text, log);
}

Test(match, caller_is_the_direct_caller)
{
    load("keys=caller:direct_caller");
    cr_expect_eq(direct_caller(), 0);
    cr_expect_eq(static_caller(), -1);
    cr_expect_eq(outer_fn(), -1, "outer_fn is not middle's probe's caller");
    /* the second time the call site's decision comes from the cache */
    cr_expect_eq(direct_caller(), 0);
    cr_expect_eq(static_caller(), -1);
}

Test(match, caller_finds_static_functions)
{
    load("keys=caller:static_caller");
    cr_expect_eq(static_caller(), 0);
    cr_expect_eq(direct_caller(), -1);
}

Test(match, caller_glob)
{
    load("keys=caller:*_caller");
    cr_expect_eq(static_caller(), 0);
    cr_expect_eq(direct_caller(), 0);
    cr_expect_eq(middle(), -1);
}

Test(match, fn_is_anywhere_on_the_stack)
{
    load("keys=fn:outer_fn");
    cr_expect_eq(outer_fn(), 0);
    cr_expect_eq(middle(), -1);
    cr_expect_eq(direct_caller(), -1);
}

Test(match, fn_includes_the_caller_itself)
{
    load("keys=fn:middle");
    cr_expect_eq(middle(), 0);
    cr_expect_eq(outer_fn(), 0);
}

Test(match, fn_depth_counts_frames_from_the_caller)
{
    load("keys=fn:outer_fn");
    smpi_rules_depth = 1;
    cr_expect_eq(outer_fn(), -1, "only middle is within one frame");
    smpi_rules_depth = 2;
    cr_expect_eq(outer_fn(), 0);

    /* deeper than the walks a thread keeps: stepped, same answers */
    smpi_rules_depth = SMPI_RULES_DEPTH_MAX;
    cr_expect_eq(outer_fn(), 0);
    cr_expect_eq(middle(), -1, "outer_fn is not on this stack");
    smpi_rules_depth = SMPI_RULES_DEPTH_DEFAULT;
}

Test(match, kinds_combine_with_and)
{
    load("keys=fn:outer_fn,caller:middle");
    cr_expect_eq(outer_fn(), 0);
    cr_expect_eq(middle(), -1, "caller matches but outer_fn is not there");

    load("keys=fn:outer_fn,caller:direct_caller");
    cr_expect_eq(outer_fn(), -1, "fn matches but the caller is middle");
    cr_expect_eq(direct_caller(), -1);
}

Test(match, one_kind_combines_with_or)
{
    load("keys=caller:direct_caller,caller:middle");
    cr_expect_eq(direct_caller(), 0);
    cr_expect_eq(middle(), 0);
    cr_expect_eq(static_caller(), -1);
}

Test(match, size_combines_with_and)
{
    load("keys=caller:direct_caller,size:100-");
    probe_size = 16;
    cr_expect_eq(direct_caller(), -1);
    probe_size = 200;
    cr_expect_eq(direct_caller(), 0);
    cr_expect_eq(static_caller(), -1);
}

Test(match, first_rule_wins_across_kinds)
{
    load("a=caller:direct_caller;b=size:16;c=fn:outer_fn");
    probe_size = 16;
    cr_expect_eq(direct_caller(), 0);
    cr_expect_eq(static_caller(), 1);
    cr_expect_eq(outer_fn(), 1, "b comes before c");
    probe_size = 17;
    cr_expect_eq(outer_fn(), 2);
    cr_expect_eq(static_caller(), -1);
}

Test(match, a_star_takes_what_earlier_rules_leave)
{
    load("all=*;keys=caller:direct_caller");
    cr_expect_eq(direct_caller(), 0, "the first rule takes everything");
    cr_expect_eq(outer_fn(), 0);

    load("keys=caller:direct_caller;all=*");
    cr_expect_eq(direct_caller(), 0);
    cr_expect_eq(static_caller(), 1);

    load("small=*,size:-32;all=*");
    probe_size = 16;
    cr_expect_eq(static_caller(), 0);
    probe_size = 200;
    cr_expect_eq(static_caller(), 1, "a size limits a '*' rule too");
}

Test(match, lib_of_a_linked_library)
{
    load("keys=lib:librulestest.so");
    cr_expect_eq(helper_call(probe), 0);
    cr_expect_eq(direct_caller(), -1);

    load("keys=lib:test_match");
    cr_expect_eq(helper_call(probe), -1);
    cr_expect_eq(direct_caller(), 0);
}

Test(match, caller_and_fn_in_a_linked_library)
{
    load("keys=caller:helper_call");
    cr_expect_eq(helper_call(probe), 0);
    cr_expect_eq(direct_caller(), -1);

    load("keys=fn:helper_call,lib:librulestest*");
    cr_expect_eq(helper_call(probe), 0);
}

Test(match, warning_for_a_rule_that_matches_nothing)
{
    const char *log;

    cr_assert_eq(capture_load("keys=fn:no_such_function_anywhere,size:8", &log),
                 0);
    cr_expect_str_eq(log, "smp: SMP_POOL_SCOPE: rule "
                          "'keys=fn:no_such_function_anywhere,size:8': "
                          "fn:no_such_function_anywhere matches no function in "
                          "any loaded object (checked again after dlopen)\n");
    probe_size = 8;
    cr_expect_eq(direct_caller(), -1);

    cr_assert_eq(capture_load("t=lib:libnothing.so*", &log), 0);
    cr_expect(strstr(log, "lib:libnothing.so* matches no loaded object"), "%s",
              log);
}

Test(match, verbosity_tells_what_each_rule_resolved_to)
{
    const char *log;

    smpi_log_verbosity = 1;
    cr_assert_eq(capture_load("keys=fn:outer_fn,lib:librulestest.so;"
                              "x=caller:helper_*,size:1-",
                              &log),
                 0);
    cr_expect(strstr(log, "smp: SMP_POOL_SCOPE: rule 1 (pool 'keys'): "
                          "fn:outer_fn resolves to 1 function: "
                          "1 in test_match\n"),
              "%s", log);
    cr_expect(strstr(log, "smp: SMP_POOL_SCOPE: rule 1 (pool 'keys'): "
                          "lib:librulestest.so resolves to 1 object: "
                          "librulestest.so\n"),
              "%s", log);
    cr_expect(strstr(log, "smp: SMP_POOL_SCOPE: rule 2 (pool 'x'): "
                          "caller:helper_* resolves to 2 functions: "
                          "2 in librulestest.so\n"),
              "%s", log);
}

static int open_plugin(void **handle, plugin_call_fn *call)
{
    *handle = dlopen(RULES_PLUGIN, RTLD_NOW);
    cr_assert_not_null(*handle, "%s", dlerror());
    *call = (plugin_call_fn)(uintptr_t)dlsym(*handle, "plugin_call");
    cr_assert_not_null(*call);
    smpi_rules_refresh();
    return (*call)(probe);
}

Test(match, library_opened_later_closed_and_reopened)
{
    const char *log;
    void *handle;
    plugin_call_fn call;

    smpi_log_verbosity = 1;
    cr_assert_eq(capture_load("keys=caller:plugin_call", &log), 0);
    cr_expect(strstr(log, "caller:plugin_call matches no function"), "%s", log);

    capture_begin();
    cr_expect_eq(open_plugin(&handle, &call), 0);
    log = capture_end();
    cr_expect(strstr(log, "caller:plugin_call now resolves to 1 function: "
                          "1 in librulesplugin.so\n"),
              "%s", log);
    cr_expect_eq(direct_caller(), -1);

    capture_begin();
    cr_assert_eq(dlclose(handle), 0);
    smpi_rules_refresh();
    log = capture_end();
    cr_expect(strstr(log, "caller:plugin_call now resolves to 0 functions"),
              "%s", log);

    cr_expect_eq(open_plugin(&handle, &call), 0, "matches after reopening");
    cr_expect_eq(helper_call(probe), -1);
    dlclose(handle);
}

Test(match, lib_of_a_library_opened_later)
{
    void *handle;
    plugin_call_fn call;

    load("keys=lib:librulesplugin*");
    cr_expect_eq(open_plugin(&handle, &call), 0);
    cr_expect_eq(direct_caller(), -1);
    dlclose(handle);
}

Test(match, refresh_without_changes_keeps_results)
{
    load("keys=caller:direct_caller");
    for (int i = 0; i < 3; i++) {
        smpi_rules_refresh();
        cr_expect_eq(direct_caller(), 0);
        cr_expect_eq(static_caller(), -1);
    }
}

static atomic_int stop;
static atomic_int wrong;

static void *hammer(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        if (direct_caller() != 0 || static_caller() != -1 || outer_fn() != 1)
            atomic_fetch_add(&wrong, 1);
    }
    return NULL;
}

Test(match, threads_match_while_another_refreshes)
{
    pthread_t threads[3];
    void *handle;
    plugin_call_fn call;

    load("keys=caller:direct_caller;outer=fn:outer_fn;p=caller:plugin_call");
    for (int i = 0; i < 3; i++)
        pthread_create(&threads[i], NULL, hammer, NULL);

    for (int i = 0; i < 100; i++) {
        cr_expect_eq(open_plugin(&handle, &call), 2);
        cr_assert_eq(dlclose(handle), 0);
        smpi_rules_refresh();
    }

    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(threads[i], NULL);
    cr_expect_eq(atomic_load(&wrong), 0);
}
