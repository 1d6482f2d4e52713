/*
 * The SMP_POOL_SCOPE parser: every malformed input gets one line naming
 * the variable, the column and what was expected, then the text with a
 * caret under that column; well-formed rules give the pools and the
 * size and first-rule-wins semantics the README promises.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "capture.h"
#include "log.h"
#include "options.h"
#include "rules.h"
#include "thread.h"

typedef struct bad_input {
    const char *text;
    int column;
    const char *expected;
} bad_input;

static const bad_input bad_inputs[] = {
    { "keys", 5, "'=' after the pool name 'keys'" },
    { "keys fn:x", 6, "'=' after the pool name 'keys'" },
    { "=fn:x", 1,
      "a pool name (letters, digits, '_', '-' or '.') to start a rule" },
    { "keys=", 6,
      "a selector: fn:GLOB, caller:GLOB, lib:GLOB, size:MIN-MAX or *" },
    { "keys=*,", 8,
      "a selector: fn:GLOB, caller:GLOB, lib:GLOB, size:MIN-MAX or *" },
    { "keys=fn:x,,fn:y", 11,
      "a selector: fn:GLOB, caller:GLOB, lib:GLOB, size:MIN-MAX or *" },
    { "keys=fn", 8, "':' after 'fn'" },
    { "keys=size 5", 10, "':' after 'size'" },
    { "keys=func:x", 6,
      "a selector fn:, caller:, lib:, size: or *, not 'func'" },
    { "keys=FN:x", 6, "a selector fn:, caller:, lib:, size: or *, not 'FN'" },
    { "keys=fn:", 9, "a function name or pattern (EVP_PKEY_*) after 'fn:'" },
    { "keys=caller:", 13,
      "a function name or pattern (EVP_PKEY_*) after 'caller:'" },
    { "keys=lib:", 10, "a file name or pattern (libssl.so*) after 'lib:'" },
    { "keys=*;tls=lib:", 16,
      "a file name or pattern (libssl.so*) after 'lib:'" },
    { "keys=fn:a b", 11,
      "',' before another selector, or ';' before another rule" },
    { "keys=fn:x=y", 10,
      "',' before another selector, or ';' before another rule" },
    { "keys=fn:a[b", 10, "']' to close the '[' set opened here" },
    { "keys=fn:[]", 9, "']' to close the '[' set opened here" },
    { "keys=fn:x_[z-a]", 12,
      "a range whose first character is not above "
      "its last (write [a-z], not [z-a])" },
    { "keys=size:10-5", 11,
      "a range whose minimum (10) is not above its maximum (5)" },
    { "keys=size:2k-1k", 11,
      "a range whose minimum (2048) is not above its maximum (1024)" },
    { "keys=size:-", 11,
      "a size before or after '-' (size:MIN-MAX, "
      "size:MIN- or size:-MAX)" },
    { "keys=size:", 11,
      "a size range after 'size:' (MIN-MAX; either end "
      "may be left out)" },
    { "keys=size:x", 11,
      "a size range after 'size:' (MIN-MAX; either end "
      "may be left out)" },
    { "keys=size:10x", 13,
      "a digit, a size suffix k, M or G, or ',' or ';' after the size" },
    { "keys=size:1k-2q", 15,
      "a digit, a size suffix k, M or G, or ',' or ';' after the size" },
    { "keys=size:9-x", 13, "a size after '-', or ',' or ';'" },
    { "keys=size:1k-2kb", 16, "',' or ';' after the size range" },
    { "keys=size:99999999999999999999", 11, "a size below 2^64" },
    { "keys=size:1-20000000000G", 13, "a size below 2^64" },
    { "default=*", 1,
      "a pool name other than 'default', which every "
      "thread already has" },
    { "k=fn:EVP_PKEY_new@OPENSSL_3.0.0", 18,
      "a symbol name without its version: drop '@...' (nm -D prints it, "
      "it is not part of the name)" },
    { "keys=fn:x;tls=lib:libssl.so*;=*", 30,
      "a pool name (letters, digits, '_', '-' or '.') to start a rule" },
    { "k\xc3\xa9=*", 2, "'=' after the pool name 'k'" },
    { "a=size:1,size:2,size:3,size:4,size:5,size:6,size:7,size:8,size:9", 59,
      "at most 8 size: selectors in one rule" },
};

/* Splits the log into lines; returns how many (at most max). */
static int split(char *text, char **lines, int max)
{
    int n = 0;

    for (char *s = strtok(text, "\n"); s && n < max; s = strtok(NULL, "\n"))
        lines[n++] = s;
    return n;
}

