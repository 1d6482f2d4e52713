/*
 * Runs a command and says what it cost:
 *
 *   rusage OUT PROGRAM [ARGS...]
 *
 * writes "USER_SECONDS SYSTEM_SECONDS MAX_RSS_KIB" to OUT and ends with
 * the command's exit status (128 + N when signal N ended it).
 *
 * Linux keeps a process's peak RSS across exec, so a child forked from
 * python starts with python's peak: every small program would look as
 * large as the interpreter that measured it. Built small and static, this
 * launcher adds next to nothing of its own.
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct rusage ru;
    FILE *out;
    pid_t pid;
    int status;

    if (argc < 3) {
        fprintf(stderr, "usage: rusage OUT PROGRAM [ARGS...]\n");
        return 2;
    }
    pid = fork();
    if (pid < 0) {
        perror("rusage: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror("rusage: exec");
        _exit(127);
    }
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("rusage: wait4");
        return 2;
    }
    out = fopen(argv[1], "w");
    if (!out || fprintf(out, "%ld.%06ld %ld.%06ld %ld\n",
                        (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
                        (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec,
                        ru.ru_maxrss) < 0 || fclose(out) != 0) {
        perror("rusage: writing the figures");
        return 2;
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
