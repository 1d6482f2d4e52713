/*
 * Re-entry: with every allocation routed and stacks captured, the
 * allocator is entered again from inside stdio, the dynamic loader
 * (dlopen, dlsym, dlclose, and glibc's backtrace, which loads libgcc_s),
 * iconv's module loading and libunwind itself. Each must complete.
 */
#include <dlfcn.h>
#include <execinfo.h>
#include <iconv.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smp/annotate.h"

static void loader(void)
{
    for (int i = 0; i < 20; i++) {
        void *z = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
        const char *(*version)(void);

        CHECK(z != NULL);
        *(void **)&version = dlsym(z, "zlibVersion");
        CHECK(version && version()[0] == '1');
        CHECK(dlclose(z) == 0);
    }

    /* a failed look-up makes glibc allocate its error message */
    CHECK(dlopen("libsmp-no-such-object.so", RTLD_NOW) == NULL);
    CHECK(dlerror() != NULL);
}

static void stdio(void)
{
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);

    CHECK(mem != NULL);
    for (int i = 0; i < 5000; i++)
        fprintf(mem, "%d %s %.3f\n", i, "line", i / 7.0);
    fclose(mem);
    CHECK(smp_owns(text) && size > 50000);
    free(text);
}

static void conversions(void)
{
    char in[] = "gr\xfc\xdf", out[16], *pin = in, *pout = out;
    size_t left = 4, room = sizeof out;
    iconv_t cd = iconv_open("UTF-8", "ISO-8859-1");

    CHECK(cd != (iconv_t)-1);
    CHECK(iconv(cd, &pin, &left, &pout, &room) != (size_t)-1);
    CHECK(iconv_close(cd) == 0);
    CHECK(!memcmp(out, "gr\xc3\xbc\xc3\x9f", 6));
}

static void *thread_main(void *arg)
{
    void *frames[16];

    (void)arg;
    CHECK(backtrace(frames, 16) > 0);
    stdio();
    loader();
    return NULL;
}

int main(void)
{
    pthread_t thread;
    void *frames[16];
    char **names;

    setlocale(LC_ALL, "C.UTF-8");
    CHECK(backtrace(frames, 16) > 0);
    names = backtrace_symbols(frames, 1);
    CHECK(names && smp_owns(names));
    free(names);

    loader();
    stdio();
    conversions();
    CHECK(pthread_create(&thread, NULL, thread_main, NULL) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    printf("reentry: ok\n");
    return 0;
}
