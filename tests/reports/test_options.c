/* SMP_OPTIONS parsing, linked against libsmp directly. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "smp/smp.h"

static void quiet(void)
{
    /* the one-line diagnostics go to stderr; keep the test log readable */
    cr_redirect_stderr();
}

TestSuite(options, .init = quiet);

Test(options, defaults)
{
    cr_assert_eq(smpi_options_parse(NULL), 0);
    cr_assert_eq(smpi_opt.detect_leaks, 1);
    cr_assert_eq(smpi_opt.exitcode, 23);
    cr_assert_eq(smpi_opt.malloc_context_size, 30);
    cr_assert_eq(smpi_opt.print_suppressions, 1);
    cr_assert_eq(smpi_opt.report_reachable, 0);
    cr_assert_eq(smpi_opt.print_stats, 0);
    cr_assert_eq(smpi_opt.max_leaks, 0);
    cr_assert_eq(smpi_opt.mlock, SMP_MLOCK_TRY);
    cr_assert_eq(smpi_opt.scope_exit, SMP_SCOPE_EXIT_WIPE);
    cr_assert_eq(smpi_opt.config_errors, SMPI_CONFIG_ERRORS_EXIT);
    cr_assert_str_empty(smpi_opt.json);
    cr_assert_eq(smpi_options_parse(""), 0);
    cr_assert_eq(smpi_opt.exitcode, 23);
    /* a relative JSON path is the directory the program started in */
    char want[PATH_MAX + 16];
    cr_assert_not_null(getcwd(want, PATH_MAX));
    strcat(want, "/report");
    cr_assert_eq(smpi_options_parse("json=report:exitcode=-0"), 0);
    cr_assert_str_eq(smpi_opt.json, want);
}

Test(options, every_value)
{
    cr_assert_eq(smpi_options_parse(
        "detect_leaks=no:exitcode=0:json=/tmp/y:print_suppressions=false:"
        "malloc_context_size=64:report_reachable=yes:print_stats=true:"
        "max_leaks=7:mlock=require:scope_exit=keep:verbosity=-1:"
        "config_errors=warn:help=1"), 0);
    cr_assert_eq(smpi_opt.detect_leaks, 0);
    cr_assert_eq(smpi_opt.exitcode, 0);
    cr_assert_str_eq(smpi_opt.json, "/tmp/y");
    cr_assert_eq(smpi_opt.print_suppressions, 0);
    cr_assert_eq(smpi_opt.malloc_context_size, 64);
    cr_assert_eq(smpi_opt.report_reachable, 1);
    cr_assert_eq(smpi_opt.print_stats, 1);
    cr_assert_eq(smpi_opt.max_leaks, 7);
    cr_assert_eq(smpi_opt.mlock, SMP_MLOCK_REQUIRE);
    cr_assert_eq(smp_get_mlock_policy(), SMP_MLOCK_REQUIRE);
    cr_assert_eq(smpi_opt.scope_exit, SMP_SCOPE_EXIT_KEEP);
    cr_assert_eq(smp_get_scope_exit_policy(), SMP_SCOPE_EXIT_KEEP);
    cr_assert_eq(smpi_opt.verbosity, -1);
    cr_assert_eq(smpi_log_verbosity, -1);
    cr_assert_eq(smpi_opt.config_errors, SMPI_CONFIG_ERRORS_WARN);
    cr_assert_eq(smpi_opt.help, 1);
    smpi_options_parse(NULL);
    cr_assert_eq(smp_get_mlock_policy(), SMP_MLOCK_TRY);
}

Test(options, bad_parts_dropped_good_parts_kept)
{
    cr_assert_eq(smpi_options_parse("exitcode=5:exitcode=256:nope=1:"
                                    "print_stats=2::max_leaks=3:x"), -1);
    cr_assert_eq(smpi_opt.exitcode, 5);
    cr_assert_eq(smpi_opt.print_stats, 0);
    cr_assert_eq(smpi_opt.max_leaks, 3);
}

Test(options, each_bad_value)
{
    static const char *const bad[] = {
        "exitcode=", "exitcode=-1", "exitcode=1x", "exitcode=99999999999",
        "detect_leaks=2", "malloc_context_size=65", "max_leaks=-2",
        "mlock=yes", "scope_exit=", "config_errors=stop", "verbosity=3",
        "log_path=", "json=", "=1", "help", "unknown=1",
        "suppressions=/no/such/file", "suppressions=/", "exitcode= 5",
        "exitcode=+5", "max_leaks=\t1", "json=/no/such/dir/report",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(smpi_options_parse(bad[i]), -1, "%s", bad[i]);
}

Test(options, log_path_gets_the_pid)
{
    char want[64], dir[] = "/tmp/smp-options-XXXXXX", opt[128];

    cr_assert_not_null(mkdtemp(dir));
    snprintf(opt, sizeof opt, "log_path=%s/log", dir);
    cr_assert_eq(smpi_options_parse(opt), 0);
    snprintf(want, sizeof want, "%s/log.%d", dir, getpid());
    cr_assert_eq(access(want, W_OK), 0);
    cr_assert_gt(smpi_log_fd, 2);
    smpi_options_parse("log_path=stderr");
    cr_assert_eq(smpi_log_fd, 2);
    unlink(want);
    rmdir(dir);
}

Test(options, help_lists_every_option)
{
    char buf[8192] = { 0 };
    FILE *f = tmpfile();
    int saved = smpi_log_fd;

    smpi_log_fd = fileno(f);
    smpi_options_print_help();
    smpi_log_fd = saved;
    rewind(f);
    fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    cr_assert(strstr(buf, "  exitcode=23 "));
    cr_assert(strstr(buf, "  malloc_context_size=30 "));
    cr_assert(strstr(buf, "  mlock=try "));
    cr_assert(strstr(buf, "  config_errors=exit "));
    cr_assert(strstr(buf, "  help=0 "));
}

Test(options, a_forked_child_logs_to_its_own_file)
{
    char dir[] = "/tmp/smp-options-XXXXXX", opt[128], want[128];
    int status;
    pid_t child;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(opt, sizeof opt, "log_path=%s/log", dir);
    cr_assert_eq(smpi_options_parse(opt), 0);
    child = fork();
    if (child == 0) {
        smpi_options_reopen_log();
        smpi_log(SMPI_LOG_ERROR, "from the child");
        _exit(0);
    }
    waitpid(child, &status, 0);
    snprintf(want, sizeof want, "%s/log.%d", dir, (int)child);
    FILE *f = fopen(want, "r");
    cr_assert_not_null(f, "%s", want);
    char line[128] = { 0 };
    fgets(line, sizeof line, f);
    fclose(f);
    cr_assert_str_eq(line, "smp: from the child\n");
    unlink(want);
    snprintf(want, sizeof want, "%s/log.%d", dir, getpid());
    unlink(want);
    smpi_options_parse(NULL);
    rmdir(dir);
}
