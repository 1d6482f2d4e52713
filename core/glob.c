/*
 * Glob matching without recursion: on a mismatch the matcher goes back to
 * the last '*' and lets it swallow one more character, which keeps the
 * cost linear in practice and bounded by len(glob) * len(name).
 */
#include <string.h>

#include "glob.h"

/*
 * Matches c against the set that starts after '['. Returns a pointer past
 * the closing ']' on a match, NULL otherwise. The set was checked when the
 * rule was parsed, so the closing ']' exists.
 */
static const char *match_set(const char *p, unsigned char c)
{
    int negate = 0;
    int found = 0;

    if (*p == '!' || *p == '^') {
        negate = 1;
        p++;
    }

    /* a ']' right after the '[' (or its '!') is a member, not the end */
    const char *first = p;
    while (*p && (*p != ']' || p == first)) {
        unsigned char lo = (unsigned char)*p;
        unsigned char hi = lo;

        if (p[1] == '-' && p[2] && p[2] != ']') {
            hi = (unsigned char)p[2];
            p += 2;
        }
        if (c >= lo && c <= hi)
            found = 1;
        p++;
    }
    if (*p != ']')
        return NULL;
    return found != negate ? p + 1 : NULL;
}

int smpi_glob_match(const char *glob, const char *name)
{
    const char *p = glob;
    const char *n = name;
    const char *star = NULL;   /* the glob just after the last '*' */
    const char *resume = NULL; /* where that '*' would swallow next */

    while (*n) {
        if (*p == '*') {
            star = ++p;
            resume = n;
            continue;
        }
        if (*p == '?') {
            p++;
            n++;
            continue;
        }
        if (*p == '[') {
            const char *next = match_set(p + 1, (unsigned char)*n);
            if (next) {
                p = next;
                n++;
                continue;
            }
        } else if (*p && *p == *n) {
            p++;
            n++;
            continue;
        }

        /* mismatch: let the last '*' take one more character */
        if (!star)
            return 0;
        p = star;
        n = ++resume;
    }

    while (*p == '*')
        p++;
    return *p == '\0';
}

long smpi_glob_check(const char *glob, size_t len, const char **why)
{
    for (size_t i = 0; i < len; i++) {
        if (glob[i] != '[')
            continue;

        size_t open = i++;
        if (i < len && (glob[i] == '!' || glob[i] == '^'))
            i++;
        size_t first = i;
        while (i < len && (glob[i] != ']' || i == first)) {
            if (i + 2 < len && glob[i + 1] == '-' && glob[i + 2] != ']') {
                if ((unsigned char)glob[i + 2] < (unsigned char)glob[i]) {
                    *why = "a range whose first character is not above "
                           "its last (write [a-z], not [z-a])";
                    return (long)i;
                }
                i += 2;
            }
            i++;
        }
        if (i >= len) {
            *why = "']' to close the '[' set opened here";
            return (long)open;
        }
    }
    return -1;
}

int smpi_glob_is_literal(const char *glob)
{
    return strpbrk(glob, "*?[") == NULL;
}
