/*
 * A writable mapping that faults when read: a shared file mapping whose
 * file was truncated. The scan must skip it and still report the leak.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((noinline)) static void lose(void)
{
    volatile char *p = malloc(24);
    p[0] = 1;
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
    char path[] = "/tmp/smp-fault-XXXXXX";
    int fd = mkstemp(path);
    char *map;

    (void)argc;
    (void)argv;
    if (fd < 0 || ftruncate(fd, 8192) != 0)
        return 2;
    map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return 2;
    map[0] = 1;
    if (ftruncate(fd, 0) != 0)
        return 2;
    unlink(path);
    lose();
    scrub_stack();
    printf("leak_fault done\n");
    return 0;
}
