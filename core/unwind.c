/*
 * Frame rules from .eh_frame. The loader finds an object's unwind table
 * without a lock (_dl_find_object); its sorted index (.eh_frame_hdr) gives
 * the FDE, and a small interpreter runs the CIE's and FDE's call-frame
 * instructions up to the call instruction. The result is kept in a fixed
 * table keyed by return address, filled with compare-and-swap.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <string.h>

#include "meta.h"
#include "symbolize.h"
#include "unwind.h"

#define TABLE_SHIFT 13
#define TABLE_SIZE (1u << TABLE_SHIFT)
#define PROBES 16
#define STATES_MAX 8
#define CFA_OFF_MAX (1 << 23) /* frames larger than 8 MiB fall back */
#define GEN_BITS 12

enum { RSP = 7, RBP = 6, RA = 16 };

/* ---- reading DWARF ---- */

static uint64_t uleb(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    unsigned shift = 0;

    while (*p < end) {
        uint8_t b = *(*p)++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    return v;
}

static int64_t sleb(const uint8_t **p, const uint8_t *end)
{
    int64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;

    while (*p < end) {
        b = *(*p)++;
        if (shift < 64)
            v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    if (shift < 64 && (b & 0x40))
        v |= -((int64_t)1 << shift);
    return v;
}

#define FIXED(type)                                                      \
    do {                                                                 \
        type t;                                                          \
        if (end - *p < (long)sizeof t)                                   \
            return -1;                                                   \
        memcpy(&t, *p, sizeof t);                                        \
        *p += sizeof t;                                                  \
        v = (uint64_t)(int64_t)t;                                        \
    } while (0)

/* A pointer in one of the DW_EH_PE encodings GNU tools emit. */
static int pointer(const uint8_t **p, const uint8_t *end, uint8_t enc,
                   uintptr_t datarel, uintptr_t *out)
{
    uintptr_t at = (uintptr_t)*p;
    uint64_t v;

    switch (enc & 0x0f) {
    case 0x00: FIXED(uint64_t); break;
    case 0x01: v = uleb(p, end); break;
    case 0x02: FIXED(uint16_t); break;
    case 0x03: FIXED(uint32_t); break;
    case 0x04: FIXED(uint64_t); break;
    case 0x09: v = (uint64_t)sleb(p, end); break;
    case 0x0a: FIXED(int16_t); break;
    case 0x0b: FIXED(int32_t); break;
    case 0x0c: FIXED(int64_t); break;
    default: return -1;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case 0x10: v += at; break;
    case 0x30: v += datarel; break;
    default: return -1;
    }
    if (enc & 0x80)
        memcpy(&v, (const void *)(uintptr_t)v, sizeof v);
    *out = (uintptr_t)v;
    return 0;
}

/* ---- finding the FDE ---- */

static const uint8_t *find_fde(uintptr_t pc)
{
    struct dl_find_object obj;
    const uint8_t *hdr, *p;
    uintptr_t ignored, count;
    const int32_t *table;
    size_t lo = 0, hi;

    if (_dl_find_object((void *)pc, &obj) != 0)
        return NULL;
    /* a rule is computed once per return address: cheap enough here */
    smpi_symbolize_note_object((uintptr_t)obj.dlfo_map_start);
    if (!obj.dlfo_eh_frame)
        return NULL;
    hdr = obj.dlfo_eh_frame;
    p = hdr + 4;
    /* version 1, and the binary-search table as GNU ld writes it */
    if (hdr[0] != 1 || hdr[3] != 0x3b ||
        pointer(&p, p + 16, hdr[1], (uintptr_t)hdr, &ignored) ||
        pointer(&p, p + 16, hdr[2], (uintptr_t)hdr, &count) || !count)
        return NULL;
    table = (const int32_t *)p;
    hi = count;
    while (lo + 1 < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)hdr + (intptr_t)table[2 * mid] <= pc)
            lo = mid;
        else
            hi = mid;
    }
    if ((uintptr_t)hdr + (intptr_t)table[2 * lo] > pc)
        return NULL;
    return hdr + table[2 * lo + 1];
}

/* ---- the call-frame program ---- */

enum kind { SAME, OFFSET, UNDEFINED, OTHER };

typedef struct reg_rule {
    uint8_t kind;
    int64_t off;
} reg_rule;

