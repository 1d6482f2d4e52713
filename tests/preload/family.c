/*
 * The malloc family's semantics, as glibc 2.36 gives them, checked on
 * whatever allocator serves the program. Run as
 *   family plain   glibc alone (the checks themselves are right)
 *   family pass    under the preload, nothing routed: no block in a pool
 *   family routed  under SMP_POOL_SCOPE='all=*': every block in a pool
 *   family scope   under the preload, inside an annotated scope
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "smp/annotate.h"

static int want_pool;

/* Sizes no allocator can serve, hidden from the compiler's own checks. */
static volatile size_t huge = SIZE_MAX;
static volatile size_t half = SIZE_MAX / 2;

#define ALIGNED(p, a) (((uintptr_t)(p) & ((uintptr_t)(a) - 1)) == 0)

/* Every block a call returned must live where the mode says. */
static void home(const void *p)
{
    int pooled = smp_owns != NULL && smp_owns(p);

    CHECK(p != NULL);
    CHECK(pooled == want_pool);
}

static void check_malloc(void)
{
    void *a = malloc(0), *b = malloc(0);
    char *p = malloc(100);

    /* malloc(0) gives distinct blocks that free accepts */
    home(a);
    home(b);
    CHECK(a != b);
    free(a);
    free(b);

    home(p);
    CHECK(ALIGNED(p, 16));
    CHECK(malloc_usable_size(p) >= 100);
    memset(p, 0x5a, 100);
    free(p);
    free(NULL);

    errno = 0;
    CHECK(malloc(huge) == NULL);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(malloc(half + 1) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(malloc_usable_size(NULL) == 0);
}

static void check_calloc(void)
{
    unsigned char *p = calloc(10, 100);

    home(p);
    for (int i = 0; i < 1000; i++)
        CHECK(p[i] == 0);
    free(p);

    /* large enough to come from fresh pages in glibc, reused ones here */
    for (int round = 0; round < 2; round++) {
        p = calloc(1, 70000);
        home(p);
        for (int i = 0; i < 70000; i++)
            CHECK(p[i] == 0);
        memset(p, 0xff, 70000);
        free(p);
    }

    errno = 0;
    CHECK(calloc(half, 3) == NULL);
    CHECK(errno == ENOMEM);
    p = calloc(0, 5);
    home(p);
    free(p);
}

static void check_realloc(void)
{
    unsigned char *p = malloc(64), *q;

    for (int i = 0; i < 64; i++)
        p[i] = (unsigned char)i;

    /* growing and shrinking keep the contents and the home */
    q = realloc(p, 100000);
    home(q);
    for (int i = 0; i < 64; i++)
        CHECK(q[i] == i);
    p = realloc(q, 10);
    home(p);
    for (int i = 0; i < 10; i++)
        CHECK(p[i] == i);

    /* what malloc_usable_size offered beyond the size asked for moves too */
    size_t usable = malloc_usable_size(p);
    memset(p + 10, 0x77, usable - 10);
    p = realloc(p, usable * 3 + 5000);
    home(p);
    for (size_t i = 10; i < usable; i++)
        CHECK(p[i] == 0x77);
    p = realloc(p, 10);
    home(p);

    /* reallocarray refuses an overflow and leaves the block alone */
    errno = 0;
    CHECK(reallocarray(p, half, 3) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(p[9] == 9);
    q = reallocarray(p, 10, 10);
    home(q);
    CHECK(q[9] == 9);

    /* realloc(p, 0) frees p and returns NULL, as glibc does */
    CHECK(realloc(q, 0) == NULL);

    p = realloc(NULL, 50);
    home(p);
    free(p);
    p = reallocarray(NULL, 4, 4);
    home(p);
    errno = 0;
    CHECK(realloc(p, huge) == NULL);
    CHECK(errno == ENOMEM);
    free(p);
}

static void check_posix_memalign(void)
{
    static const size_t bad[] = { 0, 1, 3, 4, 12, 24, 48, 4097 };
    static const size_t good[] = { 8, 16, 32, 64, 256, 4096, 8192, 65536 };
    void *p;

    /* a bad alignment is EINVAL, returned, with errno left alone */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = (void *)1;
        errno = 4321;
        CHECK(posix_memalign(&p, bad[i], 16) == EINVAL);
        CHECK(errno == 4321);
        CHECK(p == (void *)1);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK(posix_memalign(&p, good[i], 100) == 0);
        home(p);
        CHECK(ALIGNED(p, good[i]));
        memset(p, 1, 100);
        free(p);
    }
    CHECK(posix_memalign(&p, 64, 0) == 0);
    home(p);
    free(p);
    /* no memory: returned, and in errno as glibc sets it */
    p = (void *)1;
    errno = 0;
    CHECK(posix_memalign(&p, 64, huge - 4096) == ENOMEM);
    CHECK(errno == ENOMEM);
    CHECK(p == (void *)1);
    errno = 0;
    CHECK(posix_memalign(&p, 16, half + 1) == ENOMEM);
    CHECK(errno == ENOMEM);
    CHECK(p == (void *)1);
}

static void check_memalign(void)
{
    void *p = aligned_alloc(64, 100);

    home(p);
    CHECK(ALIGNED(p, 64));
    free(p);
    p = aligned_alloc(4096, 1);
    home(p);
    CHECK(ALIGNED(p, 4096));
    free(p);

    /* memalign rounds an alignment that is no power of two up (through a
       variable: the compiler rightly warns about such a constant) */
    volatile size_t odd = 24;
    p = memalign(odd, 10);
    home(p);
    CHECK(ALIGNED(p, 32));
    free(p);
    p = memalign(8, 10);
    home(p);
    CHECK(ALIGNED(p, 16));
    free(p);
    /* above a page, small blocks too */
    p = memalign(8192, 10);
    home(p);
    CHECK(ALIGNED(p, 8192));
    free(p);
    p = memalign(1 << 20, 100);
    home(p);
    CHECK(ALIGNED(p, 1 << 20));
    free(p);
    errno = 0;
    CHECK(memalign(half + 3, 10) == NULL);
    CHECK(errno == EINVAL);

    p = valloc(10);
    home(p);
    CHECK(ALIGNED(p, 4096));
    free(p);
    p = pvalloc(1);
    home(p);
    CHECK(ALIGNED(p, 4096));
    CHECK(malloc_usable_size(p) >= 4096);
    free(p);
    errno = 0;
    CHECK(pvalloc(huge) == NULL);
    CHECK(errno == ENOMEM);
}

static void check_errno_and_libc(void)
{
    char *s = strdup("a string copied by libc");
    void *p = malloc(32);

    /* free keeps errno, whichever allocator owns the block */
    home(s);
    errno = 1234;
    free(s);
    CHECK(errno == 1234);
    free(p);
    CHECK(errno == 1234);
    free(NULL);
    CHECK(errno == 1234);
}

static void run_all(void)
{
    check_malloc();
    check_calloc();
    check_realloc();
    check_posix_memalign();
    check_memalign();
    check_errno_and_libc();
}

/*
 * A block keeps its home when resized elsewhere: a heap block resized in
 * a scope stays on the heap, a pool block resized outside stays pooled.
 */
static void check_homes_kept(void)
{
    smp_pool *pool = smp_annotate_pool("family-kept");
    char *heap = malloc(16), *pooled = NULL;

    CHECK(pool != NULL);
    CHECK(smp_annotate_enter_pool(pool));
    pooled = malloc(16);
    heap = realloc(heap, 5000);
    smp_annotate_exit();
    CHECK(smp_owns(pooled) && !smp_owns(heap));

    pooled = realloc(pooled, 5000);
    CHECK(smp_owns(pooled));
    free(pooled);
    free(heap);
    CHECK(smp_pool_destroy(pool) == 0);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "plain";

    want_pool = !strcmp(mode, "routed") || !strcmp(mode, "scope");
    if (!strcmp(mode, "scope")) {
        CHECK(smp_annotate_available());
        SMP_ANNOTATE_SCOPE("family") {
            run_all();
        }
        check_homes_kept();
    } else {
        /* only a plain run goes without the runtime */
        CHECK((strcmp(mode, "plain") != 0) == smp_annotate_available());
        run_all();
    }
    printf("family %s: ok\n", mode);
    return 0;
}
