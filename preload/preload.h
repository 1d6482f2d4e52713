/*
 * What the hooks and the start-up code share: the next allocator's
 * functions (glibc's, or another preloaded allocator's), and the static
 * buffer that serves allocations made while those are being looked up.
 */
#ifndef SMP_PRELOAD_H
#define SMP_PRELOAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct smpi_next_fns {
    void *(*malloc)(size_t size);
    void (*free)(void *p);
    void *(*calloc)(size_t n, size_t size);
    void *(*realloc)(void *p, size_t size);
    int (*posix_memalign)(void **out, size_t align, size_t size);
    void *(*aligned_alloc)(size_t align, size_t size);
    void *(*memalign)(size_t align, size_t size);
    void *(*valloc)(size_t size);
    void *(*pvalloc)(size_t size);
    size_t (*malloc_usable_size)(void *p);
    void *(*dlopen)(const char *file, int mode);
    int (*dlclose)(void *handle);
} smpi_next_fns;

/*
 * Until the first call looks the real functions up, every entry points at
 * a bootstrap function that does so; afterwards the hooks call through
 * these pointers with no further test.
 */
extern smpi_next_fns smpi_next;

/* Set once the exit report ran: routed allocations then pass through. */
extern int smpi_preload_done;

/*
 * The end of the runtime: the exit report, then every pool wiped and
 * unlocked. Runs once, from the preload's destructor.
 */
void smpi_runtime_exit(void);

/* The bootstrap buffer. Its blocks are never freed and never reused. */
#define SMPI_BOOT_SIZE (64u * 1024u)
extern unsigned char smpi_boot_buf[SMPI_BOOT_SIZE];

static inline int smpi_boot_owns(const void *p)
{
    return (uintptr_t)p - (uintptr_t)smpi_boot_buf < SMPI_BOOT_SIZE;
}

/* Bytes asked for by a bootstrap block. */
size_t smpi_boot_size(const void *p);

/*
 * Where dlopen, called from caller, would find file along the caller's
 * DT_RPATH or DT_RUNPATH: 1 with the path in out, else 0 (the name has a
 * slash, the caller has no such path, or the file is not on it).
 */
int smpi_caller_search(const char *file, const void *caller, char *out,
                       size_t size);

#endif
