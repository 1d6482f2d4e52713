/*
 * Stack capture and the stack depot.
 *
 * Capture uses unw_backtrace: libunwind's per-thread trace cache makes it
 * the cheapest exact walk available here (a unw_step loop or libgcc's
 * _Unwind_Backtrace costs about 0.7 us a frame on these machines; see
 * tests/bench/bench_stacks.c). Neither calls malloc.
 *
 * The depot keeps each distinct stack once. Records live in 1 MiB chunks
 * of bookkeeping memory and hang off a fixed table of hash chains; both
 * grow without a lock (a compare-and-swap per insert), so a thread that
 * forks or is stopped by the leak scan can never leave a lock held.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "meta.h"
#include "options.h"
#include "stack.h"
#include "thread.h"
#include "unwind.h"

#define CHUNK_SHIFT 20
#define CHUNK_SIZE ((size_t)1 << CHUNK_SHIFT)
#define CHUNKS_MAX 4096 /* 4 GiB of distinct stacks */
#define HEADS_SHIFT 16

typedef struct record {
    _Atomic uint32_t next; /* id of the next record in the chain */
    uint32_t hash;
    uint32_t count;
    uint32_t unused;
    uintptr_t pcs[];
} record;

static _Atomic(char *) chunks[CHUNKS_MAX];
static _Atomic uint64_t cursor; /* chunk << CHUNK_SHIFT | offset */
static _Atomic(_Atomic uint32_t *) heads;

/* Ids count 8-byte units from the start of chunk 0; 0 means none. */
static record *lookup(uint32_t id)
{
    uint64_t at = ((uint64_t)id - 1) << 3;
    uint64_t chunk = at >> CHUNK_SHIFT;
    char *base;

    if (id == 0 || chunk >= CHUNKS_MAX)
        return NULL;
    base = atomic_load_explicit(&chunks[chunk], memory_order_acquire);
    if (!base || (at & (CHUNK_SIZE - 1)) + sizeof(record) > CHUNK_SIZE)
        return NULL;
    return (record *)(base + (at & (CHUNK_SIZE - 1)));
}

static char *chunk_base(uint64_t chunk)
{
    char *base = atomic_load_explicit(&chunks[chunk], memory_order_acquire);
    char *fresh;

    if (base)
        return base;
    fresh = smpi_meta_alloc(CHUNK_SIZE);
    if (!fresh)
        return NULL;
    if (atomic_compare_exchange_strong(&chunks[chunk], &base, fresh))
        return fresh;
    smpi_meta_free(fresh, CHUNK_SIZE); /* another thread was first */
    return base;
}

