/*
 * SMP_POOL_SCOPE: the resolved tables and the matcher.
 *
 * The text is parsed once into a rule set (rules_parse.c). Its globs are
 * resolved against the symbols of the loaded objects (symbols.c) into one
 * sorted list of address intervals, each carrying three masks of rules:
 * those whose caller:, lib: and fn: selectors cover the interval. The
 * sizes the rules name cut the sizes into slices, each with a mask of the
 * rules it fits. Matching an allocation is then a look-up of the decision
 * kept for its call site and slice; past that, one interval look-up for
 * the caller, and only for fn: a stack walk, whose answer the thread
 * keeps with its memory of the stack.
 *
 * Tables are immutable once published. A refresh after dlopen or dlclose
 * builds a new one and swaps the pointer; the old one is retired, not
 * freed, since another thread may still be reading it. Only a new load,
 * which runs before other threads match, frees what earlier ones left.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"
#include "log.h"
#include "meta.h"
#include "options.h"
#include "rules.h"
#include "ruleset.h"
#include "smp/smp.h"
#include "stack.h"
#include "symbols.h"
#include "thread.h"

#define CACHE_BITS 12
#define CACHE_SIZE (1u << CACHE_BITS)
#define DECISION_BITS 12
#define DECISIONS (1u << DECISION_BITS)
/* frames of the preload and of this file below the allocator's caller */
#define WALK_SLACK 8

/* at the default depth, an fn: walk (and its own frame) is remembered */
_Static_assert(SMPI_RULES_DEPTH_DEFAULT + WALK_SLACK + 1 <= SMPI_WALK_HELD,
               "fn: walks at the default depth would step every frame");

/* From its start to the next interval's start, these rules cover it. */
typedef struct interval {
    uintptr_t start;
    uint64_t caller;
    uint64_t lib;
    uint64_t fn;
} interval;

/*
 * What one call site resolved to under the table of one generation. A
 * seqlock per entry: readers never write, writers never wait.
 */
typedef struct cache_entry {
    _Atomic uint32_t seq;
    _Atomic uint32_t generation; /* of the table, cut to 32 bits */
    _Atomic uintptr_t pc;
    _Atomic uint64_t site;
    _Atomic uint64_t fn;
} __attribute__((aligned(32))) cache_entry; /* one cache line each */

/* A rule as the matcher needs it: what one look at a cache line holds. */
typedef struct table_rule {
    int pool;
    unsigned nsizes;
    struct {
        size_t min, max;
    } sizes[SIZES_MAX];
} table_rule;

/* A slice of sizes, from lo up to the next one's lo: the rules it fits. */
typedef struct size_slice {
    size_t lo;
    uint64_t fits;
} size_slice;

typedef struct table {
    uint64_t live; /* rules every selector of which can match */
    uint64_t has_caller;
    uint64_t has_lib;
    uint64_t has_fn;
    uint64_t has_site; /* has_caller | has_lib | has_fn */
    size_slice *sizes; /* sorted; sizes[0].lo is 0 */
    unsigned nsizes;
    /*
     * What the rules decided for a call site and a slice of sizes when
     * no stack walk was needed: the return address, the slice (8 bits),
     * a bit that says the entry is written and the pool + 1 (7 bits) in
     * one word, so that a reader sees a whole entry or another one, and
     * needs no lock.
     */
    _Atomic uint64_t *decisions; /* DECISIONS of them */
    /* the pool of a first live rule that takes everything ('*'), or -1 */
    int always;
    unsigned long generation;
    interval *iv;
    size_t niv;
    /* every fn: range lies in [fn_lo, fn_lo + fn_span) */
    uintptr_t fn_lo;
    uintptr_t fn_span;
    unsigned nrules;
    table_rule rules[RULES_MAX];
    struct table *retired;
} table;

int smpi_rules_active;
int smpi_rules_depth = SMPI_RULES_DEPTH_DEFAULT;

