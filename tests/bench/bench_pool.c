/*
 * Cost of a pool block against the alternatives, measured in one run:
 * smp_alloc+smp_free pairs (the thread's current pool, and a pool from
 * smp_pool_create) against malloc+explicit_bzero+free, at three sizes, on
 * one and two threads, with and without 10,000 other blocks live; OpenSSL's
 * secure heap and libsodium's guarded allocations for scale; and how many
 * bytes a steady mix of small blocks keeps locked per live byte.
 *
 * It prints figures and never judges them: timings on a shared machine vary
 * too much for a pass/fail line. --quick runs every path briefly.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smp/smp.h"

#ifdef SMP_BENCH_OPENSSL
#include <openssl/crypto.h>
#endif
#ifdef SMP_BENCH_SODIUM
#include <sodium.h>
#endif

#define LIVE_BLOCKS 10000
#define MAX_THREADS 2

enum kind {
    GLIBC,       /* malloc + explicit_bzero + free */
    SMP_CURRENT, /* smp_alloc(thread's current pool) + smp_free */
    SMP_CREATED, /* a pool of its own per thread, from smp_pool_create */
    SMP_SHARED,  /* one pool from smp_pool_create used by every thread */
    OPENSSL,     /* CRYPTO_secure_malloc + CRYPTO_secure_free */
    SODIUM,      /* sodium_malloc + sodium_free */
    NKINDS
};

static const char *const kind_names[NKINDS] = {
    "glibc+bzero", "smp current",    "smp created",
    "smp shared",  "openssl secure", "sodium_malloc"
};