/* Checks one error block: message, text, caret under the column. */
static void check_block(char **lines, const char *input, int column,
                        const char *expected)
{
    char want[512];

    snprintf(want, sizeof want,
             "smp: SMP_POOL_SCOPE: at column %d: expected %s", column,
             expected);
    cr_expect_str_eq(lines[0], want, "input \"%s\"", input);

    const char *shown = lines[1] + strlen("smp:     ");
    const char *caret = lines[2] + strlen("smp:     ");
    cr_assert(strncmp(lines[1], "smp:     ", 9) == 0);
    cr_assert(strncmp(lines[2], "smp:     ", 9) == 0);

    size_t at = strcspn(caret, "^");
    cr_assert_eq(caret[at], '^', "no caret for \"%s\"", input);
    cr_expect_eq(strspn(caret, " "), at, "only spaces before the caret");

    /* the caret stands under the character the column names */
    size_t len = strlen(input);
    unsigned char c = (unsigned char)input[column - 1];
    if ((size_t)column <= len && c >= ' ' && c < 127)
        cr_expect_eq(shown[at], input[column - 1],
                     "caret under '%c', not '%c', in \"%s\"", shown[at],
                     input[column - 1], input);
    if ((size_t)column == len + 1)
        cr_expect_eq(at, strlen(shown), "caret just past the end");
}

Test(parse, malformed_inputs_name_column_and_expectation)
{
    for (size_t i = 0; i < sizeof bad_inputs / sizeof bad_inputs[0]; i++) {
        const bad_input *b = &bad_inputs[i];
        const char *log;
        char copy[4096];
        char *lines[8];

        cr_expect_eq(capture_load(b->text, &log), -1, "\"%s\"", b->text);
        cr_expect_eq(smpi_rules_active, 0, "\"%s\" loaded rules", b->text);
        snprintf(copy, sizeof copy, "%s", log);
        int n = split(copy, lines, 8);
        cr_assert_eq(n, 3, "\"%s\" printed %d lines:\n%s", b->text, n, log);
        check_block(lines, b->text, b->column, b->expected);
    }
}

Test(parse, every_bad_rule_is_reported)
{
    const char *text = "a=;b=fn:x;c=bad:y";
    const char *log;
    char copy[4096];
    char *lines[8];

    cr_assert_eq(capture_load(text, &log), -1);
    snprintf(copy, sizeof copy, "%s", log);
    cr_assert_eq(split(copy, lines, 8), 6, "%s", log);
    check_block(lines, text, 3,
                "a selector: fn:GLOB, caller:GLOB, "
                "lib:GLOB, size:MIN-MAX or *");
    check_block(lines + 3, text, 13,
                "a selector fn:, caller:, lib:, size: or *, not 'bad'");
}

Test(parse, long_text_keeps_the_caret_under_the_fault)
{
    char text[400];
    size_t n = 0;
    const char *log;
    char *lines[8];
    char copy[4096];

    while (n < 300)
        n +=
            (size_t)snprintf(text + n, sizeof text - n, "p%zu=size:%zu;", n, n);
    snprintf(text + n, sizeof text - n, "last=fn:[abc");
    cr_assert_eq(capture_load(text, &log), -1);
    snprintf(copy, sizeof copy, "%s", log);
    cr_assert_eq(split(copy, lines, 8), 3, "%s", log);
    cr_expect(strncmp(lines[1], "smp:     ...", 12) == 0, "%s", lines[1]);
    cr_expect_lt(strlen(lines[1]), 100, "the shown text is cut");
    check_block(lines, text, (int)n + 9,
                "']' to close the '[' set opened here");
}