static _Atomic(ruleset *) current_rules;
static _Atomic(table *) current_table;
static table *retired_tables;
static unsigned long generation;
/* One cache for every table: an entry of another generation is a miss. */
static cache_entry cache[CACHE_SIZE];
static pthread_mutex_t rules_lock = PTHREAD_MUTEX_INITIALIZER;
static int atfork_done;

/* ------------------------------------------------------------------ */
/* Resolved tables                                                    */
/* ------------------------------------------------------------------ */

/* One address range of one (kind, rule) before the sweep. */
typedef struct span {
    uintptr_t start;
    uintptr_t end;
    unsigned kind;
    unsigned rule;
} span;

typedef struct spans {
    span *v;
    size_t n;
    size_t cap;
} spans;

static int push_span(spans *s, uintptr_t start, uintptr_t end, unsigned kind,
                     unsigned rule_index)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        span *v = smpi_meta_alloc(cap * sizeof *v);
        if (!v)
            return -1;
        if (s->n)
            memcpy(v, s->v, s->n * sizeof *v);
        smpi_meta_free(s->v, s->cap * sizeof *v);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (span){ start, end, kind, rule_index };
    return 0;
}

static int span_order(const void *a, const void *b)
{
    const span *x = a, *y = b;

    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->rule != y->rule)
        return x->rule < y->rule ? -1 : 1;
    return (x->start > y->start) - (x->start < y->start);
}

static int lib_matches(const ruleset *rs, unsigned rule_index, const char *name)
{
    for (unsigned i = 0; i < rs->npatterns; i++) {
        const pattern *pat = &rs->patterns[i];
        if (pat->rule == rule_index && pat->kind == KIND_LIB &&
            smpi_glob_match(pat->glob, name))
            return 1;
    }
    return 0;
}

/* Every range any selector resolved to, from the current objects. */
static int gather(const ruleset *rs, spans *s)
{
    const smpi_object *o;

    for (o = smpi_symbols_objects(); o; o = o->next) {
        for (size_t i = 0; i < o->nhits; i++) {
            const pattern *pat =
                &rs->patterns[rs->glob_pattern[o->hits[i].glob]];
            if (push_span(s, o->hits[i].start, o->hits[i].end, pat->kind,
                          pat->rule))
                return -1;
        }
        for (unsigned r = 0; r < rs->nrules; r++) {
            if (!(rs->rules[r].kinds & (1u << KIND_LIB)) ||
                !lib_matches(rs, r, o->name))
                continue;
            for (unsigned c = 0; c < o->ncode; c++)
                if (push_span(s, o->code[c].start, o->code[c].end, KIND_LIB, r))
                    return -1;
        }
    }
    return 0;
}

/* Joins overlapping and touching spans of one (kind, rule). */
static void merge(spans *s)
{
    size_t kept = 0;

    if (s->n < 2)
        return;
    qsort(s->v, s->n, sizeof *s->v, span_order);
    for (size_t i = 0; i < s->n; i++) {
        span *last = kept ? &s->v[kept - 1] : NULL;
        if (last && last->kind == s->v[i].kind && last->rule == s->v[i].rule &&
            s->v[i].start <= last->end) {
            if (s->v[i].end > last->end)
                last->end = s->v[i].end;
            continue;
        }
        s->v[kept++] = s->v[i];
    }
    s->n = kept;
}

/* A span's start or end, for the sweep. */
typedef struct event {
    uintptr_t at;
    unsigned is_start;
    unsigned kind;
    unsigned rule;
} event;

static int event_order(const void *a, const void *b)
{
    const event *x = a, *y = b;

    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    /* ends first, so that touching spans leave no gap in the masks */
    return (int)x->is_start - (int)y->is_start;
}

static uint64_t *mask_of(interval *iv, unsigned kind)
{
    return kind == KIND_CALLER ? &iv->caller
           : kind == KIND_LIB  ? &iv->lib
                               : &iv->fn;
}

