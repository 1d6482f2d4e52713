/*
 * The main thread ends with pthread_exit while another thread goes on; the
 * process ends when that one returns. The main thread stays listed as a
 * zombie until then: the exit scan must not wait for it to stop.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "smp/annotate.h"

/* reachable from here: no leak (not static, so the store stays) */
char *kept;

static void *last(void *arg)
{
    (void)arg;
    usleep(20000);
    kept = malloc(100);
    CHECK(smp_owns(kept));
    printf("last thread done\n");
    return NULL;
}

int main(void)
{
    pthread_t thread;

    CHECK(pthread_create(&thread, NULL, last, NULL) == 0);
    pthread_exit(NULL);
}
