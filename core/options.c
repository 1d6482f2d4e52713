/*
 * SMP_OPTIONS: "name=value" pairs separated by ':'. Parsing never
 * allocates (it runs before the allocator is ready) and never stops at the
 * first mistake: every bad pair gets its own line, the good ones still
 * apply, and the caller decides from config_errors whether to go on.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "smp/smp.h"
#include "rules.h"
#include "stack.h"

/* A macro: C allows only constant expressions in a static initialiser. */
#define DEFAULTS                                          \
    {                                                     \
        .detect_leaks = 1,                                \
        .exitcode = 23,                                   \
        .print_suppressions = 1,                          \
        .malloc_context_size = SMPI_STACK_DEPTH_DEFAULT,  \
        .fn_depth = SMPI_RULES_DEPTH_DEFAULT,             \
        .mlock = SMP_MLOCK_TRY,                           \
        .scope_exit = SMP_SCOPE_EXIT_WIPE,                \
        .config_errors = SMPI_CONFIG_ERRORS_EXIT,         \
    }

static const smpi_options defaults = DEFAULTS;

/* Initialised, so that a runtime that never parsed still has defaults. */
smpi_options smpi_opt = DEFAULTS;

enum kind { BOOL, INT, PATH, CHOICE };

typedef struct option {
    const char *name;
    enum kind kind;
    size_t offset;
    int min, max;             /* INT */
    const char *const *words; /* CHOICE: accepted words, NULL-ended */
    const char *def;          /* the default, as help prints it */
    const char *help;
} option;

static const char *const mlock_words[] = { "require", "try", "off", 0 };
static const char *const scope_words[] = { "wipe", "keep", 0 };
static const char *const errors_words[] = { "exit", "warn", 0 };

#define AT(field) offsetof(smpi_options, field)

static const option options[] = {
    { "detect_leaks", BOOL, AT(detect_leaks), 0, 1, 0, "1",
      "scan for leaked pool blocks at exit and report them" },
    { "exitcode", INT, AT(exitcode), 0, 255, 0, "23",
      "exit status when leaks are found (0: keep the program's own)" },
    { "log_path", PATH, AT(log_path), 0, 0, 0, "stderr",
      "write diagnostics and reports to PATH.PID (or stderr, stdout)" },
    { "json", PATH, AT(json), 0, 0, 0, "(none)",
      "also write the report as JSON to PATH.PID" },
    { "suppressions", PATH, AT(suppressions), 0, 0, 0, "(none)",
      "file of leak:PATTERN lines; matching leaks are not reported" },
    { "print_suppressions", BOOL, AT(print_suppressions), 0, 1, 0, "1",
      "list the suppressions that matched, with their counts" },
    { "malloc_context_size", INT, AT(malloc_context_size), 0,
      SMPI_STACK_DEPTH_MAX, 0, "30",
      "frames kept per allocation stack (0: capture no stacks)" },
    { "fn_depth", INT, AT(fn_depth), 1, SMPI_RULES_DEPTH_MAX, 0, "32",
      "frames an fn: rule of SMP_POOL_SCOPE looks at" },
    { "report_reachable", BOOL, AT(report_reachable), 0, 1, 0, "0",
      "also list blocks still reachable at exit" },
    { "print_stats", BOOL, AT(print_stats), 0, 1, 0, "0",
      "print a table of per-pool statistics at exit" },
    { "max_leaks", INT, AT(max_leaks), 0, 1000000000, 0, "0",
      "list at most this many leak stacks (0: all)" },
    { "mlock", CHOICE, AT(mlock), 0, 0, mlock_words, "try",
      "when the kernel refuses to lock pool memory: fail, go on, never lock" },
    { "scope_exit", CHOICE, AT(scope_exit), 0, 0, scope_words, "wipe",
      "blocks alive when their scope ends: wipe them, or keep them" },
    { "verbosity", INT, AT(verbosity), -1, 2, 0, "0",
      "-1 errors only, 0 warnings, 1 information, 2 debugging" },
    { "config_errors", CHOICE, AT(config_errors), 0, 0, errors_words,
      "exit", "on a bad SMP_OPTIONS or SMP_POOL_SCOPE: exit 1, or warn" },
    { "help", BOOL, AT(help), 0, 1, 0, "0",
      "print this list and exit" },
};

#define NOPTIONS (sizeof options / sizeof options[0])

/* One name=value pair, not NUL-terminated inside the whole text. */
typedef struct pair {
    const char *name, *value;
    size_t name_len, value_len;
    size_t pos; /* 1-based column of the name in SMP_OPTIONS */
} pair;

