/*
 * A program that knows nothing of smp, run under libsmp_preload.so with
 * SMP_POOL_SCOPE set by the test. It allocates at known sites and checks,
 * for each site named on the command line, where the block went:
 *
 *   rules_prog SITE=pool|heap...
 *
 * secret: malloc in load_secret; copy: malloc in copy_bytes, called by
 * load_secret; thread: load_secret on a second thread; lib: malloc in
 * librulestest.so; size: a 5000-byte malloc in main; other: a 64-byte
 * malloc in main; plugin: malloc in librulesplugin.so, opened with dlopen,
 * closed, opened again and checked both times.
 *
 * A pool block must lie in pages that are locked and not dumped ("lo",
 * "dd" in /proc/self/smaps), and its bytes must be gone after free (read
 * back through /proc/self/mem). A heap block must not be smp's (smp_owns,
 * reached through a weak reference so the program runs without smp too).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helper.h"

int smp_owns(const void *ptr) __attribute__((weak));

#define KEEP(x) __asm__ volatile("" : "+r"(x))

static const char secret[] = "-----BEGIN TEST SECRET 7f3a9c-----";
static int failures;

__attribute__((noinline)) void *load_secret(size_t size, int copy);

static __attribute__((noinline)) void *copy_bytes(const void *from, size_t size)
{
    void *p = malloc(size);

    KEEP(p);
    memcpy(p, from, size);
    return p;
}

/* Allocates itself, or (copy) through a helper. */
void *load_secret(size_t size, int copy)
{
    void *p = copy ? copy_bytes(secret, size) : malloc(size);

    KEEP(p);
    memcpy(p, secret, sizeof secret);
    return p;
}

/* The VmFlags of the mapping that holds p, from /proc/self/smaps. */
static int vm_flags(const void *p, char *flags, size_t size)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int inside = 0;

    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
            strchr(line, '-') < strchr(line, ' '))
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && !strncmp(line, "VmFlags:", 8)) {
            snprintf(flags, size, "%s", line + 8);
            fclose(f);
            return 0;
        }
    }
    fclose(f);
    return -1;
}

/* 1 when the secret is still readable at p; a fenced page reads nothing. */
static int secret_still_at(uintptr_t p)
{
    char back[sizeof secret];
    int fd = open("/proc/self/mem", O_RDONLY);

    if (fd < 0)
        return 1;
    ssize_t n = pread(fd, back, sizeof back, (off_t)p);
    close(fd);
    return n == (ssize_t)sizeof back && !memcmp(back, secret, sizeof back);
}

static void check(const char *site, void *p, const char *want)
{
    int owned = smp_owns(p);
    char flags[512] = "";

    if (!strcmp(want, "heap")) {
        if (owned) {
            printf("%s: in a pool, expected the heap\n", site);
            failures++;
        }
        free(p);
        return;
    }

    if (!owned) {
        printf("%s: on the heap, expected a pool\n", site);
        failures++;
        free(p);
        return;
    }
    memcpy(p, secret, sizeof secret);
    if (vm_flags(p, flags, sizeof flags) || !strstr(flags, " lo") ||
        !strstr(flags, " dd")) {
        printf("%s: pool page flags '%s' lack lo or dd\n", site, flags);
        failures++;
    }
    uintptr_t at = (uintptr_t)p;
    KEEP(at); /* only the address is read after free, through the kernel */
    free(p);
    if (secret_still_at(at)) {
        printf("%s: the secret is still there after free\n", site);
        failures++;
    }
}

static void *thread_main(void *arg)
{
    (void)arg;
    return load_secret(sizeof secret, 0);
}

static void *site_block(const char *site)
{
    if (!strcmp(site, "secret"))
        return load_secret(sizeof secret + 13, 0); /* 48 bytes */
    if (!strcmp(site, "copy"))
        return load_secret(sizeof secret, 1);
    if (!strcmp(site, "lib"))
        return helper_alloc(40);
    if (!strcmp(site, "size"))
        return malloc(5000);
    if (!strcmp(site, "other"))
        return malloc(64);
    if (!strcmp(site, "thread")) {
        pthread_t t;
        void *p = NULL;
        pthread_create(&t, NULL, thread_main, NULL);
        pthread_join(t, &p);
        return p;
    }
    return NULL;
}

static void check_plugin(const char *want)
{
    for (int round = 0; round < 2; round++) {
        void *handle = dlopen(RULES_PLUGIN, RTLD_NOW);
        if (!handle) {
            printf("plugin: %s\n", dlerror());
            failures++;
            return;
        }
        plugin_alloc_fn alloc =
            (plugin_alloc_fn)(uintptr_t)dlsym(handle, "plugin_alloc");
        check(round ? "plugin (reopened)" : "plugin", alloc(24), want);
        dlclose(handle);
    }
}

int main(int argc, char **argv)
{
    if (!smp_owns) {
        printf("rules_prog: not running under libsmp_preload.so\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        char site[32];
        const char *want = strchr(argv[i], '=');
        if (!want || want - argv[i] >= (int)sizeof site)
            return 2;
        snprintf(site, sizeof site, "%.*s", (int)(want - argv[i]), argv[i]);
        want++;
        if (!strcmp(site, "plugin")) {
            check_plugin(want);
            continue;
        }
        void *p = site_block(site);
        if (!p)
            return 2;
        check(site, p, want);
    }
    printf("rules_prog: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
