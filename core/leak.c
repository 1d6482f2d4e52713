/*
 * The leak scan. Other threads are stopped with a signal whose handler
 * records the registers and waits on a futex: no ptrace, which containers
 * often forbid. A thread caught inside a pool operation (busy) finishes
 * it first and stops in smpi_stop_hook; one caught elsewhere inside the
 * runtime (smpi_guard set) may hold a runtime lock, so it is let go and
 * signalled again a moment later.
 *
 * While the others stand still this thread must not take any lock they
 * could hold: no malloc (a stopped thread may own a glibc arena), no
 * stdio, no opendir. Scratch memory comes from smpi_os_map and /proc is
 * read with plain system calls.
 */
#include <sched.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "leak.h"
#include "log.h"
#include "meta.h"
#include "os.h"
#include "pool.h"
#include "region.h"
#include "thread.h"

#define THREADS_MAX 4096
#define RANGES_MAX 8192
#define EXCLUDE_MAX 64
#define RED_ZONE 128
#define STOP_DEADLINE_NS 2000000000L
#define FINAL_DEADLINE_NS 100000000L /* at the end: no scan waits on it */
#define RETRY_NS 500000L

/* ---- scratch memory, never from malloc ---- */

typedef struct scratch {
    void *p;
    size_t size;
} scratch;

static int grow(scratch *s, size_t need)
{
    size_t size = s->size ? s->size : SMPI_PAGE_SIZE * 16;
    void *p;

    if (need <= s->size)
        return 0;
    while (size < need)
        size *= 2;
    p = smpi_os_map(size);
    if (!p)
        return -1;
    if (s->p) {
        memcpy(p, s->p, s->size);
        smpi_os_unmap(s->p, s->size);
    }
    s->p = p;
    s->size = size;
    return 0;
}

static void release(scratch *s)
{
    if (s->p)
        smpi_os_unmap(s->p, s->size);
    s->p = NULL;
    s->size = 0;
}

/* ---- stopping the world ---- */

typedef struct parked {
    int tid;
    uintptr_t sp;
    uintptr_t regs[NGREG];
} parked;

static parked *stopped;      /* THREADS_MAX entries, mapped once */
static sigjmp_buf *fault_jump; /* after them: saved registers are no root */
static _Atomic int nclaimed; /* slots handed out */
static _Atomic int nparked;  /* slots filled */
static _Atomic int nresumed;
static _Atomic int stopping;
static _Atomic int released; /* the futex the parked threads wait on */

static long futex(_Atomic int *word, int op, int value)
{
    return syscall(SYS_futex, (int *)word, op, value, NULL, NULL, 0);
}

static void park(const ucontext_t *uc)
{
    int slot = atomic_fetch_add(&nclaimed, 1);

    if (slot < THREADS_MAX) {
        parked *p = &stopped[slot];
        for (int i = 0; i < NGREG; i++)
            p->regs[i] = (uintptr_t)uc->uc_mcontext.gregs[i];
        p->sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
        p->tid = smpi_os_tid();
    }
    atomic_fetch_add(&nparked, 1);
    while (!atomic_load(&released))
        futex(&released, FUTEX_WAIT_PRIVATE, 0);
    atomic_fetch_add(&nresumed, 1);
}

static void on_stop_signal(int sig, siginfo_t *info, void *context)
{
    smpi_thread *t = smpi_self;
    int saved = errno;

    (void)sig;
    (void)info;
    if (!atomic_load(&stopping) || atomic_load(&released)) {
        errno = saved;
        return;
    }
    if (t && t->busy)
        t->stop_pending = 1; /* stops in smpi_stop_hook, lock-free */
    else if (!smpi_guard)
        park(context);
    errno = saved;
}

/* A busy thread left its pool operation: a safe place to stand still. */
static void stop_hook(void)
{
    smpi_thread *t = smpi_self;
    ucontext_t uc;

    if (t)
        t->stop_pending = 0;
    if (!atomic_load(&stopping) || atomic_load(&released))
        return;
    getcontext(&uc);
    park(&uc);
}

static int is_parked(int tid)
{
    int n = atomic_load(&nparked);

    if (n > THREADS_MAX)
        n = THREADS_MAX;
    for (int i = 0; i < n; i++) {
        if (stopped[i].tid == tid)
            return 1;
    }
    return 0;
}