typedef struct state {
    int cfa_reg;
    int64_t cfa_off;
    int cfa_other; /* an expression, or a register we do not follow */
    reg_rule rbp, ra;
} state;

typedef struct cie {
    uint64_t code_align;
    int64_t data_align;
    uint8_t fde_enc;
    int augmented; /* 'z': FDEs carry augmentation data */
    int signal;    /* 'S' */
    const uint8_t *insns, *end;
} cie;

static const uint8_t *entry_end(const uint8_t **p)
{
    uint32_t len32;
    uint64_t len;

    memcpy(&len32, *p, 4);
    *p += 4;
    len = len32;
    if (len32 == 0xffffffffu) {
        memcpy(&len, *p, 8);
        *p += 8;
    }
    return *p + len;
}

static int parse_cie(const uint8_t *p, cie *c)
{
    const uint8_t *end = entry_end(&p);
    const char *aug;
    uint8_t version;

    memset(c, 0, sizeof *c);
    c->fde_enc = 0;
    p += 4; /* CIE id */
    version = *p++;
    aug = (const char *)p;
    p += strlen(aug) + 1;
    if (aug[0] && aug[0] != 'z')
        return -1; /* "eh" and other old forms */
    c->code_align = uleb(&p, end);
    c->data_align = sleb(&p, end);
    if ((version == 1 ? *p++ : uleb(&p, end)) != RA)
        return -1;
    if (aug[0] == 'z') {
        uint64_t len = uleb(&p, end);
        const uint8_t *data = p, *data_end = p + len;
        uintptr_t ignored;

        c->augmented = 1;
        for (const char *a = aug + 1; *a; a++) {
            if (*a == 'R')
                c->fde_enc = *data++;
            else if (*a == 'L')
                data++;
            else if (*a == 'P') {
                uint8_t enc = *data++;
                if (pointer(&data, data_end, enc, 0, &ignored))
                    return -1;
            } else if (*a == 'S')
                c->signal = 1;
            else if (*a != 'B')
                return -1;
        }
        p = data_end;
    }
    c->insns = p;
    c->end = end;
    return 0;
}

static void set_rule(state *s, uint64_t reg, uint8_t kind, int64_t off)
{
    reg_rule r = { kind, off };

    if (reg == RBP)
        s->rbp = r;
    else if (reg == RA)
        s->ra = r;
}

/* DW_CFA_restore: back to the rule the CIE set up. */
static void restore(state *s, uint64_t reg, const state *initial)
{
    if (initial && reg == RBP)
        s->rbp = initial->rbp;
    else if (initial && reg == RA)
        s->ra = initial->ra;
}

/*
 * Runs instructions until the location passes target. Returns 0, or -1
 * for an instruction outside what compilers emit for code we walk.
 */
