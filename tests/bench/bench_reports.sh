#!/bin/bash
# Whole-program cost of leak checking, side by side: each program runs
# plain, under LeakSanitizer (Debian's liblsan0, started by a tiny
# preloaded object since a bare LD_PRELOAD of liblsan crashes sqlite3 and
# git), and under smp with every allocation routed and stacks on
# (SMP_POOL_SCOPE='all=*', default malloc_context_size). Both leak
# checkers report at exit. Prints the best wall time of RUNS runs and the
# peak RSS of that run, then the cost of one stack capture by method.
#
# usage: tests/bench/bench_reports.sh [BUILD_DIR] [RUNS]
#   BUILD_DIR  a configured and built tree (default: build)
#   RUNS       runs per program and set-up (default: 3)
#   SMP_BENCH_GIT_REPO  repository for "git log" (default: this tree)
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd) || exit 1
runs=${2:-3}
preload=$build/preload/libsmp_preload.so
lsan=/usr/lib/x86_64-linux-gnu/liblsan.so.0
repo=${SMP_BENCH_GIT_REPO:-$src}
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for f in "$preload" "$lsan" "$build/core/libsmp.a"; do
    [ -e "$f" ] || { echo "missing $f (build first; apt-get install liblsan0)"; exit 1; }
done

# LeakSanitizer must initialise before the program's first allocation.
printf 'void __lsan_init(void);\n__attribute__((constructor)) static void start(void) { __lsan_init(); }\n' >"$work/lsan_init.c"
cc -shared -fPIC -o "$work/lsan_init.so" "$work/lsan_init.c" || exit 1
cc -O2 -std=gnu11 -D_GNU_SOURCE -I"$src/core" -I"$src/core/include" \
    -o "$work/bench_stacks" "$here/bench_stacks.c" "$build/core/libsmp.a" \
    $(pkg-config --libs libunwind libdw libelf) -lpthread || exit 1

# 200,000 inserts in one transaction
$py -c "
print('CREATE TABLE t(a INTEGER, b TEXT, c REAL);')
print('BEGIN;')
for i in range(200000):
    print(f\"INSERT INTO t VALUES({i}, 'row-{i}-text', {i * 0.5});\")
print('COMMIT;')
print('SELECT count(*), sum(a) FROM t;')" >"$work/inserts.sql"
pyprog='import json
rows = [{"id": i, "name": "n%d" % i, "tags": [i, str(i)]} for i in range(200000)]
text = json.dumps(rows)
assert len(json.loads(text)) == len(rows)'

cmd_sqlite=(sqlite3 :memory: ".read $work/inserts.sql")
cmd_git=(git -C "$repo" log -p --stat)
cmd_python=(env PYTHONMALLOC=malloc "$py" -c "$pyprog")

# prints "seconds KiB" for the best of $runs runs of "$@" under setup $1
measure() {
    local setup=$1 best="" line
    shift
    for _ in $(seq "$runs"); do
        case $setup in
        plain) /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>&1 ;;
        lsan) LD_PRELOAD="$lsan $work/lsan_init.so" \
              LSAN_OPTIONS=exitcode=0:log_path="$work/lsan" \
              /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>&1 ;;
        smp) LD_PRELOAD="$preload" SMP_POOL_SCOPE='all=*' \
             SMP_OPTIONS="exitcode=0:log_path=$work/smp" \
             /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>&1 ;;
        esac
        line=$(tail -1 "$work/t")
        if [ -z "$best" ] || awk -v a="$line" -v b="$best" \
            'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] < y[1]) }'; then
            best=$line
        fi
    done
    echo "$best"
}

printf '%-8s %16s %16s %16s %9s %9s %9s\n' program plain lsan smp \
    lsan/pl smp/pl smp/lsan
for prog in sqlite git python; do
    declare -n cmd=cmd_$prog
    read -r pt pr <<<"$(measure plain "${cmd[@]}")"
    read -r lt lr <<<"$(measure lsan "${cmd[@]}")"
    read -r st sr <<<"$(measure smp "${cmd[@]}")"
    unset -n cmd
    printf '%-8s %7ss %6sMB %7ss %6sMB %7ss %6sMB %8.2fx %8.2fx %8.2fx\n' \
        "$prog" "$pt" "$((pr / 1024))" "$lt" "$((lr / 1024))" "$st" \
        "$((sr / 1024))" "$(echo "$lt / $pt" | bc -l)" \
        "$(echo "$st / $pt" | bc -l)" "$(echo "$st / $lt" | bc -l)"
done
echo
echo "one stack capture, 30 frames kept (bench_stacks):"
"$work/bench_stacks" 300000
