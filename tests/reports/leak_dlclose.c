/*
 * A leak allocated by a library that is unloaded before exit: its frame
 * must keep the library's path, offset and, read again from the file,
 * the function name and line.
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    void *lib = argc > 1 ? dlopen(argv[1], RTLD_NOW) : NULL;
    void *(*make)(void);
    void *volatile p;

    if (!lib)
        return 2;
    make = (void *(*)(void))dlsym(lib, "leaky_make");
    if (!make)
        return 2;
    p = make();
    p = NULL;
    (void)p;
    dlclose(lib);
    printf("leak_dlclose done\n");
    return 0;
}
