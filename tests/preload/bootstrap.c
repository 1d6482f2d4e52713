/*
 * Run under LD_PRELOAD="libdlsym_shim.so libsmp_preload.so": the
 * preload's start-up went through the shim's allocating dlsym, and the
 * program then allocates, routed or not, as usual.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smp/annotate.h"

extern int shim_allocations __attribute__((weak));

int main(void)
{
    char *p;

    CHECK(&shim_allocations != NULL && shim_allocations > 0);
    CHECK(smp_annotate_available());
    for (int i = 0; i < 1000; i++) {
        p = malloc((size_t)i + 1);
        CHECK(p != NULL);
        memset(p, 1, (size_t)i + 1);
        p = realloc(p, (size_t)i * 2 + 1);
        free(p);
    }
    p = dlsym(RTLD_DEFAULT, "printf");
    CHECK(p != NULL);
    printf("bootstrap: ok, %d allocations in dlsym\n", shim_allocations);
    return 0;
}
