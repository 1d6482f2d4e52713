/*
 * Shell-style globs for SMP_POOL_SCOPE: '*' matches any run of characters,
 * '?' one character, "[...]" one character of a set ("[!...]" or "[^...]"
 * for its complement, "a-z" for a range; a ']' first in the set is taken
 * literally). There is no escape character: symbol and file names never
 * need one.
 */
#ifndef SMP_GLOB_H
#define SMP_GLOB_H

#include <stddef.h>

/* 1 when the whole of name matches glob (both NUL-terminated), else 0. */
int smpi_glob_match(const char *glob, const char *name);

/*
 * Checks the first len bytes of glob. Returns -1 when they form a valid
 * glob, else the offset of the fault and *why says what was expected.
 */
long smpi_glob_check(const char *glob, size_t len, const char **why);

/* 1 when glob has no '*', '?' or '[': it matches only itself. */
int smpi_glob_is_literal(const char *glob);

#endif
