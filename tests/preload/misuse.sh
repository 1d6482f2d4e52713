#!/bin/sh
# Each misuse of a pool block through the malloc family prints one line,
# "smp: FUNCTION(ADDRESS): PROBLEM (pool 'NAME')...", and aborts.
# usage: misuse.sh LIBSMP_PRELOAD MISUSE_PROGRAM
preload=$1
program=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
failed=0

# expect KIND TEXT...: the run aborts after one line holding every TEXT
expect() {
    kind=$1
    shift
    # exec in a subshell: the shell's own "Aborted" stays out of err
    {
        (exec env LD_PRELOAD="$preload" SMP_POOL_SCOPE='all=*' \
            SMP_OPTIONS=detect_leaks=0 "$program" "$kind" \
            >"$tmp/out" 2>"$tmp/err")
        status=$?
    } 2>/dev/null
    if [ "$status" -ne 134 ]; then
        echo "$kind: exit status $status, expected 134 (SIGABRT)"
        failed=1
    fi
    if [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -q '^smp: ' "$tmp/err"; then
        echo "$kind: expected one line starting 'smp: ', got:"
        cat "$tmp/err"
        failed=1
    fi
    for text in "$@"; do
        if ! grep -qF -- "$text" "$tmp/err"; then
            echo "$kind: the line does not say '$text':"
            cat "$tmp/err"
            failed=1
        fi
    done
}

expect double-free "free(0x" "double free of a pool block" "pool 'all'"
expect double-free-large "free(0x" "double free" "pool 'all'"
expect interior "free(0x" "middle of a pool block" "pool 'all'"
expect interior-large "free(0x" "middle of a pool block" "pool 'all'"
expect realloc-freed "realloc(0x" "already freed" "pool 'all'"
expect usable-freed "malloc_usable_size(0x" "already freed" "pool 'all'"
expect realloc-interior "realloc(0x" "middle of a pool block"
expect escaped "free(0x" "pool 'session'" "after its scope ended"
expect remote-double-free "free(0x" "double free" "pool 'all'"
[ "$failed" -eq 0 ] && echo "misuse: every kind aborts with one line"
exit $failed