/* Turns merged spans into disjoint intervals, each with its masks. */
static int sweep(const spans *s, table *t)
{
    size_t nev = 2 * s->n;
    event *ev = smpi_meta_alloc((nev ? nev : 1) * sizeof *ev);
    if (!ev)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        ev[2 * i] = (event){ s->v[i].start, 1, s->v[i].kind, s->v[i].rule };
        ev[2 * i + 1] = (event){ s->v[i].end, 0, s->v[i].kind, s->v[i].rule };
    }
    qsort(ev, nev, sizeof *ev, event_order);

    t->iv = smpi_meta_alloc((nev ? nev : 1) * sizeof *t->iv);
    if (!t->iv) {
        smpi_meta_free(ev, (nev ? nev : 1) * sizeof *ev);
        return -1;
    }

    interval cur = { 0, 0, 0, 0 };
    for (size_t i = 0; i < nev;) {
        uintptr_t at = ev[i].at;
        for (; i < nev && ev[i].at == at; i++) {
            uint64_t bit = (uint64_t)1 << ev[i].rule;
            uint64_t *m = mask_of(&cur, ev[i].kind);
            *m = ev[i].is_start ? *m | bit : *m & ~bit;
        }

        interval *last = t->niv ? &t->iv[t->niv - 1] : NULL;
        if (last && last->caller == cur.caller && last->lib == cur.lib &&
            last->fn == cur.fn)
            continue;
        cur.start = at;
        t->iv[t->niv++] = cur;
    }
    smpi_meta_free(ev, (nev ? nev : 1) * sizeof *ev);
    return 0;
}

static void table_free(table *t)
{
    if (!t)
        return;
    smpi_meta_free(t->iv, (t->niv ? t->niv : 1) * sizeof *t->iv);
    smpi_meta_free(t->sizes, (t->nsizes ? t->nsizes : 1) * sizeof *t->sizes);
    smpi_meta_free((void *)t->decisions, DECISIONS * sizeof *t->decisions);
    smpi_meta_free(t, sizeof *t);
}

/* Which rules have something for each of their address selectors. */
static uint64_t live_rules(const ruleset *rs, const spans *s)
{
    uint64_t seen[KIND_ALL] = { 0 };
    uint64_t live = 0;

    for (size_t i = 0; i < s->n; i++)
        seen[s->v[i].kind] |= (uint64_t)1 << s->v[i].rule;
    for (unsigned r = 0; r < rs->nrules; r++) {
        uint64_t bit = (uint64_t)1 << r;
        int ok = 1;
        for (unsigned k = KIND_FN; k <= KIND_LIB; k++)
            if ((rs->rules[r].kinds & (1u << k)) && !(seen[k] & bit))
                ok = 0;
        if (ok)
            live |= bit;
    }
    return live;
}

static void fn_bounds(const spans *s, table *t)
{
    uintptr_t lo = UINTPTR_MAX, hi = 0;


    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].kind != KIND_FN)
            continue;
        if (s->v[i].start < lo)
            lo = s->v[i].start;
        if (s->v[i].end > hi)
            hi = s->v[i].end;
    }
    t->fn_lo = lo;
    t->fn_span = hi > lo ? hi - lo : 0;
}

/* 'all=*' first: every allocation goes there without a look-up. */
static int first_takes_all(const table *t)
{
    uint64_t bit, conditional = t->has_caller | t->has_lib | t->has_fn;
    unsigned r;

    if (!t->live)
        return -1;
    r = (unsigned)__builtin_ctzll(t->live);
    bit = (uint64_t)1 << r;
    if ((conditional & bit) || t->rules[r].nsizes)
        return -1;
    return t->rules[r].pool;
}

static int size_fits(const table_rule *tr, size_t size)
{
    for (unsigned i = 0; i < tr->nsizes; i++)
        if (size >= tr->sizes[i].min && size <= tr->sizes[i].max)
            return 1;
    return tr->nsizes == 0;
}

