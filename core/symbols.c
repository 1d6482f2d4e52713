/*
 * Function symbols of loaded objects, by glob. Each object is read once,
 * when it first shows up in dl_iterate_phdr; what matched is kept as
 * sorted address ranges. The loader's add and remove counters tell when
 * nothing changed, so a refresh after an unrelated dlopen costs little.
 *
 * All memory here is bookkeeping memory (core/meta.h); libelf allocates
 * with malloc, which is why the preload calls in with its guard set.
 */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "glob.h"
#include "meta.h"
#include "os.h"
#include "symbols.h"

/* One loaded object as dl_iterate_phdr shows it, copied out. */
typedef struct entry {
    uintptr_t bias;
    char *path;
    smpi_range code[SMPI_OBJECT_CODE_MAX];
    unsigned ncode;
} entry;

typedef struct snapshot {
    entry *entries;
    size_t count;
    size_t cap;
    char *names;
    size_t names_used;
    size_t names_cap;
    unsigned long long adds;
    unsigned long long subs;
} snapshot;

static const char *const *globs;
static unsigned nglobs;
static smpi_object *objects;
static int scanned;
static unsigned long long seen_adds;
static unsigned long long seen_subs;

/* --- the list of loaded objects --- */

static int count_cb(struct dl_phdr_info *info, size_t size, void *ctx)
{
    snapshot *s = ctx;

    (void)size;
    s->count++;
    s->names_used += strlen(info->dlpi_name) + 1;
    return 0;
}

static int copy_cb(struct dl_phdr_info *info, size_t size, void *ctx)
{
    snapshot *s = ctx;
    size_t len = strlen(info->dlpi_name) + 1;

    (void)size;
    /* an object loaded between the two passes: stop, the caller retries */
    if (s->count == s->cap || s->names_used + len > s->names_cap)
        return 1;

    entry *e = &s->entries[s->count++];
    e->bias = info->dlpi_addr;
    e->path = memcpy(s->names + s->names_used, info->dlpi_name, len);
    s->names_used += len;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        if (e->ncode == SMPI_OBJECT_CODE_MAX)
            break;
        e->code[e->ncode].start = info->dlpi_addr + ph->p_vaddr;
        e->code[e->ncode].end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        e->ncode++;
    }
    s->adds = info->dlpi_adds;
    s->subs = info->dlpi_subs;
    return 0;
}

static void snapshot_free(snapshot *s)
{
    smpi_meta_free(s->entries, s->cap * sizeof *s->entries);
    smpi_meta_free(s->names, s->names_cap);
}

static int take_snapshot(snapshot *s)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        memset(s, 0, sizeof *s);
        dl_iterate_phdr(count_cb, s);

        /* room for a few objects loaded meanwhile by other threads */
        s->cap = s->count + 8;
        s->names_cap = s->names_used + 8 * PATH_MAX;
        s->count = 0;
        s->names_used = 0;
        s->entries = smpi_meta_alloc(s->cap * sizeof *s->entries);
        s->names = smpi_meta_alloc(s->names_cap);
        if (!s->entries || !s->names) {
            snapshot_free(s);
            return -1;
        }
        if (dl_iterate_phdr(copy_cb, s) == 0)
            return 0;
        snapshot_free(s);
    }
    return -1;
}

/* --- reading one object's symbols --- */

static int read_elf(int fd, uintptr_t bias, int *has_symtab,
                    void (*fn)(const char *, uintptr_t, uintptr_t, void *),
                    void *ctx)
{
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    Elf_Scn *scn = NULL;

    if (!elf)
        return -1;
    if (elf_kind(elf) != ELF_K_ELF) {
        elf_end(elf);
        return -1;
    }

    *has_symtab = 0;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || !sh.sh_entsize)
            continue;
        if (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM)
            continue;
        if (sh.sh_type == SHT_SYMTAB)
            *has_symtab = 1;

        Elf_Data *data = elf_getdata(scn, NULL);
        size_t n = sh.sh_size / sh.sh_entsize;
        for (size_t i = 0; data && i < n; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(data, (int)i, &sym))
                break;
            /* ifunc symbols name resolvers, never the code that runs */
            if (GELF_ST_TYPE(sym.st_info) != STT_FUNC)
                continue;
            if (sym.st_shndx == SHN_UNDEF || sym.st_size == 0)
                continue;
            const char *name = elf_strptr(elf, sh.sh_link, sym.st_name);
            if (name && *name)
                fn(name, bias + sym.st_value, bias + sym.st_value + sym.st_size,
                   ctx);
        }
    }
    elf_end(elf);
    return 0;
}

int smpi_symbols_foreach(const char *path, uintptr_t bias,
                         void (*fn)(const char *name, uintptr_t start,
                                    uintptr_t end, void *ctx),
                         void *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int has_symtab;

    if (fd < 0)
        return -1;
    elf_version(EV_CURRENT);
    int rc = read_elf(fd, bias, &has_symtab, fn, ctx);
    close(fd);
    return rc;
}

static int push_hit(smpi_object *o, uintptr_t start, uintptr_t end,
                    unsigned glob)
{
    if (o->nhits == o->hits_cap) {
        size_t cap = o->hits_cap ? 2 * o->hits_cap : 16;
        smpi_hit *hits = smpi_meta_alloc(cap * sizeof *hits);
        if (!hits)
            return -1;
        if (o->nhits)
            memcpy(hits, o->hits, o->nhits * sizeof *hits);
        smpi_meta_free(o->hits, o->hits_cap * sizeof *hits);
        o->hits = hits;
        o->hits_cap = cap;
    }
    o->hits[o->nhits++] = (smpi_hit){ start, end, glob };
    return 0;
}

