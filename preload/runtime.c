/*
 * The preload's life: finding the next allocator, start-up (the pool
 * region, SMP_OPTIONS, SMP_POOL_SCOPE, fork handlers) and the end of the
 * process (the exit report, then the pools wiped and unlocked).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leak.h"
#include "log.h"
#include "options.h"
#include "pool.h"
#include "preload.h"
#include "report.h"
#include "rules.h"
#include "thread.h"

/*
 * Bootstrap. dlsym may allocate (older glibc always did; 2.36 does when a
 * look-up fails), and it would do so through our malloc before the next
 * allocator is known. Such calls are served from a static buffer; each
 * block is preceded by its size, and free ignores the whole buffer. The
 * look-up happens on the first allocator call, which the dynamic loader
 * makes before any thread can exist, so the buffer needs no lock.
 */
unsigned char smpi_boot_buf[SMPI_BOOT_SIZE] __attribute__((aligned(4096)));
static size_t boot_used;
static int resolving;

static void *boot_alloc(size_t size, size_t align)
{
    size_t start;

    if (align < 16)
        align = 16;
    start = (boot_used + sizeof(size_t) + align - 1) & ~(align - 1);
    if (align > 4096 || size > SMPI_BOOT_SIZE - start ||
        start > SMPI_BOOT_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(smpi_boot_buf + start - sizeof(size_t), &size, sizeof size);
    boot_used = start + size;
    return smpi_boot_buf + start;
}

size_t smpi_boot_size(const void *p)
{
    size_t size;

    memcpy(&size, (const unsigned char *)p - sizeof size, sizeof size);
    return size;
}

static void *next_fn(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);

    if (!fn)
        smpi_fatal("cannot find the next definition of %s", name);
    return fn;
}

static void resolve(void)
{
    smpi_next_fns next;

    if (resolving)
        return;
    resolving = 1;
    next.malloc = (void *(*)(size_t))next_fn("malloc");
    next.free = (void (*)(void *))next_fn("free");
    next.calloc = (void *(*)(size_t, size_t))next_fn("calloc");
    next.realloc = (void *(*)(void *, size_t))next_fn("realloc");
    next.posix_memalign =
        (int (*)(void **, size_t, size_t))next_fn("posix_memalign");
    next.aligned_alloc =
        (void *(*)(size_t, size_t))next_fn("aligned_alloc");
    next.memalign = (void *(*)(size_t, size_t))next_fn("memalign");
    next.valloc = (void *(*)(size_t))next_fn("valloc");
    next.pvalloc = (void *(*)(size_t))next_fn("pvalloc");
    next.malloc_usable_size =
        (size_t (*)(void *))next_fn("malloc_usable_size");
    next.dlopen = (void *(*)(const char *, int))next_fn("dlopen");
    next.dlclose = (int (*)(void *))next_fn("dlclose");
    smpi_next = next;
    resolving = 0;
}

/*
 * The first entries of smpi_next: each looks the real functions up, or,
 * when called from inside that look-up, serves the bootstrap buffer.
 */
static void *boot_malloc(size_t size)
{
    if (resolving)
        return boot_alloc(size, 0);
    resolve();
    return smpi_next.malloc(size);
}

static void boot_free(void *p)
{
    if (resolving)
        return;
    resolve();
    smpi_next.free(p);
}

static void *boot_calloc(size_t n, size_t size)
{
    /* the hook checked n * size for overflow; the buffer is still zero */
    if (resolving)
        return boot_alloc(n * size, 0);
    resolve();
    return smpi_next.calloc(n, size);
}

static void *boot_realloc(void *p, size_t size)
{
    /* the hook moves bootstrap blocks itself: p is NULL here */
    if (resolving)
        return p ? NULL : boot_alloc(size, 0);
    resolve();
    return smpi_next.realloc(p, size);
}

static int boot_posix_memalign(void **out, size_t align, size_t size)
{
    if (resolving) {
        *out = boot_alloc(size, align);
        return *out ? 0 : ENOMEM;
    }
    resolve();
    return smpi_next.posix_memalign(out, align, size);
}

static void *boot_aligned_alloc(size_t align, size_t size)
{
    if (resolving)
        return boot_alloc(size, align);
    resolve();
    return smpi_next.aligned_alloc(align, size);
}

static void *boot_memalign(size_t align, size_t size)
{
    if (resolving)
        return boot_alloc(size, align);
    resolve();
    return smpi_next.memalign(align, size);
}

static void *boot_valloc(size_t size)
{
    if (resolving)
        return boot_alloc(size, 4096);
    resolve();
    return smpi_next.valloc(size);
}

static void *boot_pvalloc(size_t size)
{
    if (resolving)
        return boot_alloc((size + 4095) & ~(size_t)4095, 4096);
    resolve();
    return smpi_next.pvalloc(size);
}

static size_t boot_usable_size(void *p)
{
    if (resolving)
        return 0;
    resolve();
    return smpi_next.malloc_usable_size(p);
}

static void *boot_dlopen(const char *file, int mode)
{
    resolve();
    return smpi_next.dlopen(file, mode);
}

static int boot_dlclose(void *handle)
{
    resolve();
    return smpi_next.dlclose(handle);
}

