/*
 * Threads still running when the process exits: they keep following
 * pointers stored in pool blocks, and allocating and freeing, while main
 * returns. The pools are wiped at exit; no thread of the program may run
 * on wiped memory, so every run must end as it would without smp.
 * Each run is a forked child; run with SMP_POOL_SCOPE='all=*'.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "smp/annotate.h"

#define RUNS 40
#define THREADS 4

struct leaf {
    long value;
};

struct node {
    struct leaf *volatile leaf;
};

static struct node *volatile root;

static void *chase(void *arg)
{
    long sum = 0;

    (void)arg;
    for (;;) {
        char *scratch = malloc(64);

        /* a wiped node would hold a null leaf */
        sum += root->leaf->value;
        __asm__ volatile("" : "+r"(sum)); /* the load must happen */
        free(scratch);
    }
    return NULL;
}

static int run(void)
{
    pthread_t threads[THREADS];

    root = malloc(sizeof *root);
    root->leaf = malloc(sizeof *root->leaf);
    root->leaf->value = 1;
    CHECK(smp_owns(root) && smp_owns(root->leaf));
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, chase, NULL) == 0);
    usleep(2000);
    printf("run done\n");
    exit(7);
}

int main(void)
{
    int failed = 0;

    for (int i = 0; i < RUNS; i++) {
        int status;
        pid_t pid = fork();

        CHECK(pid >= 0);
        if (pid == 0)
            run();
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 7) {
            fprintf(stderr, "run %d ended with status %#x, expected "
                    "exit 7\n", i, status);
            failed = 1;
        }
    }
    printf("exit_threads: %s\n", failed ? "failed" : "ok");
    return failed;
}
