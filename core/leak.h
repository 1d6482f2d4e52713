/*
 * The reachability scan at exit: every live pool block is reachable,
 * a direct leak, or an indirect leak (reachable only from leaked blocks).
 */
#ifndef SMP_LEAK_H
#define SMP_LEAK_H

#include <stddef.h>
#include <stdint.h>

#include "smp/smp.h"

enum smpi_leak_kind {
    SMPI_REACHABLE,
    SMPI_DIRECT,
    SMPI_INDIRECT
};

typedef struct smpi_leak_block {
    uintptr_t addr;
    size_t size;
    size_t usable;
    uint32_t stack;
    uint32_t pool;  /* index into smpi_leak_scan.pools */
    uint8_t kind;   /* an smpi_leak_kind */
} smpi_leak_block;

typedef struct smpi_leak_pool {
    int owner_tid;
    smp_stats stats;
} smpi_leak_pool;

typedef struct smpi_leak_scan {
    smpi_leak_block *blocks; /* sorted by address */
    size_t nblocks;
    smpi_leak_pool *pools;
    size_t npools;
    size_t threads_stopped;
    size_t threads_missed; /* did not stop in time: scanned as they ran */
    size_t root_bytes;     /* bytes of roots scanned */
    double seconds;        /* time the other threads stood still */
    size_t blocks_mapped, pools_mapped; /* sizes of the two arrays */
} smpi_leak_scan;

/*
 * Stops the other threads (a signal, no ptrace), collects and classifies
 * every live pool block, and lets the threads go on. The calling thread's
 * stack counts as a root above stack_top only, so the frames of the
 * report itself hide nothing. Returns 0, or -1 when memory ran out.
 */
int smpi_leak_scan_run(smpi_leak_scan *scan, uintptr_t stack_top);

void smpi_leak_scan_free(smpi_leak_scan *scan);

/*
 * For the last moment of the process: stops every other thread the way
 * the scan does and never lets them go, so that no code of the program
 * runs once the pools are wiped. A thread that blocks the stop signal is
 * waited for briefly, then left running. Returns how many were left, or
 * -1 when the bookkeeping could not be mapped.
 */
int smpi_stop_others_for_good(void);

#endif
