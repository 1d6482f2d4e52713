/*
 * SMP_POOL_SCOPE: which allocations of an unmodified program go to which
 * pool. Rules are resolved to address ranges once, so that matching an
 * allocation never searches symbols.
 */
#ifndef SMP_RULES_H
#define SMP_RULES_H

#include <stddef.h>
#include <stdint.h>

/* Non-zero once rules are loaded: the preload's hot path tests only this. */
extern int smpi_rules_active;

/*
 * How many frames of the call stack fn: selectors look at, counting the
 * allocator's caller as the first. Read at each match; set it before
 * smpi_rules_load (SMP_OPTIONS fn_depth).
 */
#define SMPI_RULES_DEPTH_DEFAULT 32
#define SMPI_RULES_DEPTH_MAX 256
extern int smpi_rules_depth;

/*
 * Parses and resolves text. On malformed text prints one line naming
 * SMP_POOL_SCOPE, the position (with a caret) and what was expected, and
 * returns -1. Call it before other threads match (the preload does, from
 * its constructor): a second load replaces the first and frees its rules.
 */
int smpi_rules_load(const char *text);

/*
 * The pool index (0 .. count-1) the allocation goes to, or -1. size is the
 * bytes asked for, caller the allocator's return address.
 */
int smpi_rules_match(size_t size, uintptr_t caller);

/* Name of the pool with that index. Rules naming one pool share it. */
const char *smpi_rules_pool_name(int pool);

/* Call after objects were loaded or unloaded (dlopen, dlclose). */
void smpi_rules_refresh(void);

#endif
