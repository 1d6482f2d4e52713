/* Globs as SMP_POOL_SCOPE uses them: '*', '?' and "[...]" sets. */
#include <string.h>

#include <criterion/criterion.h>

#include "glob.h"

typedef struct glob_case {
    const char *glob;
    const char *name;
    int match;
} glob_case;

static const glob_case cases[] = {
    { "load_secret", "load_secret", 1 },
    { "load_secret", "load_secret2", 0 },
    { "load_secret", "load_secre", 0 },
    { "", "", 1 },
    { "", "a", 0 },
    { "*", "", 1 },
    { "*", "anything", 1 },
    { "EVP_PKEY_*", "EVP_PKEY_new", 1 },
    { "EVP_PKEY_*", "EVP_PKEY_", 1 },
    { "EVP_PKEY_*", "EVP_PKE", 0 },
    { "EVP_PKEY_*", "xEVP_PKEY_new", 0 },
    { "*_free", "EVP_PKEY_free", 1 },
    { "*_free", "EVP_PKEY_free_x", 0 },
    { "*key*", "load_private_key_file", 1 },
    { "*key*", "load_private_kez", 0 },
    { "a*b*c", "abc", 1 },
    { "a*b*c", "aXXbYYc", 1 },
    { "a*b*c", "aXXbYYcb", 0 },
    { "a*b*c", "acb", 0 },
    { "**x", "yyx", 1 },
    { "*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
    { "?", "a", 1 },
    { "?", "", 0 },
    { "?", "ab", 0 },
    { "RSA_??", "RSA_ab", 1 },
    { "RSA_??", "RSA_a", 0 },
    { "lib?sl.so.*", "libssl.so.3", 1 },
    { "[abc]", "b", 1 },
    { "[abc]", "d", 0 },
    { "[a-c]x", "bx", 1 },
    { "[a-c]x", "dx", 0 },
    { "[!a-c]x", "dx", 1 },
    { "[!a-c]x", "ax", 0 },
    { "[^0-9]", "x", 1 },
    { "[^0-9]", "5", 0 },
    { "[]]", "]", 1 },
    { "[]a]", "a", 1 },
    { "[!]]", "]", 0 },
    { "[!]]", "x", 1 },
    { "[a-]", "-", 1 },
    { "[a-]", "b", 0 },
    { "libcrypto.so.[0-9]*", "libcrypto.so.3", 1 },
    { "libcrypto.so.[0-9]*", "libcrypto.so", 0 },
    { "*[0-9]", "sha256", 1 },
    { "*[0-9]", "sha", 0 },
    { "_Z*Key*", "_ZN3app7KeyRing4loadEv", 1 },
};

Test(glob, cases)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(smpi_glob_match(cases[i].glob, cases[i].name),
                     cases[i].match, "glob \"%s\" on \"%s\"", cases[i].glob,
                     cases[i].name);
}

Test(glob, literal)
{
    cr_expect(smpi_glob_is_literal("load_secret"));
    cr_expect(!smpi_glob_is_literal("load_*"));
    cr_expect(!smpi_glob_is_literal("load_?"));
    cr_expect(!smpi_glob_is_literal("load_[ab]"));
}

typedef struct check_case {
    const char *glob;
    long offset; /* -1: valid */
    const char *why;
} check_case;

static const check_case checks[] = {
    { "EVP_*", -1, NULL },
    { "[abc]", -1, NULL },
    { "[]]", -1, NULL },
    { "[!]]x", -1, NULL },
    { "[a-]", -1, NULL },
    { "x[", 1, "']' to close the '[' set opened here" },
    { "x[ab", 1, "']' to close the '[' set opened here" },
    { "[]", 0, "']' to close the '[' set opened here" },
    { "[!]", 0, "']' to close the '[' set opened here" },
    { "ok[a]bad[c", 8, "']' to close the '[' set opened here" },
    { "[z-a]", 1,
      "a range whose first character is not above its last "
      "(write [a-z], not [z-a])" },
};

Test(glob, check)
{
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        const char *why = NULL;
        long at = smpi_glob_check(checks[i].glob, strlen(checks[i].glob), &why);
        cr_expect_eq(at, checks[i].offset, "glob \"%s\"", checks[i].glob);
        if (checks[i].why)
            cr_expect_str_eq(why, checks[i].why, "glob \"%s\"", checks[i].glob);
    }
}

Test(glob, check_looks_only_at_len_bytes)
{
    const char *why = NULL;

    /* the parser hands over a glob that is not NUL-terminated */
    cr_expect_eq(smpi_glob_check("ab[cd];x", 5, &why), 2);
    cr_expect_eq(smpi_glob_check("ab[cd];x", 6, &why), -1);
}
