/*
 * A library whose function carries a symbol version in .symtab
 * ("versioned_make@@SMP_TEST_1"), as glibc's do in its debug files.
 */
#include <stdlib.h>

void *versioned_make_1(void);

__asm__(".symver versioned_make_1, versioned_make@@SMP_TEST_1");

void *versioned_make_1(void)
{
    return malloc(19);
}