typedef struct collect {
    smpi_object *object;
    int failed;
} collect;

/*
 * Compilers copy functions and name the copies after them: GCC's
 * "f.constprop.0", "f.isra.0", "f.part.0", "f.cold". No C identifier or
 * mangled C++ name holds a '.', so what precedes the first one names the
 * function a user wrote. The base goes into buf; NULL when there is none.
 */
static const char *base_name(const char *name, char *buf, size_t size)
{
    const char *dot = strchr(name, '.');

    if (!dot || dot == name || (size_t)(dot - name) >= size)
        return NULL;
    memcpy(buf, name, (size_t)(dot - name));
    buf[dot - name] = '\0';
    return buf;
}

static void collect_cb(const char *name, uintptr_t start, uintptr_t end,
                       void *ctx)
{
    collect *c = ctx;
    char buf[512];
    const char *base = base_name(name, buf, sizeof buf);

    for (unsigned g = 0; g < nglobs; g++) {
        if (!smpi_glob_match(globs[g], name) &&
            !(base && smpi_glob_match(globs[g], base)))
            continue;
        if (push_hit(c->object, start, end, g))
            c->failed = 1;
    }
}

static int hit_order(const void *a, const void *b)
{
    const smpi_hit *x = a;
    const smpi_hit *y = b;

    if (x->glob != y->glob)
        return x->glob < y->glob ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Sorts the hits and drops the copies .symtab and .dynsym both gave. */
static void sort_hits(smpi_object *o)
{
    size_t kept = 0;

    if (o->nhits < 2)
        return;
    qsort(o->hits, o->nhits, sizeof *o->hits, hit_order);
    for (size_t i = 0; i < o->nhits; i++) {
        if (kept && !hit_order(&o->hits[kept - 1], &o->hits[i]))
            continue;
        o->hits[kept++] = o->hits[i];
    }
    o->nhits = kept;
}

static void read_object(smpi_object *o, int is_main)
{
    /* the executable's own name may be gone; its /proc link is not */
    int fd = open(is_main ? SMPI_PROC_EXE : o->path, O_RDONLY | O_CLOEXEC);
    collect c = { o, 0 };

    if (fd < 0)
        return;
    if (nglobs == 0) {
        close(fd);
        o->symbols_read = 1;
        return;
    }
    if (read_elf(fd, o->bias, &o->has_symtab, collect_cb, &c) == 0 && !c.failed)
        o->symbols_read = 1;
    close(fd);
    sort_hits(o);
}

/* --- the object list --- */

static void object_free(smpi_object *o)
{
    smpi_meta_free(o->hits, o->hits_cap * sizeof *o->hits);
    smpi_meta_free((void *)o->path, strlen(o->path) + 1);
    smpi_meta_free(o, sizeof *o);
}

static smpi_object *object_new(const entry *e, int is_main)
{
    char exe[PATH_MAX];
    const char *path = e->path;

    if (is_main) {
        ssize_t n = readlink(SMPI_PROC_EXE, exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
        path = exe;
    }

    smpi_object *o = smpi_meta_alloc(sizeof *o);
    char *copy = smpi_meta_alloc(strlen(path) + 1);
    if (!o || !copy) {
        smpi_meta_free(o, sizeof *o);
        smpi_meta_free(copy, copy ? strlen(path) + 1 : 0);
        return NULL;
    }
    strcpy(copy, path);

    const char *slash = strrchr(copy, '/');
    o->path = copy;
    o->name = slash ? slash + 1 : copy;
    o->bias = e->bias;
    o->ncode = e->ncode;
    memcpy(o->code, e->code, sizeof o->code);
    read_object(o, is_main);
    return o;
}

static smpi_object *take_known(smpi_object **list, const entry *e, int is_main)
{
    for (smpi_object **p = list; *p; p = &(*p)->next) {
        smpi_object *o = *p;
        if (o->bias != e->bias)
            continue;
        if (!is_main && strcmp(o->path, e->path) != 0)
            continue;
        *p = o->next;
        o->next = NULL;
        return o;
    }
    return NULL;
}

int smpi_symbols_reset(const char *const *new_globs, unsigned count)
{
    while (objects) {
        smpi_object *next = objects->next;
        object_free(objects);
        objects = next;
    }
    globs = new_globs;
    nglobs = count;
    scanned = 0;
    elf_version(EV_CURRENT);
    return 0;
}

int smpi_symbols_update(void)
{
    snapshot s;
    int changed = 0;
    int failed = 0;

    if (take_snapshot(&s))
        return -1;
    if (scanned && s.adds == seen_adds && s.subs == seen_subs) {
        snapshot_free(&s);
        return 0;
    }

    smpi_object *old = objects;
    smpi_object *fresh = NULL;
    smpi_object **tail = &fresh;
    for (size_t i = 0; i < s.count; i++) {
        /* the executable comes first and has no name of its own */
        int is_main = i == 0 && s.entries[i].path[0] == '\0';
        smpi_object *o = take_known(&old, &s.entries[i], is_main);
        if (!o) {
            o = object_new(&s.entries[i], is_main);
            changed = 1;
        }
        if (!o) {
            failed = 1;
            continue;
        }
        *tail = o;
        tail = &o->next;
    }

    while (old) {
        smpi_object *next = old->next;
        object_free(old);
        old = next;
        changed = 1;
    }

    objects = fresh;
    /* an object memory ran out for is tried again next time */
    scanned = !failed;
    seen_adds = s.adds;
    seen_subs = s.subs;
    snapshot_free(&s);
    return changed;
}

const smpi_object *smpi_symbols_objects(void)
{
    return objects;
}
