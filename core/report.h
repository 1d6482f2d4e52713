/*
 * The report at process exit: statistics, leaks, escaped blocks, as text
 * (LeakSanitizer's shape) and as JSON.
 */
#ifndef SMP_REPORT_H
#define SMP_REPORT_H

/* Version of the JSON report's layout; see the README. */
#define SMPI_REPORT_SCHEMA_VERSION 1

/*
 * Scans, prints and writes what SMP_OPTIONS asks for. Returns the exit
 * status the process must end with (exitcode, when unsuppressed leaks
 * were found), or -1 to keep the program's own. The caller sets
 * smpi_guard first (symbolization allocates), and afterwards flushes
 * stdio before it calls _exit, so the program's own output survives.
 */
int smpi_report_exit(void);

#endif
