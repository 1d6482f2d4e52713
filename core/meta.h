/*
 * Memory for the runtime's own bookkeeping. It comes straight from mmap, so
 * the runtime never calls malloc for itself, and it holds no secrets, so it
 * is neither locked nor wiped. Thread-safe.
 */
#ifndef SMP_META_H
#define SMP_META_H

#include <stddef.h>

/* Zeroed memory, 16-byte aligned; NULL with errno ENOMEM. */
void *smpi_meta_alloc(size_t size);
/* size must be the size given to smpi_meta_alloc. NULL is ignored. */
void smpi_meta_free(void *p, size_t size);

/* Calls fn for every range of address space bookkeeping uses. */
void smpi_meta_foreach_range(void (*fn)(void *start, size_t size, void *ctx),
                             void *ctx);



/* fork: hold the bookkeeping lock across fork, release it on both sides. */
void smpi_meta_lock(void);
void smpi_meta_unlock(void);

#endif
