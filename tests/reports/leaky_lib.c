/* A library the dlclose test loads, leaks from, and unloads. */
#include <stdlib.h>

void *leaky_make(void);

void *leaky_make(void)
{
    return malloc(33); /* the frame the report must still name */
}
