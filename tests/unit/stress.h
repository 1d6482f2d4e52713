/*
 * The multi-threaded stress workload, shared by the Criterion test and by a
 * plain program for the ThreadSanitizer build (Criterion's process
 * sandbox cannot start under ThreadSanitizer).
 */
#ifndef SMP_STRESS_H
#define SMP_STRESS_H

#include <stddef.h>

/*
 * Runs four threads through well over a million allocations and frees with
 * cross-thread frees. 0 when every check held; else -1 with the reason in
 * why.
 */
int stress_run(char *why, size_t room);

#endif
