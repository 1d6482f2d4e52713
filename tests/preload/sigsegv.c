/*
 * SIGSEGV that nobody faulted on: raised, sent with kill, or passed on by
 * a handler that restores the one before it and raises again (as Python's
 * faulthandler does). Under the preload, whose fault handler comes first,
 * each must still end the process by SIGSEGV, as without it.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static struct sigaction before;

static void pass_on(int sig)
{
    sigaction(sig, &before, NULL);
    raise(sig);
}

static void crash(const char *how)
{
    if (!strcmp(how, "raise")) {
        raise(SIGSEGV);
    } else if (!strcmp(how, "kill")) {
        kill(getpid(), SIGSEGV);
    } else {
        struct sigaction sa;

        memset(&sa, 0, sizeof sa);
        sa.sa_handler = pass_on;
        sigaction(SIGSEGV, &sa, &before);
        raise(SIGSEGV);
    }
}

int main(void)
{
    static const char *const hows[] = { "raise", "kill", "chained" };

    for (int i = 0; i < 3; i++) {
        int status;
        pid_t pid = fork();

        CHECK(pid >= 0);
        if (pid == 0) {
            crash(hows[i]);
            _exit(0); /* the signal was swallowed */
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV) {
            fprintf(stderr, "%s: status %#x, expected death by SIGSEGV\n",
                    hows[i], status);
            return 1;
        }
    }
    printf("sigsegv: ok\n");
    return 0;
}
