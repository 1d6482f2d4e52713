/*
 * Symbolization, at report time only. The module table is filled from
 * dl_iterate_phdr and never shrinks, so an object unloaded by dlclose
 * still names the frames captured while it was loaded.
 * Names and lines come from elfutils' libdwfl: the live process is read
 * through /proc/self/maps, unloaded objects are opened again by path.
 */
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meta.h"
#include "os.h"
#include "symbolize.h"

#define MODULES_MAX 2048
#define MODULE_PATH_MAX 512

typedef struct module {
    uintptr_t start, end; /* lowest and highest address of its segments */
    uintptr_t bias;       /* dlpi_addr */
    char path[MODULE_PATH_MAX];
    char build_id[41];
    int loaded;           /* still mapped when the session began */
    unsigned until;       /* unloaded in this generation; 0: loaded */
    Dwfl *dead;           /* a session of its own once it was unloaded */
} module;

static module *modules; /* MODULES_MAX entries of bookkeeping memory */
static int nmodules;
static pthread_mutex_t modules_mutex = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *live;

/*
 * Separate debug files by build-id only. The standard callback ends with
 * debuginfod: at exit that would download debug files from the servers
 * in DEBUGINFOD_URLS, and merely starting its client initialises libcurl,
 * whose start-up calls into libraries (libcrypto) the program has
 * already torn down by then.
 */
static int find_debuginfo(Dwfl_Module *mod, void **userdata,
                          const char *modname, GElf_Addr base,
                          const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc, char **debuginfo_file_name)
{
    return dwfl_build_id_find_debuginfo(mod, userdata, modname, base,
                                        file_name, debuglink_file,
                                        debuglink_crc, debuginfo_file_name);
}

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = find_debuginfo,
};

static void read_build_id(const struct dl_phdr_info *info, char *out)
{
    out[0] = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        const char *at = (const char *)(info->dlpi_addr + ph->p_vaddr);
        const char *end = at + ph->p_memsz;

        if (ph->p_type != PT_NOTE)
            continue;
        while (at + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)at;
            const unsigned char *desc = (const unsigned char *)
                (at + sizeof *n + ((n->n_namesz + 3) & ~3u));

            if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
                !memcmp(at + sizeof *n, "GNU", 4) && n->n_descsz <= 20) {
                for (unsigned k = 0; k < n->n_descsz; k++)
                    snprintf(out + 2 * k, 3, "%02x", desc[k]);
                return;
            }
            at = (const char *)desc + ((n->n_descsz + 3) & ~3u);
        }
    }
}

static void module_path(const struct dl_phdr_info *info, char *out)
{
    ssize_t n;

    if (info->dlpi_name && info->dlpi_name[0]) {
        snprintf(out, MODULE_PATH_MAX, "%s", info->dlpi_name);
        return;
    }
    /* the main program has no name in the loader's list */
    n = readlink(SMPI_PROC_EXE, out, MODULE_PATH_MAX - 1);
    out[n > 0 ? n : 0] = 0;
}

static int note_one(struct dl_phdr_info *info, size_t size, void *ctx)
{
    uintptr_t start = UINTPTR_MAX, end = 0;
    module m = { 0 };

    (void)size;
    (void)ctx;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        if (info->dlpi_addr + ph->p_vaddr < start)
            start = info->dlpi_addr + ph->p_vaddr;
        if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > end)
            end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    }
    if (start >= end)
        return 0;
    module_path(info, m.path);
    for (int i = 0; i < nmodules; i++) {
        if (modules[i].start == start && modules[i].end == end &&
            !modules[i].until && !strcmp(modules[i].path, m.path)) {
            modules[i].loaded = 1;
            return 0;
        }
    }
    if (nmodules == MODULES_MAX)
        return 1;
    m.start = start;
    m.end = end;
    m.bias = info->dlpi_addr;
    m.loaded = 1;
    read_build_id(info, m.build_id);
    modules[nmodules] = m;
    /* readers without the lock see a whole entry or none */
    __atomic_store_n(&nmodules, nmodules + 1, __ATOMIC_RELEASE);
    return 0;
}