static void accepted(const option *o, char *buf, size_t size)
{
    size_t n = 0;

    switch (o->kind) {
    case BOOL:
        snprintf(buf, size, "0, 1, no, yes, false or true");
        return;
    case INT:
        snprintf(buf, size, "an integer from %d to %d", o->min, o->max);
        return;
    case PATH:
        snprintf(buf, size, "a path of 1 to %d bytes", PATH_MAX - 24);
        return;
    case CHOICE:
        break;
    }
    buf[0] = 0;
    for (const char *const *w = o->words; *w && n + 1 < size; w++) {
        n += (size_t)snprintf(buf + n, size - n, "%s%s",
                              w == o->words ? "" : w[1] ? ", " : " or ",
                              *w);
    }
}

static int bad_value(const option *o, const pair *p)
{
    char what[160];

    accepted(o, what, sizeof what);
    smpi_log(SMPI_LOG_ERROR,
             "SMP_OPTIONS: bad value '%.*s' for option '%s' at column "
             "%zu: expected %s",
             (int)p->value_len, p->value, o->name, p->pos, what);
    return -1;
}

static int same(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

static int parse_int(const char *s, size_t len, long *out)
{
    char buf[24];
    char *end;

    if (len == 0 || len >= sizeof buf)
        return -1;
    /* strtol would take blanks and a '+' in front, not after: take neither */
    if (!(s[0] >= '0' && s[0] <= '9') && !(s[0] == '-' && len > 1))
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    errno = 0;
    *out = strtol(buf, &end, 10);
    return errno || *end ? -1 : 0;
}

static int parse_bool(const char *s, size_t len, int *out)
{
    if (same(s, len, "1") || same(s, len, "yes") || same(s, len, "true"))
        return *out = 1, 0;
    if (same(s, len, "0") || same(s, len, "no") || same(s, len, "false"))
        return *out = 0, 0;
    return -1;
}

static int set(const option *o, const pair *p)
{
    char *field = (char *)&smpi_opt + o->offset;
    long n;
    int b;

    switch (o->kind) {
    case BOOL:
        if (parse_bool(p->value, p->value_len, &b))
            return bad_value(o, p);
        *(int *)field = b;
        return 0;
    case INT:
        if (parse_int(p->value, p->value_len, &n) || n < o->min ||
            n > o->max)
            return bad_value(o, p);
        *(int *)field = (int)n;
        return 0;
    case PATH:
        /* room for ".PID" after the path */
        if (p->value_len == 0 || p->value_len > PATH_MAX - 24)
            return bad_value(o, p);
        memcpy(field, p->value, p->value_len);
        field[p->value_len] = 0;
        return 0;
    case CHOICE:
        for (int i = 0; o->words[i]; i++) {
            if (same(p->value, p->value_len, o->words[i])) {
                *(int *)field = i;
                return 0;
            }
        }
        return bad_value(o, p);
    }
    return -1;
}

static int unknown(const pair *p)
{
    char names[400];
    size_t n = 0;

    for (size_t i = 0; i < NOPTIONS && n + 1 < sizeof names; i++)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s",
                              i ? ", " : "", options[i].name);
    smpi_log(SMPI_LOG_ERROR,
             "SMP_OPTIONS: unknown option '%.*s' at column %zu; "
             "known options: %s (help=1 explains them)",
             (int)p->name_len, p->name, p->pos, names);
    return -1;
}

static int parse_pair(const pair *p)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (same(p->name, p->name_len, options[i].name))
            return set(&options[i], p);
    }
    return unknown(p);
}

/* Splits "name=value"; a missing '=' is its own mistake. */
static int split(const char *item, size_t len, size_t pos)
{
    const char *eq = memchr(item, '=', len);
    pair p = { item, 0, len, 0, pos };

    if (!eq || eq == item) {
        smpi_log(SMPI_LOG_ERROR,
                 "SMP_OPTIONS: '%.*s' at column %zu is not name=value "
                 "(pairs are separated by ':', e.g. exitcode=1:print_stats=1)",
                 (int)len, item, pos);
        return -1;
    }
    p.name_len = (size_t)(eq - item);
    p.value = eq + 1;
    p.value_len = len - p.name_len - 1;
    return parse_pair(&p);
}

/* log_path: reports go to PATH.PID, so that every process keeps its own. */
static void use_fd(int fd)
{
    if (smpi_log_fd > 2 && smpi_log_fd != fd)
        close(smpi_log_fd);
    smpi_log_fd = fd;
}

static int open_log(void)
{
    char path[PATH_MAX + 16];
    int fd;

    if (!smpi_opt.log_path[0] || !strcmp(smpi_opt.log_path, "stderr")) {
        use_fd(2);
        return 0;
    }
    if (!strcmp(smpi_opt.log_path, "stdout")) {
        use_fd(1);
        return 0;
    }
    snprintf(path, sizeof path, "%s.%d", smpi_opt.log_path, (int)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        smpi_log(SMPI_LOG_ERROR,
                 "SMP_OPTIONS: log_path: cannot open '%s' (%m): expected "
                 "a path in a writable directory, or stderr or stdout",
                 path);
        smpi_opt.log_path[0] = 0;
        use_fd(2);
        return -1;
    }
    use_fd(fd);
    return 0;
}

