/*
 * SMP_POOL_SCOPE's text into a rule set: the grammar of the README, one
 * message a mistake, and the good rules kept when others are bad.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "glob.h"
#include "log.h"
#include "meta.h"
#include "ruleset.h"

const char *const smpi_rule_kinds[] = { "fn", "caller", "lib", "size", "*" };

/* ------------------------------------------------------------------ */
/* Parsing                                                            */
/* ------------------------------------------------------------------ */

typedef struct parser {
    const char *text;
    size_t len;
    size_t pos;
    int errors;
    ruleset *rs;
    char *strings_end;
} parser;

/*
 * One line naming the variable, the column and what was expected, then
 * the text with a caret under that column. Long texts are cut to a
 * window around the column so the caret stays on screen.
 */
__attribute__((format(printf, 3, 4))) static void fail(parser *p, size_t at,
                                                       const char *fmt, ...)
{
    char what[256];
    char shown[96];
    char caret[96];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    smpi_log(SMPI_LOG_ERROR, "SMP_POOL_SCOPE: at column %zu: expected %s",
             at + 1, what);

    size_t width = 72;
    size_t from = at > width - 16 ? at - (width - 16) : 0;
    size_t n = 0;
    size_t c = 0;
    if (from) {
        memcpy(shown, "...", 3);
        n = 3;
    }
    for (size_t i = from; i < p->len && n < width + 3; i++) {
        unsigned char ch = (unsigned char)p->text[i];
        shown[n++] = ch >= ' ' && ch < 127 ? (char)ch : ' ';
    }
    shown[n] = '\0';
    for (c = 0; c < (from ? 3 : 0) + at - from && c < sizeof caret - 2; c++)
        caret[c] = ' ';
    caret[c++] = '^';
    caret[c] = '\0';
    smpi_log(SMPI_LOG_ERROR, "    %s", shown);
    smpi_log(SMPI_LOG_ERROR, "    %s", caret);
    p->errors++;
}

static int at_end(const parser *p)
{
    return p->pos >= p->len;
}

