/*
 * A dlsym that allocates, as glibc's did before 2.34 (it callocs its
 * per-thread error state on first use). Preloaded beside
 * libsmp_preload.so it makes the preload's own look-up of the next
 * allocator re-enter malloc and calloc before that allocator is known:
 * the bootstrap buffer must serve those calls, and free ignore them.
 *
 * The real dlsym finds "the next object" from its caller's address, so
 * the shim ends in a jump, keeping its caller's return address.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

__attribute__((visibility("hidden"))) void *(*shim_next_dlsym)(void *,
                                                               const char *);
__attribute__((visibility("default"))) int shim_allocations;

__attribute__((visibility("hidden"), used)) void shim_before_dlsym(void)
{
    char *state = calloc(1, 48);
    char *more = malloc(200);

    if (state && more) {
        memset(more, 1, 200);
        shim_allocations += 2;
    }
    free(more);
    free(state);
    if (!shim_next_dlsym)
        *(void **)&shim_next_dlsym = dlvsym(RTLD_NEXT, "dlsym",
                                            "GLIBC_2.34");
}

__asm__(".text\n"
        ".globl dlsym\n"
        ".type dlsym, @function\n"
        "dlsym:\n"
        "    push %rdi\n"
        "    push %rsi\n"
        "    sub $8, %rsp\n"
        "    call shim_before_dlsym\n"
        "    add $8, %rsp\n"
        "    pop %rsi\n"
        "    pop %rdi\n"
        "    jmp *shim_next_dlsym(%rip)\n"
        ".size dlsym, .-dlsym\n");