struct linux_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/*
 * A thread that has ended but is still listed: the main thread after it
 * called pthread_exit stays a zombie until the whole process ends, and a
 * signal sent to it is never handled.
 */
static int is_zombie(int task_fd, const char *tid)
{
    char path[32], stat[512];
    const char *state;
    ssize_t n;
    int fd;

    snprintf(path, sizeof path, "%s/stat", tid);
    fd = openat(task_fd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        return 1;
    stat[n] = 0;

    /* "TID (COMM) STATE ...", where COMM may hold parentheses itself */
    state = strrchr(stat, ')');
    return state && (state[2] == 'Z' || state[2] == 'X');
}

/* Signals every thread not parked yet; returns how many still run. */
static int signal_others(int self, int signo, int *missing, int max)
{
    char buf[4096];
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int running = 0;
    long n;

    if (fd < 0)
        return 0;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long at = 0; at < n;) {
            struct linux_dirent64 *d = (void *)(buf + at);
            int tid = 0;

            at += d->d_reclen;
            for (const char *c = d->d_name; *c >= '0' && *c <= '9'; c++)
                tid = tid * 10 + (*c - '0');
            if (tid <= 0 || tid == self || is_parked(tid) ||
                is_zombie(fd, d->d_name))
                continue;
            if (syscall(SYS_tgkill, getpid(), tid, signo) != 0)
                continue; /* it has just exited */
            if (running < max)
                missing[running] = tid;
            running++;
        }
    }
    close(fd);
    return running;
}

static long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static struct sigaction old_action;
static int stop_signal;

/* Returns how many threads did not stop within wait_ns. */
static int stop_world(int *missing, int max, long wait_ns)
{
    struct sigaction sa;
    long deadline = now_ns() + wait_ns;
    int self = smpi_os_tid();
    int running;

    /* kept for good: a late handler may still write its slot */
    if (!stopped)
        stopped = smpi_os_map(THREADS_MAX * sizeof(parked) +
                              sizeof(sigjmp_buf));
    if (!stopped)
        return -1;
    fault_jump = (sigjmp_buf *)(stopped + THREADS_MAX);
    atomic_store(&nclaimed, 0);
    atomic_store(&nparked, 0);
    atomic_store(&nresumed, 0);
    atomic_store(&released, 0);
    atomic_store(&stopping, 1);
    smpi_stop_hook = stop_hook;

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_stop_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    stop_signal = SIGRTMAX - 4;
    sigaction(stop_signal, &sa, &old_action);

    /* ask again until every thread stands still: new ones may appear */
    for (;;) {
        struct timespec pause = { 0, RETRY_NS };

        running = signal_others(self, stop_signal, missing, max);
        if (running == 0 || now_ns() > deadline)
            break;
        nanosleep(&pause, NULL);
    }
    return running;
}

static void resume_world(void)
{
    struct sigaction ignore;
    int parked_count = atomic_load(&nparked);

    atomic_store(&stopping, 0);
    atomic_store(&released, 1);
    futex(&released, FUTEX_WAKE_PRIVATE, 0x7fffffff);
    while (atomic_load(&nresumed) < parked_count)
        sched_yield();

    /* pending stop signals are dropped before the old action returns */
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigaction(stop_signal, &ignore, NULL);
    sigaction(stop_signal, &old_action, NULL);
    smpi_stop_hook = NULL;
}

/* ---- collecting pools and blocks ---- */

typedef struct collect {
    scratch pools, blocks, pool_ptrs;
    size_t npools, nblocks;
    uint32_t current;
    int failed;
} collect;

static void add_pool(const smpi_pool_info *info, void *ctx)
{
    collect *c = ctx;
    smpi_leak_pool *pools;
    const smp_pool **ptrs;

    if (grow(&c->pools, (c->npools + 1) * sizeof *pools) ||
        grow(&c->pool_ptrs, (c->npools + 1) * sizeof *ptrs)) {
        c->failed = 1;
        return;
    }
    pools = c->pools.p;
    ptrs = c->pool_ptrs.p;
    pools[c->npools].owner_tid = info->owner_tid;
    pools[c->npools].stats = info->stats;
    ptrs[c->npools] = info->pool;
    c->npools++;
}

static void add_block(const smpi_block *block, void *ctx)
{
    collect *c = ctx;
    smpi_leak_block *b;

    if (grow(&c->blocks, (c->nblocks + 1) * sizeof *b)) {
        c->failed = 1;
        return;
    }
    b = (smpi_leak_block *)c->blocks.p + c->nblocks++;
    b->addr = block->addr;
    b->size = block->size;
    b->usable = block->usable;
    b->stack = block->stack;
    b->pool = c->current;
    b->kind = SMPI_DIRECT;
}