static char peek(const parser *p)
{
    return at_end(p) ? '\0' : p->text[p->pos];
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_space(parser *p)
{
    while (!at_end(p) && is_space(peek(p)))
        p->pos++;
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* Ends a glob: a separator, a space, or '=' (a missing ';'). */
static int ends_glob(char c)
{
    return c == '\0' || c == ',' || c == ';' || c == '=' || is_space(c);
}

static const char *copy_string(parser *p, const char *s, size_t len)
{
    char *out = p->strings_end;

    memcpy(out, s, len);
    out[len] = '\0';
    p->strings_end += len + 1;
    return out;
}

static int pool_index(ruleset *rs, const char *name, size_t len)
{
    for (unsigned i = 0; i < rs->npools; i++)
        if (strlen(rs->pools[i]) == len && !memcmp(rs->pools[i], name, len))
            return (int)i;
    memcpy(rs->pools[rs->npools], name, len);
    rs->pools[rs->npools][len] = '\0';
    return (int)rs->npools++;
}

static int parse_pool(parser *p, rule *r)
{
    size_t start = p->pos;

    while (!at_end(p) && is_name_char(peek(p)))
        p->pos++;

    size_t len = p->pos - start;
    if (len == 0) {
        fail(p, start,
             "a pool name (letters, digits, '_', '-' or '.') "
             "to start a rule");
        return -1;
    }
    if (len >= SMP_NAME_MAX) {
        fail(p, start, "a pool name of at most %d characters",
             SMP_NAME_MAX - 1);
        return -1;
    }
    if (len == 7 && !memcmp(p->text + start, "default", 7)) {
        fail(p, start,
             "a pool name other than 'default', which every "
             "thread already has");
        return -1;
    }

    r->pool = (unsigned)pool_index(p->rs, p->text + start, len);
    skip_space(p);
    if (peek(p) != '=') {
        fail(p, p->pos, "'=' after the pool name '%.*s'", (int)len,
             p->text + start);
        return -1;
    }
    p->pos++;
    return 0;
}

/* A size with an optional k, M or G (powers of 1024); -1 when absent. */
static int parse_size(parser *p, size_t *out, int *present)
{
    size_t start = p->pos;
    size_t v = 0;

    *present = 0;
    while (!at_end(p) && peek(p) >= '0' && peek(p) <= '9') {
        unsigned d = (unsigned)(peek(p) - '0');
        if (v > (SIZE_MAX - d) / 10) {
            fail(p, start, "a size below 2^64");
            return -1;
        }
        v = v * 10 + d;
        p->pos++;
        *present = 1;
    }
    if (!*present)
        return 0;

    unsigned shift = 0;
    switch (peek(p)) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    }
    if (shift) {
        if (v > SIZE_MAX >> shift) {
            fail(p, start, "a size below 2^64");
            return -1;
        }
        v <<= shift;
        p->pos++;
    }
    *out = v;
    return 0;
}

static int parse_range(parser *p, rule *r)
{
    size_t start = p->pos;
    size_t min = 0, max = SIZE_MAX;
    int has_min, has_max = 0;

    if (parse_size(p, &min, &has_min))
        return -1;
    if (peek(p) == '-') {
        p->pos++;
        if (parse_size(p, &max, &has_max))
            return -1;
        if (!has_min && !has_max) {
            fail(p, start,
                 "a size before or after '-' (size:MIN-MAX, "
                 "size:MIN- or size:-MAX)");
            return -1;
        }
    } else if (has_min) {
        max = min; /* size:N is exactly N bytes */
    } else {
        fail(p, start,
             "a size range after 'size:' (MIN-MAX; either end "
             "may be left out)");
        return -1;
    }

    if (!ends_glob(peek(p))) {
        char last = p->text[p->pos - 1];
        if (last == '-')
            fail(p, p->pos, "a size after '-', or ',' or ';'");
        else if (last >= '0' && last <= '9')
            fail(p, p->pos,
                 "a digit, a size suffix k, M or G, or ',' or "
                 "';' after the size");
        else
            fail(p, p->pos, "',' or ';' after the size range");
        return -1;
    }
    if (min > max) {
        fail(p, start,
             "a range whose minimum (%zu) is not above its "
             "maximum (%zu)",
             min, max);
        return -1;
    }
    r->min[r->nsizes] = min;
    r->max[r->nsizes] = max;
    r->nsizes++;
    return 0;
}

static int parse_glob(parser *p, unsigned rule_index, enum kind kind)
{
    size_t start = p->pos;
    ruleset *rs = p->rs;

    while (!ends_glob(peek(p))) {
        if (peek(p) == '@') {
            fail(p, p->pos,
                 "a symbol name without its version: drop "
                 "'@...' (nm -D prints it, it is not part of "
                 "the name)");
            return -1;
        }
        p->pos++;
    }

    size_t len = p->pos - start;
    if (len == 0) {
        fail(p, start, "a %s after '%s:'",
             kind == KIND_LIB ? "file name or pattern (libssl.so*)"
                              : "function name or pattern (EVP_PKEY_*)",
             smpi_rule_kinds[kind]);
        return -1;
    }

    const char *why;
    long bad = smpi_glob_check(p->text + start, len, &why);
    if (bad >= 0) {
        fail(p, start + (size_t)bad, "%s", why);
        return -1;
    }
    if (rs->npatterns == PATTERNS_MAX) {
        fail(p, start, "at most %d fn:, caller: and lib: selectors in all",
             PATTERNS_MAX);
        return -1;
    }

    pattern *pat = &rs->patterns[rs->npatterns++];
    pat->rule = rule_index;
    pat->kind = kind;
    pat->glob = copy_string(p, p->text + start, len);
    return 0;
}

static int parse_selector(parser *p, rule *r, unsigned rule_index)
{
    size_t start = p->pos;

    if (peek(p) == '*') {
        p->pos++;
        r->kinds |= 1u << KIND_ALL;
        return 0;
    }

    while (!at_end(p) && ((peek(p) >= 'a' && peek(p) <= 'z') ||
                          (peek(p) >= 'A' && peek(p) <= 'Z')))
        p->pos++;

    size_t len = p->pos - start;
    enum kind kind;
    for (kind = KIND_FN; kind < KIND_ALL; kind++)
        if (strlen(smpi_rule_kinds[kind]) == len &&
            !memcmp(smpi_rule_kinds[kind], p->text + start, len))
            break;

    if (len == 0 || kind == KIND_ALL) {
        if (len)
            fail(p, start,
                 "a selector fn:, caller:, lib:, size: or *, "
                 "not '%.*s'",
                 (int)len, p->text + start);
        else
            fail(p, start,
                 "a selector: fn:GLOB, caller:GLOB, lib:GLOB, "
                 "size:MIN-MAX or *");
        return -1;
    }
    if (peek(p) != ':') {
        fail(p, p->pos, "':' after '%s'", smpi_rule_kinds[kind]);
        return -1;
    }
    p->pos++;

    r->kinds |= 1u << kind;
    if (kind == KIND_SIZE && r->nsizes == SIZES_MAX) {
        fail(p, start, "at most %d size: selectors in one rule", SIZES_MAX);
        return -1;
    }
    if (kind == KIND_SIZE)
        return parse_range(p, r);
    return parse_glob(p, rule_index, kind);
}

/* Skips the rest of a bad rule, so that the next one is still checked. */
static void skip_rule(parser *p)
{
    while (!at_end(p) && peek(p) != ';')
        p->pos++;
}

static void parse_rule(parser *p)
{
    ruleset *rs = p->rs;
    size_t start = p->pos;
    unsigned first_pattern = rs->npatterns;
    unsigned first_pools = rs->npools;

    if (rs->nrules == RULES_MAX) {
        fail(p, start, "at most %d rules", RULES_MAX);
        skip_rule(p);
        return;
    }

    unsigned index = rs->nrules;
    rule *r = &rs->rules[index];
    memset(r, 0, sizeof *r);
    if (parse_pool(p, r))
        goto bad;

    for (;;) {
        skip_space(p);
        if (parse_selector(p, r, index))
            goto bad;
        skip_space(p);
        if (at_end(p) || peek(p) == ';')
            break;
        if (peek(p) != ',') {
            fail(p, p->pos,
                 "',' before another selector, or ';' before "
                 "another rule");
            goto bad;
        }
        p->pos++;
    }

    r->text = p->text + start;
    r->text_len = (int)(p->pos - start);
    while (r->text_len > 0 && is_space(r->text[r->text_len - 1]))
        r->text_len--;
    rs->nrules++;
    return;

bad:
    /* forget what the bad rule added */
    rs->npatterns = first_pattern;
    rs->npools = first_pools;
    skip_rule(p);
}

static void parse(parser *p)
{
    for (;;) {
        skip_space(p);
        if (!at_end(p) && peek(p) != ';')
            parse_rule(p);
        if (at_end(p))
            break;
        p->pos++; /* the ';' */
    }
}

static ruleset *ruleset_new(size_t text_len)
{
    ruleset *rs = smpi_meta_alloc(sizeof *rs);

    if (!rs)
        return NULL;
    /* each glob and each rule's text once, with their terminators */
    rs->strings_size = 2 * text_len + PATTERNS_MAX + RULES_MAX + 1;
    rs->strings = smpi_meta_alloc(rs->strings_size);
    if (!rs->strings) {
        smpi_meta_free(rs, sizeof *rs);
        return NULL;
    }
    return rs;
}

void smpi_ruleset_free(ruleset *rs)
{
    smpi_meta_free(rs->strings, rs->strings_size);
    smpi_meta_free(rs, sizeof *rs);
}

/* The rules keep pointers into the text; give them their own copy. */
static void own_rule_texts(parser *p)
{
    ruleset *rs = p->rs;

    for (unsigned r = 0; r < rs->nrules; r++)
        rs->rules[r].text =
            copy_string(p, rs->rules[r].text, (size_t)rs->rules[r].text_len);
    for (unsigned i = 0; i < rs->npatterns; i++) {
        if (rs->patterns[i].kind == KIND_LIB)
            continue;
        rs->glob_pattern[rs->nglobs] = i;
        rs->globs[rs->nglobs++] = rs->patterns[i].glob;
    }
}

ruleset *smpi_ruleset_parse(const char *text, int *errors)
{
    size_t len = text ? strlen(text) : 0;
    ruleset *rs = ruleset_new(len);
    parser p = { text, len, 0, 0, rs, NULL };

    *errors = 0;
    if (!rs)
        return NULL;
    p.strings_end = rs->strings;
    if (text)
        parse(&p);
    own_rule_texts(&p);
    *errors = p.errors;
    return rs;
}
