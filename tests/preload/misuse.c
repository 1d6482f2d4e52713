/*
 * Deliberate misuse of pool blocks through the malloc family, one kind
 * per run: misuse.sh checks that each prints one line and aborts. Run
 * under SMP_POOL_SCOPE='all=*'.
 * usage: misuse double-free|double-free-large|interior|interior-large|
 *               realloc-freed|usable-freed|realloc-interior|escaped|
 *               remote-double-free
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smp/annotate.h"

static void *shared;

static void *free_shared(void *arg)
{
    (void)arg;
    free(shared);
    return NULL;
}

/* A block of a scope's own pool that is still live when the scope ends. */
static char *escaped_block(void)
{
    char *p = NULL;

    CHECK(smp_annotate_enter("session"));
    p = malloc(32);
    smp_annotate_exit();
    return p;
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "";
    char *small = malloc(40), *large = malloc(100000);
    pthread_t thread;

    CHECK(smp_owns(small) && smp_owns(large));
    if (!strcmp(kind, "double-free")) {
        free(small);
        free(small);
    } else if (!strcmp(kind, "double-free-large")) {
        free(large);
        free(large);
    } else if (!strcmp(kind, "interior")) {
        free(small + 16);
    } else if (!strcmp(kind, "interior-large")) {
        free(large + 8192);
    } else if (!strcmp(kind, "realloc-freed")) {
        free(small);
        small = realloc(small, 100);
    } else if (!strcmp(kind, "usable-freed")) {
        free(small);
        printf("%zu\n", malloc_usable_size(small));
    } else if (!strcmp(kind, "realloc-interior")) {
        small = realloc(small + 8, 100);
    } else if (!strcmp(kind, "escaped")) {
        free(escaped_block());
    } else if (!strcmp(kind, "remote-double-free")) {
        shared = small;
        CHECK(pthread_create(&thread, NULL, free_shared, NULL) == 0);
        CHECK(pthread_join(thread, NULL) == 0);
        free(small);
    }
    printf("misuse %s: not detected\n", kind);
    return 0;
}