smpi_next_fns smpi_next = {
    .malloc = boot_malloc,
    .free = boot_free,
    .calloc = boot_calloc,
    .realloc = boot_realloc,
    .posix_memalign = boot_posix_memalign,
    .aligned_alloc = boot_aligned_alloc,
    .memalign = boot_memalign,
    .valloc = boot_valloc,
    .pvalloc = boot_pvalloc,
    .malloc_usable_size = boot_usable_size,
    .dlopen = boot_dlopen,
    .dlclose = boot_dlclose,
};

int smpi_preload_done;
static int exited;

/* Ends the process, after the program's own buffered output went out. */
static __attribute__((noreturn)) void end_process(int status)
{
    fflush(NULL);
    _exit(status);
}

/*
 * A malformed SMP_OPTIONS or SMP_POOL_SCOPE was reported in one line by
 * its parser. By default the program does not start: running unprotected
 * when protection was asked for is worse than not running.
 */
static void config_failed(void)
{
    if (smpi_opt.config_errors == SMPI_CONFIG_ERRORS_WARN)
        return;
    end_process(1);
}

static void configure(void)
{
    const char *options = getenv("SMP_OPTIONS");
    const char *rules = getenv("SMP_POOL_SCOPE");

    if (smpi_options_parse(options) != 0)
        config_failed();
    /* help=1 lists the options instead of running the program */
    if (smpi_opt.help) {
        smpi_options_print_help();
        end_process(0);
    }
    smp_set_mlock_policy((smp_mlock_policy)smpi_opt.mlock);
    smp_set_scope_exit_policy((smp_scope_exit_policy)smpi_opt.scope_exit);

    if (smpi_init() != 0) {
        smpi_log(SMPI_LOG_ERROR, "cannot reserve the pool region: %s",
                 strerror(errno));
        config_failed();
        return;
    }
    if (rules && *rules && smpi_rules_load(rules) != 0)
        config_failed();
}

/* No pool lock may be held across fork; the child re-locks its pages. */
static void fork_prepare(void)
{
    smpi_fork_prepare();
}

static void fork_parent(void)
{
    smpi_fork_parent();
}

static void fork_child(void)
{
    smpi_fork_child();
}

static __attribute__((constructor)) void runtime_start(void)
{
    smpi_guard = 1;
    if (smpi_next.malloc == boot_malloc)
        resolve();
    configure();
    if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
        smpi_log(SMPI_LOG_WARN, "cannot register fork handlers; "
                 "a forked child may deadlock in the allocator");
    smpi_guard = 0;
}

static void count_live(const smpi_pool_info *info, void *ctx)
{
    *(size_t *)ctx += info->stats.live_blocks;
}

static void count_escape(const smpi_escape *escape, void *ctx)
{
    (void)escape;
    ++*(size_t *)ctx;
}

/*
 * With no pool block live and none escaped, the report has nothing to say
 * unless statistics or JSON were asked for. Skipping it then spares every
 * program that routed nothing a scan of its whole heap at exit.
 */
static int report_needed(void)
{
    size_t blocks = 0;

    if (smpi_opt.print_stats || smpi_opt.json[0])
        return 1;
    smpi_foreach_pool(count_live, &blocks);
    smpi_foreach_escape(count_escape, &blocks);
    return blocks > 0;
}

/* The exit status the report chose (leaks found), or -1. */
static int report_status = -1;

/*
 * The last exit handler of the process. Registered while exit runs the
 * destructors, it is called by glibc once they are all done, with the exit
 * status. Threads the program left running could still read their blocks:
 * they are stopped for good before the pools are wiped, and the process
 * ends here, since they may hold locks that the rest of exit would take.
 */
static void end_of_exit(int status, void *arg)
{
    size_t live = 0;

    (void)arg;

    /* with no block to wipe under anyone's feet, glibc ends the process */
    smpi_foreach_pool(count_live, &live);
    if (!live && report_status < 0) {
        smpi_teardown();
        return;
    }

    fflush(NULL);
    smpi_stop_others_for_good();
    smpi_teardown();
    _exit(report_status >= 0 ? report_status : status);
}

/*
 * Runs once, as the preload's destructor: after main returned or exit was
 * called, after the atexit handlers and the destructors of the program and
 * of every object loaded after the preload. Objects the preload depends on
 * (libc, libunwind, ...) may still allocate and free after it: routing is
 * off by then, so new blocks pass through, frees of pool blocks are
 * ignored and resizes move them out. The pools are wiped at the very end
 * (end_of_exit). _exit and fatal signals skip all of this, the report
 * included.
 */
void smpi_runtime_exit(void)
{
    if (__atomic_exchange_n(&exited, 1, __ATOMIC_ACQ_REL))
        return;

    /* the rest of this thread's life runs with the runtime out of the way */
    smpi_guard = 1;

    /*
     * stdio buffers and FILE objects may be pool blocks, about to be
     * wiped: what the program wrote goes out first, before the report.
     */
    fflush(NULL);
    if (report_needed())
        report_status = smpi_report_exit();
    __atomic_store_n(&smpi_preload_done, 1, __ATOMIC_RELEASE);

    if (on_exit(end_of_exit, NULL) == 0)
        return;

    /* no exit handler to be had: wipe now, other threads or not */
    smpi_teardown();
    /*
     * stdio went out above; flushing again now would walk FILE objects
     * that were pool blocks, zeroed by the teardown (a NULL lock).
     */
    if (report_status >= 0)
        _exit(report_status);
}

static __attribute__((destructor)) void runtime_stop(void)
{
    smpi_runtime_exit();
}
