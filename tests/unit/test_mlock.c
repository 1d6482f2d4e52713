/*
 * The mlock limit as an unprivileged process meets it. Each test forks a
 * child that lowers RLIMIT_MEMLOCK and gives up root (and with it
 * CAP_IPC_LOCK), then allocates more than the limit lets it lock.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "smp/smp.h"
#include "testutil.h"

#define LIMIT (64 * 1024)
#define NOBODY 65534
#define BLOCK 4096
#define NBLOCKS 64 /* 256 KiB in all: four times the limit */

/* Exit codes the children use to say which check failed. */
enum {
    OK = 0,
    NO_DROP = 10,
    BAD_ALLOC,
    BAD_ERRNO,
    BAD_STATS,
    BAD_SMAPS,
    BAD_DATA,
    NO_FAILURE,
    ERRNO_CHANGED
};

static const char *const failures[] = {
    [NO_DROP] = "could not give up the right to lock memory",
    [BAD_ALLOC] = "an allocation failed",
    [BAD_ERRNO] = "a failed allocation did not set ENOMEM",
    [BAD_STATS] = "the pool's statistics are wrong",
    [BAD_SMAPS] = "/proc/self/smaps shows locked pages",
    [BAD_DATA] = "a block lost its contents",
    [NO_FAILURE] = "no allocation failed past the limit",
    [ERRNO_CHANGED] = "an allocation that succeeded changed errno",
};

static const char *failure(const child_result *child)
{
    int code = child_exit_code(child);

    if (code < 0)
        return "the child was killed";
    if (code >= NO_DROP && code <= ERRNO_CHANGED)
        return failures[code];
    return "unknown exit code";
}

static void become_unprivileged(void)
{
    struct rlimit lim = { LIMIT, LIMIT };
    void *probe;

    if (setrlimit(RLIMIT_MEMLOCK, &lim) != 0)
        _exit(NO_DROP);
    if (getuid() == 0) {
        if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) ||
            setresuid(NOBODY, NOBODY, NOBODY) != 0)
            _exit(NO_DROP);
    }
    /* Keeps /proc/self readable the usual way after the uid change. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);

    /*
     * The premise: the kernel now refuses to lock past the limit. Asked
     * directly, since sanitizer runtimes turn mlock() into a no-op.
     */
    probe = mmap(NULL, 2 * LIMIT, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe == MAP_FAILED || syscall(SYS_mlock, probe, 2 * LIMIT) == 0)
        _exit(NO_DROP);
    munmap(probe, 2 * LIMIT);
}

static void require_child(void *arg)
{
    static void *blocks[NBLOCKS];
    smp_pool *pool;
    int failed_at = -1;
    smp_stats st;

    (void)arg;
    become_unprivileged();
    smp_set_mlock_policy(SMP_MLOCK_REQUIRE);
    pool = smp_pool_create("required");
    if (!pool)
        _exit(BAD_ALLOC);

    for (int i = 0; i < NBLOCKS; i++) {
        errno = 0;
        blocks[i] = smp_alloc(pool, BLOCK);
        if (!blocks[i]) {
            if (errno != ENOMEM)
                _exit(BAD_ERRNO);
            failed_at = i;
            break;
        }
    }
    if (failed_at < 0)
        _exit(NO_FAILURE);

    /* The refusal is counted; the failed allocation is not. */
    if (smp_pool_stats(pool, &st) != 0 || st.lock_failures == 0 ||
        st.live_blocks != (size_t)failed_at || st.locked_bytes > LIMIT)
        _exit(BAD_STATS);

    /* A large block past the limit fails the same way. */
    errno = 0;
    if (smp_alloc(pool, 4 * LIMIT) || errno != ENOMEM)
        _exit(BAD_ERRNO);
    _exit(OK);
}

Test(mlock, require_fails_allocations_past_the_limit)
{
    child_result child;

    run_in_child(require_child, NULL, &child);
    cr_assert_eq(child_exit_code(&child), OK, "%s (status %#x), stderr '%s'",
                 failure(&child), child.status, child.err);

    /* the refusals are explained once, with the limit and the way out */
    cr_assert_eq(count_lines(child.err), 1, "one line, got '%s'", child.err);
    cr_assert_eq(count_lines_with(child.err, "RLIMIT_MEMLOCK"), 1,
                 "the line names RLIMIT_MEMLOCK: '%s'", child.err);
    cr_assert_eq(count_lines_with(child.err, "mlock=require"), 1,
                 "the line names the policy: '%s'", child.err);
    cr_assert_eq(strncmp(child.err, "smp: ", 5), 0,
                 "the line starts with 'smp: ', got '%s'", child.err);
}