static int by_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    return x < y ? -1 : x > y;
}

/*
 * The sizes where some rule's size: starts or stops holding cut the
 * sizes into slices; each knows the rules its sizes fit, so an
 * allocation's size is one look-up whatever the number of rules.
 */
static int build_sizes(table *t)
{
    size_t cuts[1 + RULES_MAX * SIZES_MAX * 2];
    unsigned n = 0, m = 0;

    cuts[n++] = 0;
    for (unsigned r = 0; r < t->nrules; r++)
        for (unsigned i = 0; i < t->rules[r].nsizes; i++) {
            cuts[n++] = t->rules[r].sizes[i].min;
            if (t->rules[r].sizes[i].max != SIZE_MAX)
                cuts[n++] = t->rules[r].sizes[i].max + 1;
        }
    qsort(cuts, n, sizeof *cuts, by_size);
    t->sizes = smpi_meta_alloc(n * sizeof *t->sizes);
    if (!t->sizes)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        if (i && cuts[i] == cuts[i - 1])
            continue;
        t->sizes[m].lo = cuts[i];
        t->sizes[m].fits = 0;
        for (unsigned r = 0; r < t->nrules; r++)
            if (size_fits(&t->rules[r], cuts[i]))
                t->sizes[m].fits |= (uint64_t)1 << r;
        m++;
    }
    /* freed with the count it was made with */
    if (m < n) {
        size_slice *fit = smpi_meta_alloc(m * sizeof *fit);
        if (!fit)
            return -1;
        memcpy(fit, t->sizes, m * sizeof *fit);
        smpi_meta_free(t->sizes, n * sizeof *t->sizes);
        t->sizes = fit;
    }
    t->nsizes = m;
    return 0;
}

static table *build_table(const ruleset *rs)
{
    spans s = { 0 };
    table *t = smpi_meta_alloc(sizeof *t);

    if (!t)
        return NULL;
    if (gather(rs, &s)) {
        smpi_meta_free(s.v, s.cap * sizeof *s.v);
        table_free(t);
        return NULL;
    }
    merge(&s);
    fn_bounds(&s, t);
    int failed = sweep(&s, t);
    t->live = live_rules(rs, &s);
    smpi_meta_free(s.v, s.cap * sizeof *s.v);
    if (failed) {
        table_free(t);
        return NULL;
    }

    t->nrules = rs->nrules;
    for (unsigned r = 0; r < rs->nrules; r++) {
        const rule *ru = &rs->rules[r];
        uint64_t bit = (uint64_t)1 << r;
        t->rules[r].pool = (int)ru->pool;
        t->rules[r].nsizes = ru->nsizes;
        for (unsigned i = 0; i < ru->nsizes; i++) {
            t->rules[r].sizes[i].min = ru->min[i];
            t->rules[r].sizes[i].max = ru->max[i];
        }
        if (ru->kinds & (1u << KIND_CALLER))
            t->has_caller |= bit;
        if (ru->kinds & (1u << KIND_LIB))
            t->has_lib |= bit;
        if (ru->kinds & (1u << KIND_FN))
            t->has_fn |= bit;
    }
    t->has_site = t->has_caller | t->has_lib | t->has_fn;
    t->always = first_takes_all(t);
    t->decisions = smpi_meta_alloc(DECISIONS * sizeof *t->decisions);
    if (!t->decisions || build_sizes(t)) {
        table_free(t);
        return NULL;
    }
    return t;
}

static int same_table(const table *a, const table *b)
{
    return a && b && a->live == b->live && a->niv == b->niv &&
           !memcmp(a->iv, b->iv, a->niv * sizeof *a->iv);
}

/* ------------------------------------------------------------------ */
/* Matching                                                           */
/* ------------------------------------------------------------------ */

typedef struct look {
    uint64_t site; /* rules whose caller: and lib: selectors hold */
    uint64_t fn;   /* rules with an fn: function around this address */
} look;

