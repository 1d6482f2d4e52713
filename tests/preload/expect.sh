#!/bin/sh
# Runs a command and checks its exit status and its whole standard output
# (printf-style escapes allowed); its standard error must stay empty.
# usage: expect.sh STATUS STDOUT COMMAND [ARG...]
want_status=$1
want_out=$2
shift 2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

"$@" >"$tmp/out" 2>"$tmp/err"
status=$?
printf "$want_out" >"$tmp/want_out"

failed=0
if [ "$status" -ne "$want_status" ]; then
    echo "exit status $status, expected $want_status"
    failed=1
fi
if ! cmp -s "$tmp/out" "$tmp/want_out"; then
    echo "standard output differs:"
    diff "$tmp/want_out" "$tmp/out"
    failed=1
fi
if [ -s "$tmp/err" ]; then
    echo "standard error is not empty:"
    cat "$tmp/err"
    failed=1
fi
exit $failed
