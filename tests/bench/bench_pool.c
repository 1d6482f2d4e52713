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
#include <unistd.h>

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
    COMPUTE,     /* no allocation: arithmetic of about a pair's cost */
    NKINDS
};

static const char *const kind_names[NKINDS] = {
    "glibc+bzero", "smp current",    "smp created",
    "smp shared",  "openssl secure", "sodium_malloc", "no allocation"
};

static const size_t sizes[] = { 32, 256, 4096 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

static long pairs_fast;    /* pairs per thread for glibc and smp */
static long pairs_openssl; /* the slower heaps get fewer */
static long pairs_sodium;
static int repeats;
static int have_openssl, have_sodium;

/* Seconds: wall from the first start to the last end; cpu summed. */
typedef struct timing {
    double wall, cpu;
} timing;

typedef struct run {
    enum kind kind;
    size_t size;
    int live;
    long pairs;
    smp_pool *shared;
    pthread_barrier_t *start;
    double t0, t1, cpu;
    int failed;
} run;

static double clock_s(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
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
#define PAIR_LOOP(GET, PUT)                                                    \
    for (long i = 0; i < r->pairs; i++) {                                      \
        unsigned char *p = GET;                                                \
        if (!p) {                                                              \
            r->failed = 1;                                                     \
            break;                                                             \
        }                                                                      \
        p[0] = (unsigned char)i;                                               \
        __asm__ volatile("" : : "r"(p) : "memory");                            \
        PUT;                                                                   \
    }

/*
 * Work that touches no memory at all, in independent chains: how two
 * threads scale on this machine with nothing shared in their way.
 */
static void timed_compute(run *r)
{
    uint64_t x[4] = { 1, 2, 3, 4 };

    for (long i = 0; i < r->pairs; i++)
        for (int round = 0; round < 8; round++)
            for (int k = 0; k < 4; k++) {
                x[k] ^= x[k] << 13;
                x[k] ^= x[k] >> 7;
                x[k] ^= x[k] << 17;
                __asm__ volatile("" : "+r"(x[k]));
            }
    r->failed = (x[0] ^ x[1] ^ x[2] ^ x[3]) == 0;
}

static void timed_pairs(run *r, smp_pool *pool)
{
    size_t size = r->size;

    switch (r->kind) {
    case COMPUTE:
        timed_compute(r);
        break;
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
    double cpu0;

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
    r->t0 = clock_s(CLOCK_MONOTONIC);
    cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    if (!r->failed)
        timed_pairs(r, pool);
    r->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    r->t1 = clock_s(CLOCK_MONOTONIC);

    for (int i = 0; live && i < LIVE_BLOCKS; i++)
        if (live[i])
            put(r->kind, live[i], r->size);
    free(live);
    if (r->kind == SMP_CREATED && pool)
        smp_pool_destroy(pool);
    return NULL;
}

/* One timed run on threads threads; wall < 0 when an allocation failed. */
static timing run_once(enum kind kind, size_t size, int live, int threads,
                       long pairs)
{
    run runs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    pthread_barrier_t start;
    smp_pool *shared = NULL;
    double t0 = 1e300, t1 = 0, cpu = 0;
    int failed = 0;

    if (kind == SMP_SHARED)
        shared = smp_pool_create("bench-shared");
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
        runs[t] = (run){ .kind = kind,
                         .size = size,
                         .live = live,
                         .pairs = pairs,
                         .shared = shared,
                         .start = &start };
        pthread_create(&tids[t], NULL, run_thread, &runs[t]);
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        t0 = runs[t].t0 < t0 ? runs[t].t0 : t0;
        t1 = runs[t].t1 > t1 ? runs[t].t1 : t1;
        cpu += runs[t].cpu;
        failed |= runs[t].failed;
    }
    pthread_barrier_destroy(&start);
    if (shared)
        smp_pool_destroy(shared);
    return failed ? (timing){ -1, -1 } : (timing){ t1 - t0, cpu };
}

/* Keeps the lowest wall and cpu figures seen; a failure sticks. */
static void keep_best(timing *best, timing t, int first)
{
    if (first || t.wall < 0) {
        *best = t;
        return;
    }
    if (best->wall < 0)
        return;
    best->wall = t.wall < best->wall ? t.wall : best->wall;
    best->cpu = t.cpu < best->cpu ? t.cpu : best->cpu;
}

static double ns_per_pair(double seconds, double pairs)
{
    return seconds < 0 ? -1 : seconds * 1e9 / pairs;
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

/* best[kind][size][live][threads - 1] for glibc and the smp kinds. */
static timing best[SMP_SHARED + 1][NSIZES][2][MAX_THREADS];

/*
 * The repeats go round the kinds, so that a busy spell on a shared machine
 * hits every kind alike instead of one kind's whole series.
 */
static void measure_pairs(void)
{
    for (int th = 1; th <= MAX_THREADS; th++)
        for (size_t s = 0; s < NSIZES; s++)
            for (int l = 0; l < 2; l++)
                for (int rep = 0; rep < repeats; rep++)
                    for (int k = GLIBC; k <= SMP_SHARED; k++)
                        keep_best(&best[k][s][l][th - 1],
                                  run_once(k, sizes[s], l, th, pairs_fast),
                                  rep == 0);
}

static double cpu_ns(int k, size_t s, int l, int th)
{
    return ns_per_pair(best[k][s][l][th - 1].cpu, (double)pairs_fast * th);
}

static void pairs_table(void)
{
    printf("alloc+free pairs: CPU ns per pair (best of %d runs of %ld "
           "pairs per thread)\n",
           repeats, pairs_fast);
    printf("%6s %6s %3s %12s %12s %6s %12s %6s\n", "size", "live", "thr",
           "glibc+bzero", "smp current", "ratio", "smp created", "ratio");

    for (int th = 1; th <= MAX_THREADS; th++)
        for (size_t s = 0; s < NSIZES; s++)
            for (int l = 0; l < 2; l++) {
                double glibc = cpu_ns(GLIBC, s, l, th);
                double current = cpu_ns(SMP_CURRENT, s, l, th);
                double created = cpu_ns(SMP_CREATED, s, l, th);

                printf("%6zu %6d %3d", sizes[s], l ? LIVE_BLOCKS : 0, th);
                print_ns(glibc);
                print_ns(current);
                print_ratio(current, glibc);
                print_ns(created);
                print_ratio(created, glibc);
                printf("\n");
            }
    printf("(CPU time of the timing threads, so other load on the machine "
           "counts little;\n ratio: smp over glibc+explicit_bzero, lower is "
           "better)\n\n");
}

static double mpairs(timing t, int threads)
{
    return t.wall <= 0 ? -1 : (double)pairs_fast * threads / t.wall / 1e6;
}

/* The same two-thread measure for work without allocation. */
static void machine_scaling(void)
{
    timing t[MAX_THREADS];

    for (int th = 1; th <= MAX_THREADS; th++)
        for (int rep = 0; rep < repeats; rep++)
            keep_best(&t[th - 1],
                      run_once(COMPUTE, 0, 0, th, pairs_fast), rep == 0);
    printf("%6s %6s %-12s %10.2f %10.2f", "-", "-", kind_names[COMPUTE],
           mpairs(t[0], 1), mpairs(t[1], 2));
    print_ratio(mpairs(t[1], 2), mpairs(t[0], 1));
    printf("\n");
}

static void scaling_table(void)
{
    printf("two threads against one: wall-clock throughput, million "
           "pairs/s\n");
    printf("%6s %6s %-12s %10s %10s %7s\n", "size", "live", "kind", "1 thread",
           "2 threads", "2T/1T");
    for (size_t s = 0; s < NSIZES; s++)
        for (int l = 0; l < 2; l++)
            for (int k = GLIBC; k <= SMP_SHARED; k++) {
                double one = mpairs(best[k][s][l][0], 1);
                double two = mpairs(best[k][s][l][1], 2);

                printf("%6zu %6d %-12s %10.2f %10.2f", sizes[s],
                       l ? LIVE_BLOCKS : 0, kind_names[k], one, two);
                print_ratio(two, one);
                printf("\n");
            }
    machine_scaling();
    printf("(smp shared: one pool from smp_pool_create used by both "
           "threads; the others\n use a pool per thread; no allocation: "
           "arithmetic alone, for comparison. Two\n threads can only scale "
           "when two cores are idle: on a shared virtual machine the\n "
           "same row moves by 0.3 from run to run.)\n\n");
}

static void print_other(int have, enum kind kind, size_t size, int live,
                        long pairs)
{
    timing t = { -1, -1 };

    for (int rep = 0; have && rep < repeats; rep++)
        keep_best(&t, run_once(kind, size, live, 1, pairs), rep == 0);
    if (!have)
        printf(" %14s", "not built");
    else if (t.wall < 0)
        printf(" %14s", "failed");
    else
        printf(" %14.1f", ns_per_pair(t.cpu, (double)pairs));
}

static void scale_table(void)
{
    printf("for scale, one thread, CPU ns per pair (openssl %ld pairs, "
           "sodium %ld):\n",
           pairs_openssl, pairs_sodium);
    printf("%6s %6s %12s %14s %14s\n", "size", "live", "smp current",
           "openssl secure", "sodium_malloc");
    for (size_t s = 0; s < NSIZES; s++)
        for (int l = 0; l < 2; l++) {
            printf("%6zu %6d", sizes[s], l ? LIVE_BLOCKS : 0);
            print_ns(cpu_ns(SMP_CURRENT, s, l, 1));
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

/* What the figures were measured on, so that a reader can weigh them. */
static void print_header(int quick)
{
    char load[64] = "unknown";
    FILE *f = fopen("/proc/loadavg", "r");

    if (f) {
        if (fgets(load, sizeof load, f))
            load[strcspn(load, "\n")] = '\0';
        fclose(f);
    }
    printf("smp pool benchmark%s\n",
           quick ? " (quick: figures are rough)" : "");
    printf("%ld CPUs online, load average %s\n\n",
           sysconf(_SC_NPROCESSORS_ONLN), load);
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
    pairs_fast = quick ? 20000 : 1000000;
    pairs_openssl = quick ? 2000 : 200000;
    pairs_sodium = quick ? 200 : 5000;
    repeats = quick ? 1 : 5;
    setup_others();

    print_header(quick);
    measure_pairs();
    pairs_table();
    scaling_table();
    scale_table();
    locked_table(quick);
    return 0;
}
