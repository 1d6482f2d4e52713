/*
 * A program with one static and one exported function, run as built (full
 * symbol table) and as a stripped copy (dynamic symbols only):
 *   rules_symtarget RULE...
 * loads the rules (one per argument), asks them about both functions and
 * prints the pools, or -1. With "one=caller:symtarget_static" and
 * "two=caller:symtarget_exported" the unstripped program prints
 * "static=0 exported=1"; the stripped one warns that the static function
 * matches nothing and prints "static=-1 exported=1".
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rules.h"

#define KEEP(x) __asm__ volatile("" : "+r"(x))

int symtarget_exported(void);

static __attribute__((noinline)) int probe(void)
{
    int r = smpi_rules_match(16, (uintptr_t)__builtin_return_address(0));
    KEEP(r);
    return r;
}

static __attribute__((noinline)) int symtarget_static(void)
{
    int r = probe();
    KEEP(r);
    return r;
}

__attribute__((noinline)) int symtarget_exported(void)
{
    int r = probe();
    KEEP(r);
    return r;
}

int main(int argc, char **argv)
{
    char rules[1024] = "";

    for (int i = 1; i < argc; i++) {
        strncat(rules, argv[i], sizeof rules - strlen(rules) - 2);
        strcat(rules, ";");
    }
    if (smpi_rules_load(rules) != 0)
        return 2;
    int s = symtarget_static();
    int e = symtarget_exported();
    printf("static=%d exported=%d\n", s, e);
    return 0;
}
