/*
 * Stress: four threads make and free well over a million blocks between
 * them, from their own default pools and from one pool they share, and hand
 * a quarter of their blocks to a neighbour thread to free. Every block's
 * contents are checked before it is freed; the counters must add up.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "smp/smp.h"

#define THREADS 4
#define ALLOCS_PER_THREAD 150000
#define SLOTS 256
#define MAILBOX 1024

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
    /* Mostly small blocks, now and then up to 4 KiB. */
    size_t size = r % 16 == 0 ? 1 + (r >> 8) % 4096 : 1 + (r >> 8) % 512;
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

Test(stress, threads_trade_blocks_and_the_counts_add_up)
{
    static mailbox boxes[THREADS];
    static worker workers[THREADS];
    pthread_t threads[THREADS];
    pthread_barrier_t barrier;
    size_t allocs = 0, frees = 0, shared_allocs = 0, shared_bytes = 0;
    size_t handed = 0, collected = 0;
    smp_pool *shared = smp_pool_create("stress-shared");
    smp_stats st;

    cr_assert_not_null(shared);
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
        cr_assert_eq(pthread_create(&threads[i], NULL, work, &workers[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);

    for (int i = 0; i < THREADS; i++) {
        worker *w = &workers[i];

        cr_assert_eq(w->failed_allocs, 0, "thread %d", i);
        cr_assert_eq(w->bad_blocks, 0, "thread %d found changed blocks", i);
        cr_assert_eq(w->own_stats_rc, 0);
        /* Each default pool saw exactly its thread's blocks come and go,
         * whichever thread freed them. */
        cr_assert_str_eq(w->own_stats.pool_name, "default");
        cr_assert_eq(w->own_stats.allocations, w->allocs_default,
                     "thread %d: %zu allocations counted, %zu made", i,
                     w->own_stats.allocations, w->allocs_default);
        cr_assert_eq(w->own_stats.frees, w->allocs_default, "thread %d", i);
        cr_assert_eq(w->own_stats.live_blocks, 0, "thread %d", i);
        cr_assert_eq(w->own_stats.live_bytes, 0, "thread %d", i);
        cr_assert_eq(w->own_stats.total_bytes, w->bytes_default);
        cr_assert_leq(w->own_stats.peak_bytes, w->bytes_default);

        allocs += w->allocs_default + w->allocs_shared;
        frees += w->frees;
        shared_allocs += w->allocs_shared;
        shared_bytes += w->bytes_shared;
        handed += w->handed_over;
        collected += w->freed_for_others;
    }

    cr_assert_eq(frees, allocs);
    cr_assert_geq(allocs + frees, 1000000, "only %zu operations",
                  allocs + frees);
    cr_assert_eq(handed, collected);
    cr_assert_geq(handed, allocs / 10, "only %zu blocks changed threads",
                  handed);

    cr_assert_eq(smp_pool_stats(shared, &st), 0);
    cr_assert_eq(st.allocations, shared_allocs);
    cr_assert_eq(st.frees, shared_allocs);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_eq(st.total_bytes, shared_bytes);
    cr_assert_eq(smp_pool_destroy(shared), 0);
    pthread_barrier_destroy(&barrier);
}
