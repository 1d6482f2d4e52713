/*
 * Address space for pools. Fresh spans come from a bump pointer; spans
 * given back wait in a FIFO quarantine, fenced, and only when it holds more
 * than its bound do the oldest move to free lists for reuse.
 */
#include <errno.h>
#include <pthread.h>

#include "meta.h"
#include "region.h"
#include "thread.h"

#define REGION_SIZE ((size_t)64 << 30)
#define REGION_MIN ((size_t)256 << 20) /* under valgrind, or a low ulimit -v */
#define QUARANTINE_PAGES ((size_t)16384) /* 64 MiB of address space */
#define EXACT_BINS 64                    /* free lists by page count */

typedef struct free_span {
    struct free_span *next;
    uintptr_t addr;
    size_t pages;
    smpi_tomb *tomb;
} free_span;

uintptr_t smpi_region_base;
size_t smpi_region_size;
uintptr_t *smpi_page_map;

static pthread_mutex_t region_mutex = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t bump_next;
static free_span *quarantine_head, *quarantine_tail;
static size_t quarantine_pages;
static free_span *exact[EXACT_BINS + 1];
static free_span *larger;

void smpi_region_lock(void)
{
    smpi_mutex_take(&region_mutex);
}

void smpi_region_unlock(void)
{
    smpi_mutex_give(&region_mutex);
}

/* The largest range the system lets us reserve, down to REGION_MIN. */
static void *reserve(size_t *size)
{
    for (; *size >= REGION_MIN; *size /= 2) {
        void *base = smpi_os_reserve(*size);
        if (base)
            return base;
    }
    return NULL;
}

int smpi_region_init(void)
{
    size_t size = REGION_SIZE;
    void *base = reserve(&size);
    void *map = NULL;

    if (base)
        map = smpi_os_map((size >> SMPI_PAGE_SHIFT) * sizeof(uintptr_t));
    if (!map) {
        if (base)
            smpi_os_unmap(base, size);
        return ENOMEM;
    }
    smpi_page_map = map;
    /*
     * The first page is never handed out: the region's base is in a
     * register or on a stack wherever ownership is checked, and a block
     * at that address would look reachable to the leak scan from those
     * copies alone.
     */
    bump_next = (uintptr_t)base + SMPI_PAGE_SIZE;
    smpi_region_size = size;
    /* published last: a pointer is ours only once the map exists */
    __atomic_store_n(&smpi_region_base, (uintptr_t)base, __ATOMIC_RELEASE);
    return 0;
}

static free_span *pop_exact(size_t pages)
{
    free_span *s = exact[pages];
    if (s)
        exact[pages] = s->next;
    return s;
}

/* First fit among the spans longer than the exact bins; splits the rest. */
static void *pop_larger(size_t pages)
{
    for (free_span **link = &larger; *link; link = &(*link)->next) {
        free_span *s = *link;
        if (s->pages < pages)
            continue;
        uintptr_t addr = s->addr;
        s->addr += (uintptr_t)pages << SMPI_PAGE_SHIFT;
        s->pages -= pages;
        if (s->pages == 0) {
            *link = s->next;
            smpi_meta_free(s, sizeof *s);
        }
        return (void *)addr;
    }
    return NULL;
}

static void push_free(free_span *s)
{
    if (s->tomb) {
        smpi_region_map((void *)s->addr, s->pages, NULL);
        smpi_meta_free(s->tomb, sizeof *s->tomb);
        s->tomb = NULL;
    }
    free_span **list = s->pages <= EXACT_BINS ? &exact[s->pages] : &larger;
    s->next = *list;
    *list = s;
}

/* Moves the oldest quarantined spans to the free lists. */
static void drain_quarantine(size_t bound)
{
    while (quarantine_head && quarantine_pages > bound) {
        free_span *s = quarantine_head;
        quarantine_head = s->next;
        if (!quarantine_head)
            quarantine_tail = NULL;
        quarantine_pages -= s->pages;
        push_free(s);
    }
}

static void *take_locked(size_t pages)
{
    if (pages <= EXACT_BINS) {
        free_span *s = pop_exact(pages);
        if (s) {
            void *p = (void *)s->addr;
            smpi_meta_free(s, sizeof *s);
            return p;
        }
    }
    void *p = pop_larger(pages);
    if (p)
        return p;

    size_t bytes = pages << SMPI_PAGE_SHIFT;
    uintptr_t end = smpi_region_base + smpi_region_size;
    if (bytes <= end - bump_next) {
        p = (void *)bump_next;
        bump_next += bytes;
    }
    return p;
}

void *smpi_region_take(size_t pages)
{
    smpi_mutex_take(&region_mutex);
    void *p = take_locked(pages);
    if (!p) {
        /* the region is full: reuse even the quarantined spans */
        drain_quarantine(0);
        p = take_locked(pages);
    }
    smpi_mutex_give(&region_mutex);
    if (!p)
        errno = ENOMEM;
    return p;
}

void smpi_region_map(void *p, size_t pages, smpi_span_head *desc)
{
    size_t first = ((uintptr_t)p - smpi_region_base) >> SMPI_PAGE_SHIFT;

    for (size_t i = 0; i < pages; i++)
        __atomic_store_n(&smpi_page_map[first + i], (uintptr_t)desc,
                         __ATOMIC_RELEASE);
}

void smpi_region_give(void *p, size_t pages, smpi_tomb *tomb)
{
    free_span *s = smpi_meta_alloc(sizeof *s);

    smpi_os_decommit(p, pages << SMPI_PAGE_SHIFT);
    smpi_region_map(p, pages, tomb ? &tomb->head : NULL);
    if (!s) {
        /* no bookkeeping memory left: the span stays fenced for good */
        return;
    }
    *s = (free_span){ NULL, (uintptr_t)p, pages, tomb };

    smpi_mutex_take(&region_mutex);
    if (quarantine_tail)
        quarantine_tail->next = s;
    else
        quarantine_head = s;
    quarantine_tail = s;
    quarantine_pages += pages;
    drain_quarantine(QUARANTINE_PAGES);
    smpi_mutex_give(&region_mutex);
}
