/* Diagnostics: formatted on the stack, written with write(2). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int smpi_log_verbosity = 0;
int smpi_log_fd = 2;

void smpi_log_write(const char *text, unsigned long len)
{
    int saved = errno;

    while (len > 0) {
        ssize_t n = write(smpi_log_fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        text += n;
        len -= (unsigned long)n;
    }
    errno = saved;
}

__attribute__((format(printf, 1, 0)))
static void vlog(const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "smp: ");

    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    if (line[n - 1] != '\n')
        line[n++] = '\n';
    smpi_log_write(line, (unsigned long)n);
}

void smpi_log(int level, const char *fmt, ...)
{
    va_list ap;

    if (level != SMPI_LOG_ERROR && level > smpi_log_verbosity)
        return;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void smpi_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
    abort();
}
