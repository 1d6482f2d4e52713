/* The tests' own shared libraries: code that lies outside the program. */
#ifndef RULES_HELPER_H
#define RULES_HELPER_H

#include <stddef.h>

typedef int (*rules_probe)(void);

/* Calls probe, so that probe's caller lies in librulestest.so. */
int helper_call(rules_probe probe);
/* malloc called from librulestest.so. */
void *helper_alloc(size_t size);

/* The same in librulesplugin.so, which tests open with dlopen. */
typedef int (*plugin_call_fn)(rules_probe probe);
typedef void *(*plugin_alloc_fn)(size_t size);

#endif
