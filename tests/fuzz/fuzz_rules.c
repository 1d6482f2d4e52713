/*
 * libFuzzer target for SMP_POOL_SCOPE: any text is parsed, resolved
 * against the loaded objects and matched; nothing may crash, leak or read
 * out of bounds, and every pool index a match returns must have a name.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "options.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t sizes[] = { 0, 1, 48, 5000, 1u << 20, SIZE_MAX };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[4096];

    if (size >= sizeof text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    /* the messages are what the parser tests check; here they are noise */
    if (smpi_log_fd == 2)
        smpi_log_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

    /* both policies: refuse everything, or keep the good rules */
    smpi_opt.config_errors =
        size & 1 ? SMPI_CONFIG_ERRORS_WARN : SMPI_CONFIG_ERRORS_EXIT;
    smpi_rules_load(text);

    uintptr_t caller = (uintptr_t)__builtin_return_address(0);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int pool = smpi_rules_match(sizes[i], caller);
        if (pool >= 0 && !smpi_rules_pool_name(pool))
            __builtin_trap();
    }
    return 0;
}
