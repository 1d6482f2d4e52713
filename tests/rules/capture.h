/* Collects what the runtime logs (smpi_log) while a test runs a step. */
#ifndef RULES_CAPTURE_H
#define RULES_CAPTURE_H

/* Points smpi_log_fd at a pipe until capture_end. */
void capture_begin(void);

/* Restores smpi_log_fd; returns everything logged since capture_begin. */
const char *capture_end(void);

/* smpi_rules_load(text) with its output captured into *log. */
int capture_load(const char *text, const char **log);

#endif
