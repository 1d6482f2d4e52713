/*
 * The exit report. The scan (leak.c) runs with the other threads stopped;
 * everything here runs after they were let go, with smpi_guard set, so it
 * may allocate through the ordinary heap (elfutils needs it).
 *
 * Leaks are grouped by kind, pool name and allocation stack, and printed
 * direct before indirect, largest first, in LeakSanitizer's shape.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leak.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "pool.h"
#include "report.h"
#include "stack.h"
#include "symbolize.h"

/* ---- output, buffered, to one descriptor ---- */

typedef struct out {
    int fd;
    size_t n;
    char buf[16384];
} out;

static void flush(out *o)
{
    const char *p = o->buf;

    while (o->n) {
        ssize_t w = write(o->fd, p, o->n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        o->n -= (size_t)w;
    }
    o->n = 0;
}

static void put(out *o, const char *text, size_t len)
{
    while (len) {
        size_t room = sizeof o->buf - o->n;
        size_t k = len < room ? len : room;

        memcpy(o->buf + o->n, text, k);
        o->n += k;
        text += k;
        len -= k;
        if (o->n == sizeof o->buf)
            flush(o);
    }
}

__attribute__((format(printf, 2, 3)))
static void say(out *o, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1;
    if (n > 0)
        put(o, line, (size_t)n);
}

/* ---- groups: blocks of one kind, pool and stack ---- */

enum { KIND_ESCAPED = 3 };

typedef struct frames {
    int n;
    smpi_frame *f;
} frames;

typedef struct group {
    int kind; /* an smpi_leak_kind, or KIND_ESCAPED */
    const char *pool;
    uint32_t stack;
    size_t bytes, objects;
    const struct suppression *suppressed_by;
    frames *frames;
} group;

typedef struct groups {
    group *g;
    size_t n, cap;
    uint32_t *index; /* open addressing: group number + 1, 0 for empty */
    size_t slots;
} groups;

static size_t group_hash(int kind, const char *pool, uint32_t stack)
{
    size_t h = (size_t)stack * 0x9e3779b97f4a7c15u + (size_t)kind;

    for (; *pool; pool++)
        h = (h ^ (unsigned char)*pool) * 0x100000001b3u;
    return h ^ (h >> 29);
}

static int rehash(groups *gs, size_t slots)
{
    uint32_t *index = calloc(slots, sizeof *index);

    if (!index)
        return -1;
    for (size_t i = 0; i < gs->n; i++) {
        const group *g = &gs->g[i];
        size_t at = group_hash(g->kind, g->pool, g->stack) & (slots - 1);
        while (index[at])
            at = (at + 1) & (slots - 1);
        index[at] = (uint32_t)i + 1;
    }
    free(gs->index);
    gs->index = index;
    gs->slots = slots;
    return 0;
}

static group *group_for(groups *gs, int kind, const char *pool,
                        uint32_t stack)
{
    size_t at;

    if (2 * (gs->n + 1) > gs->slots &&
        rehash(gs, gs->slots ? gs->slots * 2 : 256))
        return NULL;
    at = group_hash(kind, pool, stack) & (gs->slots - 1);
    for (; gs->index[at]; at = (at + 1) & (gs->slots - 1)) {
        group *g = &gs->g[gs->index[at] - 1];
        if (g->kind == kind && g->stack == stack && !strcmp(g->pool, pool))
            return g;
    }
    if (gs->n == gs->cap) {
        size_t cap = gs->cap ? gs->cap * 2 : 64;
        group *more = realloc(gs->g, cap * sizeof *more);
        if (!more)
            return NULL;
        gs->g = more;
        gs->cap = cap;
    }
    gs->index[at] = (uint32_t)gs->n + 1;
    gs->g[gs->n] = (group){ .kind = kind, .pool = pool, .stack = stack };
    return &gs->g[gs->n++];
}

/* Leaks first, direct before indirect; then reachable blocks, escapes. */
static int rank(int kind)
{
    static const int ranks[] = { [SMPI_DIRECT] = 0, [SMPI_INDIRECT] = 1,
                                 [SMPI_REACHABLE] = 2, [KIND_ESCAPED] = 3 };

    return ranks[kind];
}

static int by_kind_then_size(const void *a, const void *b)
{
    const group *x = a, *y = b;

    if (x->kind != y->kind)
        return rank(x->kind) - rank(y->kind);
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return x->objects < y->objects ? 1 : x->objects > y->objects ? -1 : 0;
}

/* ---- symbolized stacks, once per depot id ---- */

typedef struct stack_cache {
    groups by_id; /* reuses the group table: kind 0, pool "", stack id */
} stack_cache;

static frames *frames_of(stack_cache *c, uint32_t id)
{
    const uintptr_t *pcs;
    group *g = group_for(&c->by_id, 0, "", id);
    unsigned generation;
    frames *fr;
    int n;

    if (!g)
        return NULL;
    if (g->frames)
        return g->frames;
    fr = calloc(1, sizeof *fr);
    if (!fr)
        return NULL;
    g->frames = fr;
    n = smpi_stack_frames(id, &pcs);
    generation = smpi_stack_generation(id);
    fr->f = n ? calloc((size_t)n * SMPI_INLINE_MAX, sizeof *fr->f) : NULL;
    for (int i = 0; fr->f && i < n; i++)
        fr->n += smpi_symbolize(pcs[i], generation, &fr->f[fr->n],
                                SMPI_INLINE_MAX);
    return fr;
}

/* ---- suppressions ---- */

typedef struct suppression {
    char *pattern;
    size_t count, bytes;
} suppression;

typedef struct suppressions {
    suppression *s;
    size_t n;
    char *text;
} suppressions;

/*
 * LeakSanitizer's rules: '*' matches any run of characters, '^' and '$'
 * anchor, and without anchors the pattern may match anywhere.
 */
static int glob_at(const char *p, const char *pend, const char *s,
                   int anchor_end)
{
    for (; p < pend; p++) {
        if (*p == '*') {
            for (const char *t = s;; t++) {
                if (glob_at(p + 1, pend, t, anchor_end))
                    return 1;
                if (!*t)
                    return 0;
            }
        }
        if (*s != *p)
            return 0;
        s++;
    }
    return !anchor_end || !*s;
}

static int template_match(const char *pattern, const char *s)
{
    size_t len = strlen(pattern);
    int start = pattern[0] == '^';
    int end = len > (size_t)start && pattern[len - 1] == '$';
    const char *p = pattern + start, *pend = pattern + len - end;

    if (!s || !*s)
        return 0;
    if (start)
        return glob_at(p, pend, s, end);
    for (const char *t = s;; t++) {
        if (glob_at(p, pend, t, end))
            return 1;
        if (!*t)
            return 0;
    }
}

static char *trim(char *s)
{
    char *e = s + strlen(s);

    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = 0;
    return s;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0, cap = 0, k;

    if (!f)
        return NULL;
    do {
        if (cap - len < 4096) {
            char *more = realloc(text, cap = cap * 2 + 4096);
            if (!more)
                break;
            text = more;
        }
        k = fread(text + len, 1, cap - len - 1, f);
        len += k;
    } while (k > 0);
    fclose(f);
    if (text)
        text[len] = 0;
    return text;
}

static void load_suppressions(suppressions *sp)
{
    char *line, *next;
    int lineno = 0;

    if (!smpi_opt.suppressions[0])
        return;
    sp->text = read_file(smpi_opt.suppressions);
    if (!sp->text) {
        smpi_log(SMPI_LOG_ERROR, "suppressions: cannot read '%s' (%m); "
                 "no leak is suppressed", smpi_opt.suppressions);
        return;
    }
    sp->s = calloc(strlen(sp->text) / 2 + 1, sizeof *sp->s);
    for (line = sp->text; sp->s && line; line = next) {
        char *l;

        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        lineno++;
        l = trim(line);
        if (!*l || *l == '#')
            continue;
        if (strncmp(l, "leak:", 5) || !*trim(l + 5)) {
            smpi_log(SMPI_LOG_ERROR, "suppressions: %s:%d: '%s' is not "
                     "leak:PATTERN; line ignored", smpi_opt.suppressions,
                     lineno, l);
            continue;
        }
        sp->s[sp->n++].pattern = trim(l + 5);
    }
}

/* The function as the report prints it: without a symbol version. */
static const char *printed_name(const smpi_frame *f, char *buf, size_t size)
{
    if (!f->function)
        return NULL;
    snprintf(buf, size, "%.*s", f->function_len, f->function);
    return buf;
}

static suppression *suppressed(suppressions *sp, const frames *fr)
{
    char name[1024];

    for (size_t i = 0; i < sp->n; i++) {
        const char *pat = sp->s[i].pattern;
        for (int k = 0; fr && k < fr->n; k++) {
            const smpi_frame *f = &fr->f[k];
            if (template_match(pat, printed_name(f, name, sizeof name)) ||
                template_match(pat, f->file) ||
                template_match(pat, f->module))
                return &sp->s[i];
        }
    }
    return NULL;
}

/* ---- statistics per pool name ---- */

typedef struct pool_row {
    smp_stats s;
    size_t instances, reachable, leaked;
} pool_row;

typedef struct rows {
    pool_row *r;
    size_t n;
} rows;

static pool_row *row_for(rows *rs, const char *name)
{
    for (size_t i = 0; i < rs->n; i++) {
        if (!strcmp(rs->r[i].s.pool_name, name))
            return &rs->r[i];
    }
    memset(&rs->r[rs->n], 0, sizeof rs->r[rs->n]);
    snprintf(rs->r[rs->n].s.pool_name, SMP_NAME_MAX, "%s", name);
    return &rs->r[rs->n++];
}

static void add_stats(smp_stats *to, const smp_stats *s)
{
    to->live_blocks += s->live_blocks;
    to->live_bytes += s->live_bytes;
    /* instances peak at different moments: the sum bounds the peak */
    to->peak_bytes += s->peak_bytes;
    to->total_bytes += s->total_bytes;
    to->allocations += s->allocations;
    to->frees += s->frees;
    to->locked_bytes += s->locked_bytes;
    to->lock_failures += s->lock_failures;
    to->scope_entries += s->scope_entries;
    to->scope_exits += s->scope_exits;
    to->escaped_blocks += s->escaped_blocks;
}

static int pool_rows(const smpi_leak_scan *scan, rows *rs)
{
    rs->r = calloc(scan->npools + 1, sizeof *rs->r);
    rs->n = 0;
    if (!rs->r)
        return -1;
    for (size_t i = 0; i < scan->npools; i++) {
        pool_row *row = row_for(rs, scan->pools[i].stats.pool_name);
        row->instances++;
        add_stats(&row->s, &scan->pools[i].stats);
    }
    for (size_t i = 0; i < scan->nblocks; i++) {
        const smpi_leak_block *b = &scan->blocks[i];
        pool_row *row = row_for(rs, scan->pools[b->pool].stats.pool_name);
        if (b->kind == SMPI_REACHABLE)
            row->reachable++;
        else
            row->leaked++;
    }
    return 0;
}

/* A count of the scan at exit, or "-" when no scan ran (detect_leaks=0). */
static const char *scanned(size_t n, char *buf, size_t size)
{
    if (!smpi_opt.detect_leaks)
        return "-";
    snprintf(buf, size, "%zu", n);
    return buf;
}

static void print_stats(out *o, const rows *rs)
{
    int width = 20;
    char reach[32], leak[32];

    for (size_t i = 0; i < rs->n; i++) {
        int len = (int)strlen(rs->r[i].s.pool_name);
        width = len > width ? len : width;
    }
    say(o, "smp: statistics per pool (the instances of every thread "
        "added up; bytes asked for):\n");
    say(o, "%-*s %5s %10s %10s %12s %12s %14s %12s %6s %8s %9s %8s "
        "%9s %8s\n", width, "pool", "inst", "allocs", "frees", "live_bytes",
        "peak_bytes", "total_bytes", "locked", "lockf", "scope_in",
        "scope_out", "escaped", "reachable", "leaked");
    for (size_t i = 0; i < rs->n; i++) {
        const pool_row *r = &rs->r[i];
        say(o, "%-*s %5zu %10zu %10zu %12zu %12zu %14zu %12zu %6zu %8zu "
            "%9zu %8zu %9s %8s\n", width, r->s.pool_name, r->instances,
            r->s.allocations, r->s.frees, r->s.live_bytes, r->s.peak_bytes,
            r->s.total_bytes, r->s.locked_bytes, r->s.lock_failures,
            r->s.scope_entries, r->s.scope_exits, r->s.escaped_blocks,
            scanned(r->reachable, reach, sizeof reach),
            scanned(r->leaked, leak, sizeof leak));
    }
}

/* ---- text ---- */

static void print_frames(out *o, const frames *fr)
{
    if (!fr || fr->n == 0) {
        say(o, "    <empty stack>\n");
        return;
    }
    for (int k = 0; k < fr->n; k++) {
        const smpi_frame *f = &fr->f[k];
        const char *module = f->module[0] ? f->module : "<unknown module>";

        if (f->function && f->file)
            say(o, "    #%d %#lx in %.*s %s:%d\n", k, (unsigned long)f->addr,
                f->function_len, f->function, f->file, f->line);
        else if (f->function)
            say(o, "    #%d %#lx in %.*s (%s+%#lx)\n", k,
                (unsigned long)f->addr, f->function_len, f->function,
                module, (unsigned long)f->offset);
        else
            say(o, "    #%d %#lx  (%s+%#lx)\n", k, (unsigned long)f->addr,
                module, (unsigned long)f->offset);
    }
}

static void print_group(out *o, const group *g)
{
    static const char *const kinds[] = { "Reachable block", "Direct leak",
                                         "Indirect leak" };

    if (g->kind == KIND_ESCAPED)
        say(o, "Escaped scope '%s': %zu byte(s) in %zu object(s) "
            "allocated from:\n", g->pool, g->bytes, g->objects);
    else
        say(o, "%s of %zu byte(s) in %zu object(s) from pool '%s' "
            "allocated from:\n", kinds[g->kind], g->bytes, g->objects,
            g->pool);
    print_frames(o, g->frames);
    say(o, "\n");
}

typedef struct totals {
    size_t leaked_bytes, leaked_objects, leak_groups;
    size_t suppressed_bytes, suppressed_objects;
    size_t escaped_bytes, escaped_objects;
} totals;

static void print_report(out *o, const groups *gs, const suppressions *sp,
                         const totals *t)
{
    size_t shown = 0, limit = (size_t)smpi_opt.max_leaks;
    int escapes = 0;

    if (t->leak_groups) {
        say(o, "\n================================================="
            "================\n");
        say(o, "==%d==ERROR: smp: detected memory leaks\n\n", getpid());
        if (limit && t->leak_groups > limit)
            say(o, "The %zu top leak(s):\n", limit);
    }
    for (size_t i = 0; i < gs->n; i++) {
        const group *g = &gs->g[i];
        int leak = g->kind == SMPI_DIRECT || g->kind == SMPI_INDIRECT;

        if (g->suppressed_by || (g->kind == SMPI_REACHABLE &&
                                 !smpi_opt.report_reachable))
            continue;
        if (leak && limit && shown++ >= limit)
            continue;
        /* escapes sort last: one header before the first */
        if (g->kind == KIND_ESCAPED && !escapes++)
            say(o, "==%d==WARNING: smp: %zu block(s) outlived the scope "
                "that owned their pool (wiped at scope exit):\n\n",
                getpid(), t->escaped_objects);
        print_group(o, g);
    }
    if (limit && t->leak_groups > limit)
        say(o, "Omitting %zu more leak(s).\n", t->leak_groups - limit);
    if (smpi_opt.print_suppressions && t->suppressed_objects) {
        say(o, "-----------------------------------------------------\n");
        say(o, "Suppressions used:\n");
        say(o, "  count      bytes template\n");
        for (size_t i = 0; i < sp->n; i++) {
            if (sp->s[i].count)
                say(o, "%7zu %10zu %s\n", sp->s[i].count, sp->s[i].bytes,
                    sp->s[i].pattern);
        }
        say(o, "-----------------------------------------------------\n\n");
    }
    if (t->leak_groups)
        say(o, "SUMMARY: smp: %zu byte(s) leaked in %zu allocation(s).\n",
            t->leaked_bytes, t->leaked_objects);
}

/* ---- JSON ---- */

static void json_strn(out *o, const char *s, int len)
{
    put(o, "\"", 1);
    for (; s && *s && len-- != 0; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            say(o, "\\%c", c);
        else if (c < 0x20)
            say(o, "\\u%04x", c);
        else
            put(o, (const char *)&c, 1);
    }
    put(o, "\"", 1);
}

static void json_str(out *o, const char *s)
{
    json_strn(o, s, -1);
}

static void json_frames(out *o, const frames *fr)
{
    say(o, "[");
    for (int k = 0; fr && k < fr->n; k++) {
        const smpi_frame *f = &fr->f[k];
        say(o, "%s{\"pc\":\"%#lx\",\"module\":", k ? "," : "",
            (unsigned long)f->addr);
        json_str(o, f->module);
        say(o, ",\"offset\":\"%#lx\",\"build_id\":", (unsigned long)f->offset);
        json_str(o, f->build_id);
        say(o, ",\"function\":");
        if (f->function)
            json_strn(o, f->function, f->function_len);
        else
            say(o, "null");
        say(o, ",\"file\":");
        if (f->file)
            json_str(o, f->file);
        else
            say(o, "null");
        say(o, ",\"line\":%d,\"inlined\":%s}", f->file ? f->line : 0,
            f->inlined ? "true" : "false");
    }
    say(o, "]");
}

/* The same in JSON: null when no scan ran. */
static const char *json_scanned(size_t n, char *buf, size_t size)
{
    return smpi_opt.detect_leaks ? scanned(n, buf, size) : "null";
}

static void json_pools(out *o, const rows *rs)
{
    char reach[32], leak[32];

    say(o, "\"pools\":[");
    for (size_t i = 0; i < rs->n; i++) {
        const pool_row *r = &rs->r[i];
        say(o, "%s\n {\"name\":", i ? "," : "");
        json_str(o, r->s.pool_name);
        say(o, ",\"instances\":%zu,\"allocations\":%zu,\"frees\":%zu,"
            "\"live_blocks\":%zu,\"live_bytes\":%zu,\"peak_bytes\":%zu,"
            "\"total_bytes\":%zu,\"locked_bytes\":%zu,"
            "\"lock_failures\":%zu,\"scope_entries\":%zu,"
            "\"scope_exits\":%zu,\"escaped_blocks\":%zu,"
            "\"reachable_blocks\":%s,\"leaked_blocks\":%s}",
            r->instances, r->s.allocations, r->s.frees, r->s.live_blocks,
            r->s.live_bytes, r->s.peak_bytes, r->s.total_bytes,
            r->s.locked_bytes, r->s.lock_failures, r->s.scope_entries,
            r->s.scope_exits, r->s.escaped_blocks,
            json_scanned(r->reachable, reach, sizeof reach),
            json_scanned(r->leaked, leak, sizeof leak));
    }
    say(o, "],\n");
}

static void json_groups(out *o, const groups *gs)
{
    static const char *const kinds[] = { "reachable", "direct", "indirect",
                                         "escaped" };
    int first = 1;

    say(o, "\"leaks\":[");
    for (size_t i = 0; i < gs->n; i++) {
        const group *g = &gs->g[i];
        say(o, "%s\n {\"kind\":\"%s\",\"pool\":", first ? "" : ",",
            kinds[g->kind]);
        first = 0;
        json_str(o, g->pool);
        say(o, ",\"bytes\":%zu,\"objects\":%zu,\"suppressed_by\":",
            g->bytes, g->objects);
        if (g->suppressed_by)
            json_str(o, g->suppressed_by->pattern);
        else
            say(o, "null");
        say(o, ",\"stack\":");
        json_frames(o, g->frames);
        say(o, "}");
    }
    say(o, "],\n");
}

static void write_json(const groups *gs, const rows *rs,
                       const suppressions *sp, const totals *t,
                       const smpi_leak_scan *scan, int status)
{
    char path[PATH_MAX + 16], exe[PATH_MAX];
    ssize_t n = readlink(SMPI_PROC_EXE, exe, sizeof exe - 1);
    out *o = malloc(sizeof *o);

    exe[n > 0 ? n : 0] = 0;
    snprintf(path, sizeof path, "%s.%d", smpi_opt.json, getpid());
    if (!o)
        return;
    o->n = 0;
    o->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o->fd < 0) {
        smpi_log(SMPI_LOG_ERROR, "json: cannot write '%s' (%m)", path);
        free(o);
        return;
    }
    say(o, "{\"schema\":\"smp-report\",\"version\":%d,\"pid\":%d,"
        "\"program\":", SMPI_REPORT_SCHEMA_VERSION, getpid());
    json_str(o, exe);
    say(o, ",\"exit_status\":%d,\"detect_leaks\":%s,\n", status,
        smpi_opt.detect_leaks ? "true" : "false");
    say(o, "\"summary\":{\"leaked_bytes\":%zu,\"leaked_objects\":%zu,"
        "\"suppressed_bytes\":%zu,\"suppressed_objects\":%zu,"
        "\"escaped_bytes\":%zu,\"escaped_objects\":%zu,"
        "\"threads_stopped\":%zu,\"threads_missed\":%zu,"
        "\"root_bytes\":%zu,\"scan_seconds\":%.6f},\n",
        t->leaked_bytes, t->leaked_objects, t->suppressed_bytes,
        t->suppressed_objects, t->escaped_bytes, t->escaped_objects,
        scan->threads_stopped, scan->threads_missed, scan->root_bytes,
        scan->seconds);
    json_pools(o, rs);
    json_groups(o, gs);
    say(o, "\"suppressions\":[");
    for (size_t i = 0; i < sp->n; i++) {
        say(o, "%s{\"pattern\":", i ? "," : "");
        json_str(o, sp->s[i].pattern);
        say(o, ",\"count\":%zu,\"bytes\":%zu}", sp->s[i].count,
            sp->s[i].bytes);
    }
    say(o, "]}\n");
    flush(o);
    close(o->fd);
    free(o);
}

