/*
 * Turning captured return addresses into frames at report time: module,
 * offset and build-id from the loader's list of objects, function names
 * and source lines from elfutils (ELF symbol tables and DWARF).
 */
#ifndef SMP_SYMBOLIZE_H
#define SMP_SYMBOLIZE_H

#include <stdint.h>

typedef struct smpi_frame {
    uintptr_t addr;       /* the call instruction: return address - 1 */
    uintptr_t offset;     /* addr minus the module's load bias */
    const char *module;   /* path, "" when no object covers addr */
    const char *build_id; /* lowercase hex, "" when the object has none */
    const char *function; /* NULL when no symbol covers addr */
    int function_len;     /* without a symbol version ("@@GLIBC_2.34") */
    const char *file;     /* NULL without line information */
    int line;
    int inlined;          /* a function inlined into the next frame's */
    const char *call_file; /* inlined: where the next frame called it */
    int call_line;
} smpi_frame;

/* Most frames one return address expands to (inlined functions). */
#define SMPI_INLINE_MAX 8

/*
 * Addresses name objects as of a generation: the unwind generation,
 * which changes at every dlclose (smpi_unwind_forget). An object loaded
 * later at the addresses of an unloaded one names them from then on;
 * frames captured before keep the unloaded object's module, offset and
 * build-id, and its names from its file.
 */

/* Records the objects loaded now. Never calls malloc. */
void smpi_symbolize_note_modules(void);

/*
 * The stack walk met code of the object loaded at start: notes the
 * objects if that one is new. Never calls malloc.
 */
void smpi_symbolize_note_object(uintptr_t start);

/*
 * After a dlclose, in generation: the objects no longer loaded name no
 * address captured from generation on.
 */
void smpi_symbolize_note_unload(unsigned generation);

/*
 * A symbolization session. It allocates (elfutils does), so the caller
 * runs it with smpi_guard set. Strings stay valid until the session ends.
 */
int smpi_symbolize_begin(void);

/*
 * The frames of one return address captured in generation, in
 * out[0..max): the functions inlined at the call, innermost first, then
 * the function that holds the code. Returns how many, 1 at least.
 */
int smpi_symbolize(uintptr_t return_address, unsigned generation,
                   smpi_frame *out, int max);
void smpi_symbolize_end(void);

#endif
