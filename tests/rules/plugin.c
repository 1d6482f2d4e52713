/* librulesplugin.so: opened with dlopen by the rules tests. */
#include <stdlib.h>

#include "helper.h"

int plugin_call(rules_probe probe);
void *plugin_alloc(size_t size);

/* The empty asm keeps the calls from becoming tail jumps. */
int plugin_call(rules_probe probe)
{
    int r = probe();

    __asm__ volatile("" : "+r"(r));
    return r;
}

void *plugin_alloc(size_t size)
{
    void *p = malloc(size);

    __asm__ volatile("" : "+r"(p));
    return p;
}
