/*
 * Helpers shared by the unit tests: running a step in a child process and
 * reading how it ended, and reading what the kernel says about a mapping.
 */
#ifndef SMP_TESTUTIL_H
#define SMP_TESTUTIL_H

#include <stddef.h>

/* How a child process ended and what it wrote on stderr. */
typedef struct child_result {
    int status;      /* as waitpid reports it */
    char err[16384]; /* its stderr, NUL-terminated, cut if longer */
    size_t err_len;
} child_result;

/*
 * Runs fn(arg) in a forked child whose stderr goes into a pipe, and waits
 * for it. The child writes no core file and aborts the default way; when
 * fn returns, it leaves with _exit(0), so no exit handler of the parent
 * runs.
 */
void run_in_child(void (*fn)(void *arg), void *arg, child_result *out);

/* The signal that ended the child, or 0 when it exited. */
int child_signal(const child_result *r);
/* The child's exit status, or -1 when a signal ended it. */
int child_exit_code(const child_result *r);

/* Number of lines in text (a last line without '\n' counts too). */
int count_lines(const char *text);
/* Number of lines of text that contain needle. */
int count_lines_with(const char *text, const char *needle);
/* 1 when needle occurs in haystack, ignoring case. */
int contains_nocase(const char *haystack, const char *needle);

/* What /proc/self/smaps says about the mapping that holds an address. */
typedef struct mapping_facts {
    unsigned long start, end;
    size_t locked_kb;  /* the Locked: line */
    size_t rss_kb;     /* the Rss: line */
    char vmflags[256]; /* the VmFlags: line, flags only */
} mapping_facts;

/* 0 when a mapping holds addr, -1 when none does. */
int smaps_lookup(const void *addr, mapping_facts *out);
/* 1 when the two-letter flag is among the mapping's VmFlags. */
int has_vmflag(const mapping_facts *m, const char *flag);

/* VmLck of this process from /proc/self/status, in KiB (-1 if absent). */
long vmlck_kb(void);

#endif
