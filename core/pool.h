/*
 * Pools as the rest of the runtime sees them. Pool memory lives in one
 * range of address space reserved at start-up, so whether a pointer is a
 * pool block is one comparison (smpi_in_region).
 */
#ifndef SMP_POOL_H
#define SMP_POOL_H

#include <stdint.h>
#include <stddef.h>

#include "smp/smp.h"

extern uintptr_t smpi_region_base;
extern size_t smpi_region_size;

static inline int smpi_in_region(const void *p)
{
    return (uintptr_t)p - smpi_region_base < smpi_region_size;
}

/* Reserves the region once; safe to call from any thread, any time. */
int smpi_init(void);

/* Pools a thread makes for itself use no lock on its own path. */
smp_pool *smpi_pool_new_local(const char *name);

/*
 * A zeroed block of at least size bytes, aligned to align (a power of two;
 * 0 means 16). stack is the allocation's stack id (0 for none).
 * NULL with errno ENOMEM (or EINVAL for a bad alignment).
 */
void *smpi_pool_alloc(smp_pool *pool, size_t size, size_t align,
                      uint32_t stack);

/*
 * Wipes and frees a pool block, from any thread. who names the caller's
 * entry point ("free", "smp_free", ...) in the line printed on misuse.
 */
void smpi_free(void *p, const char *who);

/* Resizes a pool block within its own pool; NULL with ENOMEM leaves p. */
void *smpi_realloc(void *p, size_t size, uint32_t stack);

/* Usable bytes of a live pool block; misuse aborts like smpi_free. */
size_t smpi_usable_size(const void *p, const char *who);

/* One live block, as the reports see it. */
typedef struct smpi_block {
    uintptr_t addr;
    size_t size;    /* bytes asked for */
    size_t usable;  /* bytes the block spans */
    uint32_t stack; /* stack depot id, 0 when none was captured */
} smpi_block;

/* One pool instance, as the reports see it. */
typedef struct smpi_pool_info {
    const smp_pool *pool;
    int owner_tid;  /* thread that owns it; 0 for shared or orphaned */
    smp_stats stats;
} smpi_pool_info;

/*
 * Visit every pool instance (those of exited threads too) and every live
 * block. Callers stop the other threads first or accept a moving picture.
 */
void smpi_foreach_pool(void (*fn)(const smpi_pool_info *info, void *ctx),
                       void *ctx);
void smpi_foreach_block(const smp_pool *pool,
                        void (*fn)(const smpi_block *block, void *ctx),
                        void *ctx);

/* Blocks that were live when their owning scope ended. */
typedef struct smpi_escape {
    char pool_name[SMP_NAME_MAX];
    smpi_block block;
} smpi_escape;
void smpi_foreach_escape(void (*fn)(const smpi_escape *escape, void *ctx),
                         void *ctx);

/* The escaped block holding addr, if one is known; takes no lock. */
int smpi_find_escape(const void *addr, smpi_escape *out);

/*
 * Installs a SIGSEGV handler that explains faults in fenced pool memory,
 * then hands the fault to the handler that was there before.
 */
void smpi_fault_install(void);

/* fork: hold every pool lock across fork, then mend the child. */
void smpi_fork_prepare(void);
void smpi_fork_parent(void);
void smpi_fork_child(void);

/*
 * At process exit: wipe every live block and unlock every pool. The memory
 * stays mapped (late readers see zeroes, not a fault); later frees of pool
 * blocks do nothing, and smpi_torn_down() tells the preload to pass
 * allocations through.
 */
void smpi_teardown(void);
int smpi_torn_down(void);
extern int smpi_teardown_done;

#endif
