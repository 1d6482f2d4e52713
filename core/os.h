/*
 * Every call into the operating system that the runtime makes for memory.
 * Functions that can fail return 0 or an errno value.
 */
#ifndef SMP_OS_H
#define SMP_OS_H

#include <stddef.h>

#define SMPI_PAGE_SIZE 4096u

/*
 * The process's memory map and executable, as seen by the calling thread.
 * /proc/self is the main thread: once it has called pthread_exit while
 * other threads go on, its maps read as empty and its exe link fails.
 */
#define SMPI_PROC_MAPS "/proc/thread-self/maps"
#define SMPI_PROC_EXE "/proc/thread-self/exe"

/* Address space with no access and no backing; NULL on failure. */
void *smpi_os_reserve(size_t size);
/* Makes reserved pages readable and writable (they read as zero). */
int smpi_os_commit(void *p, size_t size);
/* Returns pages to the kernel and fences them: no access, no backing. */
int smpi_os_decommit(void *p, size_t size);
/* Gives pages back to the kernel; they read as zero afterwards. */
int smpi_os_discard(void *p, size_t size);
/* Fresh private read-write memory, outside the reserved range. */
void *smpi_os_map(size_t size);
void smpi_os_unmap(void *p, size_t size);

int smpi_os_lock(void *p, size_t size);
void smpi_os_unlock(void *p, size_t size);
/* Excludes pages from core dumps. */
int smpi_os_dontdump(void *p, size_t size);
/* Children made by fork see these pages as zero. */
int smpi_os_wipeonfork(void *p, size_t size);
/* Names anonymous pages (shows in /proc/PID/maps); not every kernel can. */
void smpi_os_name(void *p, size_t size, const char *name);

/* Zeroes memory in a way the compiler may not remove. */
void smpi_wipe(void *p, size_t size);

/* The kernel's id of the calling thread. */
int smpi_os_tid(void);

#endif
