/* Linux system calls for pool memory. Nothing else in core calls them. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

void *smpi_os_reserve(size_t size)
{
    void *p = mmap(NULL, size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int smpi_os_commit(void *p, size_t size)
{
    return mprotect(p, size, PROT_READ | PROT_WRITE) ? errno : 0;
}

int smpi_os_decommit(void *p, size_t size)
{
    /* a fresh mapping drops the pages, the lock and the madvise flags */
    void *q = mmap(p, size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                   -1, 0);
    return q == MAP_FAILED ? errno : 0;
}

int smpi_os_discard(void *p, size_t size)
{
    return madvise(p, size, MADV_DONTNEED) ? errno : 0;
}

void *smpi_os_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void smpi_os_unmap(void *p, size_t size)
{
    munmap(p, size);
}

/*
 * mlock and munlock go to the kernel directly: sanitizer runtimes
 * intercept the libc functions and turn them into no-ops.
 */
int smpi_os_lock(void *p, size_t size)
{
    return syscall(SYS_mlock, p, size) ? errno : 0;
}

void smpi_os_unlock(void *p, size_t size)
{
    syscall(SYS_munlock, p, size);
}

int smpi_os_dontdump(void *p, size_t size)
{
    return madvise(p, size, MADV_DONTDUMP) ? errno : 0;
}

int smpi_os_wipeonfork(void *p, size_t size)
{
    return madvise(p, size, MADV_WIPEONFORK) ? errno : 0;
}

void smpi_os_name(void *p, size_t size, const char *name)
{
    static int refused;
    int saved = errno;

    /* refused by kernels built without CONFIG_ANON_VMA_NAME: harmless,
       and asked once */
    if (__atomic_load_n(&refused, __ATOMIC_RELAXED))
        return;
    if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, size,
              (unsigned long)name) != 0 && errno == EINVAL)
        __atomic_store_n(&refused, 1, __ATOMIC_RELAXED);
    errno = saved;
}

void smpi_wipe(void *p, size_t size)
{
    memset(p, 0, size);
    /* the asm claims to read the memory, so the stores cannot be dropped */
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

int smpi_os_tid(void)
{
    return (int)syscall(SYS_gettid);
}
