/*
 * Reading symbol tables: a program keeps its static functions in .symtab
 * until it is stripped; its exported ones stay in .dynsym either way.
 * Objects are read once and read again only when the loaded set changes.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helper.h"
#include "symbols.h"

typedef struct seen {
    int is_static;
    int exported;
    int main_fn;
    int bad_range;
} seen;

static void note(const char *name, uintptr_t start, uintptr_t end, void *ctx)
{
    seen *s = ctx;

    if (end <= start)
        s->bad_range++;
    s->is_static += !strcmp(name, "symtarget_static");
    s->exported += !strcmp(name, "symtarget_exported");
    s->main_fn += !strcmp(name, "main");
}

Test(symbols, unstripped_program_has_its_static_functions)
{
    seen s = { 0 };

    cr_assert_eq(smpi_symbols_foreach(SYMTARGET, 0, note, &s), 0);
    /* .symtab and .dynsym both list the exported one */
    cr_expect_geq(s.is_static, 1);
    cr_expect_geq(s.exported, 1);
    cr_expect_geq(s.main_fn, 1);
    cr_expect_eq(s.bad_range, 0);
}

Test(symbols, stripped_program_keeps_only_exported_functions)
{
    seen s = { 0 };

    cr_assert_eq(smpi_symbols_foreach(SYMTARGET ".stripped", 0, note, &s), 0);
    cr_expect_eq(s.is_static, 0);
    cr_expect_eq(s.exported, 1);
    cr_expect_eq(s.bad_range, 0);
}

Test(symbols, unreadable_files)
{
    seen s = { 0 };

    cr_expect_eq(smpi_symbols_foreach("/nonexistent/file", 0, note, &s), -1);
    cr_expect_eq(smpi_symbols_foreach("/proc/self/status", 0, note, &s), -1);
}

static const smpi_object *find(const char *name)
{
    for (const smpi_object *o = smpi_symbols_objects(); o; o = o->next)
        if (!strcmp(o->name, name))
            return o;
    return NULL;
}

static int count_hits(const smpi_object *o, unsigned glob)
{
    int n = 0;

    for (size_t i = 0; o && i < o->nhits; i++)
        n += o->hits[i].glob == glob;
    return n;
}

Test(symbols, objects_are_read_again_only_when_they_change)
{
    static const char *const globs[] = { "helper_*", "plugin_call" };

    cr_assert_eq(smpi_symbols_reset(globs, 2), 0);
    cr_assert_eq(smpi_symbols_update(), 1);
    cr_expect_eq(smpi_symbols_update(), 0, "nothing was loaded meanwhile");

    const smpi_object *main_object = smpi_symbols_objects();
    cr_assert_not_null(main_object);
    cr_expect_str_eq(main_object->name, "test_symbols");
    cr_expect(main_object->has_symtab);
    cr_expect_gt(main_object->ncode, 0);

    const smpi_object *helper = find("librulestest.so");
    cr_assert_not_null(helper);
    cr_expect_eq(count_hits(helper, 0), 2);
    cr_expect_eq(count_hits(helper, 1), 0);
    cr_expect_null(find("librulesplugin.so"));

    /* helper_call's range holds its own address */
    uintptr_t at = (uintptr_t)helper_call;
    int inside = 0;
    for (size_t i = 0; i < helper->nhits; i++)
        inside += helper->hits[i].start <= at && at < helper->hits[i].end;
    cr_expect_eq(inside, 1);

    void *handle = dlopen(RULES_PLUGIN, RTLD_NOW);
    cr_assert_not_null(handle, "%s", dlerror());
    cr_expect_eq(smpi_symbols_update(), 1);
    cr_expect_eq(count_hits(find("librulesplugin.so"), 1), 1);
    cr_expect_eq(find("librulestest.so"), helper, "kept, not read again");

    dlclose(handle);
    cr_expect_eq(smpi_symbols_update(), 1);
    cr_expect_null(find("librulesplugin.so"));
}