static void try_child(void *arg)
{
    static unsigned char *blocks[NBLOCKS];
    smp_pool *pool;
    smp_stats st;

    (void)arg;
    become_unprivileged();
    smp_set_mlock_policy(SMP_MLOCK_TRY);
    pool = smp_pool_create("tried");

    /* allocations that succeed unlocked leave errno as it was */
    for (int i = 0; i < NBLOCKS; i++) {
        errno = 0;
        blocks[i] = smp_alloc(pool, BLOCK);
        if (!blocks[i])
            _exit(BAD_ALLOC);
        if (errno != 0)
            _exit(ERRNO_CHANGED);
        memset(blocks[i], i, BLOCK);
    }
    errno = 0;
    if (!smp_alloc(pool, 4 * LIMIT))
        _exit(BAD_ALLOC);
    if (errno != 0)
        _exit(ERRNO_CHANGED);

    for (int i = 0; i < NBLOCKS; i++)
        for (int j = 0; j < BLOCK; j++)
            if (blocks[i][j] != (unsigned char)i)
                _exit(BAD_DATA);
    if (smp_pool_stats(pool, &st) != 0 || st.lock_failures == 0 ||
        st.locked_bytes > LIMIT || st.live_blocks != NBLOCKS + 1)
        _exit(BAD_STATS);
    _exit(OK);
}

Test(mlock, try_goes_on_unlocked_and_warns_once)
{
    child_result child;

    run_in_child(try_child, NULL, &child);
    cr_assert_eq(child_exit_code(&child), OK, "%s (status %#x), stderr '%s'",
                 failure(&child), child.status, child.err);
    cr_assert_eq(count_lines_with(child.err, "RLIMIT_MEMLOCK"), 1,
                 "one warning naming RLIMIT_MEMLOCK, got '%s'", child.err);
    cr_assert_eq(count_lines(child.err), 1, "only the warning, got '%s'",
                 child.err);
    cr_assert_eq(strncmp(child.err, "smp: ", 5), 0,
                 "the warning starts with 'smp: ', got '%s'", child.err);
}

static void off_child(void *arg)
{
    static void *blocks[NBLOCKS];
    smp_pool *pool;
    mapping_facts m;
    smp_stats st;

    (void)arg;
    become_unprivileged();
    smp_set_mlock_policy(SMP_MLOCK_OFF);
    if (smp_get_mlock_policy() != SMP_MLOCK_OFF)
        _exit(BAD_STATS);
    pool = smp_pool_create("unlocked");

    for (int i = 0; i < NBLOCKS; i++)
        if (!(blocks[i] = smp_alloc(pool, BLOCK)))
            _exit(BAD_ALLOC);
    if (smp_pool_stats(pool, &st) != 0 || st.lock_failures != 0 ||
        st.locked_bytes != 0)
        _exit(BAD_STATS);

    /* Nothing is locked, but pool pages still stay out of core dumps. */
    if (smaps_lookup(blocks[0], &m) != 0 || has_vmflag(&m, "lo") ||
        m.locked_kb != 0 || !has_vmflag(&m, "dd"))
        _exit(BAD_SMAPS);
    if (smaps_lookup(blocks[NBLOCKS - 1], &m) != 0 || has_vmflag(&m, "lo"))
        _exit(BAD_SMAPS);

    for (int i = 0; i < NBLOCKS; i++)
        smp_free(blocks[i]);
    _exit(OK);
}

Test(mlock, off_locks_nothing_and_says_nothing)
{
    child_result child;

    run_in_child(off_child, NULL, &child);
    cr_assert_eq(child_exit_code(&child), OK, "%s (status %#x), stderr '%s'",
                 failure(&child), child.status, child.err);
    cr_assert_eq(child.err_len, 0, "no warning expected, got '%s'", child.err);
}

Test(mlock, policy_setting_round_trips)
{
    cr_assert_eq(smp_get_mlock_policy(), SMP_MLOCK_TRY);
    smp_set_mlock_policy(SMP_MLOCK_REQUIRE);
    cr_assert_eq(smp_get_mlock_policy(), SMP_MLOCK_REQUIRE);
    smp_set_mlock_policy(SMP_MLOCK_OFF);
    cr_assert_eq(smp_get_mlock_policy(), SMP_MLOCK_OFF);
    smp_set_mlock_policy(SMP_MLOCK_TRY);
    cr_assert_eq(smp_get_mlock_policy(), SMP_MLOCK_TRY);
}
