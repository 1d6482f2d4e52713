#!/bin/bash
# Whole-program cost of leak checking, side by side: each program runs
#
#   plain   no preload
#   lsan    LeakSanitizer (Debian's liblsan0, started by a tiny preloaded
#           object since a bare LD_PRELOAD of liblsan crashes sqlite3 and
#           git), its defaults: stacks on, the leak check at exit
#   smp     libsmp_preload.so with every allocation routed and stacks on
#           (SMP_POOL_SCOPE='all=*', default malloc_context_size), the
#           leak check at exit
#   smp-2   the same with malloc_context_size=2: on programs built without
#           frame pointers (Debian's), LeakSanitizer's fast unwinder stops
#           after the first frame, so its reports show malloc and one
#           caller; this is smp at that depth
#
# on sqlite3 (200,000 inserts), git log -p on this tree and python3
# (PYTHONMALLOC=malloc) building and parsing JSON. compare.py interleaves
# the runs and prints wall, CPU and peak RSS with ratios from the least CPU
# time. Then the leak scan's own speed: seconds per GiB read, from the
# JSON report of a program holding 1 GiB of pool blocks, and the cost of
# one stack capture by method.
#
# usage: tests/bench/bench_reports.sh [BUILD_DIR] [RUNS]
#   BUILD_DIR  a configured and built tree (default: build)
#   RUNS       interleaved rounds (default: 7)
#   SMP_BENCH_GIT_REPO  repository for "git log" (default: this tree)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
runs=${2:-7}
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
printf 'void __lsan_init(void);\n%s\n' \
    '__attribute__((constructor)) static void start(void) { __lsan_init(); }' \
    >"$work/lsan_init.c"
cc -shared -fPIC -o "$work/lsan_init.so" "$work/lsan_init.c"
cc -O2 -std=gnu11 -D_GNU_SOURCE -I"$src/core" -I"$src/core/include" \
    -o "$work/bench_stacks" "$here/bench_stacks.c" "$build/core/libsmp.a" \
    $(pkg-config --libs libunwind libdw libelf) -lpthread
cc -O2 -o "$work/bench_scan" "$here/bench_scan.c"

$py -c "
print('CREATE TABLE t(a INTEGER, b TEXT, c REAL);')
print('BEGIN;')
for i in range(200000):
    print(f\"INSERT INTO t VALUES({i}, 'row-{i}-text', {i * 0.5});\")
print('COMMIT;')
print('SELECT count(*), sum(a) FROM t;')" >"$work/inserts.sql"
cat >"$work/work.py" <<'EOF'
import json
rows = [{"id": i, "name": "n%d" % i, "tags": [i, str(i)]} for i in range(200000)]
text = json.dumps(rows)
assert len(json.loads(text)) == len(rows)
EOF

$py - "$work" "$runs" "$preload" "$lsan $work/lsan_init.so" "$repo" \
    >"$work/spec.json" <<'EOF'
import json, sys
work, runs, preload, lsan, repo = sys.argv[1:]
json.dump({
    "runs": int(runs), "baseline": "plain",
    "configs": [
        ["plain", {"LD_PRELOAD": None}],
        ["lsan", {"LD_PRELOAD": lsan,
                  "LSAN_OPTIONS": "exitcode=0:log_path=" + work + "/lsan"}],
        ["smp", {"LD_PRELOAD": preload, "SMP_POOL_SCOPE": "all=*",
                 "SMP_OPTIONS": "exitcode=0:log_path=" + work + "/smp"}],
        ["smp-2", {"LD_PRELOAD": preload, "SMP_POOL_SCOPE": "all=*",
                   "SMP_OPTIONS": "exitcode=0:malloc_context_size=2:"
                                  "log_path=" + work + "/smp"}]],
    "workloads": [
        ["sqlite", ["sqlite3", ":memory:"], work + "/inserts.sql", {}],
        ["git", ["git", "-C", repo, "log", "-p", "--stat"], None, {}],
        ["python", ["/usr/bin/python3", work + "/work.py"], None,
         {"PYTHONMALLOC": "malloc"}]],
    "ratios": [["smp", "lsan", "1.0, RSS 1.0"],
               ["smp-2", "lsan", "1.0, RSS 1.0"]]}, sys.stdout)
EOF
$py "$here/compare.py" "$work/spec.json"

echo
echo "the leak scan at exit: 1 GiB of 1 KiB pool blocks, 7/8 reachable"
for i in 1 2 3; do
    LD_PRELOAD=$preload SMP_POOL_SCOPE='all=*' \
        SMP_OPTIONS="exitcode=0:max_leaks=1:json=$work/scan$i" \
        "$work/bench_scan" 1024 2>/dev/null
done
$py - "$work" <<'EOF'
import glob, json, sys
for path in sorted(glob.glob(sys.argv[1] + "/scan*.*")):
    report = json.load(open(path))
    s = report["summary"]
    pools = sum(p["live_bytes"] for p in report["pools"])
    print("  pools %.2f GiB, read as roots and reachable blocks %.2f GiB:"
          " %.3f s; %.3f s per GiB of pools (target <= 1)"
          % (pools / 2**30, s["root_bytes"] / 2**30, s["scan_seconds"],
             s["scan_seconds"] / (pools / 2**30)))
EOF

echo
echo "one stack capture, 30 frames kept (bench_stacks):"
"$work/bench_stacks" 300000
