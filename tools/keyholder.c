/*
 * keyholder: a program that knows nothing of smp. It loads a secret key
 * into ordinary heap memory, shows how the page holding it is mapped,
 * frees it, looks at what is left behind, and forgets a copy. The demo
 * runs it plainly and under the preload with the rule
 * keys=fn:load_secret, to show the difference.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char key_text[] = "-----BEGIN DEMO KEY----- 4f1d9c0e7b";

/* The flags of the mapping holding addr, from /proc/self/smaps. */
static void print_mapping(const void *addr)
{
    FILE *smaps = fopen("/proc/self/smaps", "r");
    char line[512];
    int inside = 0;

    while (smaps && fgets(line, sizeof line, smaps)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
        else if (inside && !strncmp(line, "VmFlags:", 8))
            printf("  mapping of the key:%s", line + 8);
    }
    if (smaps)
        fclose(smaps);
}

/* Keeps a copy "for later", and later never comes: a leak. */
static __attribute__((noinline)) void remember(const char *key)
{
    volatile char *copy = strdup(key);
    copy[0] = '*';
}

/* What is left at addr, with unprintable bytes shown as dots. */
static __attribute__((noinline)) void print_remains(uintptr_t addr,
                                                   size_t n)
{
    const volatile unsigned char *p = (const volatile unsigned char *)addr;
    char text[64];
    int zero = 1;

    for (size_t i = 0; i < n && i < sizeof text - 1; i++) {
        text[i] = p[i] >= 32 && p[i] < 127 ? (char)p[i] : '.';
        text[i + 1] = 0;
        zero &= p[i] == 0;
    }
    printf("  after free, the key's bytes read: %s\n",
           zero ? "all zero" : text);
}

static __attribute__((noinline)) char *load_secret(void)
{
    char *key = malloc(sizeof key_text);

    memcpy(key, key_text, sizeof key_text);
    remember(key);
    return key;
}

int main(void)
{
    char *key = load_secret();
    char *other = malloc(64);   /* not secret: stays on the ordinary heap */
    volatile uintptr_t where = (uintptr_t)key;

    printf("  key loaded at %p\n", (void *)key);
    print_mapping(key);
    free(key);
    /* reading freed memory: only to show what an attacker would find */
    print_remains(where, sizeof key_text - 1);
    free(other);
    return 0;
}
