#!/bin/sh
# A malformed SMP_POOL_SCOPE or SMP_OPTIONS: one line on stderr naming the
# variable (for SMP_POOL_SCOPE followed by the text and a caret under the
# position), and the program does not start (exit status 1) unless
# SMP_OPTIONS says config_errors=warn. help=1 lists the options instead of
# running the program.
# usage: bad_config.sh LIBSMP_PRELOAD PROGRAM [ARG...]
preload=$1
shift
command="$*"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
failed=0

# expect VARIABLE VALUE STATUS [OTHER-ENV]
expect() {
    env "$1=$2" $4 LD_PRELOAD="$preload" $command >"$tmp/out" 2>"$tmp/err"
    status=$?
    lines=$(wc -l <"$tmp/err")
    want=1
    [ "$1" = SMP_POOL_SCOPE ] && want=3
    if [ "$status" -ne "$3" ]; then
        echo "$1='$2': exit status $status, expected $3"
        failed=1
    fi
    if [ "$lines" -ne "$want" ] || ! head -n 1 "$tmp/err" | grep -q "^smp: $1" ||
        { [ "$want" -eq 3 ] && ! tail -n 1 "$tmp/err" | grep -q '^smp: *\^$'; }; then
        echo "$1='$2': expected $want line(s) naming $1 on stderr, got:"
        cat "$tmp/err"
        failed=1
    fi
    if [ "$3" -ne 0 ] && [ -s "$tmp/out" ]; then
        echo "$1='$2': the program ran"
        failed=1
    fi
}

expect SMP_POOL_SCOPE 'all' 1
expect SMP_POOL_SCOPE '=*' 1
expect SMP_POOL_SCOPE 'all=' 1
expect SMP_POOL_SCOPE 'all=*;keys=size:9-x' 1
expect SMP_OPTIONS 'no_such_option=1' 1
expect SMP_OPTIONS 'mlock=maybe' 1
expect SMP_OPTIONS 'malloc_context_size=many' 1
expect SMP_POOL_SCOPE 'all' 0 SMP_OPTIONS=config_errors=warn

env SMP_OPTIONS=help=1 LD_PRELOAD="$preload" $command >"$tmp/out" 2>"$tmp/err"
status=$?
if [ "$status" -ne 0 ] || [ -s "$tmp/out" ] ||
    ! grep -q malloc_context_size "$tmp/err"; then
    echo "help=1: exit status $status, expected the option list alone"
    failed=1
fi

exit $failed
