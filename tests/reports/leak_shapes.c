/*
 * Leaks of known shape, for the report tests. Run under the preload with
 * every allocation routed (SMP_POOL_SCOPE='all=*'). The line numbers of
 * the malloc calls are what the report's frames must name.
 */
#include <stdio.h>
#include <stdlib.h>

struct node {
    struct node *child;
    char payload[24];
};

void *held_by_global;
void **heap_holder;

/* Reachable from a global: never reported. */
__attribute__((noinline)) static void hold_in_global(void)
{
    held_by_global = malloc(40);
}

/* Reachable through an ordinary heap block a global holds. */
__attribute__((noinline)) static void hold_through_heap(void)
{
    heap_holder = malloc(sizeof *heap_holder);
    *heap_holder = malloc(56);
}

/* Nobody points to it: a direct leak. */
__attribute__((noinline)) static void leak_direct(void)
{
    volatile char *p = malloc(100);
    p[0] = 1;
}

/* A lost node (direct) that points to its child (indirect). */
__attribute__((noinline)) static void leak_tree(void)
{
    struct node *n = malloc(sizeof *n);
    n->child = malloc(sizeof *n);
    n->child->child = NULL;
}

/*
 * Conservative scanning keeps a block alive while a stale copy of its
 * address sits in dead stack memory; clear what the calls above left.
 */
__attribute__((noinline)) static void scrub_stack(void)
{
    volatile char area[32768];

    for (size_t i = 0; i < sizeof area; i++)
        area[i] = 0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 1;

    hold_in_global();
    hold_through_heap();
    for (int i = 0; i < rounds; i++) {
        leak_direct();
        leak_tree();
    }
    scrub_stack();
    /* buffered output must survive the report's exit status */
    printf("leak_shapes done");
    return 0;
}
