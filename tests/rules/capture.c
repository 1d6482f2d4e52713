#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "capture.h"
#include "log.h"
#include "rules.h"

static int pipe_fds[2] = { -1, -1 };
static int saved_fd = -1;
static char text[1 << 16];

void capture_begin(void)
{
    cr_assert_eq(pipe2(pipe_fds, O_NONBLOCK), 0);
    /* a full pipe must not block the logger: the output is small anyway */
    fcntl(pipe_fds[1], F_SETPIPE_SZ, 1 << 16);
    saved_fd = smpi_log_fd;
    smpi_log_fd = pipe_fds[1];
}

const char *capture_end(void)
{
    size_t n = 0;
    ssize_t got;

    smpi_log_fd = saved_fd;
    close(pipe_fds[1]);
    while (n < sizeof text - 1 &&
           (got = read(pipe_fds[0], text + n, sizeof text - 1 - n)) > 0)
        n += (size_t)got;
    close(pipe_fds[0]);
    text[n] = '\0';
    return text;
}

int capture_load(const char *rules, const char **log)
{
    capture_begin();
    int rc = smpi_rules_load(rules);
    *log = capture_end();
    return rc;
}
