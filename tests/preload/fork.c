/*
 * fork in a threaded program: threads keep allocating while the main
 * thread forks. Each child allocates and frees, and finds its pool pages,
 * inherited and new, locked again (mlock is not inherited).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "smp/annotate.h"

#define THREADS 3
#define FORKS 30

static volatile int stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!stop) {
        void *p[64];

        for (int i = 0; i < 64; i++)
            p[i] = malloc((size_t)(i * 97 % 3000) + 1);
        for (int i = 0; i < 64; i++)
            free(p[i]);
    }
    return NULL;
}

static int child(char *inherited)
{
    char *fresh = malloc(200);
    char *copy = strdup(inherited);

    CHECK(smp_owns(fresh) && smp_owns(copy));
    CHECK(page_has(inherited, "lo"));
    CHECK(page_has(fresh, "lo"));
    CHECK(!strcmp(copy, "made before fork"));
    free(copy);
    free(fresh);
    free(inherited);
    for (int i = 0; i < 1000; i++)
        free(malloc((size_t)i + 1));
    return 0;
}

int main(void)
{
    pthread_t threads[THREADS];
    char *inherited = strdup("made before fork");

    CHECK(smp_owns(inherited) && page_has(inherited, "lo"));
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, churn, NULL) == 0);

    for (int i = 0; i < FORKS; i++) {
        int status;
        pid_t pid = fork();

        CHECK(pid >= 0);
        if (pid == 0)
            _exit(child(inherited));
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    stop = 1;
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    free(inherited);
    printf("fork: ok\n");
    return 0;
}