/* Marks what is loaded now; the caller holds modules_mutex. */
static void note_loaded(void)
{
    if (!modules)
        modules = smpi_meta_alloc(MODULES_MAX * sizeof *modules);
    if (!modules)
        return;
    for (int i = 0; i < nmodules; i++)
        modules[i].loaded = 0;
    dl_iterate_phdr(note_one, NULL);
}

void smpi_symbolize_note_modules(void)
{
    pthread_mutex_lock(&modules_mutex);
    note_loaded();
    pthread_mutex_unlock(&modules_mutex);
}

void smpi_symbolize_note_object(uintptr_t start)
{
    int n = __atomic_load_n(&nmodules, __ATOMIC_ACQUIRE);

    for (int i = n; i-- > 0;) {
        if (modules[i].start == start &&
            !__atomic_load_n(&modules[i].until, __ATOMIC_RELAXED))
            return;
    }
    smpi_symbolize_note_modules();
}

void smpi_symbolize_note_unload(unsigned generation)
{
    pthread_mutex_lock(&modules_mutex);
    note_loaded();
    for (int i = 0; i < nmodules; i++) {
        if (!modules[i].loaded && !modules[i].until)
            __atomic_store_n(&modules[i].until, generation,
                             __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&modules_mutex);
}

int smpi_symbolize_begin(void)
{
    smpi_symbolize_note_modules();
    live = dwfl_begin(&callbacks);
    if (!live)
        return -1;
    if (dwfl_linux_proc_report(live, getpid()) != 0) {
        dwfl_end(live);
        live = NULL;
        return -1;
    }
    dwfl_report_end(live, NULL, NULL);
    return 0;
}

void smpi_symbolize_end(void)
{
    if (live)
        dwfl_end(live);
    live = NULL;
    for (int i = 0; i < nmodules; i++) {
        if (modules[i].dead)
            dwfl_end(modules[i].dead);
        modules[i].dead = NULL;
    }
}

/*
 * The object that held addr in generation: of those that held it, the
 * one unloaded first after that generation (or still loaded). An object
 * can take the range of another only once that one is unloaded.
 */
static module *module_of(uintptr_t addr, unsigned generation)
{
    module *best = NULL;

    for (int i = 0; i < nmodules; i++) {
        module *m = &modules[i];

        if (addr < m->start || addr >= m->end ||
            (m->until && m->until <= generation))
            continue;
        if (!best || (m->until && (!best->until || m->until < best->until)))
            best = m;
    }
    return best;
}

/* The module as the live process maps it now, if it is still there. */
static Dwfl_Module *live_module(const module *m, uintptr_t addr)
{
    if (!live || (m && !m->loaded))
        return NULL;
    return dwfl_addrmodule(live, addr);
}

static Dwfl_Module *dead_module(module *m, uintptr_t addr)
{
    if (!m || !m->path[0])
        return NULL;
    if (!m->dead) {
        m->dead = dwfl_begin(&callbacks);
        if (!m->dead)
            return NULL;
        dwfl_report_elf(m->dead, m->path, m->path, -1, m->bias, false);
        dwfl_report_end(m->dead, NULL, NULL);
    }
    return dwfl_addrmodule(m->dead, addr);
}

/*
 * libdw finds an address's unit through .debug_aranges, which clang does
 * not emit unless asked (-gdwarf-aranges): without it, ask each unit in
 * turn whether its ranges hold the address. Reports symbolize tens of
 * frames, so the linear walk costs little.
 */
static Dwarf_Die *unit_of(Dwfl_Module *mod, uintptr_t addr, Dwarf_Addr *bias)
{
    Dwarf_Die *unit = dwfl_module_addrdie(mod, addr, bias);

    if (unit)
        return unit;
    while ((unit = dwfl_module_nextcu(mod, unit, bias)) != NULL) {
        if (dwarf_haspc(unit, addr - *bias) == 1)
            return unit;
    }
    return NULL;
}

static void line_of(Dwfl_Module *mod, Dwarf_Die *unit, Dwarf_Addr bias,
                    uintptr_t addr, smpi_frame *out)
{
    Dwfl_Line *line = dwfl_module_getsrc(mod, addr);
    Dwarf_Line *unit_line;

    if (line) {
        out->file = dwfl_lineinfo(line, NULL, &out->line, NULL, NULL, NULL);
        return;
    }
    unit_line = unit ? dwarf_getsrc_die(unit, addr - bias) : NULL;
    if (unit_line) {
        out->file = dwarf_linesrc(unit_line, NULL, NULL);
        dwarf_lineno(unit_line, &out->line);
    }
}

/* The name an inlined function is known by: its symbol, as for others. */
static const char *inlined_name(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    const char *name;

    name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name,
                                                 &attr));
    return name ? name : dwarf_diename(die);
}

