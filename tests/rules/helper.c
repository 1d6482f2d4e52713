/* librulestest.so: linked by the rules tests, for lib: and caller:. */
#include <stdlib.h>

#include "helper.h"

/* The empty asm keeps the calls from becoming tail jumps. */
int helper_call(rules_probe probe)
{
    int r = probe();

    __asm__ volatile("" : "+r"(r));
    return r;
}

void *helper_alloc(size_t size)
{
    void *p = malloc(size);

    __asm__ volatile("" : "+r"(p));
    return p;
}