/* ---- putting it together ---- */

typedef struct escape_ctx {
    groups *gs;
    int failed;
} escape_ctx;

static void add_escape(const smpi_escape *e, void *ctx)
{
    escape_ctx *c = ctx;
    /* the name lives in the escape record, which outlives the report */
    group *g = group_for(c->gs, KIND_ESCAPED, e->pool_name, e->block.stack);

    if (!g) {
        c->failed = 1;
        return;
    }
    g->bytes += e->block.size;
    g->objects++;
}

static void build_groups(const smpi_leak_scan *scan, groups *gs)
{
    escape_ctx ec = { gs, 0 };

    for (size_t i = 0; i < scan->nblocks; i++) {
        const smpi_leak_block *b = &scan->blocks[i];
        const char *pool = scan->pools[b->pool].stats.pool_name;
        group *g;

        if (b->kind != SMPI_REACHABLE && !smpi_opt.detect_leaks)
            continue;
        g = group_for(gs, b->kind, pool, b->stack);
        if (!g)
            return;
        g->bytes += b->size;
        g->objects++;
    }
    smpi_foreach_escape(add_escape, &ec);
}

static void resolve(groups *gs, stack_cache *cache, suppressions *sp,
                    totals *t)
{
    for (size_t i = 0; i < gs->n; i++) {
        group *g = &gs->g[i];
        int leak = g->kind == SMPI_DIRECT || g->kind == SMPI_INDIRECT;

        if (g->kind == SMPI_REACHABLE && !smpi_opt.report_reachable &&
            !smpi_opt.json[0])
            continue;
        g->frames = frames_of(cache, g->stack);
        if (g->kind == KIND_ESCAPED) {
            t->escaped_bytes += g->bytes;
            t->escaped_objects += g->objects;
            continue;
        }
        if (!leak)
            continue;
        g->suppressed_by = suppressed(sp, g->frames);
        if (g->suppressed_by) {
            suppression *s = (suppression *)g->suppressed_by;
            s->count += g->objects;
            s->bytes += g->bytes;
            t->suppressed_bytes += g->bytes;
            t->suppressed_objects += g->objects;
            continue;
        }
        t->leaked_bytes += g->bytes;
        t->leaked_objects += g->objects;
        t->leak_groups++;
    }
}