/* Room for one record; its id, or 0 when memory ran out. */
static uint32_t reserve(size_t size)
{
    uint64_t at = atomic_load_explicit(&cursor, memory_order_relaxed);
    uint64_t start, end;

    for (;;) {
        start = at;
        if ((start & (CHUNK_SIZE - 1)) + size > CHUNK_SIZE)
            start = ((start >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;
        end = start + size;
        if ((start >> CHUNK_SHIFT) >= CHUNKS_MAX)
            return 0;
        if (atomic_compare_exchange_weak(&cursor, &at, end))
            break;
    }
    if (!chunk_base(start >> CHUNK_SHIFT))
        return 0;
    return (uint32_t)((start >> 3) + 1);
}

static _Atomic uint32_t *chain_heads(void)
{
    _Atomic uint32_t *table = atomic_load_explicit(&heads,
                                                   memory_order_acquire);
    _Atomic uint32_t *fresh;
    size_t size = sizeof(uint32_t) << HEADS_SHIFT;

    if (table)
        return table;
    fresh = smpi_meta_alloc(size);
    if (!fresh)
        return NULL;
    if (atomic_compare_exchange_strong(&heads, &table, fresh))
        return fresh;
    smpi_meta_free(fresh, size);
    return table;
}

/* Four lanes, so that the multiplications do not wait for each other. */
static uint32_t hash_of(const uintptr_t *pcs, int n)
{
    uint64_t lane[4] = { 0x9e3779b97f4a7c15u ^ (uint64_t)n, 1, 2, 3 };
    uint64_t h;
    int i;

    for (i = 0; i + 4 <= n; i += 4) {
        for (int j = 0; j < 4; j++)
            lane[j] = (lane[j] ^ pcs[i + j]) * 0xff51afd7ed558ccdu;
    }
    for (; i < n; i++)
        lane[0] = (lane[0] ^ pcs[i]) * 0xff51afd7ed558ccdu;
    h = lane[0] ^ (lane[1] >> 7) ^ (lane[2] >> 13) ^ (lane[3] >> 29);
    h ^= h >> 32;
    return (uint32_t)(h * 0xc4ceb9fe1a85ec53u >> 32);
}

static int same(const record *r, uint32_t hash, const uintptr_t *pcs,
                int n)
{
    return r->hash == hash && r->count == (uint32_t)n &&
           memcmp(r->pcs, pcs, (size_t)n * sizeof *pcs) == 0;
}

/* Walks the chain from id down to stop (exclusive) looking for pcs. */
static uint32_t find(uint32_t id, uint32_t stop, uint32_t hash,
                     const uintptr_t *pcs, int n)
{
    while (id && id != stop) {
        record *r = lookup(id);
        if (same(r, hash, pcs, n))
            return id;
        id = atomic_load_explicit(&r->next, memory_order_acquire);
    }
    return 0;
}

static uint32_t depot_put(const uintptr_t *pcs, int n)
{
    _Atomic uint32_t *table = chain_heads();
    uint32_t hash = hash_of(pcs, n);
    uint32_t head, seen = 0, mine = 0, found;
    _Atomic uint32_t *slot;

    if (!table)
        return 0;
    slot = &table[hash & ((1u << HEADS_SHIFT) - 1)];
    head = atomic_load_explicit(slot, memory_order_acquire);
    for (;;) {
        /* only records pushed since the last look can be new */
        found = find(head, seen, hash, pcs, n);
        if (found)
            return found; /* a record of ours, if any, stays unused */
        if (!mine) {
            mine = reserve(sizeof(record) + (size_t)n * sizeof *pcs);
            if (!mine)
                return 0;
            record *r = lookup(mine);
            r->hash = hash;
            r->count = (uint32_t)n;
            memcpy(r->pcs, pcs, (size_t)n * sizeof *pcs);
        }
        atomic_store_explicit(&lookup(mine)->next, head,
                              memory_order_relaxed);
        seen = head;
        if (atomic_compare_exchange_weak_explicit(slot, &head, mine,
                                                  memory_order_release,
                                                  memory_order_acquire))
            return mine;
    }
}

/* ---- walking ---- */

/*
 * Frames are walked with the rules of smpi_unwind_rule: a table look-up
 * and two loads a frame, where unw_backtrace spends about 8 ns. Every
 * load stays inside the thread's stack; a frame the rules do not cover
 * (a signal frame, code without unwind tables, another stack) sends the
 * whole capture to libunwind instead, so the result never changes.
 */
typedef struct frame_state {
    uintptr_t ip, sp, rbp; /* ip: a return address; sp: the caller's */
} frame_state;

static __thread uintptr_t stack_lo SMPI_TLS, stack_hi SMPI_TLS;

static void find_stack(void)
{
    pthread_attr_t attr;
    void *lo;
    size_t size;

    stack_hi = 1; /* tried: a failure is not retried on every capture */
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
        stack_lo = (uintptr_t)lo;
        stack_hi = (uintptr_t)lo + size;
    }
    pthread_attr_destroy(&attr);
}

static int on_stack(uintptr_t at)
{
    return at >= stack_lo && at + sizeof(uintptr_t) <= stack_hi;
}

static uintptr_t word_at(uintptr_t base, int off)
{
    return *(const uintptr_t *)(base + (uintptr_t)(intptr_t)off);
}

/*
 * Each thread keeps the frames of its last few walks, outermost first. A
 * new walk goes up from the innermost frame until it reaches a frame of
 * a kept walk with the same return address and stack pointer. From there
 * on the walk is a function of rbp and of the memory it would read: the
 * return addresses and saved rbp values of the older frames. When each of
 * those words still holds what the kept walk read, the older frames are
 * the kept ones, exactly, and are taken without a rule look-up.
 */
#define CHAIN_MAX (2 * SMPI_STACK_DEPTH_MAX + 2)
/*
 * Chains kept per thread. One measured best (sqlite3, 200k inserts):
 * stacks rarely meet an older walk at the same depth, so more chains
 * cost more in checks and copies than they save in rule look-ups.
 */
#define CHAINS 1
#define NEAR_RULES 256 /* a power of two */

typedef struct chain {
    int n;        /* frames held: f[0] outermost, f[n - 1] innermost */
    int complete; /* f[0] is the outermost frame of the stack */
    unsigned used; /* when it last served a walk */
    frame_state f[CHAIN_MAX];
    smpi_frame_rule r[CHAIN_MAX]; /* how f[i] steps to f[i - 1] */
} chain;

typedef struct near_rule {
    uintptr_t ip;
    smpi_frame_rule r;
    int bad;
} near_rule;

typedef struct history {
    int busy;     /* a signal handler's capture must not use it */
    unsigned generation;
    unsigned clock;
    chain chains[CHAINS];
    /* the rules this thread used last: the shared table is larger and
       colder, and costs a cache miss or two a frame */
    near_rule near[NEAR_RULES];
} history;

static __thread history *my_history SMPI_TLS;
static pthread_key_t history_key;
static pthread_once_t history_once = PTHREAD_ONCE_INIT;

static void history_free(void *h)
{
    my_history = NULL;
    smpi_meta_free(h, sizeof(history));
}

static void history_key_make(void)
{
    pthread_key_create(&history_key, history_free);
}

static history *history_get(void)
{
    history *h = my_history;

    if (h)
        return h;
    h = smpi_meta_alloc(sizeof *h);
    if (!h)
        return NULL;
    pthread_once(&history_once, history_key_make);
    pthread_setspecific(history_key, h);
    my_history = h;
    return h;
}

/* The rule for ip, from the thread's own cache when it has it. */
static inline __attribute__((always_inline)) int
rule_of(history *h, uintptr_t ip, smpi_frame_rule *r)
{
    near_rule *n;

    if (!h)
        return smpi_unwind_rule(ip, r);
    n = &h->near[(ip ^ (ip >> 9)) & (NEAR_RULES - 1)];
    if (n->ip != ip) {
        n->bad = smpi_unwind_rule(ip, &n->r);
        n->ip = ip;
    }
    *r = n->r;
    return n->bad;
}

/*
 * Moves f to the caller's frame, leaving the rule used in r: 0, 1 when f
 * was the outermost frame, 2 when the caller's return address is zero,
 * -1 when the rule is unsupported.
 */
static inline __attribute__((always_inline)) int
apply(frame_state *f, const smpi_frame_rule *r)
{
    uintptr_t ip, sp = f->sp, rbp = f->rbp, cfa;

    if (r->last)
        return 1;
    cfa = (r->cfa_rbp ? rbp : sp) + (uintptr_t)(intptr_t)r->cfa_off;
    if (cfa <= sp || !on_stack(cfa + (uintptr_t)(intptr_t)r->ra_off) ||
        (r->rbp_saved && !on_stack(cfa + (uintptr_t)(intptr_t)r->rbp_off)))
        return -1;
    ip = word_at(cfa, r->ra_off);
    if (r->rbp_saved)
        rbp = word_at(cfa, r->rbp_off);
    *f = (frame_state){ ip, cfa, rbp };
    return ip ? 0 : 2;
}

static inline __attribute__((always_inline)) int
step(history *h, frame_state *f, smpi_frame_rule *r)
{
    if (rule_of(h, f->ip, r))
        return -1;
    return apply(f, r);
}

/*
 * How far down from f[a] do the words read by the steps still hold what
 * the walk read when it filled the chain? Returns the lowest index m,
 * at least a - count + 1, such that f[a..m] are frames of this stack.
 * rbp is part of a frame's state, but code built without frame pointers
 * uses it as an ordinary register: a different value only matters to a
 * rule that finds the CFA through rbp before a frame restores rbp.
 */
static int still_valid(const chain *c, int a, int count, int rbp_same)
{
    int m;

    for (m = a; m > a - count + 1; m--) {
        const smpi_frame_rule *r = &c->r[m];
        const frame_state *older = &c->f[m - 1];

        if ((r->cfa_rbp && !rbp_same) ||
            word_at(older->sp, r->ra_off) != older->ip)
            return m;
        if (r->rbp_saved) {
            if (word_at(older->sp, r->rbp_off) != older->rbp)
                return m;
            rbp_same = 1;
        }
    }
    return m;
}

/*
 * The kept frames f[a - count + 1 .. a] take this walk's rbp until a
 * checked step restores it from memory. Without such a step, the frames
 * below the checked ones were found with the old rbp: they are dropped.
 * Returns the new index of the old f[a].
 */
static int adopt_rbp(chain *c, int a, int count, uintptr_t rbp)
{
    int lowest = a - count + 1;

    for (int m = a; m >= lowest; m--) {
        c->f[m].rbp = rbp;
        if (c->r[m].rbp_saved && m > lowest)
            return a;
    }
    memmove(c->f, c->f + lowest, (size_t)count * sizeof *c->f);
    memmove(c->r, c->r + lowest, (size_t)count * sizeof *c->r);
    c->complete = 0;
    return a - lowest;
}

static int emit(uintptr_t *pcs, int max, unsigned drop,
                const frame_state *top, int k, const chain *c, int a,
                int count)
{
    int n = 0;

    for (int i = 0; i < k && n < max; i++) {
        if (drop)
            drop--;
        else
            pcs[n++] = top[i].ip;
    }
    for (int m = a; m > a - count && n < max; m--) {
        if (drop)
            drop--;
        else
            pcs[n++] = c->f[m].ip;
    }
    return n;
}

/* The new top frames go on top of the old frames kept (f[0..a]). */
static void chain_store(chain *c, int a, const frame_state *top,
                        const smpi_frame_rule *rules, int k)
{
    /* a deeper stack than the chain holds keeps its innermost frames */
    if (a + 1 + k > CHAIN_MAX) {
        int drop = a + 1 + k - CHAIN_MAX;
        memmove(c->f, c->f + drop, (size_t)(a + 1 - drop) * sizeof *c->f);
        memmove(c->r, c->r + drop, (size_t)(a + 1 - drop) * sizeof *c->r);
        a -= drop;
        c->complete = 0;
    }
    for (int i = 0; i < k; i++) {
        c->f[a + k - i] = top[i];
        c->r[a + k - i] = rules[i];
    }
    c->n = a + 1 + k;
}

static chain *least_used(history *h)
{
    chain *victim = &h->chains[0];

    for (int i = 1; i < CHAINS; i++) {
        if (h->chains[i].used < victim->used)
            victim = &h->chains[i];
    }
    return victim;
}

/*
 * The walk found its frame f, the k-th, as frame a of chain c, and the
 * kept frames hold as far as it needs: emits them, and keeps the new
 * stack as a chain of its own (a new top over an old one), so that the
 * old chain stays for the stacks that share more of it.
 */
static int finish(history *h, chain *c, int a, int count, frame_state f,
                  const frame_state *top, const smpi_frame_rule *rules,
                  int k, uintptr_t *pcs, int max, unsigned drop)
{
    int n = emit(pcs, max, drop, top, k, c, a, count);
    chain *to = k ? least_used(h) : c;

    if (to != c) {
        int low = a - count + 1;
        memcpy(to->f, c->f + low, (size_t)count * sizeof *to->f);
        memcpy(to->r, c->r + low, (size_t)count * sizeof *to->r);
        to->complete = c->complete && low == 0;
        a = count - 1;
    }
    if (to->f[a].rbp != f.rbp)
        a = adopt_rbp(to, a, count, f.rbp);
    chain_store(to, a, top, rules, k);
    c->used = ++h->clock;
    to->used = ++h->clock;
    return n;
}

/*
 * Frames f[a..low + 1] of chain c hold for this stack: they go into top
 * without a rule look-up, and the walk goes on from f[low].
 */
static void take(const chain *c, int a, int low, frame_state *f,
                 frame_state *top, smpi_frame_rule *rules, int *k)
{
    int rbp_same = c->f[a].rbp == f->rbp;
    uintptr_t rbp = f->rbp;

    for (int m = a; m > low; m--) {
        top[*k] = c->f[m];
        rules[*k] = c->r[m];
        if (!rbp_same)
            top[*k].rbp = rbp;
        if (c->r[m].rbp_saved)
            rbp_same = 1;
        ++*k;
    }
    *f = c->f[low];
    if (!rbp_same)
        f->rbp = rbp;
}

/*
 * The walk with the kept chains: returns the frame count, or -1 when a
 * frame is not covered by the rules (the caller then uses libunwind).
 */
static int walk_chained(history *h, frame_state f, uintptr_t *pcs, int max,
                        unsigned drop)
{
    frame_state top[CHAIN_MAX];
    smpi_frame_rule rules[CHAIN_MAX];
    int total = max + (int)drop, k = 0, ended;
    int at[CHAINS];
    chain *c, *c0 = &h->chains[0];
    int guess;

    /* most walks begin with the frames the last one began with */
    for (int i = 0; i < CHAINS; i++) {
        at[i] = h->chains[i].n - 1;
        if (h->chains[i].used > c0->used)
            c0 = &h->chains[i];
    }
    guess = c0->n - 1;
    for (;;) {
        chain *best = NULL;
        int best_a = 0, best_low = 0;

        for (int i = 0; i < CHAINS; i++) {
            int a, need, count, low;

            /* older frames sit higher: each chain is searched downward */
            c = &h->chains[i];
            while (at[i] >= 0 && c->f[at[i]].sp < f.sp)
                at[i]--;
            a = at[i];
            if (a < 0 || c->f[a].sp != f.sp || c->f[a].ip != f.ip)
                continue;
            need = total - k;
            count = need < a + 1 ? need : a + 1;
            low = still_valid(c, a, count, c->f[a].rbp == f.rbp);
            if (low == a - count + 1 && (need <= a + 1 || c->complete))
                return finish(h, c, a, count, f, top, rules, k, pcs, max,
                              drop);
            if (!best || a - low > best_a - best_low) {
                best = c;
                best_a = a;
                best_low = low;
            }
            /* the chain left this stack; it may join it again lower */
            at[i] = low - 1;
        }
        if (best) {
            take(best, best_a, best_low, &f, top, rules, &k);
            guess = -1;
        }

        top[k] = f;
        /* the rule of a return address the last walk met is known */
        if (guess >= 0 && c0->f[guess].ip == f.ip) {
            rules[k] = c0->r[guess--];
            ended = apply(&f, &rules[k]);
        } else {
            guess = -1;
            ended = step(h, &f, &rules[k]);
        }
        k++;
        if (ended < 0)
            return -1;
        if (ended > 0 || k == total)
            break;
    }

    /* a new stack: it replaces the chain unused for longest */
    c = least_used(h);
    c->complete = ended == 1;
    chain_store(c, -1, top, rules, k);
    c->used = ++h->clock;
    if (ended == 2)
        c->n = 0; /* ended by a zero return address: not kept */
    return emit(pcs, max, drop, top, k, c, -1, 0);
}

/* The walk from f without the chains. */
static int walk_from(frame_state f, uintptr_t *pcs, int max, unsigned drop)
{
    smpi_frame_rule r;
    int n = 0;

    for (;;) {
        int ended;

        if (drop)
            drop--;
        else if (n < max)
            pcs[n++] = f.ip;
        if (n == max)
            return n;
        ended = step(NULL, &f, &r);
        if (ended < 0)
            return -1;
        if (ended > 0)
            return n;
    }
}

static int walk_fast(frame_state f, uintptr_t *pcs, int max, unsigned drop)
{
    history *h = history_get();
    unsigned generation = smpi_unwind_generation();
    int n;

    if (!h || h->busy || (int)drop + max > CHAIN_MAX)
        return walk_from(f, pcs, max, drop);
    h->busy = 1;
    if (h->generation != generation) {
        for (int i = 0; i < CHAINS; i++)
            h->chains[i].n = 0;
        memset(h->near, 0, sizeof h->near);
        h->generation = generation;
    }
    n = walk_chained(h, f, pcs, max, drop);
    if (n < 0) {
        for (int i = 0; i < CHAINS; i++)
            h->chains[i].n = 0;
    }
    h->busy = 0;
    return n;
}

/* The libunwind walk; drop counts this function's own frame. */
__attribute__((noinline)) static int slow_walk(uintptr_t *pcs, int max,
                                               unsigned drop)
{
    void *buf[SMPI_STACK_DEPTH_MAX + 64];
    int want = max + (int)drop;
    int n;

    if (want > (int)(sizeof buf / sizeof buf[0]))
        want = (int)(sizeof buf / sizeof buf[0]);
    n = unw_backtrace(buf, want) - (int)drop;
    if (n <= 0)
        return 0;
    if (n > max)
        n = max;
    memcpy(pcs, buf + drop, (size_t)n * sizeof *pcs);
    return n;
}

/*
 * Leaves out drop frames above this function's caller: drop 0 keeps the
 * return address into the caller first. A frame pointer is forced here,
 * so the first frame needs no rule.
 */
__attribute__((noinline)) static int walk(uintptr_t *pcs, int max,
                                          unsigned drop)
{
    const uintptr_t *fp = __builtin_frame_address(0);
    frame_state f = { fp[1], (uintptr_t)(fp + 2), fp[0] };
    int n;

    if (max <= 0 || drop > 64)
        return 0;
    if (!stack_hi)
        find_stack();
    n = walk_fast(f, pcs, max, drop);
    if (n < 0)
        n = slow_walk(pcs, max, drop + 2); /* slow_walk's frame and ours */
    __asm__ volatile("" ::: "memory"); /* no tail call: fp must stay */
    return n;
}

__attribute__((noinline)) int smpi_stack_walk(uintptr_t *pcs, int max,
                                              unsigned skip)
{
    /* our own frame */
    int n = walk(pcs, max, skip + 1);

    __asm__ volatile("" ::: "memory"); /* keeps this call from a tail jump */
    return n;
}

__attribute__((noinline)) uint32_t smpi_stack_capture(unsigned skip)
{
    uintptr_t pcs[SMPI_STACK_DEPTH_MAX];
    int depth = smpi_opt.malloc_context_size;
    int n;

    if (depth <= 0)
        return 0;
    if (depth > SMPI_STACK_DEPTH_MAX)
        depth = SMPI_STACK_DEPTH_MAX;
    n = walk(pcs, depth, skip + 1);
    if (n <= 0)
        return 0;
    return depot_put(pcs, n);
}

/* Kept for the benchmark: the libunwind walk alone. */
__attribute__((noinline)) int smpi_stack_walk_libunwind(uintptr_t *pcs,
                                                        int max,
                                                        unsigned skip)
{
    int n = slow_walk(pcs, max, skip + 2);

    __asm__ volatile("" ::: "memory");
    return n;
}

int smpi_stack_frames(uint32_t id, const uintptr_t **pcs)
{
    record *r = lookup(id);

    if (!r || atomic_load_explicit(&cursor, memory_order_acquire) <
                  ((uint64_t)id << 3)) {
        *pcs = NULL;
        return 0;
    }
    *pcs = r->pcs;
    return (int)r->count;
}
