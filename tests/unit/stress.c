/*
 * Stress: four threads make and free well over a million blocks between
 * them, from their own default pools and from one pool they share, and hand
 * a quarter of their blocks to a neighbour thread to free. Every block's
 * contents are checked before it is freed; the counters must add up.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smp/smp.h"
#include "stress.h"

#define THREADS 4
#define ALLOCS_PER_THREAD 150000
#define SLOTS 256
/* Room for every block a thread could hand over, so that handing over
 * never depends on how the threads happen to be scheduled. */
#define MAILBOX ALLOCS_PER_THREAD

typedef struct held {
    unsigned char *p;
    size_t size;
    unsigned char fill;
} held;

/* Blocks handed to a thread by its neighbour, for it to free. */
typedef struct mailbox {
    pthread_mutex_t lock;
    held items[MAILBOX];
    unsigned head, count;
} mailbox;

typedef struct worker {
    int id;
    smp_pool *shared;
    mailbox *inbox, *next_inbox;
    pthread_barrier_t *barrier;
    uint64_t rng;

    /* What the worker did, checked by the main thread. */
    size_t allocs_default, bytes_default;
    size_t allocs_shared, bytes_shared;
    size_t frees, handed_over, freed_for_others;
    int bad_blocks, failed_allocs;
    smp_stats own_stats;
    int own_stats_rc;
} worker;

static uint64_t next_random(worker *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

static int post(mailbox *box, held item)
{
    int ok;

    pthread_mutex_lock(&box->lock);
    ok = box->count < MAILBOX;
    if (ok) {
        box->items[(box->head + box->count) % MAILBOX] = item;
        box->count++;
    }
    pthread_mutex_unlock(&box->lock);
    return ok;
}

static int take(mailbox *box, held *item)
{
    int ok;

    pthread_mutex_lock(&box->lock);
    ok = box->count > 0;
    if (ok) {
        *item = box->items[box->head];
        box->head = (box->head + 1) % MAILBOX;
        box->count--;
    }
    pthread_mutex_unlock(&box->lock);
    return ok;
}

static void check_and_free(worker *w, held h)
{
    for (size_t i = 0; i < h.size; i++)
        if (h.p[i] != h.fill) {
            w->bad_blocks++;
            break;
        }
    smp_free(h.p);
    w->frees++;
}

static void drain(worker *w)
{
    held h;

    while (take(w->inbox, &h)) {
        check_and_free(w, h);
        w->freed_for_others++;
    }
}

static held make_block(worker *w)
{
    uint64_t r = next_random(w);
    /* Mostly small blocks, now and then up to 4 KiB, rarely a large one
     * (past the size classes: a span of its own). */
    size_t size = r % 512 == 0  ? 9000 + (r >> 8) % 40000
                  : r % 16 == 0 ? 1 + (r >> 8) % 4096
                                : 1 + (r >> 8) % 512;
    int shared = (r >> 40) & 1;
    held h = { NULL, size, (unsigned char)(r >> 48) };

    h.p = smp_alloc(shared ? w->shared : NULL, size);
    if (!h.p) {
        w->failed_allocs++;
        return h;
    }
    if (shared) {
        w->allocs_shared++;
        w->bytes_shared += size;
    } else {
        w->allocs_default++;
        w->bytes_default += size;
    }
    memset(h.p, h.fill, size);
    return h;
}

static void *work(void *arg)
{
    worker *w = arg;
    held slots[SLOTS];

    memset(slots, 0, sizeof slots);
    for (int i = 0; i < ALLOCS_PER_THREAD; i++) {
        held *slot = &slots[next_random(w) % SLOTS];

        if (slot->p) {
            if (next_random(w) % 4 == 0 && post(w->next_inbox, *slot))
                w->handed_over++;
            else
                check_and_free(w, *slot);
        }
        *slot = make_block(w);
        if (i % 64 == 0)
            drain(w);
    }

    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p)
            check_and_free(w, slots[i]);

    /* Once nobody hands over any more, the last blocks can be collected. */
    pthread_barrier_wait(w->barrier);
    drain(w);
    pthread_barrier_wait(w->barrier);
    w->own_stats_rc = smp_pool_stats(smp_current_pool(), &w->own_stats);
    return NULL;
}

