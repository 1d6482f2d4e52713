/*
 * The stack walk, with a memory of the thread's recent stacks.
 *
 * A frame steps to its caller by the rule of its return address
 * (unwind.c): a table look-up and a load or two. Even so a walk of 30
 * frames on every allocation costs more than the allocation, and most
 * allocations come from stacks the thread walked a moment ago.
 *
 * So each thread keeps its last distinct stacks as traces, and a map
 * from (return address, stack pointer) to the trace frame that had them.
 * A walk looks its frame up; when a trace had the same frame, what lies
 * beyond it is a function of memory the trace read: the return address
 * (and saved rbp) each older frame was stepped to. When each of those
 * words still holds what the trace read, the older frames are the
 * trace's, exactly. Checking a word is one load and a compare, against a
 * rule look-up and a step, and a trace remembers what its stack stands
 * for (a depot id, the rules it matches), so that a stack seen before
 * costs the check alone.
 *
 * rbp: code built without frame pointers uses rbp as an ordinary
 * register, so a frame found again may hold another rbp. That matters
 * only to a frame whose CFA comes from rbp before an older frame restores
 * rbp from memory; the check stops there and the walk steps on.
 */
#include <pthread.h>
#include <string.h>

#include "meta.h"
#include "thread.h"
#include "unwind.h"
#include "walk.h"

#define TRACES 128      /* stacks a thread remembers */
#define TRACE_FRAMES SMPI_WALK_HELD /* frames a trace holds */
#define MAP_BITS 10     /* buckets of the map from frames to traces */
#define WAYS 8          /* entries a bucket holds, most recent first */
#define NEAR_RULES 256  /* rules a thread keeps at hand; a power of 2 */

#define likely(x) __builtin_expect(!!(x), 1)

/* What a trace keeps of a frame's rule: enough to check its step. */
#define RULE_RA(r) ((int)(int8_t)((r) & 0xff))
#define RULE_RBP(r) ((int)(int16_t)(((r) >> 8) & 0xffff))
#define RULE_CFA_RBP (1u << 24)
#define RULE_RBP_SAVED (1u << 25)

typedef struct trace {
    int n;        /* frames held, innermost first */
    int complete; /* the stack ends after frame n - 1 */
    int by_ra;    /* each step found its CFA from sp and read the return
                     address at CFA - 8: the return addresses alone
                     decide the frames */
    int unused;
    struct {
        uint64_t key, value;
    } memo[SMPI_MEMO_KINDS];
    struct {
        uintptr_t ip, sp;
    } f[TRACE_FRAMES];
    uintptr_t rbp[TRACE_FRAMES];
    uint32_t rule[TRACE_FRAMES]; /* how frame i stepped to frame i + 1 */
} trace;

typedef struct near_rule {
    uintptr_t ip;
    smpi_frame_rule r;
    int bad;
} near_rule;

/*
 * A map entry names a trace frame (trace << 8 | frame); several stacks
 * can pass through one frame (all allocations made at one depth pass
 * through the same first frames), so a bucket keeps the last WAYS.
 */
typedef struct bucket {
    uint16_t way[WAYS];
} bucket;

typedef struct history {
    int busy; /* a signal handler's walk must not use it */
    unsigned generation;
    unsigned clock;
    unsigned used[TRACES]; /* when each trace last served a walk */
    bucket map[1u << MAP_BITS];
    /* the rules this thread used last: the shared table is larger and
       colder, and costs a cache miss or two a frame */
    near_rule near[NEAR_RULES];
    trace traces[TRACES];
} history;

static __thread history *my_history SMPI_TLS;
static __thread uintptr_t stack_lo SMPI_TLS, stack_hi SMPI_TLS;
static pthread_key_t history_key;
static pthread_once_t history_once = PTHREAD_ONCE_INIT;

/* ---- the thread's stack and its memory ---- */