/* Heap sort: qsort may call malloc, which a stopped thread may hold. */
static void sift(smpi_leak_block *b, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && b[child + 1].addr > b[child].addr)
            child++;
        if (b[root].addr >= b[child].addr)
            return;
        smpi_leak_block t = b[root];
        b[root] = b[child];
        b[child] = t;
        root = child;
    }
}

static void sort_blocks(smpi_leak_block *b, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(b, i, n);
    for (size_t end = n; end-- > 1;) {
        smpi_leak_block t = b[0];
        b[0] = b[end];
        b[end] = t;
        sift(b, 0, end);
    }
}

/* ---- marking ---- */

typedef struct marker {
    smpi_leak_block *blocks;
    size_t nblocks;
    uint32_t *work;
    size_t nwork;
    size_t root_bytes;
    size_t faulted; /* mappings that could not be read */
} marker;

/* The block p points into (interior pointers count), or -1. */
static long find_block(const marker *m, uintptr_t p)
{
    size_t lo = 0, hi = m->nblocks;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->blocks[mid].addr <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const smpi_leak_block *b = &m->blocks[lo - 1];
    size_t span = b->size ? b->size : 1;
    return p - b->addr < span ? (long)(lo - 1) : -1;
}

static void mark_word(marker *m, uintptr_t w)
{
    long i;

    if (!smpi_in_region((const void *)w))
        return;
    i = find_block(m, w);
    if (i < 0 || m->blocks[i].kind == SMPI_REACHABLE)
        return;
    m->blocks[i].kind = SMPI_REACHABLE;
    m->work[m->nwork++] = (uint32_t)i;
}

static void mark_range(marker *m, uintptr_t start, uintptr_t end)
{
    start = (start + 7) & ~(uintptr_t)7;
    for (uintptr_t at = start; at + 8 <= end; at += 8)
        mark_word(m, *(const uintptr_t *)at);
    m->root_bytes += end > start ? end - start : 0;
}

static void mark_transitively(marker *m)
{
    while (m->nwork) {
        const smpi_leak_block *b = &m->blocks[m->work[--m->nwork]];
        mark_range(m, b->addr, b->addr + b->usable);
    }
}

/* Leaked blocks that other leaked blocks point to are indirect. */
static void classify_leaked(marker *m)
{
    for (size_t i = 0; i < m->nblocks; i++) {
        const smpi_leak_block *b = &m->blocks[i];
        uintptr_t at = b->addr;

        if (b->kind == SMPI_REACHABLE)
            continue;
        for (; at + 8 <= b->addr + b->usable; at += 8) {
            uintptr_t w = *(const uintptr_t *)at;
            long j;

            if (!smpi_in_region((const void *)w))
                continue;
            j = find_block(m, w);
            if (j >= 0 && (size_t)j != i &&
                m->blocks[j].kind == SMPI_DIRECT)
                m->blocks[j].kind = SMPI_INDIRECT;
        }
    }
}

/* ---- roots ---- */

typedef struct range {
    uintptr_t start, end;
} range;

typedef struct roots {
    range exclude[EXCLUDE_MAX];
    int nexclude;
} roots;

static void add_exclude(roots *r, uintptr_t start, uintptr_t end)
{
    if (r->nexclude < EXCLUDE_MAX)
        r->exclude[r->nexclude++] = (range){ start, end };
}

static void exclude_meta(void *start, size_t size, void *ctx)
{
    add_exclude(ctx, (uintptr_t)start, (uintptr_t)start + size);
}

static uintptr_t hex(const char **s)
{
    uintptr_t v = 0;

    for (;; (*s)++) {
        char c = **s;
        if (c >= '0' && c <= '9')
            v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else
            return v;
    }
}

/* Scans [start, end) minus the excluded ranges (taken in any order). */
static void mark_root(marker *m, const roots *r, uintptr_t start,
                      uintptr_t end)
{
    for (int i = 0; i < r->nexclude && start < end; i++) {
        const range *x = &r->exclude[i];
        if (x->end <= start || x->start >= end)
            continue;
        if (x->start > start)
            mark_root(m, r, start, x->start);
        start = x->end;
    }
    if (start < end)
        mark_range(m, start, end);
}