void smpi_options_reopen_log(void)
{
    if (smpi_opt.log_path[0])
        open_log();
}

/*
 * json and suppressions are used at exit, when the program may have
 * changed its directory (git goes to the top of its work tree): a
 * relative path means the directory the program started in.
 */
static int make_absolute(const char *name, char *path)
{
    char cwd[PATH_MAX];
    size_t len = strlen(path), at;

    if (path[0] == '/')
        return 0;
    if (!getcwd(cwd, sizeof cwd))
        goto fail;
    at = strlen(cwd) + 1;
    if (at + len >= PATH_MAX) {
        errno = ENAMETOOLONG;
        goto fail;
    }
    memmove(path + at, path, len + 1);
    memcpy(path, cwd, at - 1);
    path[at - 1] = '/';
    return 0;

fail:
    smpi_log(SMPI_LOG_ERROR, "SMP_OPTIONS: %s: cannot make '%s' absolute "
             "(%m): expected a path from a directory that can be named",
             name, path);
    path[0] = 0;
    return -1;
}

/*
 * The JSON report is written at exit: a directory that is not there would
 * lose it after the whole run, so say so before the program starts.
 */
static int check_json(void)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(smpi_opt.json, '/');

    if (!smpi_opt.json[0])
        return 0;
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == smpi_opt.json)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - smpi_opt.json),
                 smpi_opt.json);
    if (access(dir, W_OK | X_OK) == 0)
        return make_absolute("json", smpi_opt.json);
    smpi_log(SMPI_LOG_ERROR, "SMP_OPTIONS: json: cannot write into '%s' "
             "(%m): expected a path in a writable directory", dir);
    smpi_opt.json[0] = 0;
    return -1;
}

/* A report that silently ignores its suppressions would mislead. */
static int check_suppressions(void)
{
    struct stat st;

    if (!smpi_opt.suppressions[0])
        return 0;
    if (access(smpi_opt.suppressions, R_OK) == 0) {
        /* a directory passes access() but reads as nothing */
        if (stat(smpi_opt.suppressions, &st) != 0 || !S_ISDIR(st.st_mode))
            return make_absolute("suppressions", smpi_opt.suppressions);
        errno = EISDIR;
    }
    smpi_log(SMPI_LOG_ERROR, "SMP_OPTIONS: suppressions: cannot read "
             "'%s' (%m): expected a readable file of leak:PATTERN lines",
             smpi_opt.suppressions);
    smpi_opt.suppressions[0] = 0;
    return -1;
}

static void apply(void)
{
    smpi_log_verbosity = smpi_opt.verbosity;
    smpi_rules_depth = smpi_opt.fn_depth;
    smp_set_mlock_policy((smp_mlock_policy)smpi_opt.mlock);
    smp_set_scope_exit_policy((smp_scope_exit_policy)smpi_opt.scope_exit);
}

int smpi_options_parse(const char *text)
{
    int status = 0;
    size_t pos = 0;

    smpi_opt = defaults;
    while (text && text[pos]) {
        size_t len = strcspn(text + pos, ":");

        /* empty items ("a=1::b=2", a trailing ':') are harmless */
        if (len && split(text + pos, len, pos + 1))
            status = -1;
        pos += len;
        if (text[pos] == ':')
            pos++;
    }
    if (open_log())
        status = -1;
    if (check_json())
        status = -1;
    if (check_suppressions())
        status = -1;
    apply();
    return status;
}

void smpi_options_print_help(void)
{
    char line[512];
    char what[160];
    int n;

    n = snprintf(line, sizeof line,
                 "smp: SMP_OPTIONS=name=value[:name=value...]; options "
                 "with their defaults:\n");
    smpi_log_write(line, (unsigned long)n);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option *o = &options[i];

        accepted(o, what, sizeof what);
        n = snprintf(line, sizeof line, "  %s=%-*s %s\n  %28s(%s)\n",
                     o->name, 26 - (int)strlen(o->name), o->def, o->help,
                     "", what);
        if (n >= (int)sizeof line)
            n = (int)sizeof line - 1;
        smpi_log_write(line, (unsigned long)n);
    }
}

int smpi_options_startup(const char *text)
{
    int status = smpi_options_parse(text);

    if (smpi_opt.help) {
        smpi_options_print_help();
        _exit(0);
    }
    if (status && smpi_opt.config_errors == SMPI_CONFIG_ERRORS_EXIT) {
        smpi_log(SMPI_LOG_ERROR, "SMP_OPTIONS is not valid; not starting "
                 "(config_errors=warn runs without the bad parts)");
        _exit(1);
    }
    return status;
}
