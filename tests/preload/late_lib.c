/*
 * Preloaded after libsmp_preload.so, so its destructor runs after the
 * preload's: the exit report has run and the pools take nothing new by
 * then (they are wiped once every destructor is done). Blocks the program
 * handed over are resized and freed, and new ones pass through to the
 * ordinary heap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smp/annotate.h"

#define KEPT 16

static void *kept[KEPT];
static int count;

__attribute__((visibility("default"))) void late_keep(void *p)
{
    if (count < KEPT)
        kept[count++] = p;
}

static void fail(const char *what)
{
    fprintf(stderr, "late destructor: %s\n", what);
    fflush(NULL);
    _exit(1);
}

static __attribute__((destructor)) void late(void)
{
    void *fresh = malloc(100);
    char *copy = strdup("late");

    if (!fresh || !copy || smp_owns(fresh) || smp_owns(copy))
        fail("a block made after the runtime ended went to a pool");
    for (int i = 0; i < count; i++) {
        if (!smp_owns(kept[i]))
            fail("a kept block is not a pool block");
        if (i % 2) {
            void *moved = realloc(kept[i], 5000);

            if (!moved || smp_owns(moved))
                fail("a pool block resized late did not move out");
            /* the pools are not wiped yet: the contents move with it */
            if (i < 10 && ((char *)moved)[0] != 'x')
                fail("a pool block resized late lost its contents");
            free(moved);
        } else {
            free(kept[i]);
            free(kept[i]); /* ignored: the pools are gone */
        }
    }
    free(copy);
    free(fresh);
    printf("late destructor: %d blocks\n", count);
}
