/*
 * glibc's dlopen searches a file name without a slash along the calling
 * object's DT_RPATH or DT_RUNPATH, and it takes the caller from its own
 * return address. When rules are active the preload's dlopen calls the
 * real one itself (to resolve rules again afterwards), so glibc would
 * search the preload's path instead of the program's. This finds the
 * file along the real caller's path first, so the result stays the same.
 *
 * Only $ORIGIN is expanded; a directory using $LIB or $PLATFORM is left
 * to glibc's own search (which then misses the caller's path).
 */
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "os.h"
#include "preload.h"

/* The directory of the object map, without a trailing slash. */
static int origin_of(const struct link_map *map, char *out, size_t size)
{
    ssize_t n;
    char *slash;

    if (map->l_name && map->l_name[0]) {
        n = (ssize_t)strlen(map->l_name);
        if ((size_t)n >= size)
            return -1;
        memcpy(out, map->l_name, (size_t)n + 1);
    } else {
        /* the executable's own entry has an empty name */
        n = readlink(SMPI_PROC_EXE, out, size - 1);
        if (n <= 0)
            return -1;
        out[n] = 0;
    }
    slash = strrchr(out, '/');
    if (!slash)
        return -1;
    *slash = 0;
    return 0;
}

/* Appends len bytes of text to out at *at; -1 when they do not fit. */
static int put(char *out, size_t size, size_t *at, const char *text,
               size_t len)
{
    if (*at + len >= size)
        return -1;
    memcpy(out + *at, text, len);
    *at += len;
    out[*at] = 0;
    return 0;
}

/* dir (len bytes, $ORIGIN expanded) + "/" + file into out. */
static int join(const char *dir, size_t len, const char *origin,
                const char *file, char *out, size_t size)
{
    size_t at = 0;

    out[0] = 0;
    while (len > 0) {
        size_t skip = 0;

        if (len >= 7 && !memcmp(dir, "$ORIGIN", 7))
            skip = 7;
        else if (len >= 9 && !memcmp(dir, "${ORIGIN}", 9))
            skip = 9;
        if (skip) {
            if (!origin || put(out, size, &at, origin, strlen(origin)))
                return -1;
            dir += skip;
            len -= skip;
            continue;
        }
        if (*dir == '$')
            return -1;
        if (put(out, size, &at, dir, 1))
            return -1;
        dir++;
        len--;
    }
    if (put(out, size, &at, "/", 1) ||
        put(out, size, &at, file, strlen(file)))
        return -1;
    return 0;
}

/* The first readable dir/file along a ':'-separated path, into out. */
static int along(const char *path, const char *origin, const char *file,
                 char *out, size_t size)
{
    while (path && *path) {
        size_t len = strcspn(path, ":");

        /* an empty entry means the current directory */
        if (len == 0) {
            if (!join(".", 1, origin, file, out, size) &&
                access(out, R_OK) == 0)
                return 1;
        } else if (!join(path, len, origin, file, out, size) &&
                   access(out, R_OK) == 0) {
            return 1;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return 0;
}

int smpi_caller_search(const char *file, const void *caller, char *out,
                       size_t size)
{
    const char *rpath = NULL, *runpath = NULL, *strtab = NULL;
    uintptr_t rpath_off = 0, runpath_off = 0;
    struct link_map *map = NULL;
    char origin[4096];
    Dl_info info;

    if (!file || strchr(file, '/') ||
        !dladdr1(caller, &info, (void **)&map, RTLD_DL_LINKMAP) || !map)
        return 0;

    for (const ElfW(Dyn) *d = map->l_ld; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_STRTAB)
            strtab = (const char *)d->d_un.d_ptr;
        else if (d->d_tag == DT_RPATH)
            rpath_off = d->d_un.d_val + 1;
        else if (d->d_tag == DT_RUNPATH)
            runpath_off = d->d_un.d_val + 1;
    }
    if (!strtab || (!rpath_off && !runpath_off))
        return 0;

    /* the loader relocates these entries in place; some targets do not */
    if ((uintptr_t)strtab < map->l_addr)
        strtab += map->l_addr;
    if (runpath_off)
        runpath = strtab + runpath_off - 1;
    else
        rpath = strtab + rpath_off - 1;

    /* LD_LIBRARY_PATH comes before DT_RUNPATH: glibc finds those itself */
    if (runpath && !getauxval(AT_SECURE) &&
        along(getenv("LD_LIBRARY_PATH"), NULL, file, out, size))
        return 0;

    if (origin_of(map, origin, sizeof origin))
        origin[0] = 0;
    return along(runpath ? runpath : rpath, origin[0] ? origin : NULL,
                 file, out, size);
}
