/*
 * Threads that open and close annotated scopes without pause while the
 * process exits. The leak scan and the end of the process stop them; a
 * thread stopped inside the runtime while holding one of its locks would
 * leave the process hanging at exit. Each run is a forked child that must
 * end within 3 s; run with SMP_POOL_SCOPE='all=*'.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "smp/annotate.h"

#define RUNS 40
#define THREADS 2

/* reachable from here: no leak (not static, so the store stays) */
char *kept;

static void *churn(void *arg)
{
    (void)arg;
    for (;;) {
        SMP_ANNOTATE_SCOPE("churn") {
            free(malloc(16));
        }
    }
    return NULL;
}

static void run(void)
{
    pthread_t thread;

    kept = malloc(32);
    CHECK(smp_owns(kept));
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&thread, NULL, churn, NULL) == 0);
    usleep(1000);
    exit(0);
}

/* The child's status, or -1 when it did not end in time. */
static int wait_for(pid_t pid)
{
    int status;

    for (int tick = 0; tick < 300; tick++) {
        pid_t done = waitpid(pid, &status, WNOHANG);

        CHECK(done >= 0);
        if (done == pid)
            return status;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int main(void)
{
    int failed = 0;

    for (int i = 0; i < RUNS; i++) {
        pid_t pid = fork();
        int status;

        CHECK(pid >= 0);
        if (pid == 0)
            run();
        status = wait_for(pid);
        if (status != 0) {
            fprintf(stderr, "run %d: %s (status %#x)\n", i,
                    status < 0 ? "hung at exit" : "ended badly", status);
            failed = 1;
        }
    }
    printf("exit_scopes: %s\n", failed ? "failed" : "ok");
    return failed;
}
