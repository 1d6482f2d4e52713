#!/bin/sh
# One annotated binary, run without and with the preload: the same output
# and status both ways; the program itself checks where its blocks went.
# usage: annotate.sh LIBSMP_PRELOAD PROGRAM
preload=$1
program=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

env -u LD_PRELOAD "$program" heap >"$tmp/plain" 2>&1
plain=$?
env LD_PRELOAD="$preload" "$program" pool >"$tmp/preload" 2>&1
preloaded=$?

cat "$tmp/preload"
if [ "$plain" -ne 0 ] || [ "$preloaded" -ne 0 ]; then
    echo "exit status $plain without the preload, $preloaded with it"
    cat "$tmp/plain"
    exit 1
fi
if ! diff -u "$tmp/plain" "$tmp/preload"; then
    echo "the output differs with the preload"
    exit 1
fi
