/*
 * smp-demo: a short tour of libsmp. A secret is kept in a pool inside a
 * scope; the demo shows that its page is locked and left out of core
 * dumps (from /proc/self/smaps), that freeing wipes it, and the pools'
 * statistics.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <smp/smp.h>

/* Prints the VmFlags and Locked lines of the mapping holding addr. */
static void show_mapping(const void *addr)
{
    FILE *smaps = fopen("/proc/self/smaps", "r");
    char line[512];
    int inside = 0;

    if (!smaps)
        return;
    while (fgets(line, sizeof line, smaps)) {
        unsigned long lo, hi;
        /* a mapping's first line starts "start-end "; fields "Name:" */
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
            continue;
        }
        if (inside && (!strncmp(line, "Locked:", 7) ||
                       !strncmp(line, "VmFlags:", 8)))
            printf("    %s", line);
    }
    fclose(smaps);
}

static void show_stats(const smp_pool *pool)
{
    smp_stats s;

    smp_pool_stats(pool, &s);
    printf("  %-24s allocs %zu  frees %zu  live %zu B  peak %zu B  "
           "locked %zu B  scopes %zu/%zu  escaped %zu\n",
           s.pool_name, s.allocations, s.frees, s.live_bytes, s.peak_bytes,
           s.locked_bytes, s.scope_entries, s.scope_exits, s.escaped_blocks);
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

int main(void)
{
    const char secret[] = "correct horse battery staple";
    smp_pool *session = smp_pool_create_isolated("session-123");

    printf("current pool outside any scope: '%s'\n",
           smp_pool_name(smp_current_pool()));

    smp_scope_enter(session);
    printf("inside the scope: '%s'\n", smp_pool_name(smp_current_pool()));
    char *key = smp_allocate(NULL, secret, sizeof secret);
    printf("secret stored at %p; its mapping:\n", (void *)key);
    show_mapping(key);
    smp_free(key);
    /* the chunk stays mapped while the pool keeps it: read it back */
    printf("after smp_free the %zu bytes are %s\n", sizeof secret,
           all_zero((unsigned char *)key, sizeof secret) ? "all zero"
                                                         : "NOT zero");
    smp_scope_exit();

    SMP_SCOPE("request") {
        smp_alloc(NULL, 100); /* forgotten: escapes its scope */
        show_stats(smp_current_pool());
    }
    printf("back in '%s'\n\nstatistics:\n",
           smp_pool_name(smp_current_pool()));
    show_stats(session);
    show_stats(smp_current_pool());
    smp_pool_destroy(session);
    return 0;
}
