/*
 * A parsed SMP_POOL_SCOPE: the rules, their pools and their selectors,
 * as rules_parse.c reads them from the text and rules.c resolves them.
 */
#ifndef SMP_RULESET_H
#define SMP_RULESET_H

#include <stddef.h>

#include "smp/smp.h"
#include "thread.h"

#define RULES_MAX SMPI_RULES_MAX
#define PATTERNS_MAX 256
#define SIZES_MAX 8

enum kind { KIND_FN, KIND_CALLER, KIND_LIB, KIND_SIZE, KIND_ALL };

/* The selector names, by kind: "fn", "caller", "lib", "size", "*". */
extern const char *const smpi_rule_kinds[];

/* One fn:, caller: or lib: selector. */
typedef struct pattern {
    unsigned rule;
    enum kind kind;
    const char *glob;
    unsigned long resolved; /* functions or objects it matched, last told */
} pattern;

typedef struct rule {
    unsigned pool;
    unsigned kinds; /* a bit per enum kind present */
    unsigned nsizes;
    size_t min[SIZES_MAX];
    size_t max[SIZES_MAX];
    const char *text; /* the rule as written, for messages */
    int text_len;
} rule;

/*
 * What the text says. Once loaded only the counts of what each pattern
 * resolved to change, under the lock, for the messages.
 */
typedef struct ruleset {
    unsigned nrules;
    rule rules[RULES_MAX];
    unsigned npools;
    char pools[RULES_MAX][SMP_NAME_MAX];
    unsigned npatterns;
    pattern patterns[PATTERNS_MAX];
    /* The fn: and caller: globs, as symbols.c numbers them. */
    unsigned nglobs;
    const char *globs[PATTERNS_MAX];
    unsigned glob_pattern[PATTERNS_MAX];
    char *strings;
    size_t strings_size;
} ruleset;


/*
 * Parses text. Every mistake gets one line naming SMP_POOL_SCOPE, the
 * column (with a caret under the text) and what was expected; *errors
 * counts them, and the rules that were well formed are in the set. NULL
 * when memory ran out. Never calls malloc.
 */
ruleset *smpi_ruleset_parse(const char *text, int *errors);
void smpi_ruleset_free(ruleset *rs);

#endif
