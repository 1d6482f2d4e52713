/*
 * Allocations and frees after the runtime's destructor: run with
 * LD_PRELOAD="libsmp_preload.so liblate.so" and SMP_POOL_SCOPE='all=*'.
 * An atexit handler registered at the very end runs before the runtime
 * ends, and still allocates into pools.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smp/annotate.h"

/* defined by the preloaded liblate.so */
void late_keep(void *p) __attribute__((weak));

static void at_exit(void)
{
    char *p = strdup("atexit");

    CHECK(smp_owns(p));
    late_keep(p);
    printf("atexit handler\n");
}

int main(void)
{
    CHECK(late_keep != NULL);
    for (int i = 0; i < 10; i++) {
        char *p = malloc((size_t)i * 100 + 1);

        CHECK(smp_owns(p));
        memset(p, 'x', (size_t)i * 100 + 1);
        late_keep(p);
    }
    CHECK(atexit(at_exit) == 0);
    printf("main done\n");
    return 0;
}
