/*
 * Diagnostics that are safe inside an allocator: they format into a stack
 * buffer and write(2) it, so they never allocate and never re-enter malloc.
 * Every line starts with "smp: ".
 */
#ifndef SMP_LOG_H
#define SMP_LOG_H

enum smpi_log_level {
    SMPI_LOG_ERROR = -1, /* always shown */
    SMPI_LOG_WARN = 0, /* warnings show unless verbosity is below zero */
    SMPI_LOG_INFO = 1,
    SMPI_LOG_DEBUG = 2
};

/* Lines at a level above this are dropped (SMP_OPTIONS verbosity). */
extern int smpi_log_verbosity;

/* Where diagnostics and reports go; stderr unless log_path says else. */
extern int smpi_log_fd;

__attribute__((format(printf, 2, 3)))
void smpi_log(int level, const char *fmt, ...);

/* Writes text as it is, with no prefix (reports use this). */
void smpi_log_write(const char *text, unsigned long len);

/* Prints one line and aborts: for misuse and corrupt bookkeeping. */
__attribute__((format(printf, 1, 2), noreturn))
void smpi_fatal(const char *fmt, ...);

#endif
