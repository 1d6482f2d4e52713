/*
 * The function symbols of every loaded object, read once per object with
 * elfutils' libelf (.symtab where the file has one, .dynsym always) and
 * kept as address ranges per glob, so that rules never search symbols
 * while the program runs. Objects are found with dl_iterate_phdr and
 * read again only when they are new (after dlopen) or dropped (after
 * dlclose). Not thread-safe: the rules call it under their own lock.
 */
#ifndef SMP_SYMBOLS_H
#define SMP_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

#define SMPI_OBJECT_CODE_MAX 8

typedef struct smpi_range {
    uintptr_t start;
    uintptr_t end; /* one past the last byte */
} smpi_range;

/* A function of a loaded object whose name matched glob number glob. */
typedef struct smpi_hit {
    uintptr_t start;
    uintptr_t end;
    unsigned glob;
} smpi_hit;

typedef struct smpi_object {
    struct smpi_object *next;
    const char *path; /* as the loader knows it */
    const char *name; /* the file name: the path's last component */
    uintptr_t bias;
    /* The executable segments: where the object's code lies. */
    smpi_range code[SMPI_OBJECT_CODE_MAX];
    unsigned ncode;
    int symbols_read; /* 0 when the file could not be read (vdso, gone) */
    int has_symtab;   /* the file kept its full symbol table */
    /* Sorted by glob, then address; no duplicates. */
    smpi_hit *hits;
    size_t nhits;
    size_t hits_cap;
} smpi_object;

/*
 * Sets the globs that functions are looked up by (their order gives the
 * glob numbers) and forgets every object read so far. The strings must
 * outlive their use. Returns 0, or -1 when memory ran out.
 */
int smpi_symbols_reset(const char *const *globs, unsigned count);

/*
 * Brings the object list up to date with what is loaded now: reads new
 * objects, drops unloaded ones. Returns 1 when the list changed, 0 when
 * not, -1 when memory ran out (the list is then left as it was).
 */
int smpi_symbols_update(void);

/* The current list, valid until the next update or reset. */
const smpi_object *smpi_symbols_objects(void);

/* Calls fn for every function symbol of the file at path (tests use it). */
int smpi_symbols_foreach(const char *path, uintptr_t bias,
                         void (*fn)(const char *name, uintptr_t start,
                                    uintptr_t end, void *ctx),
                         void *ctx);

#endif
