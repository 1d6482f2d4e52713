/* A leak allocated in a library function that has a symbol version. */
#include <stdio.h>

void *versioned_make(void);

void *volatile last;

int main(void)
{
    last = versioned_make();
    last = NULL;
    printf("leak_versioned done\n");
    return 0;
}
