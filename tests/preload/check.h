/*
 * What the preload test programs share: a check that names the failing
 * condition, and a look at a page's flags in /proc/self/smaps.
 */
#ifndef SMP_TEST_CHECK_H
#define SMP_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                    \
            fflush(NULL);                                                \
            _exit(1);                                                    \
        }                                                                \
    } while (0)

/*
 * The VmFlags of the mapping that holds p, as " rd wr mr mw me lo dd ",
 * in flags (with a space on each side of every flag). 0 when found.
 */
static inline int page_flags(const void *p, char *flags, size_t size)
{
    uintptr_t addr = (uintptr_t)p;
    char line[512];
    int inside = 0;
    FILE *f = fopen("/proc/self/smaps", "r");

    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;

        /* a mapping's first line; "AnonHugePages:" stops at one field */
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            inside = addr >= lo && addr < hi;
        else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(flags, size, "%s ", line + 8);
            fclose(f);
            return 0;
        }
    }
    fclose(f);
    return -1;
}

/* 1 when the page of p carries flag ("lo", "dd", ...). */
static inline int page_has(const void *p, const char *flag)
{
    char flags[256], want[16];

    if (page_flags(p, flags, sizeof flags))
        return 0;
    snprintf(want, sizeof want, " %s ", flag);
    return strstr(flags, want) != NULL;
}

#endif
