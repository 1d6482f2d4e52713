/*
 * Threads that exit with live pool blocks: another thread frees them
 * afterwards, reads them first, and the program keeps allocating.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smp/annotate.h"

#define THREADS 8
#define BLOCKS 500

static char *left[THREADS][BLOCKS];

static void *worker(void *arg)
{
    intptr_t id = (intptr_t)arg;

    for (int i = 0; i < BLOCKS; i++) {
        size_t size = (size_t)(i * 37 % 9000) + 1;
        left[id][i] = malloc(size);
        CHECK(smp_owns(left[id][i]));
        memset(left[id][i], 'a' + (int)id, size);
    }

    /* half the threads also leave a thread that made nothing behind */
    if (id % 2)
        free(malloc(16));
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];

    for (int round = 0; round < 3; round++) {
        for (intptr_t i = 0; i < THREADS; i++)
            CHECK(pthread_create(&threads[i], NULL, worker, (void *)i) == 0);
        for (int i = 0; i < THREADS; i++)
            CHECK(pthread_join(threads[i], NULL) == 0);

        /* the owners are gone: their blocks are still whole, then freed */
        for (int t = 0; t < THREADS; t++) {
            for (int i = 0; i < BLOCKS; i++) {
                CHECK(left[t][i][0] == 'a' + t);
                left[t][i] = realloc(left[t][i], 64);
                CHECK(left[t][i][63] == 'a' + t || i * 37 % 9000 < 63);
                free(left[t][i]);
            }
        }
    }
    printf("thread exit: ok\n");
    return 0;
}
