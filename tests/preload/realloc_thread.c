/*
 * A pool block resized by another thread, one that has made no block of
 * that pool yet: the moved block stays in a pool of the same name (the
 * thread's own instance of it), never in the thread's default pool.
 * realloc_thread.sh reads the statistics at exit.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smp/annotate.h"

static char *block;

static void *resize(void *arg)
{
    (void)arg;
    block = realloc(block, 5000);
    CHECK(block && smp_owns(block));
    return NULL;
}

int main(void)
{
    pthread_t thread;

    block = malloc(100);
    CHECK(smp_owns(block));
    strcpy(block, "moved by another thread");
    CHECK(pthread_create(&thread, NULL, resize, NULL) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    printf("%s\n", block);
    free(block);
    return 0;
}