/* The lowest live address of the stack that holds sp, if a thread's. */
static uintptr_t stack_floor(uintptr_t start, uintptr_t end, int nparked_,
                             uintptr_t self_sp)
{
    uintptr_t floor = start;

    if (self_sp >= start && self_sp < end)
        floor = self_sp;
    for (int i = 0; i < nparked_; i++) {
        uintptr_t sp = stopped[i].sp - RED_ZONE;
        if (stopped[i].sp >= start && stopped[i].sp < end && sp > floor)
            floor = sp;
    }
    return floor;
}

static int read_maps(scratch *text, size_t *len)
{
    int fd = open(SMPI_PROC_MAPS, O_RDONLY | O_CLOEXEC);
    long n;

    *len = 0;
    if (fd < 0)
        return -1;
    for (;;) {
        if (grow(text, *len + 65536 + 1)) {
            close(fd);
            return -1;
        }
        n = read(fd, (char *)text->p + *len, text->size - *len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    close(fd);
    ((char *)text->p)[*len] = 0;
    return 0;
}

/*
 * A writable mapping can still fault when read (a file mapping whose file
 * was truncated, memory another tool keeps from the program): such a
 * mapping is skipped rather than ending the process. Only the scanning
 * thread jumps; a fault of any other thread goes to its old handler.
 */
static int fault_tid;
static struct sigaction old_segv, old_bus;

static void on_fault(int sig, siginfo_t *info, void *context)
{
    (void)info;
    (void)context;
    if (fault_tid && fault_tid == smpi_os_tid())
        siglongjmp(*fault_jump, 1);
    /* not ours: the old handler sees the fault when it happens again */
    sigaction(sig, sig == SIGBUS ? &old_bus : &old_segv, NULL);
}

static void guard_faults(int on)
{
    struct sigaction sa;

    if (!on) {
        fault_tid = 0;
        sigaction(SIGSEGV, &old_segv, NULL);
        sigaction(SIGBUS, &old_bus, NULL);
        return;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    fault_tid = smpi_os_tid();
}

/* Scans one mapping; 0, or -1 when reading it faulted. */
static int mark_mapping(marker *m, const roots *r, uintptr_t start,
                        uintptr_t end)
{
    if (sigsetjmp(*fault_jump, 1))
        return -1;
    mark_root(m, r, start, end);
    return 0;
}

/* Writable mappings: data of every object, heaps, stacks, TLS. */
static void mark_maps(marker *m, const roots *r, const char *maps,
                      int nparked_, uintptr_t self_sp)
{
    for (const char *line = maps; *line;) {
        const char *s = line;
        uintptr_t start = hex(&s), end = (s++, hex(&s));
        const char *perms = ++s;
        const char *eol = strchr(s, '\n');
        const char *path = memchr(s, '/', eol ? (size_t)(eol - s) : 0);
        const char *bracket = memchr(s, '[', eol ? (size_t)(eol - s) : 0);

        line = eol ? eol + 1 : s + strlen(s);
        if (perms[0] != 'r' || perms[1] != 'w')
            continue;
        /* device memory may have side effects; the vsyscall page none */
        if ((path && !strncmp(path, "/dev/", 5) &&
             strncmp(path, "/dev/zero", 9)) ||
            (bracket && !strncmp(bracket, "[vvar]", 6)))
            continue;
        start = stack_floor(start, end, nparked_, self_sp);
        if (mark_mapping(m, r, start, end))
            m->faulted++;
    }
}

static void mark_registers(marker *m, int nparked_)
{
    for (int i = 0; i < nparked_; i++) {
        for (int j = 0; j < NGREG; j++)
            mark_word(m, stopped[i].regs[j]);
    }
}

/* ---- the scan ---- */

static int collect_all(collect *c)
{
    const smp_pool **ptrs;

    smpi_foreach_pool(add_pool, c);
    ptrs = c->pool_ptrs.p;
    for (size_t i = 0; i < c->npools && !c->failed; i++) {
        c->current = (uint32_t)i;
        if (ptrs[i])
            smpi_foreach_block(ptrs[i], add_block, c);
    }
    return c->failed ? -1 : 0;
}

static int classify(collect *c, scratch *work, scratch *maps,
                    uintptr_t self_sp, size_t *root_bytes)
{
    marker m = { c->blocks.p, c->nblocks, NULL, 0, 0, 0 };
    int nparked_ = atomic_load(&nparked);
    roots r = { .nexclude = 0 };
    size_t len;

    if (nparked_ > THREADS_MAX)
        nparked_ = THREADS_MAX;
    sort_blocks(m.blocks, m.nblocks);
    if (grow(work, (m.nblocks + 1) * sizeof *m.work) ||
        read_maps(maps, &len))
        return -1;
    m.work = work->p;

    add_exclude(&r, smpi_region_base, smpi_region_base + smpi_region_size);
    /*
     * glibc fills all of an old sigaction's 128-byte mask, most of it from
     * its own stack: stale words of the program's dead frames, not roots.
     */
    add_exclude(&r, (uintptr_t)&old_action, (uintptr_t)(&old_action + 1));
    add_exclude(&r, (uintptr_t)&old_segv, (uintptr_t)(&old_segv + 1));
    add_exclude(&r, (uintptr_t)&old_bus, (uintptr_t)(&old_bus + 1));
    smpi_meta_foreach_range(exclude_meta, &r);
    /* the region's page map holds bookkeeping pointers only */
    add_exclude(&r, (uintptr_t)smpi_page_map,
                (uintptr_t)smpi_page_map +
                    (smpi_region_size >> SMPI_PAGE_SHIFT) * sizeof(uintptr_t));
    add_exclude(&r, (uintptr_t)c->pools.p,
                (uintptr_t)c->pools.p + c->pools.size);
    add_exclude(&r, (uintptr_t)c->pool_ptrs.p,
                (uintptr_t)c->pool_ptrs.p + c->pool_ptrs.size);
    add_exclude(&r, (uintptr_t)c->blocks.p,
                (uintptr_t)c->blocks.p + c->blocks.size);
    add_exclude(&r, (uintptr_t)work->p, (uintptr_t)work->p + work->size);
    add_exclude(&r, (uintptr_t)maps->p, (uintptr_t)maps->p + maps->size);
    add_exclude(&r, (uintptr_t)stopped,
                (uintptr_t)stopped + THREADS_MAX * sizeof(parked) +
                    sizeof(sigjmp_buf));

    mark_registers(&m, nparked_);
    guard_faults(1);
    mark_maps(&m, &r, maps->p, nparked_, self_sp);
    guard_faults(0);
    mark_transitively(&m);
    classify_leaked(&m);
    *root_bytes = m.root_bytes;
    if (m.faulted)
        smpi_log(SMPI_LOG_INFO, "leak scan: %zu mapping(s) could not be "
                 "read and were skipped", m.faulted);
    return 0;
}

int smpi_leak_scan_run(smpi_leak_scan *scan, uintptr_t stack_top)
{
    scratch work = { 0 }, maps = { 0 };
    collect c = { 0 };
    int missing[16];
    long started = now_ns();
    int running, status;

    memset(scan, 0, sizeof *scan);
    running = stop_world(missing, 16, STOP_DEADLINE_NS);
    if (running < 0)
        return -1;

    status = collect_all(&c);
    if (status == 0)
        status = classify(&c, &work, &maps, stack_top, &scan->root_bytes);
    scan->threads_stopped = (size_t)atomic_load(&nparked);
    resume_world();
    scan->seconds = (double)(now_ns() - started) / 1e9;

    for (int i = 0; i < running && i < 16; i++)
        smpi_log(SMPI_LOG_WARN, "leak scan: thread %d did not stop within "
                 "2 s (signal %d blocked?); it was scanned while running",
                 missing[i], stop_signal);
    scan->threads_missed = (size_t)running;
    release(&work);
    release(&maps);
    release(&c.pool_ptrs);
    scan->blocks = c.blocks.p;
    scan->nblocks = c.nblocks;
    scan->blocks_mapped = c.blocks.size;
    scan->pools = c.pools.p;
    scan->npools = c.npools;
    scan->pools_mapped = c.pools.size;
    return status;
}

void smpi_leak_scan_free(smpi_leak_scan *scan)
{
    scratch blocks = { scan->blocks, scan->blocks_mapped };
    scratch pools = { scan->pools, scan->pools_mapped };

    release(&blocks);
    release(&pools);
    memset(scan, 0, sizeof *scan);
}

int smpi_stop_others_for_good(void)
{
    int missing[1];

    /* never resumed: the parked threads wait until the process ends */
    return stop_world(missing, 0, FINAL_DEADLINE_NS);
}
