/*
 * The reserved range all pool memory comes from, handed out in spans of
 * whole pages. A page map records, for every page, the descriptor of the
 * span it belongs to, so a pointer finds its block in two loads. Spans
 * given back stay fenced in a bounded quarantine before they are reused,
 * so a stale pointer faults for a while instead of reading new secrets.
 */
#ifndef SMP_REGION_H
#define SMP_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"
#include "pool.h"

#define SMPI_PAGE_SHIFT 12

/* What a page-map entry points to; every descriptor starts with one. */
typedef enum smpi_span_kind {
    SMPI_SPAN_SMALL = 1, /* a chunk of equal blocks */
    SMPI_SPAN_LARGE,     /* one block and a guard page */
    SMPI_SPAN_TOMB       /* fenced: its pool was destroyed */
} smpi_span_kind;

typedef struct smpi_span_head {
    smpi_span_kind kind;
} smpi_span_head;

/* A fenced span remembers whose it was, for the message on misuse. */
typedef struct smpi_tomb {
    smpi_span_head head;
    char pool_name[SMP_NAME_MAX];
} smpi_tomb;

extern uintptr_t *smpi_page_map;

static inline smpi_span_head *smpi_span_of(const void *p)
{
    size_t page = ((uintptr_t)p - smpi_region_base) >> SMPI_PAGE_SHIFT;
    return (smpi_span_head *)smpi_page_map[page];
}

/* Reserves the region and its page map; 0 or an errno value. */
int smpi_region_init(void);

/* pages of fenced address space, or NULL (ENOMEM: the region is full). */
void *smpi_region_take(size_t pages);

/* Records desc as the owner of the pages (NULL clears). */
void smpi_region_map(void *p, size_t pages, smpi_span_head *desc);

/*
 * Fences pages (they must hold no secrets any more: wipe first) and puts
 * them in quarantine; tomb, when given, answers for them meanwhile.
 */
void smpi_region_give(void *p, size_t pages, smpi_tomb *tomb);

void smpi_region_lock(void);
void smpi_region_unlock(void);

#endif