static void release_all(groups *gs, stack_cache *cache, suppressions *sp,
                        rows *rs)
{
    for (size_t i = 0; i < cache->by_id.n; i++) {
        frames *fr = cache->by_id.g[i].frames;
        if (fr)
            free(fr->f);
        free(fr);
    }
    free(cache->by_id.g);
    free(cache->by_id.index);
    free(gs->g);
    free(gs->index);
    free(sp->s);
    free(sp->text);
    free(rs->r);
}

int smpi_report_exit(void)
{
    uintptr_t top = (uintptr_t)__builtin_frame_address(0);
    smpi_leak_scan scan;
    groups gs = { 0 };
    stack_cache cache = { 0 };
    suppressions sp = { 0 };
    rows rs = { 0 };
    totals t = { 0 };
    out *o;
    int status = -1;

    if (!smpi_opt.detect_leaks && !smpi_opt.print_stats &&
        !smpi_opt.json[0])
        return -1;
    if (smpi_leak_scan_run(&scan, top) != 0)
        smpi_log(SMPI_LOG_ERROR, "leak scan: out of memory; the report "
                 "below may be incomplete");
    o = malloc(sizeof *o);
    if (!o || pool_rows(&scan, &rs) != 0) {
        smpi_log(SMPI_LOG_ERROR, "report: out of memory");
        free(o);
        smpi_leak_scan_free(&scan);
        return -1;
    }
    o->fd = smpi_log_fd;
    o->n = 0;

    build_groups(&scan, &gs);
    /* sorting moves the groups: the index is of no use after it */
    qsort(gs.g, gs.n, sizeof *gs.g, by_kind_then_size);
    load_suppressions(&sp);
    smpi_symbolize_begin();
    resolve(&gs, &cache, &sp, &t);

    if (smpi_opt.print_stats)
        print_stats(o, &rs);
    print_report(o, &gs, &sp, &t);
    flush(o);
    if (t.leak_groups && smpi_opt.exitcode)
        status = smpi_opt.exitcode;
    if (smpi_opt.json[0])
        write_json(&gs, &rs, &sp, &t, &scan, status);

    smpi_symbolize_end();
    release_all(&gs, &cache, &sp, &rs);
    free(o);
    smpi_leak_scan_free(&scan);
    return status;
}