static const size_t sizes[] = { 32, 256, 4096 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

static long pairs_fast;    /* pairs per thread for glibc and smp */
static long pairs_openssl; /* the slower heaps get fewer */
static long pairs_sodium;
static int repeats;
static int have_openssl, have_sodium;

typedef struct run {
    enum kind kind;
    size_t size;
    int live;
    long pairs;
    smp_pool *shared;
    pthread_barrier_t *start;
    double t0, t1;
    int failed;
} run;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One allocation and its release, for the kinds timed here. */
static void *get(enum kind kind, smp_pool *pool, size_t size)
{
    switch (kind) {
    case GLIBC:
        return malloc(size);
#ifdef SMP_BENCH_OPENSSL
    case OPENSSL:
        return CRYPTO_secure_malloc(size, __FILE__, __LINE__);
#endif
#ifdef SMP_BENCH_SODIUM
    case SODIUM:
        return sodium_malloc(size);
#endif
    default:
        return smp_alloc(pool, size);
    }
}

static void put(enum kind kind, void *p, size_t size)
{
    switch (kind) {
    case GLIBC:
        explicit_bzero(p, size);
        free(p);
        break;
#ifdef SMP_BENCH_OPENSSL
    case OPENSSL:
        CRYPTO_secure_free(p, __FILE__, __LINE__);
        break;
#endif
#ifdef SMP_BENCH_SODIUM
    case SODIUM:
        sodium_free(p);
        break;
#endif
    default:
        smp_free(p);
    }
}

/*
 * The timed loop, one per kind so the switch stays out of it. Each block
 * gets one byte written so that no allocation can be elided.
 */
#define PAIR_LOOP(GET, PUT)                         \
    for (long i = 0; i < r->pairs; i++) {           \
        unsigned char *p = GET;                     \
        if (!p) {                                   \
            r->failed = 1;                          \
            break;                                  \
        }                                           \
        p[0] = (unsigned char)i;                    \
        __asm__ volatile("" : : "r"(p) : "memory"); \
        PUT;                                        \
    }

static void timed_pairs(run *r, smp_pool *pool)
{
    size_t size = r->size;

    switch (r->kind) {
    case GLIBC:
        PAIR_LOOP(malloc(size), (explicit_bzero(p, size), free(p)));
        break;
    case OPENSSL:
    case SODIUM:
        PAIR_LOOP(get(r->kind, pool, size), put(r->kind, p, size));
        break;
    default:
        PAIR_LOOP(smp_alloc(pool, size), smp_free(p));
    }
}

static void *run_thread(void *arg)
{
    run *r = arg;
    smp_pool *pool = NULL;
    void **live = NULL;

    if (r->kind == SMP_CURRENT)
        pool = smp_current_pool();
    else if (r->kind == SMP_CREATED)
        pool = smp_pool_create("bench-created");
    else if (r->kind == SMP_SHARED)
        pool = r->shared;

    /* The other blocks live during the loop come from the same place. */
    if (r->live) {
        live = calloc(LIVE_BLOCKS, sizeof *live);
        for (int i = 0; live && i < LIVE_BLOCKS; i++)
            if (!(live[i] = get(r->kind, pool, r->size)))
                r->failed = 1;
    }

    pthread_barrier_wait(r->start);
    r->t0 = now();
    if (!r->failed)
        timed_pairs(r, pool);
    r->t1 = now();

    for (int i = 0; live && i < LIVE_BLOCKS; i++)
        if (live[i])
            put(r->kind, live[i], r->size);
    free(live);
    if (r->kind == SMP_CREATED && pool)
        smp_pool_destroy(pool);
    return NULL;
}

/* Wall time of the best of the repeats, in seconds; < 0 on failure. */
static double measure(enum kind kind, size_t size, int live, int threads,
                      long pairs)
{
    double best = -1;

    for (int rep = 0; rep < repeats; rep++) {
        run runs[MAX_THREADS];
        pthread_t tids[MAX_THREADS];
        pthread_barrier_t start;
        smp_pool *shared = NULL;
        double t0 = 1e300, t1 = 0;
        int failed = 0;

        if (kind == SMP_SHARED)
            shared = smp_pool_create("bench-shared");
        pthread_barrier_init(&start, NULL, (unsigned)threads);
        for (int t = 0; t < threads; t++) {
            runs[t] = (run){ kind, size, live, pairs, shared, &start, 0, 0, 0 };
            pthread_create(&tids[t], NULL, run_thread, &runs[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(tids[t], NULL);
            t0 = runs[t].t0 < t0 ? runs[t].t0 : t0;
            t1 = runs[t].t1 > t1 ? runs[t].t1 : t1;
            failed |= runs[t].failed;
        }
        pthread_barrier_destroy(&start);
        if (shared)
            smp_pool_destroy(shared);

        if (failed)
            return -1;
        if (best < 0 || t1 - t0 < best)
            best = t1 - t0;
    }
    return best;
}

static double ns_per_pair(double wall, long pairs)
{
    return wall < 0 ? -1 : wall * 1e9 / (double)pairs;
}

static void print_ns(double ns)
{
    if (ns < 0)
        printf(" %12s", "failed");
    else
        printf(" %12.1f", ns);
}

static void print_ratio(double a, double b)
{
    if (a < 0 || b <= 0)
        printf(" %6s", "-");
    else
        printf(" %6.2f", a / b);
}

/* wall[kind][size][live][threads - 1], kept for the later tables. */
static double wall[NKINDS][NSIZES][2][MAX_THREADS];

static void pairs_table(void)
{
    printf("alloc+free pairs, ns per pair (per thread; best of %d, %ld "
           "pairs per thread)\n",
           repeats, pairs_fast);
    printf("%6s %6s %3s %12s %12s %6s %12s %6s\n", "size", "live", "thr",
           "glibc+bzero", "smp current", "ratio", "smp created", "ratio");

    for (int th = 1; th <= MAX_THREADS; th++)
        for (size_t s = 0; s < NSIZES; s++)
            for (int l = 0; l < 2; l++) {
                double ns[NKINDS];

                for (int k = GLIBC; k <= SMP_SHARED; k++) {
                    wall[k][s][l][th - 1] =
                        measure(k, sizes[s], l, th, pairs_fast);
                    ns[k] = ns_per_pair(wall[k][s][l][th - 1], pairs_fast);
                }
                printf("%6zu %6d %3d", sizes[s], l ? LIVE_BLOCKS : 0, th);
                print_ns(ns[GLIBC]);
                print_ns(ns[SMP_CURRENT]);
                print_ratio(ns[SMP_CURRENT], ns[GLIBC]);
                print_ns(ns[SMP_CREATED]);
                print_ratio(ns[SMP_CREATED], ns[GLIBC]);
                printf("\n");
            }
    printf("(ratio: smp time over glibc+explicit_bzero time; lower is "
           "better)\n\n");
}

static double mpairs(double w, int threads)
{
    return w <= 0 ? -1 : (double)pairs_fast * threads / w / 1e6;
}

static void scaling_table(void)
{
    printf("two threads against one: throughput in million pairs/s\n");
    printf("%6s %6s %-12s %10s %10s %7s\n", "size", "live", "kind", "1 thread",
           "2 threads", "2T/1T");
    for (size_t s = 0; s < NSIZES; s++)
        for (int l = 0; l < 2; l++)
            for (int k = GLIBC; k <= SMP_SHARED; k++) {
                double one = mpairs(wall[k][s][l][0], 1);
                double two = mpairs(wall[k][s][l][1], 2);

                printf("%6zu %6d %-12s %10.2f %10.2f", sizes[s],
                       l ? LIVE_BLOCKS : 0, kind_names[k], one, two);
                print_ratio(two, one);
                printf("\n");
            }
    printf("(smp shared: one pool from smp_pool_create used by both "
           "threads; the others use a pool per thread)\n\n");
}

static void print_other(int have, enum kind kind, size_t size, int live,
                        long pairs)
{
    double ns =
        have ? ns_per_pair(measure(kind, size, live, 1, pairs), pairs) : -1;

    if (ns < 0)
        printf(" %14s", have ? "failed" : "not built");
    else
        printf(" %14.1f", ns);
}

static void scale_table(void)
{
    printf("for scale, one thread, ns per pair (openssl %ld pairs, sodium "
           "%ld):\n",
           pairs_openssl, pairs_sodium);
    printf("%6s %6s %12s %14s %14s\n", "size", "live", "smp current",
           "openssl secure", "sodium_malloc");
    for (size_t s = 0; s < NSIZES; s++)
        for (int l = 0; l < 2; l++) {
            printf("%6zu %6d", sizes[s], l ? LIVE_BLOCKS : 0);
            print_ns(ns_per_pair(wall[SMP_CURRENT][s][l][0], pairs_fast));
            print_other(have_openssl, OPENSSL, sizes[s], l, pairs_openssl);
            print_other(have_sodium, SODIUM, sizes[s], l, pairs_sodium);
            printf("\n");
        }
    printf("\n");
}

/* A steady mix of small blocks: the locked bytes per live byte. */
static void locked_mix(const char *label, size_t min, size_t max, int nlive,
                       long steps)
{
    smp_pool *pool = smp_pool_create("bench-mix");
    void **slots = calloc((size_t)nlive, sizeof *slots);
    uint64_t x = 0x2545F4914F6CDD1Dull;
    double lo = 1e300, hi = 0;
    smp_stats st;

    if (!pool || !slots) {
        printf("%-18s could not start\n", label);
        free(slots);
        return;
    }
    for (long i = -(long)nlive; i < steps; i++) {
        size_t slot, size;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        slot = i < 0 ? (size_t)(i + nlive) : (size_t)(x % (uint64_t)nlive);
        size = min + (size_t)((x >> 20) % (max - min + 1));
        smp_free(slots[slot]);
        slots[slot] = smp_alloc(pool, size);

        /* Sample the steady state, after the pool has filled up. */
        if (i >= 0 && i % (steps / 10 + 1) == 0 &&
            smp_pool_stats(pool, &st) == 0 && st.live_bytes) {
            double ratio = (double)st.locked_bytes / (double)st.live_bytes;

            lo = ratio < lo ? ratio : lo;
            hi = ratio > hi ? ratio : hi;
        }
    }

    smp_pool_stats(pool, &st);
    printf("%-18s %8zu %12zu %12zu %7.2f %7.2f %7.2f\n", label, st.live_blocks,
           st.live_bytes, st.locked_bytes,
           st.live_bytes ? (double)st.locked_bytes / (double)st.live_bytes
                         : 0.0,
           lo, hi);
    for (int i = 0; i < nlive; i++)
        smp_free(slots[i]);
    free(slots);
    smp_pool_destroy(pool);
}

static void locked_table(int quick)
{
    int nlive = quick ? 2000 : 20000;
    long steps = quick ? 20000 : 1000000;

    printf("locked bytes against live bytes, steady mix of %d blocks, "
           "%ld replacements:\n",
           nlive, steps);
    printf("%-18s %8s %12s %12s %7s %7s %7s\n", "sizes", "blocks", "live bytes",
           "locked", "ratio", "min", "max");
    locked_mix("8-64 B", 8, 64, nlive, steps);
    locked_mix("16-512 B", 16, 512, nlive, steps);
    locked_mix("16 B-4 KiB", 16, 4096, nlive, steps);
    printf("(ratio: locked_bytes / live_bytes from smp_pool_stats; min "
           "and max over samples)\n");
}

static void setup_others(void)
{
#ifdef SMP_BENCH_OPENSSL
    /* Room for 10,000 live 4 KiB blocks; a power of two, as it must be. */
    have_openssl = CRYPTO_secure_malloc_init((size_t)64 << 20, 16) != 0;
#endif
#ifdef SMP_BENCH_SODIUM
    have_sodium = sodium_init() >= 0;
#endif
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;

    if (argc > 1 && !quick) {
        fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
        return 2;
    }
    pairs_fast = quick ? 20000 : 2000000;
    pairs_openssl = quick ? 2000 : 200000;
    pairs_sodium = quick ? 200 : 5000;
    repeats = quick ? 1 : 3;
    setup_others();

    printf("smp pool benchmark%s\n\n", quick ? " (quick: figures are "
                                               "rough)"
                                             : "");
    pairs_table();
    scaling_table();
    scale_table();
    locked_table(quick);
    return 0;
}