/* Where an inlined function was called from, in its caller's source. */
static const char *call_site(Dwarf_Die *unit, Dwarf_Die *die, int *line)
{
    Dwarf_Attribute attr;
    Dwarf_Word file, at;
    Dwarf_Files *files;
    size_t nfiles;

    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &file) ||
        dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &at) ||
        dwarf_getsrcfiles(unit, &files, &nfiles) || file >= nfiles)
        return NULL;
    *line = (int)at;
    return dwarf_filesrc(files, file, NULL, NULL);
}

/*
 * Functions inlined at addr, innermost first: each becomes a frame of its
 * own in front of the function that holds the code, as a debugger shows
 * them, so that every name stands beside a line of its own source.
 * out[0] holds the outer function and the innermost line on entry.
 */
static int expand_inlined(Dwarf_Die *unit, Dwarf_Addr bias, uintptr_t addr,
                          smpi_frame *out, int max)
{
    smpi_frame outer = out[0];
    Dwarf_Die *scopes = NULL;
    int nscopes = dwarf_getscopes(unit, addr - bias, &scopes);
    int n = 0;

    for (int i = 0; i < nscopes && n + 1 < max; i++) {
        smpi_frame *f = &out[n];

        if (dwarf_tag(&scopes[i]) != DW_TAG_inlined_subroutine)
            continue;
        *f = outer;
        f->function = inlined_name(&scopes[i]);
        f->function_len = f->function ? (int)strlen(f->function) : 0;
        f->inlined = 1;
        if (n > 0) {
            f->file = out[n - 1].call_file;
            f->line = out[n - 1].call_line;
        }
        f->call_file = call_site(unit, &scopes[i], &f->call_line);
        n++;
    }
    if (n > 0) {
        out[n] = outer;
        out[n].file = out[n - 1].call_file;
        out[n].line = out[n - 1].call_line;
    }
    free(scopes);
    return n + 1;
}

int smpi_symbolize(uintptr_t return_address, unsigned generation,
                   smpi_frame *out, int max)
{
    uintptr_t addr = return_address - 1;
    module *m = module_of(addr, generation);
    Dwfl_Module *mod;
    Dwarf_Die *unit;
    Dwarf_Addr bias = 0;

    memset(out, 0, sizeof *out);
    out->addr = addr;
    out->module = m ? m->path : "";
    out->build_id = m ? m->build_id : "";
    out->offset = m ? addr - m->bias : addr;

    mod = live_module(m, addr);
    if (!mod)
        mod = dead_module(m, addr);
    if (!mod)
        return 1;
    out->function = dwfl_module_addrname(mod, addr);
    out->function_len = out->function ? strcspn(out->function, "@") : 0;
    unit = unit_of(mod, addr, &bias);
    line_of(mod, unit, bias, addr, out);
    if (!unit || !out->file || max < 2)
        return 1;
    return expand_inlined(unit, bias, addr, out, max);
}
