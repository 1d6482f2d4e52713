/*
 * Loads a library, allocates from it, unloads it, then loads a second
 * library at the same address, whose function there has a larger frame
 * filled with a return address into decoy. Each leak's stack must name
 * main as the caller: a rule kept from the first library would read the
 * second one's frame wrongly and name decoy.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

__attribute__((noinline)) void decoy(void);

__attribute__((noinline)) void decoy(void)
{
    printf("decoy\n");
}

int main(int argc, char **argv)
{
    void (*make[2])(uintptr_t);
    void *lib[2];

    if (argc < 3)
        return 2;
    for (int i = 0; i < 2; i++) {
        lib[i] = dlopen(argv[i + 1], RTLD_NOW);
        if (!lib[i])
            return 2;
        make[i] = (void (*)(uintptr_t))dlsym(lib[i], "reload_make");
        make[i](i ? (uintptr_t)decoy + 8 : 0);
        *(void **)dlsym(lib[i], "reload_sink") = NULL;
        if (i == 0)
            dlclose(lib[0]);
    }
    if (make[0] != make[1]) {
        fprintf(stderr, "leak_reload: the libraries were not loaded at "
                "one address\n");
        return 2;
    }
    printf("leak_reload done\n");
    return 0;
}