Test(parse, too_many_rules)
{
    char text[2048];
    size_t n = 0;
    const char *log;

    for (int i = 0; i < SMPI_RULES_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "p%d=*;", i);
    cr_assert_eq(capture_load(text, &log), 0, "%s", log);
    cr_assert_str_eq(log, "");

    snprintf(text + n, sizeof text - n, "extra=*");
    cr_assert_eq(capture_load(text, &log), -1);
    char want[128];
    snprintf(want, sizeof want, "at column %zu: expected at most %d rules",
             n + 1, SMPI_RULES_MAX);
    cr_expect(strstr(log, want), "%s", log);
}

Test(parse, pool_name_length)
{
    char text[128];
    const char *log;

    memset(text, 'n', 63);
    strcpy(text + 63, "=*");
    cr_assert_eq(capture_load(text, &log), 0, "%s", log);
    cr_expect_eq(strlen(smpi_rules_pool_name(0)), 63);

    memset(text, 'n', 64);
    strcpy(text + 64, "=*");
    cr_assert_eq(capture_load(text, &log), -1);
    cr_expect(strstr(log, "at column 1: expected a pool name of at most 63 "
                          "characters"),
              "%s", log);
}

Test(parse, empty_text_and_empty_rules)
{
    const char *log;

    cr_expect_eq(capture_load("", &log), 0);
    cr_expect_eq(smpi_rules_active, 0);
    cr_expect_eq(capture_load(" ;; ;", &log), 0);
    cr_expect_eq(smpi_rules_active, 0);
    cr_expect_str_eq(log, "");
    cr_expect_eq(smpi_rules_match(10, 0), -1);
    cr_expect_null(smpi_rules_pool_name(0));
}

Test(parse, spaces_around_tokens_and_trailing_separator)
{
    const char *log;

    cr_assert_eq(
        capture_load("  keys = size:1-10 , size:20 ;\n big=* ; ", &log), 0,
        "%s", log);
    cr_expect_eq(smpi_rules_active, 1);
    cr_expect_str_eq(smpi_rules_pool_name(0), "keys");
    cr_expect_str_eq(smpi_rules_pool_name(1), "big");
    cr_expect_null(smpi_rules_pool_name(2));
    cr_expect_eq(smpi_rules_match(20, 0), 0);
    cr_expect_eq(smpi_rules_match(15, 0), 1);
}

Test(parse, rules_naming_one_pool_share_its_index)
{
    const char *log;

    cr_assert_eq(capture_load("a=size:1-10;b=size:20-30;a=size:100-", &log), 0,
                 "%s", log);
    cr_expect_eq(smpi_rules_match(5, 0), 0);
    cr_expect_eq(smpi_rules_match(25, 0), 1);
    cr_expect_eq(smpi_rules_match(200, 0), 0);
    cr_expect_eq(smpi_rules_match(50, 0), -1);
    cr_expect_str_eq(smpi_rules_pool_name(0), "a");
    cr_expect_str_eq(smpi_rules_pool_name(1), "b");
    cr_expect_null(smpi_rules_pool_name(2));
    cr_expect_null(smpi_rules_pool_name(-1));
}

Test(parse, first_rule_wins)
{
    const char *log;

    cr_assert_eq(capture_load("x=size:10-20;y=size:15-30;z=*", &log), 0);
    cr_expect_eq(smpi_rules_match(12, 0), 0);
    cr_expect_eq(smpi_rules_match(17, 0), 0);
    cr_expect_eq(smpi_rules_match(25, 0), 1);
    cr_expect_eq(smpi_rules_match(31, 0), 2);
    cr_expect_eq(smpi_rules_match(0, 0), 2);
}

