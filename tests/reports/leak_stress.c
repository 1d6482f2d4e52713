/*
 * Stress for the scan: 100,000 live blocks held in a linked list, a known
 * number of them lost, and 8 threads allocating and freeing while the
 * report runs at exit.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define LIVE 100000
#define LOST 1000
#define THREADS 8

struct cell {
    struct cell *next;
    long value;
};

static struct cell *list;
static atomic_int started;

static void *churn(void *arg)
{
    void *keep[64] = { 0 };

    (void)arg;
    atomic_fetch_add(&started, 1);
    for (unsigned long i = 0;; i++) {
        unsigned slot = (unsigned)(i % 64);
        free(keep[slot]);
        keep[slot] = malloc(16 + i % 200);
    }
    return NULL;
}

__attribute__((noinline)) static void lose_one(void)
{
    volatile long *p = malloc(48);
    p[0] = 1;
}

int main(void)
{
    pthread_t t[THREADS];

    for (int i = 0; i < LIVE; i++) {
        struct cell *c = malloc(sizeof *c);
        c->next = list;
        c->value = i;
        list = c;
    }
    for (int i = 0; i < LOST; i++)
        lose_one();
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    while (atomic_load(&started) < THREADS)
        usleep(1000);
    usleep(50000);
    printf("leak_stress done\n");
    exit(0); /* the churning threads still run while the report scans */
}