static int run(const cie *c, const uint8_t *p, const uint8_t *end,
               uintptr_t loc, uintptr_t target, state *s,
               const state *initial)
{
    state saved[STATES_MAX];
    int depth = 0;

    while (p < end) {
        uint8_t op = *p++;
        uint64_t reg, delta = 0;
        int64_t off;

        switch (op & 0xc0) {
        case 0x40:
            delta = (op & 0x3f) * c->code_align;
            goto advance;
        case 0x80:
            off = (int64_t)uleb(&p, end) * c->data_align;
            set_rule(s, op & 0x3f, OFFSET, off);
            continue;
        case 0xc0:
            restore(s, op & 0x3f, initial);
            continue;
        }
        switch (op) {
        case 0x00: /* nop */
            continue;
        case 0x01: {
            uintptr_t to;
            if (pointer(&p, end, c->fde_enc, 0, &to))
                return -1;
            if (to > target)
                return 0;
            loc = to;
            continue;
        }
        case 0x02: delta = *p++ * c->code_align; goto advance;
        case 0x03: {
            uint16_t d;
            memcpy(&d, p, 2);
            p += 2;
            delta = d * c->code_align;
            goto advance;
        }
        case 0x04: {
            uint32_t d;
            memcpy(&d, p, 4);
            p += 4;
            delta = d * c->code_align;
            goto advance;
        }
        case 0x05:
            reg = uleb(&p, end);
            set_rule(s, reg, OFFSET, (int64_t)uleb(&p, end) * c->data_align);
            continue;
        case 0x06:
            restore(s, uleb(&p, end), initial);
            continue;
        case 0x07: set_rule(s, uleb(&p, end), UNDEFINED, 0); continue;
        case 0x08: set_rule(s, uleb(&p, end), SAME, 0); continue;
        case 0x09:
            reg = uleb(&p, end);
            uleb(&p, end);
            set_rule(s, reg, OTHER, 0);
            continue;
        case 0x0a:
            if (depth == STATES_MAX)
                return -1;
            saved[depth++] = *s;
            continue;
        case 0x0b:
            if (depth == 0)
                return -1;
            /* the CFA is part of the remembered state, as GCC expects */
            *s = saved[--depth];
            continue;
        case 0x0c:
            s->cfa_reg = (int)uleb(&p, end);
            s->cfa_off = (int64_t)uleb(&p, end);
            s->cfa_other = 0;
            continue;
        case 0x0d: s->cfa_reg = (int)uleb(&p, end); continue;
        case 0x0e: s->cfa_off = (int64_t)uleb(&p, end); continue;
        case 0x0f:
            p += uleb(&p, end);
            s->cfa_other = 1;
            continue;
        case 0x10: case 0x16:
            reg = uleb(&p, end);
            p += uleb(&p, end);
            set_rule(s, reg, OTHER, 0);
            continue;
        case 0x11:
            reg = uleb(&p, end);
            set_rule(s, reg, OFFSET, sleb(&p, end) * c->data_align);
            continue;
        case 0x12:
            s->cfa_reg = (int)uleb(&p, end);
            s->cfa_off = sleb(&p, end) * c->data_align;
            s->cfa_other = 0;
            continue;
        case 0x13: s->cfa_off = sleb(&p, end) * c->data_align; continue;
        case 0x14: case 0x15:
            reg = uleb(&p, end);
            if (op == 0x14)
                uleb(&p, end);
            else
                sleb(&p, end);
            set_rule(s, reg, OTHER, 0);
            continue;
        case 0x2e: uleb(&p, end); continue; /* GNU_args_size */
        case 0x2f:
            reg = uleb(&p, end);
            set_rule(s, reg, OFFSET, -(int64_t)uleb(&p, end) * c->data_align);
            continue;
        default:
            return -1;
        }
advance:
        if (loc + delta > target)
            return 0;
        loc += delta;
    }
    return 0;
}

static int compute(uintptr_t ra, smpi_frame_rule *out)
{
    uintptr_t pc = ra - 1; /* the call, not what follows it */
    const uint8_t *fde = find_fde(pc), *p, *end, *cie_at;
    uintptr_t begin, range;
    state s = { .cfa_reg = RSP, .rbp = { SAME, 0 }, .ra = { SAME, 0 } };
    state initial;
    uint32_t cie_off;
    cie c;

    if (!fde)
        return -1;
    p = fde;
    end = entry_end(&p);
    memcpy(&cie_off, p, 4);
    cie_at = p - cie_off;
    p += 4;
    if (!cie_off || parse_cie(cie_at, &c) || c.signal ||
        pointer(&p, end, c.fde_enc, 0, &begin) ||
        pointer(&p, end, c.fde_enc & 0x0f, 0, &range) || pc < begin ||
        pc >= begin + range)
        return -1;
    if (c.augmented)
        p += uleb(&p, end);

    if (run(&c, c.insns, c.end, 0, UINTPTR_MAX, &s, NULL))
        return -1;
    initial = s;
    if (run(&c, p, end, begin, pc, &s, &initial))
        return -1;

    if (s.cfa_other || (s.cfa_reg != RSP && s.cfa_reg != RBP) ||
        s.cfa_off < -CFA_OFF_MAX || s.cfa_off >= CFA_OFF_MAX)
        return -1;
    memset(out, 0, sizeof *out);
    out->cfa_off = (int32_t)s.cfa_off;
    out->cfa_rbp = s.cfa_reg == RBP;
    if (s.ra.kind == UNDEFINED)
        out->last = 1;
    else if (s.ra.kind != OFFSET || s.ra.off < -128 || s.ra.off > 127)
        return -1;
    out->ra_off = (int16_t)s.ra.off;
    if (s.rbp.kind == OFFSET) {
        if (s.rbp.off < INT16_MIN || s.rbp.off > INT16_MAX)
            return -1;
        out->rbp_saved = 1;
        out->rbp_off = (int16_t)s.rbp.off;
    } else if (s.rbp.kind == OTHER) {
        return -1;
    }
    return 0;
}