Test(parse, size_ranges)
{
    const char *log;

    cr_assert_eq(capture_load("s=size:4k-1M", &log), 0, "%s", log);
    cr_expect_eq(smpi_rules_match(4095, 0), -1);
    cr_expect_eq(smpi_rules_match(4096, 0), 0);
    cr_expect_eq(smpi_rules_match(1 << 20, 0), 0);
    cr_expect_eq(smpi_rules_match((1 << 20) + 1, 0), -1);

    cr_assert_eq(capture_load("s=size:-16", &log), 0, "%s", log);
    cr_expect_eq(smpi_rules_match(0, 0), 0);
    cr_expect_eq(smpi_rules_match(16, 0), 0);
    cr_expect_eq(smpi_rules_match(17, 0), -1);

    cr_assert_eq(capture_load("s=size:1G-", &log), 0, "%s", log);
    cr_expect_eq(smpi_rules_match((size_t)1 << 30, 0), 0);
    cr_expect_eq(smpi_rules_match(SIZE_MAX, 0), 0);
    cr_expect_eq(smpi_rules_match(((size_t)1 << 30) - 1, 0), -1);

    cr_assert_eq(capture_load("s=size:48", &log), 0, "%s", log);
    cr_expect_eq(smpi_rules_match(48, 0), 0);
    cr_expect_eq(smpi_rules_match(47, 0), -1);
    cr_expect_eq(smpi_rules_match(49, 0), -1);

    /* several size: selectors in one rule: any of them */
    cr_assert_eq(capture_load("s=size:1-2,size:10-11,size:4m", &log), 0);
    cr_expect_eq(smpi_rules_match(2, 0), 0);
    cr_expect_eq(smpi_rules_match(5, 0), -1);
    cr_expect_eq(smpi_rules_match(11, 0), 0);
    cr_expect_eq(smpi_rules_match(4 << 20, 0), 0);
}

Test(parse, star_and_star_with_size)
{
    const char *log;

    cr_assert_eq(capture_load("all=*", &log), 0, "%s", log);
    cr_expect_eq(smpi_rules_match(0, 0), 0);
    cr_expect_eq(smpi_rules_match(123456, 0x1234), 0);

    cr_assert_eq(capture_load("big=*,size:1M-", &log), 0, "%s", log);
    cr_expect_eq(smpi_rules_match(1 << 20, 0), 0);
    cr_expect_eq(smpi_rules_match(100, 0), -1);
}

Test(parse, warn_policy_keeps_the_good_rules)
{
    const char *log;

    smpi_opt.config_errors = SMPI_CONFIG_ERRORS_WARN;
    cr_assert_eq(capture_load("bad=fn:;ok=size:5;worse=size:9-1", &log), -1);
    cr_expect(strstr(log, "at column 8: expected a function name"), "%s", log);
    cr_expect(strstr(log, "at column 30: expected a range whose minimum"), "%s",
              log);
    cr_expect_eq(smpi_rules_active, 1);
    cr_expect_str_eq(smpi_rules_pool_name(0), "ok");
    cr_expect_null(smpi_rules_pool_name(1));
    cr_expect_eq(smpi_rules_match(5, 0), 0);
    cr_expect_eq(smpi_rules_match(6, 0), -1);
}

Test(parse, exit_policy_loads_nothing)
{
    const char *log;

    cr_assert_eq(capture_load("ok=size:5", &log), 0);
    cr_assert_eq(capture_load("ok2=size:6;bad=size:", &log), -1);
    /* the rules of the earlier load stay as they were */
    cr_expect_str_eq(smpi_rules_pool_name(0), "ok");
    cr_expect_eq(smpi_rules_match(5, 0), 0);
    cr_expect_eq(smpi_rules_match(6, 0), -1);
}