static void find_stack(void)
{
    pthread_attr_t attr;
    void *lo;
    size_t size;

    stack_hi = 1; /* tried: a failure is not retried on every walk */
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

/* After an object was unloaded its rules and addresses mean nothing. */
static void history_renew(history *h, unsigned generation)
{
    for (int i = 0; i < TRACES; i++)
        h->traces[i].n = 0;
    memset(h->near, 0, sizeof h->near);
    h->generation = generation;
}

/* ---- stepping ---- */

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
 * Moves f to the caller's frame by rule r: 0, 1 when f was the outermost
 * frame, 2 when the caller's return address is zero, -1 when the rule
 * would read outside the thread's stack.
 */
static inline __attribute__((always_inline)) int apply(smpi_walk_frame *f,
                                                       const smpi_frame_rule *r)
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
    *f = (smpi_walk_frame){ ip, cfa, rbp };
    return ip ? 0 : 2;
}

static uint32_t pack(const smpi_frame_rule *r)
{
    return (uint32_t)(uint8_t)(int8_t)r->ra_off |
           (uint32_t)(uint16_t)r->rbp_off << 8 |
           (r->cfa_rbp ? RULE_CFA_RBP : 0) |
           (r->rbp_saved ? RULE_RBP_SAVED : 0);
}

/* The walk without memory: for deep walks and signal handlers. */
static int walk_plain(history *h, smpi_walk_frame f, uintptr_t *pcs, int max,
                      unsigned drop)
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
        if (rule_of(h, f.ip, &r))
            return -1;
        ended = apply(&f, &r);
        if (ended < 0)
            return -1;
        if (ended > 0)
            return n;
    }
}

/* ---- traces ---- */

static unsigned bucket_of(uintptr_t ip, uintptr_t sp)
{
    uint64_t x = (ip ^ (sp * 0x9e3779b97f4a7c15u)) * 0xff51afd7ed558ccdu;

    return (unsigned)(x >> (64 - MAP_BITS));
}

static unsigned entry_of(const history *h, const trace *t, int i)
{
    return (unsigned)(t - h->traces) << 8 | (unsigned)i;
}

/* The trace frame an entry names, if it still holds ip and sp. */
static trace *entry_frame(history *h, unsigned e, uintptr_t ip, uintptr_t sp,
                          int *a)
{
    trace *t = &h->traces[(e >> 8) % TRACES];
    int i = (int)(e & 0xff);

    if (i >= t->n || t->f[i].ip != ip || t->f[i].sp != sp)
        return NULL;
    *a = i;
    return t;
}

/*
 * Frame i of t goes first in its bucket: out of the place it held, if it
 * was there; else the oldest entry falls out.
 */
static void map_note(history *h, const trace *t, int i)
{
    bucket *b = &h->map[bucket_of(t->f[i].ip, t->f[i].sp)];
    uint16_t e = (uint16_t)entry_of(h, t, i);
    int w = 0;

    while (w < WAYS - 1 && b->way[w] != e)
        w++;
    for (; w > 0; w--)
        b->way[w] = b->way[w - 1];
    b->way[0] = e;
}

/* The most recent trace frame that had f's return address and sp. */
static trace *find(history *h, const smpi_walk_frame *f, int *a)
{
    const bucket *b = &h->map[bucket_of(f->ip, f->sp)];

    for (int w = 0; w < WAYS; w++) {
        trace *t = entry_frame(h, b->way[w], f->ip, f->sp, a);
        if (t)
            return t;
    }
    return NULL;
}

/*
 * Frame a of t is this stack's frame, with rbp: how many of t's frames
 * from a on, at most need, are this stack's? Each step the trace took is
 * checked against the words it read.
 */
static int verify(const trace *t, int a, uintptr_t rbp, int need)
{
    int end = a + need < t->n ? a + need : t->n;
    int rbp_ok = t->rbp[a] == rbp;
    int m;

    for (m = a; m + 1 < end; m++) {
        uint32_t r = t->rule[m];
        uintptr_t cfa = t->f[m + 1].sp;

        if ((r & RULE_CFA_RBP) && !rbp_ok)
            break;
        if (word_at(cfa, RULE_RA(r)) != t->f[m + 1].ip)
            break;
        if (r & RULE_RBP_SAVED)
            rbp_ok = word_at(cfa, RULE_RBP(r)) == t->rbp[m + 1];
    }
    return m - a + 1;
}

/*
 * The same for the frames 1..end - 1 of a trace whose frames follow from
 * return addresses alone: a load and a compare a frame. Stacks that part
 * ways do so near the top: the first frames are checked first.
 */
