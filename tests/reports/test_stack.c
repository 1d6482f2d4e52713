/* Stack capture and the depot, linked against libsmp directly. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "options.h"
#include "stack.h"

__attribute__((noinline)) static uint32_t capture_here(void)
{
    uint32_t id = smpi_stack_capture(0);
    __asm__ volatile("" ::: "memory");
    return id;
}

__attribute__((noinline)) static uint32_t capture_elsewhere(void)
{
    uint32_t id = smpi_stack_capture(0);
    __asm__ volatile("" ::: "memory");
    return id;
}

Test(stack, same_stack_same_id)
{
    uint32_t a = 0, b;

    /* one call site: an unrolled loop would make three stacks */
#if defined(__clang__)
#pragma nounroll
#else
#pragma GCC unroll 1
#endif
    for (int i = 0; i < 3; i++) {
        b = capture_here();
        cr_assert_neq(b, 0);
        if (i)
            cr_assert_eq(a, b);
        a = b;
    }
    cr_assert_neq(capture_elsewhere(), a);
}

Test(stack, frames_are_return_addresses_of_the_callers)
{
    const uintptr_t *pcs;
    uint32_t id = capture_here();
    int n = smpi_stack_frames(id, &pcs);
    uintptr_t here = (uintptr_t)capture_here;

    cr_assert_geq(n, 2);
    /* frame 0 returns into capture_here, frame 1 into this test */
    cr_assert(pcs[0] > here && pcs[0] < here + 64, "%lx %lx",
              (unsigned long)pcs[0], (unsigned long)here);
}

Test(stack, depth_is_bounded)
{
    const uintptr_t *pcs;

    smpi_opt.malloc_context_size = 1;
    cr_assert_eq(smpi_stack_frames(capture_here(), &pcs), 1);
    smpi_opt.malloc_context_size = 0;
    cr_assert_eq(capture_here(), 0);
    smpi_opt.malloc_context_size = 30;
}

Test(stack, unknown_ids)
{
    const uintptr_t *pcs;

    cr_assert_eq(smpi_stack_frames(0, &pcs), 0);
    cr_assert_eq(smpi_stack_frames(0xfffffff0u, &pcs), 0);
}

Test(stack, walk_skips)
{
    uintptr_t a[8], b[8];
    int n = smpi_stack_walk(a, 8, 0);
    int m = smpi_stack_walk(b, 8, 1);

    cr_assert_geq(n, 2);
    cr_assert_eq(b[0], a[1]);
    cr_assert_leq(m, n);
}

/* Many threads inserting many distinct stacks at once. */
__attribute__((noinline)) static uint32_t recurse(int depth)
{
    uint32_t id = depth ? recurse(depth - 1) : smpi_stack_capture(0);
    __asm__ volatile("" ::: "memory");
    return id;
}

static void *inserter(void *arg)
{
    uint32_t *ids = arg;

    for (int i = 0; i < 40; i++)
        ids[i] = recurse(i);
    return NULL;
}

Test(stack, concurrent_inserts_agree)
{
    pthread_t t[8];
    uint32_t ids[8][40];

    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, inserter, ids[i]);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    /* the same depth from the same thread function: the same stack,
       except for the outermost frames, which are thread-start code and
       identical too */
    for (int d = 0; d < 40; d++) {
        const uintptr_t *p0;
        int n0 = smpi_stack_frames(ids[0][d], &p0);
        cr_assert_gt(n0, 0);
        for (int i = 1; i < 8; i++)
            cr_assert_eq(ids[i][d], ids[0][d], "depth %d thread %d", d, i);
    }
}

static void assert_same_frames(const uintptr_t *fast, int n,
                               const uintptr_t *slow, int m)
{
    cr_assert_gt(n, 2);
    cr_assert_eq(n, m, "fast %d frames, libunwind %d", n, m);
    for (int i = 0; i < n; i++)
        cr_assert_eq(fast[i], slow[i], "frame %d", i);
}

/*
 * The rule-based walk must give exactly libunwind's frames: a deep walk
 * (stepped frame by frame), a walk at the depth reports keep (found in
 * the thread's memory of its stacks when it can be), and a capture.
 */