static void compute(const table *t, uintptr_t pc, look *out)
{
    /* a return address may lie one past a function ending in a call */
    uintptr_t a = pc - 1;
    size_t lo = 0, hi = t->niv;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->iv[mid].start <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) {
        out->site = ~(t->has_caller | t->has_lib);
        out->fn = 0;
        return;
    }

    const interval *iv = &t->iv[lo - 1];
    out->site = (iv->caller | ~t->has_caller) & (iv->lib | ~t->has_lib);
    out->fn = iv->fn;
}

/* A miss: computes the answer and leaves it in the entry for next time. */
static __attribute__((noinline)) look miss(const table *t, uintptr_t pc,
                                           cache_entry *e, uint32_t seq)
{
    look out;

    compute(t, pc, &out);

    /* another thread is writing this entry: leave it to that thread */
    if ((seq & 1) ||
        !atomic_compare_exchange_strong_explicit(
            &e->seq, &seq, seq + 1, memory_order_relaxed, memory_order_relaxed))
        return out;
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&e->generation, (uint32_t)t->generation,
                          memory_order_relaxed);
    atomic_store_explicit(&e->pc, pc, memory_order_relaxed);
    atomic_store_explicit(&e->site, out.site, memory_order_relaxed);
    atomic_store_explicit(&e->fn, out.fn, memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
    return out;
}

/*
 * A cache entry's sequence, read again after its fields: an acquire fence
 * keeps the field loads before it. ThreadSanitizer does not model fences;
 * its builds read the sequence with a read-modify-write, which orders the
 * loads before it as well, at the price of a locked instruction.
 */
#if defined(__SANITIZE_THREAD__)
#define SEQ_BY_RMW 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SEQ_BY_RMW 1
#endif
#endif

static inline uint32_t seq_again(_Atomic uint32_t *seq)
{
#ifdef SEQ_BY_RMW
    return atomic_fetch_add_explicit(seq, 0, memory_order_acq_rel);
#else
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(seq, memory_order_relaxed);
#endif
}

/* What the tables say of the code at return address pc: usually a hit. */
static inline look lookup(const table *t, uintptr_t pc)
{
    cache_entry *e = &cache[(pc * 0x9e3779b97f4a7c15ull) >> (64 - CACHE_BITS)];
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);
    look out;

    if (!(seq & 1) &&
        atomic_load_explicit(&e->pc, memory_order_relaxed) == pc &&
        atomic_load_explicit(&e->generation, memory_order_relaxed) ==
            (uint32_t)t->generation) {
        out.site = atomic_load_explicit(&e->site, memory_order_relaxed);
        out.fn = atomic_load_explicit(&e->fn, memory_order_relaxed);
        if (seq_again(&e->seq) == seq)
            return out;
    }
    return miss(t, pc, e, seq);
}

