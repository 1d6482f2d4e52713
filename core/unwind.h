/*
 * Frame rules for the stack walk on x86-64: how to find the caller's
 * frame from a return address, read once from the object's .eh_frame and
 * kept per address, so that a walk costs a table look-up and two loads a
 * frame. Only the rules a compiler emits for ordinary frames are kept
 * (canonical frame address = rsp or rbp plus a constant); anything else
 * (signal frames, realigned stacks, code without unwind tables) is
 * reported as unsupported and the caller falls back to libunwind.
 */
#ifndef SMP_UNWIND_H
#define SMP_UNWIND_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct smpi_frame_rule {
    int32_t cfa_off;   /* CFA = (cfa_rbp ? rbp : rsp) + cfa_off */
    int16_t ra_off;    /* the return address lies at CFA + ra_off */
    int16_t rbp_off;   /* the caller's rbp lies at CFA + rbp_off */
    uint8_t cfa_rbp;
    uint8_t rbp_saved; /* else the caller's rbp is this frame's */
    uint8_t last;      /* the outermost frame: no return address */
    uint8_t unused;
} smpi_frame_rule;

/*
 * The rule for the frame whose code is at return address ra (the call
 * instruction before it decides). 0, or -1 when unsupported. Never calls
 * malloc and takes no lock.
 */
int smpi_unwind_rule(uintptr_t ra, smpi_frame_rule *out);

/* Forgets every rule: call after an object was unloaded (dlclose). */
void smpi_unwind_forget(void);

/* Changes whenever smpi_unwind_forget ran: cached walks start over. */
extern _Atomic unsigned smpi_unwind_gen;

static inline unsigned smpi_unwind_generation(void)
{
    return atomic_load_explicit(&smpi_unwind_gen, memory_order_acquire);
}

#endif