/* Records why a check failed; the caller reports it. */
static int fail(char *why, size_t room, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t room, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, room, fmt, ap);
    va_end(ap);
    return -1;
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            return fail(why, room, __VA_ARGS__);                               \
    } while (0)

static int check_worker(const worker *w, char *why, size_t room)
{
    const smp_stats *st = &w->own_stats;

    CHECK(w->failed_allocs == 0, "thread %d: %d allocations failed", w->id,
          w->failed_allocs);
    CHECK(w->bad_blocks == 0, "thread %d: %d blocks changed", w->id,
          w->bad_blocks);
    CHECK(w->own_stats_rc == 0, "thread %d: smp_pool_stats failed", w->id);

    /* Each default pool saw exactly its thread's blocks come and go,
     * whichever thread freed them. */
    CHECK(strcmp(st->pool_name, "default") == 0, "thread %d: pool '%s'", w->id,
          st->pool_name);
    CHECK(st->allocations == w->allocs_default,
          "thread %d: %zu allocations counted, %zu made", w->id,
          st->allocations, w->allocs_default);
    CHECK(st->frees == w->allocs_default,
          "thread %d: %zu frees counted, %zu made", w->id, st->frees,
          w->allocs_default);
    CHECK(st->live_blocks == 0 && st->live_bytes == 0,
          "thread %d: %zu blocks, %zu bytes still live", w->id, st->live_blocks,
          st->live_bytes);
    CHECK(st->total_bytes == w->bytes_default,
          "thread %d: total %zu bytes, %zu allocated", w->id, st->total_bytes,
          w->bytes_default);
    CHECK(st->peak_bytes <= w->bytes_default, "thread %d: peak %zu > %zu",
          w->id, st->peak_bytes, w->bytes_default);
    return 0;
}

int stress_run(char *why, size_t room)
{
    static mailbox boxes[THREADS];
    static worker workers[THREADS];
    pthread_t threads[THREADS];
    pthread_barrier_t barrier;
    size_t allocs = 0, frees = 0, shared_allocs = 0, shared_bytes = 0;
    size_t handed = 0, collected = 0;
    smp_pool *shared = smp_pool_create("stress-shared");
    smp_stats st;

    CHECK(shared, "smp_pool_create failed");
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        pthread_mutex_init(&boxes[i].lock, NULL);
        workers[i] = (worker){ .id = i,
                               .shared = shared,
                               .inbox = &boxes[i],
                               .next_inbox = &boxes[(i + 1) % THREADS],
                               .barrier = &barrier,
                               .rng = 0x9E3779B97F4A7C15ull * (i + 1) };
    }
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, work, &workers[i]) == 0,
              "pthread_create failed");
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);

    for (int i = 0; i < THREADS; i++) {
        const worker *w = &workers[i];

        if (check_worker(w, why, room) != 0)
            return -1;
        allocs += w->allocs_default + w->allocs_shared;
        frees += w->frees;
        shared_allocs += w->allocs_shared;
        shared_bytes += w->bytes_shared;
        handed += w->handed_over;
        collected += w->freed_for_others;
    }

    CHECK(frees == allocs, "%zu frees for %zu allocations", frees, allocs);
    CHECK(allocs + frees >= 1000000, "only %zu operations", allocs + frees);
    CHECK(handed == collected, "%zu handed over, %zu collected", handed,
          collected);
    CHECK(handed >= allocs / 10, "only %zu blocks changed threads", handed);

    CHECK(smp_pool_stats(shared, &st) == 0, "smp_pool_stats failed");
    CHECK(st.allocations == shared_allocs && st.frees == shared_allocs,
          "shared pool: %zu allocations and %zu frees counted, %zu made",
          st.allocations, st.frees, shared_allocs);
    CHECK(st.live_blocks == 0 && st.live_bytes == 0,
          "shared pool: %zu blocks still live", st.live_blocks);
    CHECK(st.total_bytes == shared_bytes, "shared pool: total %zu, made %zu",
          st.total_bytes, shared_bytes);
    CHECK(smp_pool_destroy(shared) == 0, "smp_pool_destroy failed");
    return 0;
}