static int verify_by_ra(const trace *t, int end)
{
    uintptr_t diff = 0, d1 = 0, d2 = 0, d3 = 0;
    int m = 1;

    for (; m < end && m < 5; m++)
        diff |= word_at(t->f[m].sp, -8) ^ t->f[m].ip;
    if (diff)
        return 0;
    /* four at a time, so that the loads do not wait for each other */
    for (; m + 4 <= end; m += 4) {
        diff |= word_at(t->f[m].sp, -8) ^ t->f[m].ip;
        d1 |= word_at(t->f[m + 1].sp, -8) ^ t->f[m + 1].ip;
        d2 |= word_at(t->f[m + 2].sp, -8) ^ t->f[m + 2].ip;
        d3 |= word_at(t->f[m + 3].sp, -8) ^ t->f[m + 3].ip;
    }
    for (; m < end; m++)
        diff |= word_at(t->f[m].sp, -8) ^ t->f[m].ip;
    return (diff | d1 | d2 | d3) == 0;
}

/* Frames k.. of out are t's frames a.., with the rbp this stack has. */
static void take(trace *out, int k, const trace *t, int a, int v, uintptr_t rbp)
{
    for (int i = 0; i < v; i++) {
        int m = a + i;

        out->f[k + i] = t->f[m];
        out->rbp[k + i] = rbp;
        out->rule[k + i] = t->rule[m];
        if ((t->rule[m] & RULE_RBP_SAVED) && i + 1 < v)
            rbp = word_at(t->f[m + 1].sp, RULE_RBP(t->rule[m]));
    }
}

static int same_frames(const trace *t, const trace *out, int k)
{
    for (int i = 0; i < k; i++)
        if (t->f[i].ip != out->f[i].ip || t->f[i].sp != out->f[i].sp)
            return 0;
    return 1;
}

static trace *least_used(history *h)
{
    unsigned oldest = h->used[0];
    int victim = 0;

    for (int i = 1; i < TRACES; i++) {
        if (h->used[i] < oldest) {
            oldest = h->used[i];
            victim = i;
        }
    }
    return &h->traces[victim];
}

/* This stack is t's: the frames walked to find it now lead there. */
static trace *reuse(history *h, trace *t, int k)
{
    for (int i = 0; i < k; i++)
        map_note(h, t, i);
    h->used[t - h->traces] = ++h->clock;
    return t;
}

static trace *keep(history *h, trace *out, int k, int complete)
{
    out->n = k;
    out->complete = complete;
    out->by_ra = 1;
    for (int i = 0; i + 1 < k; i++)
        if ((out->rule[i] & RULE_CFA_RBP) || RULE_RA(out->rule[i]) != -8)
            out->by_ra = 0;
    memset(out->memo, 0, sizeof out->memo);
    for (int i = k - 1; i >= 0; i--)
        map_note(h, out, i);
    h->used[out - h->traces] = ++h->clock;
    return out;
}

/*
 * A stack the thread remembers whole, found by its first frame: the
 * common case, kept short. total frames, or all when the stack is shorter.
 */
static inline trace *recall(history *h, const smpi_walk_frame *f, int total)
{
    const bucket *b = &h->map[bucket_of(f->ip, f->sp)];

    for (int w = 0; w < WAYS; w++) {
        int a, end;
        trace *t = entry_frame(h, b->way[w], f->ip, f->sp, &a);

        if (!t || a != 0)
            continue;
        end = total < t->n ? total : t->n;
        if (end < total && !t->complete)
            continue;
        if (t->by_ra ? verify_by_ra(t, end)
                     : verify(t, 0, f->rbp, end) == end) {
            h->used[t - h->traces] = ++h->clock;
            return t;
        }
    }
    return NULL;
}

/*
 * The trace holding this stack's first total frames (all of them when
 * the stack is shorter), from frame f; NULL when a frame is not covered
 * by the rules. The stack is walked, taking what it shares with the
 * stacks the thread remembers, and kept, unless it turns out to be one
 * of them.
 */
