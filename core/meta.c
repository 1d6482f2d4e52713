/*
 * Bookkeeping memory. One range of address space is reserved up front and
 * handed out by a bump pointer, committed a step at a time; freed pieces
 * go on free lists by power-of-two size. Large pieces give their pages
 * back to the kernel when freed. One range makes "is this address
 * bookkeeping?" easy for the leak scan.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "meta.h"
#include "os.h"
#include "thread.h"

#define META_RESERVE ((size_t)64 << 30)
#define META_MIN ((size_t)64 << 20)
#define META_STEP ((size_t)1 << 20)
#define SMALL_MIN_SHIFT 4
#define SMALL_MAX_SHIFT 16
#define NCLASSES (SMALL_MAX_SHIFT - SMALL_MIN_SHIFT + 1)

typedef struct free_piece {
    struct free_piece *next;
    size_t size;
} free_piece;

static pthread_mutex_t meta_mutex = PTHREAD_MUTEX_INITIALIZER;
static char *meta_base;
static size_t meta_size;
static size_t meta_used;
static size_t meta_committed;
static free_piece *small_free[NCLASSES];
static free_piece *large_free;

void smpi_meta_lock(void)
{
    smpi_mutex_take(&meta_mutex);
}

void smpi_meta_unlock(void)
{
    smpi_mutex_give(&meta_mutex);
}

static unsigned class_of(size_t size)
{
    unsigned shift = SMALL_MIN_SHIFT;

    while (((size_t)1 << shift) < size)
        shift++;
    return shift - SMALL_MIN_SHIFT;
}

static size_t rounded(size_t size)
{
    if (size <= ((size_t)1 << SMALL_MAX_SHIFT))
        return (size_t)1 << (class_of(size) + SMALL_MIN_SHIFT);
    return (size + SMPI_PAGE_SIZE - 1) & ~(size_t)(SMPI_PAGE_SIZE - 1);
}

/* Carves size bytes off the reserved range; the caller holds the lock. */
static void *bump(size_t size)
{
    if (!meta_base) {
        /* as much as the system lets us reserve (less under valgrind) */
        for (meta_size = META_RESERVE; !meta_base && meta_size >= META_MIN;
             meta_size /= 2)
            meta_base = smpi_os_reserve(meta_size);
        if (!meta_base)
            return NULL;
        meta_size *= 2;
    }
    if (size > meta_size - meta_used)
        return NULL;
    while (meta_used + size > meta_committed) {
        if (smpi_os_commit(meta_base + meta_committed, META_STEP))
            return NULL;
        meta_committed += META_STEP;
    }
    void *p = meta_base + meta_used;
    meta_used += size;
    return p;
}

/* First fit among freed large pieces; the remainder stays on the list. */
static void *take_large(size_t size)
{
    for (free_piece **link = &large_free; *link; link = &(*link)->next) {
        free_piece *piece = *link;
        if (piece->size < size)
            continue;
        if (piece->size == size) {
            *link = piece->next;
        } else {
            free_piece *rest = (free_piece *)((char *)piece + size);
            rest->size = piece->size - size;
            rest->next = piece->next;
            *link = rest;
        }
        return piece;
    }
    return NULL;
}

static void clear(void *p, size_t size)
{
    /* large pieces were given back with MADV_DONTNEED and read as zero */
    if (size > ((size_t)1 << SMALL_MAX_SHIFT))
        *(free_piece *)p = (free_piece){ 0 };
    else
        smpi_wipe(p, size);
}

void *smpi_meta_alloc(size_t size)
{
    size_t full = rounded(size ? size : 1);
    void *p = NULL;

    smpi_mutex_take(&meta_mutex);
    if (full <= ((size_t)1 << SMALL_MAX_SHIFT)) {
        free_piece **head = &small_free[class_of(full)];
        if (*head) {
            p = *head;
            *head = (*head)->next;
        }
    } else {
        p = take_large(full);
    }
    if (p)
        clear(p, full);
    else
        p = bump(full);
    smpi_mutex_give(&meta_mutex);
    if (!p)
        errno = ENOMEM;
    return p;
}

void smpi_meta_free(void *p, size_t size)
{
    size_t full = rounded(size ? size : 1);
    free_piece *piece = p;

    if (!p)
        return;
    if (full > ((size_t)1 << SMALL_MAX_SHIFT))
        smpi_os_discard(p, full);
    smpi_mutex_take(&meta_mutex);
    piece->size = full;
    if (full <= ((size_t)1 << SMALL_MAX_SHIFT)) {
        piece->next = small_free[class_of(full)];
        small_free[class_of(full)] = piece;
    } else {
        piece->next = large_free;
        large_free = piece;
    }
    smpi_mutex_give(&meta_mutex);
}

void smpi_meta_foreach_range(void (*fn)(void *start, size_t size, void *ctx),
                             void *ctx)
{
    if (meta_base)
        fn(meta_base, meta_committed, ctx);
}
