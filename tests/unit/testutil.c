/*
 * Test helpers: children with captured stderr, and /proc parsing. These run
 * in test processes only, so they use stdio freely.
 */
#include "testutil.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void child_setup(int err_fd)
{
    struct rlimit no_core = { 0, 0 };

    /* A core file would only slow the test down and litter the tree. */
    setrlimit(RLIMIT_CORE, &no_core);
    /* SIGSEGV keeps its handler: the runtime's own explains pool faults. */
    signal(SIGABRT, SIG_DFL);

    dup2(err_fd, STDERR_FILENO);
    close(err_fd);
}

static void read_all(int fd, child_result *out)
{
    size_t room = sizeof out->err - 1;
    char sink[512];

    out->err_len = 0;
    for (;;) {
        char *dst = out->err_len < room ? out->err + out->err_len : sink;
        size_t want = out->err_len < room ? room - out->err_len : sizeof sink;
        ssize_t n = read(fd, dst, want);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (dst != sink)
            out->err_len += (size_t)n;
    }
    out->err[out->err_len] = '\0';
}

void run_in_child(void (*fn)(void *arg), void *arg, child_result *out)
{
    int fds[2];
    pid_t pid;

    memset(out, 0, sizeof *out);
    if (pipe(fds) != 0) {
        perror("pipe");
        abort();
    }
    fflush(NULL);

    pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0) {
        close(fds[0]);
        child_setup(fds[1]);
        fn(arg);
        _exit(0);
    }

    close(fds[1]);
    read_all(fds[0], out);
    close(fds[0]);
    while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR)
        ;
}

int child_signal(const child_result *r)
{
    return WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0;
}

int child_exit_code(const child_result *r)
{
    return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
}

int count_lines(const char *text)
{
    int lines = 0;

    for (const char *p = text; *p; p++)
        if (*p == '\n' || p[1] == '\0')
            lines++;
    return lines;
}

int count_lines_with(const char *text, const char *needle)
{
    int lines = 0;
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *hit = strstr(p, needle);

        if (hit && (size_t)(hit - p) + strlen(needle) <= len)
            lines++;
        p += len + (nl != NULL);
    }
    return lines;
}

int contains_nocase(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);

    for (const char *p = haystack; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return 1;
    return n == 0;
}

static void copy_flags(char *dst, size_t room, const char *src)
{
    size_t n;

    while (*src == ' ' || *src == '\t')
        src++;
    n = strcspn(src, "\n");
    if (n >= room)
        n = room - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int smaps_lookup(const void *addr, mapping_facts *out)
{
    unsigned long a = (unsigned long)addr;
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int inside = 0, found = -1;

    memset(out, 0, sizeof *out);
    if (!f)
        return -1;

    while (fgets(line, sizeof line, f)) {
        unsigned long start, end;
        char dash;

        /*
         * A mapping's header line starts "start-end" in lowercase hex;
         * field lines start with a capitalised name.
         */
        if (!isupper((unsigned char)line[0]) &&
            sscanf(line, "%lx%c%lx ", &start, &dash, &end) == 3 &&
            dash == '-') {
            if (inside)
                break;
            inside = a >= start && a < end;
            if (inside) {
                out->start = start;
                out->end = end;
                found = 0;
            }
            continue;
        }
        if (!inside)
            continue;
        if (strncmp(line, "Locked:", 7) == 0)
            out->locked_kb = strtoul(line + 7, NULL, 10);
        else if (strncmp(line, "Rss:", 4) == 0)
            out->rss_kb = strtoul(line + 4, NULL, 10);
        else if (strncmp(line, "VmFlags:", 8) == 0)
            copy_flags(out->vmflags, sizeof out->vmflags, line + 8);
    }
    fclose(f);
    return found;
}

int has_vmflag(const mapping_facts *m, const char *flag)
{
    char flags[sizeof m->vmflags];
    char *save = NULL;

    memcpy(flags, m->vmflags, sizeof flags);
    for (char *tok = strtok_r(flags, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save))
        if (strcmp(tok, flag) == 0)
            return 1;
    return 0;
}

long vmlck_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmLck:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}
