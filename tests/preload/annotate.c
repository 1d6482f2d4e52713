/*
 * One annotated binary, run with and without the preload: the output is
 * the same, and with the preload the blocks made inside the scope, by the
 * program and by libc's strdup, sit on locked, undumpable pages.
 *   annotate heap   expects ordinary heap pages (no preload)
 *   annotate pool   expects pool pages (LD_PRELOAD=libsmp_preload.so)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smp/annotate.h"

static void expect(const void *p, int pooled)
{
    CHECK(page_has(p, "lo") == pooled);
    CHECK(page_has(p, "dd") == pooled);
    CHECK((smp_owns != NULL && smp_owns(p)) == pooled);
}

static int use_secret(int pooled)
{
    SMP_ANNOTATE_SCOPE("login") {
        char *key = malloc(32);
        char *password = strdup("correct horse battery staple");

        expect(key, pooled);
        expect(password, pooled);
        snprintf(key, 32, "key-%zu", strlen(password));
        printf("%s %s\n", key, password);
        free(password);
        free(key);

        /* an early return leaves the scope too */
        return smp_annotate_available() ? smp_scope_depth() : 0;
    }
    return -1;
}

int main(int argc, char **argv)
{
    int pooled = argc > 1 && !strcmp(argv[1], "pool");
    char *plain;

    CHECK(smp_annotate_available() == pooled);

    /*
     * stdout's buffer is made on its first use; made inside the scope it
     * would be a block of the scope's pool, and escape when the scope ends
     */
    printf("annotated program\n");
    CHECK(use_secret(pooled) == pooled);
    if (pooled)
        CHECK(smp_scope_depth() == 0);

    /* outside every scope the heap serves, preload or not */
    plain = strdup("outside");
    expect(plain, 0);
    printf("%s\n", plain);
    free(plain);
    return 0;
}
