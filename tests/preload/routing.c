/*
 * Under SMP_POOL_SCOPE='all=*' every allocation of every thread goes to a
 * pool: the program's own, libc's on its behalf (strdup, getline, stdio,
 * qsort's buffer), and each thread's.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smp/annotate.h"

#define THREADS 4
#define BLOCKS 2000

static int cmp(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static void *worker(void *arg)
{
    void **blocks = calloc(BLOCKS, sizeof *blocks);

    CHECK(smp_owns(blocks));
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc((size_t)(i % 700) + 1);
        CHECK(smp_owns(blocks[i]));
        memset(blocks[i], (int)(intptr_t)arg, (size_t)(i % 700) + 1);
    }
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    free(blocks);
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    char *line = NULL;
    size_t cap = 0;
    int *numbers = malloc(100000 * sizeof *numbers);
    FILE *f;

    CHECK(smp_owns(numbers));
    for (int i = 0; i < 100000; i++)
        numbers[i] = (i * 7919) % 100003;
    qsort(numbers, 100000, sizeof *numbers, cmp);
    CHECK(numbers[0] <= numbers[99999]);
    free(numbers);

    f = fopen("/proc/self/status", "r");
    CHECK(f && smp_owns(f));
    CHECK(getline(&line, &cap, f) > 0);
    CHECK(smp_owns(line));
    free(line);
    fclose(f);

    for (intptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, worker, (void *)i) == 0);
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    printf("routing: ok\n");
    return 0;
}
