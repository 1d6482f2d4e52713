#!/bin/sh
# A block of rule pool 'all' resized by a thread that has no instance of it
# yet must stay in 'all': the statistics at exit show no other pool.
# usage: realloc_thread.sh LIBSMP_PRELOAD PROGRAM
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

env LD_PRELOAD="$1" SMP_POOL_SCOPE='all=*' \
    SMP_OPTIONS=print_stats=1:detect_leaks=0 "$2" >"$tmp/out" 2>"$tmp/err"
status=$?
if [ "$status" -ne 0 ] ||
    [ "$(cat "$tmp/out")" != "moved by another thread" ]; then
    echo "status $status, output:"
    cat "$tmp/out" "$tmp/err"
    exit 1
fi
# the table's rows: a header line, then one row per pool name
pools=$(awk '/^pool / { table = 1; next } table && NF > 1 { print $1 }' \
    "$tmp/err")
if [ "$pools" != all ]; then
    echo "pools at exit: '$pools', expected only 'all':"
    cat "$tmp/err"
    exit 1
fi
echo "realloc_thread: the block stayed in pool 'all'"
