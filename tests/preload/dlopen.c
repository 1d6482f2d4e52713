/*
 * Rules see objects loaded after start-up: under
 * SMP_POOL_SCOPE='late=fn:plugin_make_secret', blocks the plugin makes go
 * to a pool once it is loaded, again after it was closed and loaded anew
 * (likely at another address), and nothing else is routed. The plugin is
 * named without a path: found along this program's RUNPATH ($ORIGIN), as
 * without the preload.
 * usage: dlopen PLUGIN fn|all
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smp/annotate.h"

int main(int argc, char **argv)
{
    char *plain = malloc(48);

    CHECK(argc == 3);
    CHECK(smp_annotate_available());
    CHECK(!smp_owns(plain) == !strcmp(argv[2], "fn"));
    for (int round = 0; round < 3; round++) {
        void *plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        char *(*make)(void);
        char *secret;

        if (!plugin)
            fprintf(stderr, "%s\n", dlerror());
        CHECK(plugin != NULL);
        *(void **)&make = dlsym(plugin, "plugin_make_secret");
        CHECK(make != NULL);
        secret = make();
        CHECK(secret && smp_owns(secret));
        CHECK(!strcmp(secret, "made by a library loaded later"));
        free(secret);
        CHECK(dlclose(plugin) == 0);

        /* something else loaded between rounds moves the next load */
        if (round == 1)
            CHECK(dlopen("libz.so.1", RTLD_NOW) != NULL);
    }
    free(plain);
    printf("dlopen: ok\n");
    return 0;
}