/* ---- the table of rules ---- */

typedef struct slot {
    _Atomic uintptr_t key;
    _Atomic uint64_t value; /* 0 until written; see pack */
} slot;

static _Atomic(slot *) table;
_Atomic unsigned smpi_unwind_gen = 1;

enum { F_RBP = 1, F_SAVED = 2, F_LAST = 4, F_BAD = 8 };

/*
 * A rule in one word, so that readers never see half of one: cfa_off in
 * 24 bits, rbp_off 16, ra_off 8, flags 4, and the generation 12.
 */
static uint64_t pack(const smpi_frame_rule *r, int bad, unsigned gen)
{
    uint64_t flags = (r->cfa_rbp ? F_RBP : 0) | (r->rbp_saved ? F_SAVED : 0) |
                     (r->last ? F_LAST : 0) | (bad ? F_BAD : 0);

    return ((uint64_t)(uint32_t)r->cfa_off & 0xffffff) |
           (uint64_t)(uint16_t)r->rbp_off << 24 |
           (uint64_t)(uint8_t)(int8_t)r->ra_off << 40 | flags << 48 |
           (uint64_t)(gen & ((1u << GEN_BITS) - 1)) << 52;
}

static int unpack(uint64_t v, smpi_frame_rule *r)
{
    unsigned flags = (unsigned)(v >> 48) & 0x0f;
    int32_t cfa = (int32_t)(uint32_t)(v & 0xffffff);

    r->cfa_off = cfa >= CFA_OFF_MAX ? cfa - 2 * CFA_OFF_MAX : cfa;
    r->rbp_off = (int16_t)(uint16_t)(v >> 24);
    r->ra_off = (int8_t)(uint8_t)(v >> 40);
    r->cfa_rbp = !!(flags & F_RBP);
    r->rbp_saved = !!(flags & F_SAVED);
    r->last = !!(flags & F_LAST);
    return flags & F_BAD ? -1 : 0;
}

static slot *rules_table(void)
{
    slot *t = atomic_load_explicit(&table, memory_order_acquire);
    slot *fresh;

    if (t)
        return t;
    fresh = smpi_meta_alloc(TABLE_SIZE * sizeof *fresh);
    if (!fresh)
        return NULL;
    if (atomic_compare_exchange_strong(&table, &t, fresh))
        return fresh;
    smpi_meta_free(fresh, TABLE_SIZE * sizeof *fresh);
    return t;
}

int smpi_unwind_rule(uintptr_t ra, smpi_frame_rule *out)
{
    slot *t = rules_table();
    unsigned gen = atomic_load_explicit(&smpi_unwind_gen, memory_order_relaxed);
    size_t at = (size_t)((ra * 0x9e3779b97f4a7c15u) >> (64 - TABLE_SHIFT));
    slot *free_slot = NULL;
    int bad;

    for (int i = 0; t && i < PROBES; i++) {
        slot *s = &t[(at + (size_t)i) & (TABLE_SIZE - 1)];
        uintptr_t key = atomic_load_explicit(&s->key, memory_order_acquire);

        if (key == ra) {
            uint64_t v = atomic_load_explicit(&s->value,
                                              memory_order_acquire);
            if (v && (v >> 52) == (gen & ((1u << GEN_BITS) - 1)) &&
                atomic_load_explicit(&s->key, memory_order_acquire) == ra)
                return unpack(v, out);
            free_slot = s; /* written by an older generation, or not yet */
            break;
        }
        if (key == 0) {
            if (atomic_compare_exchange_strong(&s->key, &key, ra) ||
                key == ra)
                free_slot = s;
            break;
        }
    }

    bad = compute(ra, out);
    if (bad)
        memset(out, 0, sizeof *out);
    if (free_slot)
        atomic_store_explicit(&free_slot->value, pack(out, bad, gen),
                              memory_order_release);
    return bad;
}

void smpi_unwind_forget(void)
{
    /* an entry could come back to life only after 4096 unloads */
    atomic_fetch_add(&smpi_unwind_gen, 1);
}