__attribute__((noinline)) static void compare_here(void)
{
    uintptr_t fast[64], slow[64];
    const uintptr_t *kept;
    int n = smpi_stack_walk(fast, 64, 1);
    int m = smpi_stack_walk_libunwind(slow, 64, 1);

    assert_same_frames(fast, n, slow, m);
    n = smpi_stack_walk(fast, 30, 1);
    m = smpi_stack_walk_libunwind(slow, 30, 1);
    assert_same_frames(fast, n, slow, m);

    /* both keep a return address into this function first, from two
       call sites: the frames of its callers must be the same */
    n = smpi_stack_frames(smpi_stack_capture(0), &kept);
    m = smpi_stack_walk_libunwind(slow, smpi_opt.malloc_context_size, 0);
    assert_same_frames(kept + 1, n - 1, slow + 1, m - 1);
}

__attribute__((noinline)) static int nested(int depth)
{
    volatile int keep = depth;

    if (depth == 0)
        compare_here();
    else
        keep += nested(depth - 1);
    return keep;
}

/* alloca makes the frame's size vary: its CFA comes from rbp */
__attribute__((noinline)) static int with_alloca(int size)
{
    volatile char *buf = __builtin_alloca((size_t)size);

    buf[0] = 1;
    compare_here();
    return buf[0] + nested(3);
}

Test(stack, same_frames_as_libunwind)
{
    for (int d = 0; d < 70; d += 7)
        nested(d);
    with_alloca(16);
    with_alloca(5000);
}

static void *compare_in_thread(void *arg)
{
    (void)arg;
    nested(5);
    with_alloca(100);
    return NULL;
}

Test(stack, same_frames_in_a_thread)
{
    pthread_t t;

    pthread_create(&t, NULL, compare_in_thread, NULL);
    pthread_join(t, NULL);
}

#include <signal.h>

static void on_signal(int sig)
{
    (void)sig;
    /* through the signal frame: the walk must hand over to libunwind */
    nested(2);
}

Test(stack, same_frames_through_a_signal_frame)
{
    signal(SIGUSR1, on_signal);
    raise(SIGUSR1);
    signal(SIGUSR1, SIG_DFL);
}

/*
 * Random call trees: at every level one of three call sites, some with a
 * variable frame (alloca), so consecutive captures share more or less of
 * their stacks. Every capture must equal libunwind's walk.
 */
static unsigned seed = 12345;

static unsigned next_random(void)
{
    seed = seed * 1103515245u + 12345u;
    return seed >> 16;
}

__attribute__((noinline)) static void tree(int depth);

__attribute__((noinline)) static void site_a(int depth)
{
    tree(depth - 1);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void site_b(int depth)
{
    volatile long pad[7] = { depth };
    tree(depth - 1);
    __asm__ volatile("" ::: "memory");
    (void)pad;
}

__attribute__((noinline)) static void site_c(int depth)
{
    volatile char *p = __builtin_alloca(16 + next_random() % 512);
    p[0] = 1;
    tree(depth - 1);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void tree(int depth)
{
    if (depth <= 0) {
        compare_here();
        return;
    }
    switch (next_random() % 3) {
    case 0: site_a(depth); break;
    case 1: site_b(depth); break;
    default: site_c(depth); break;
    }
    __asm__ volatile("" ::: "memory");
}

Test(stack, same_frames_over_random_call_trees)
{
    for (int i = 0; i < 3000; i++)
        tree(1 + (int)(next_random() % 40));
}

/*
 * Two callers with frames of one size call the same function: its frame
 * has the same return address and stack pointer under both, and only an
 * older frame tells the stacks apart. Alternating them, every walk finds
 * a remembered stack that is the other one.
 */
__attribute__((noinline)) static void leaf(void)
{
    compare_here();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void twin_a(int depth)
{
    if (depth)
        twin_a(depth - 1);
    else
        leaf();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void twin_b(int depth)
{
    if (depth)
        twin_b(depth - 1);
    else
        leaf();
    __asm__ volatile("mov %0, %0" ::"r"(depth) : "memory");
}

Test(stack, same_frames_when_stacks_alternate)
{
    for (int i = 0; i < 200; i++) {
        if (i % 3)
            twin_a(i % 5);
        else
            twin_b(i % 5);
    }
}