static __attribute__((noinline)) trace *
walk_traced(history *h, smpi_walk_frame f, int total)
{
    trace *t, *out = least_used(h);
    int a, k = 0, ended;
    smpi_frame_rule r;

    if (!stack_hi)
        find_stack();
    out->n = 0; /* find() passes over it while it is being written */
    for (;;) {
        t = find(h, &f, &a);
        if (t) {
            int need = total - k;
            int v = verify(t, a, f.rbp, need);
            int ends = a + v == t->n && t->complete;

            if ((v == need || ends) && a == k && same_frames(t, out, k))
                return reuse(h, t, k);
            take(out, k, t, a, v, f.rbp);
            k += v;
            if (v == need || ends)
                return keep(h, out, k, ends);

            /* the step after the last frame taken leads elsewhere */
            k--;
            f = (smpi_walk_frame){ out->f[k].ip, out->f[k].sp, out->rbp[k] };
        }

        if (rule_of(h, f.ip, &r))
            return NULL;
        out->f[k].ip = f.ip;
        out->f[k].sp = f.sp;
        out->rbp[k] = f.rbp;
        out->rule[k] = pack(&r);
        k++;
        ended = apply(&f, &r);
        if (ended < 0)
            return NULL;
        if (ended > 0 || k == total)
            return keep(h, out, k, ended == 1);
    }
}

/*
 * The thread's memory, held for a walk of total frames, or NULL: too
 * deep, a signal handler interrupted a walk that holds it (and could
 * find its traces half written), or memory ran out.
 */
static inline history *enter(int total)
{
    history *h = my_history;
    unsigned generation = smpi_unwind_generation();

    if (!likely(h) && !(h = history_get()))
        return NULL;
    if (h->busy || total > TRACE_FRAMES)
        return NULL;
    h->busy = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (h->generation != generation)
        history_renew(h, generation);
    return h;
}

static inline void leave(history *h)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    h->busy = 0;
}

/* A walk for the thread's traces, remembered or new; NULL: step it. */
static inline trace *walk_held(history *h, smpi_walk_frame f, int total)
{
    trace *t = recall(h, &f, total);

    return likely(t) ? t : walk_traced(h, f, total);
}

/* The walk that cannot use the traces; rules at hand only if it may. */
static int walk_stepped(smpi_walk_frame f, uintptr_t *pcs, int max,
                        unsigned drop)
{
    history *h = my_history;
    int n;

    if (!stack_hi)
        find_stack();
    if (h && h->busy)
        return walk_plain(NULL, f, pcs, max, drop);
    if (h)
        h->busy = 1;
    n = walk_plain(h, f, pcs, max, drop);
    if (h)
        h->busy = 0;
    return n;
}

static int emit(const trace *t, uintptr_t *pcs, int max, unsigned drop)
{
    int n = t->n - (int)drop;

    if (n <= 0)
        return 0;
    if (n > max)
        n = max;
    for (int i = 0; i < n; i++)
        pcs[i] = t->f[(int)drop + i].ip;
    return n;
}

int smpi_walk(smpi_walk_frame f, uintptr_t *pcs, int max, unsigned drop)
{
    int total = max + (int)drop;
    history *h;
    trace *t;
    int n;

    if (max <= 0)
        return 0;
    h = enter(total);
    if (!h)
        return walk_stepped(f, pcs, max, drop);
    t = walk_held(h, f, total);
    n = t ? emit(t, pcs, max, drop) : -1;
    leave(h);
    return n;
}

int smpi_walk_memo(smpi_walk_frame f, int max, unsigned drop,
                   const smpi_memo_req *req, uint64_t *value)
{
    uintptr_t pcs[SMPI_WALK_MEMO_MAX];
    history *h;
    trace *t;
    int n;

    if (max <= 0 || max > SMPI_WALK_MEMO_MAX)
        return -1;
    h = enter(max + (int)drop);
    if (!h) {
        n = walk_stepped(f, pcs, max, drop);
        if (n < 0)
            return -1;
        *value = req->make(pcs, n, req->ctx);
        return 0;
    }
    t = walk_held(h, f, max + (int)drop);
    if (t && t->memo[req->kind].key != req->key) {
        n = emit(t, pcs, max, drop);
        t->memo[req->kind].value = req->make(pcs, n, req->ctx);
        t->memo[req->kind].key = req->key;
    }
    if (t)
        *value = t->memo[req->kind].value;
    leave(h);
    return t ? 0 : -1;
}
