/*
 * Faults in pool memory. Memory of a destroyed pool, of an ended scope or
 * of a freed chunk stays fenced for a while, so a stale pointer faults;
 * this handler says what the address was before the process dies, then
 * hands the fault on to whatever handler was there before.
 */
#include <dlfcn.h>
#include <signal.h>
#include <string.h>

#include "log.h"
#include "pool_types.h"
#include "stack.h"

static struct sigaction previous;

static void print_stack(uint32_t id)
{
    const uintptr_t *pcs;
    int n = smpi_stack_frames(id, &pcs);

    for (int k = 0; k < n; k++) {
        Dl_info info;
        if (dladdr((void *)pcs[k], &info) && info.dli_fname)
            smpi_log(SMPI_LOG_ERROR, "    #%d 0x%lx in %s (%s+0x%lx)", k,
                     (unsigned long)pcs[k],
                     info.dli_sname ? info.dli_sname : "??", info.dli_fname,
                     (unsigned long)(pcs[k] - (uintptr_t)info.dli_fbase));
        else
            smpi_log(SMPI_LOG_ERROR, "    #%d 0x%lx", k,
                     (unsigned long)pcs[k]);
    }
}

static void explain_tomb(const void *addr, const smpi_tomb *tomb)
{
    smpi_escape e;

    smpi_log(SMPI_LOG_ERROR,
             "invalid access at %p: memory of pool '%s', wiped and fenced "
             "when the pool was destroyed or its scope ended", addr,
             tomb->pool_name);
    if (!smpi_find_escape(addr, &e))
        return;
    smpi_log(SMPI_LOG_ERROR, "the block (%zu bytes at 0x%lx) escaped its "
             "scope; it was allocated at:", e.block.size,
             (unsigned long)e.block.addr);
    if (e.block.stack)
        print_stack(e.block.stack);
    else
        smpi_log(SMPI_LOG_ERROR, "    (its allocation stack was not recorded)");
}

static void explain(const void *addr)
{
    const smpi_span_head *h = smpi_span_of(addr);

    if (!h)
        smpi_log(SMPI_LOG_ERROR, "invalid access at %p: pool memory that "
                 "was freed and fenced (use after free)", addr);
    else if (h->kind == SMPI_SPAN_TOMB)
        explain_tomb(addr, (const smpi_tomb *)h);
    else if (h->kind == SMPI_SPAN_LARGE)
        smpi_log(SMPI_LOG_ERROR, "invalid access at %p: outside a %zu-byte "
                 "block of pool '%s' (an overflow into its guard page)",
                 addr, ((const smpi_large *)h)->size,
                 ((const smpi_large *)h)->pool->name);
}

static void on_fault(int sig, siginfo_t *info, void *context)
{
    /* a fault the kernel raised, rather than a signal someone sent */
    int fault = info->si_code > 0;

    if (fault && smpi_in_region(info->si_addr))
        explain(info->si_addr);

    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, info, context);
        return;
    }
    if (previous.sa_handler == SIG_IGN && !fault)
        return;
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }

    /*
     * Back to the default, which ends the process: a fault happens again
     * when the access runs again (the kernel never lets a fault be
     * ignored); a sent signal is sent again, and arrives once this
     * handler returns.
     */
    signal(sig, SIG_DFL);
    if (!fault)
        raise(sig);
}

void smpi_fault_install(void)
{
    struct sigaction action;

    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous);
}
