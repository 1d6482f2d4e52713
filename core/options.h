/*
 * SMP_OPTIONS: name=value pairs separated by ':'. Names follow
 * LeakSanitizer's where one fits.
 */
#ifndef SMP_OPTIONS_H
#define SMP_OPTIONS_H

#include <limits.h>

enum smpi_config_errors {
    SMPI_CONFIG_ERRORS_EXIT, /* default: print one line, exit status 1 */
    SMPI_CONFIG_ERRORS_WARN  /* print one line, drop the bad part, run */
};

typedef struct smpi_options {
    int detect_leaks;
    int exitcode;
    char log_path[PATH_MAX];
    char json[PATH_MAX];
    char suppressions[PATH_MAX];
    int print_suppressions;
    int malloc_context_size;
    int fn_depth;     /* frames an fn: rule looks at */
    int report_reachable;
    int print_stats;
    int max_leaks;
    int mlock;        /* an smp_mlock_policy */
    int scope_exit;   /* an smp_scope_exit_policy */
    int verbosity;
    int config_errors;
    int help;
} smpi_options;

extern smpi_options smpi_opt;

/*
 * Parses text (NULL or empty: defaults) into smpi_opt. On a bad name or
 * value prints one line naming SMP_OPTIONS, the option, the value and what
 * is accepted, and returns -1; the caller applies config_errors.
 */
int smpi_options_parse(const char *text);

/*
 * In a child made by fork: log_path output goes to PATH.<child pid> from
 * now on, so that parent and child keep separate reports.
 */
void smpi_options_reopen_log(void);

/* Prints every option with its default and meaning (help=1). */
void smpi_options_print_help(void);

/*
 * Start-up in one call: parses text, then with help=1 prints the list and
 * ends the process with status 0, and on a mistake with
 * config_errors=exit ends it with status 1. Returns what parse returned.
 */
int smpi_options_startup(const char *text);

#endif