/* The slice that holds size: the last whose lo is at most size. */
static inline unsigned slice_of(const table *t, size_t size)
{
    unsigned lo = 0, hi = t->nsizes;

    /* rule sets name few sizes: a look at each beats halving */
    if (hi <= 4) {
        while (lo + 1 < hi && t->sizes[lo + 1].lo <= size)
            lo++;
        return lo;
    }
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (t->sizes[mid].lo <= size)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* The rules with an fn: function among frames pcs[from..n). */
static uint64_t fn_rules_of(const table *t, const uintptr_t *pcs, int from,
                            int n)
{
    uint64_t fn = 0;

    for (int i = from; i < n; i++) {
        /* most frames lie outside every fn: function: skip the look-up */
        if (pcs[i] - 1 - t->fn_lo >= t->fn_span)
            continue;
        fn |= lookup(t, pcs[i]).fn;
    }
    return fn;
}

typedef struct fn_walk {
    const table *t;
    uintptr_t caller;
    int depth;
} fn_walk;

/*
 * The same for a walk that starts inside the runtime: from the caller's
 * frame on, depth frames; all of them when no frame is the caller's (a
 * tail call). A function of the stack, so the thread keeps it with it.
 */
static uint64_t fn_rules_of_walk(const uintptr_t *pcs, int n, void *ctx)
{
    const fn_walk *w = ctx;

    for (int i = 0; i < n && i < WALK_SLACK; i++)
        if (pcs[i] == w->caller)
            return fn_rules_of(w->t, pcs, i,
                               n - i > w->depth ? i + w->depth : n);
    return fn_rules_of(w->t, pcs, 0, n);
}

/* The rules with an fn: function among the caller's depth frames. */
static uint64_t walk_fn(const table *t, uintptr_t caller)
{
    uintptr_t pcs[SMPI_RULES_DEPTH_MAX + WALK_SLACK];
    int depth = smpi_rules_depth;
    fn_walk w;

    if (depth < 1)
        depth = 1;
    if (depth > SMPI_RULES_DEPTH_MAX)
        depth = SMPI_RULES_DEPTH_MAX;
    w = (fn_walk){ t, caller, depth };

    if (depth + WALK_SLACK <= SMPI_WALK_MEMO_MAX) {
        smpi_memo_req req = { SMPI_MEMO_RULES, 0, fn_rules_of_walk, &w };

        /* the answer depends on the table and the depth too */
        req.key = (uint64_t)t->generation << 16 | (uint64_t)depth |
                  (uint64_t)1 << 63;
        return smpi_stack_memo(depth + WALK_SLACK, 0, &req);
    }
    /* deeper than any walk kept with the stack: every frame, each time */
    return fn_rules_of_walk(pcs, smpi_stack_walk(pcs, depth + WALK_SLACK, 0),
                            &w);
}

/*
 * The first of the candidates whose fn: selectors hold, walking the stack
 * once when a candidate's hold or not only the walk can tell.
 */
static __attribute__((noinline)) int
match_walking(const table *t, uint64_t candidates, uint64_t fn,
              uintptr_t caller)
{
    int walked = 0;

    while (candidates) {
        unsigned r = (unsigned)__builtin_ctzll(candidates);
        uint64_t bit = (uint64_t)1 << r;
        candidates &= candidates - 1;

        /* the caller's own function may settle fn: without a walk; the
           walk's first use on a thread may allocate, which must pass */
        if ((t->has_fn & bit) && !(fn & bit) && !walked) {
            smpi_guard++;
            fn |= walk_fn(t, caller);
            smpi_guard--;
            walked = 1;
        }
        if ((t->has_fn & bit) && !(fn & bit))
            continue;
        return t->rules[r].pool;
    }
    return -1;
}

static int first_pool(const table *t, uint64_t candidates)
{
    return candidates ? t->rules[__builtin_ctzll(candidates)].pool : -1;
}

/* the entry's bit 7 says it was written: a zero word matches nothing */
static uint64_t decision_tag(uintptr_t caller, unsigned slice)
{
    return (uint64_t)caller << 16 | (uint64_t)slice << 8 | 0x80;
}

static _Atomic uint64_t *decision_of(const table *t, uintptr_t caller,
                                     unsigned slice)
{
    uint64_t h = (caller ^ slice) * 0x9e3779b97f4a7c15ull;

    return &t->decisions[h >> (64 - DECISION_BITS)];
}

/* The decision past the table of decisions; kept there if it can be. */
static __attribute__((noinline)) int decide(const table *t, unsigned slice,
                                            uintptr_t caller)
{
    uint64_t candidates, unsettled;
    int pool;
    look lk;

    /* the size settles most rules, the caller most of the others */
    candidates = t->live & t->sizes[slice].fits;
    if (candidates & t->has_site) {
        lk = lookup(t, caller);
        candidates &= lk.site;
        /* a candidate before the first settled one needs the walk */
        unsettled = candidates & t->has_fn & ~lk.fn;
        if (unsettled &&
            (candidates & -candidates) == (unsettled & -unsettled))
            return match_walking(t, candidates, lk.fn, caller);
    }
    pool = first_pool(t, candidates);

    /* user space addresses have 47 bits: the tag keeps them whole */
    if (slice < 0xff && caller < ((uintptr_t)1 << 48))
        atomic_store_explicit(decision_of(t, caller, slice),
                              decision_tag(caller, slice) |
                                  (uint64_t)(pool + 1),
                              memory_order_relaxed);
    return pool;
}

int smpi_rules_match(size_t size, uintptr_t caller)
{
    const table *t = atomic_load_explicit(&current_table, memory_order_acquire);
    unsigned slice;
    uint64_t d;

    if (!t)
        return -1;
    if (t->always >= 0)
        return t->always;
    slice = slice_of(t, size);
    d = atomic_load_explicit(decision_of(t, caller, slice),
                             memory_order_relaxed);
    if ((d & ~(uint64_t)0x7f) == decision_tag(caller, slice))
        return (int)(d & 0x7f) - 1;
    return decide(t, slice, caller);
}

const char *smpi_rules_pool_name(int pool)
{
    ruleset *rs = atomic_load_explicit(&current_rules, memory_order_acquire);

    if (!rs || pool < 0 || (unsigned)pool >= rs->npools)
        return NULL;
    return rs->pools[pool];
}

/* ------------------------------------------------------------------ */
/* What the rules resolved to                                         */
/* ------------------------------------------------------------------ */

typedef struct line {
    char text[900];
    size_t n;
} line;

__attribute__((format(printf, 2, 3))) static void put(line *l, const char *fmt,
                                                      ...)
{
    va_list ap;

    if (l->n >= sizeof l->text - 1)
        return;
    va_start(ap, fmt);
    int k = vsnprintf(l->text + l->n, sizeof l->text - l->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        l->n += (size_t)k;
    if (l->n >= sizeof l->text - 1) {
        l->n = sizeof l->text - 1;
        memcpy(l->text + l->n - 4, " ...", 4);
    }
}

static unsigned long count_hits(const smpi_object *o, unsigned glob)
{
    unsigned long n = 0;

    for (size_t i = 0; i < o->nhits; i++)
        n += o->hits[i].glob == glob;
    return n;
}

/* Functions (fn:, caller:) or objects (lib:) one pattern matched. */
static unsigned long describe(const ruleset *rs, unsigned pi, line *l)
{
    const pattern *pat = &rs->patterns[pi];
    unsigned long total = 0;
    unsigned glob = 0;

    for (unsigned g = 0; g < rs->nglobs; g++)
        if (rs->glob_pattern[g] == pi)
            glob = g;

    for (const smpi_object *o = smpi_symbols_objects(); o; o = o->next) {
        if (pat->kind == KIND_LIB) {
            if (smpi_glob_match(pat->glob, o->name)) {
                put(l, "%s%s", total ? ", " : ": ", o->name);
                total++;
            }
            continue;
        }
        unsigned long n = count_hits(o, glob);
        if (n)
            put(l, "%s%lu in %s", total ? ", " : ": ", n, o->name);
        total += n;
    }
    return total;
}

static void tell(ruleset *rs, int startup)
{
    for (unsigned i = 0; i < rs->npatterns; i++) {
        pattern *pat = &rs->patterns[i];
        const rule *r = &rs->rules[pat->rule];
        line detail = { .n = 0 };
        unsigned long n = describe(rs, i, &detail);
        int lib = pat->kind == KIND_LIB;

        if (!startup && n == pat->resolved)
            continue;
        pat->resolved = n;
        if (n == 0 && startup) {
            smpi_log(SMPI_LOG_WARN,
                     "SMP_POOL_SCOPE: rule '%.*s': %s:%s matches no %s "
                     "(checked again after dlopen)",
                     r->text_len, r->text, smpi_rule_kinds[pat->kind],
                     pat->glob,
                     lib ? "loaded object" : "function in any loaded object");
            continue;
        }
        smpi_log(SMPI_LOG_INFO,
                 "SMP_POOL_SCOPE: rule %u (pool '%s'): "
                 "%s:%s %s %lu %s%s%.*s",
                 pat->rule + 1, rs->pools[r->pool], smpi_rule_kinds[pat->kind],
                 pat->glob, startup ? "resolves to" : "now resolves to", n,
                 lib ? "object" : "function", n == 1 ? "" : "s", (int)detail.n,
                 detail.text);
    }
}

/* ------------------------------------------------------------------ */
/* Loading and refreshing                                             */
/* ------------------------------------------------------------------ */

static void lock_before_fork(void)
{
    pthread_mutex_lock(&rules_lock);
}

static void unlock_after_fork(void)
{
    pthread_mutex_unlock(&rules_lock);
}

static void child_after_fork(void)
{
    pthread_mutex_init(&rules_lock, NULL);
}

/*
 * Makes t the table matchers read. The one it replaces is kept: a thread
 * may be reading it right now, and nothing tells when it is done.
 */
static void publish(table *t)
{
    table *old = atomic_load_explicit(&current_table, memory_order_relaxed);

    t->generation = ++generation;
    atomic_store_explicit(&current_table, t, memory_order_release);
    if (old) {
        old->retired = retired_tables;
        retired_tables = old;
    }
}

/*
 * A new load: no thread matches meanwhile (see rules.h), so the rules and
 * tables of the previous load can go.
 */
static void drop_previous(ruleset *old)
{
    while (retired_tables) {
        table *next = retired_tables->retired;
        table_free(retired_tables);
        retired_tables = next;
    }
    if (old)
        smpi_ruleset_free(old);
}

static int load_locked(const char *text)
{
    int errors;
    ruleset *rs = smpi_ruleset_parse(text, &errors);

    if (!rs) {
        smpi_log(SMPI_LOG_ERROR, "SMP_POOL_SCOPE: out of memory");
        return -1;
    }
    if (errors && smpi_opt.config_errors == SMPI_CONFIG_ERRORS_EXIT) {
        smpi_ruleset_free(rs);
        return -1;
    }

    ruleset *old = atomic_load_explicit(&current_rules, memory_order_relaxed);
    table *t = NULL;
    smpi_symbols_reset(rs->globs, rs->nglobs);
    if (smpi_symbols_update() < 0 || !(t = build_table(rs))) {
        smpi_log(SMPI_LOG_ERROR, "SMP_POOL_SCOPE: out of memory while "
                                 "reading symbols");
        /* the earlier rules stay; their objects are read again on refresh */
        smpi_symbols_reset(old ? old->globs : NULL, old ? old->nglobs : 0);
        smpi_ruleset_free(rs);
        return -1;
    }

    atomic_store_explicit(&current_rules, rs, memory_order_release);
    publish(t);
    drop_previous(old);
    smpi_rules_active = rs->nrules > 0;
    tell(rs, 1);
    return errors ? -1 : 0;
}

int smpi_rules_load(const char *text)
{
    pthread_mutex_lock(&rules_lock);
    if (!atfork_done) {
        pthread_atfork(lock_before_fork, unlock_after_fork, child_after_fork);
        atfork_done = 1;
    }
    int rc = load_locked(text);
    pthread_mutex_unlock(&rules_lock);
    return rc;
}

void smpi_rules_refresh(void)
{
    ruleset *rs = atomic_load_explicit(&current_rules, memory_order_acquire);

    if (!rs || !rs->nrules)
        return;

    pthread_mutex_lock(&rules_lock);
    if (smpi_symbols_update() > 0) {
        table *t = build_table(rs);
        table *cur = atomic_load_explicit(&current_table, memory_order_relaxed);
        if (t && same_table(t, cur))
            table_free(t);
        else if (t)
            publish(t);
        tell(rs, 0);
    }
    pthread_mutex_unlock(&rules_lock);
}
