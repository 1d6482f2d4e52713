#!/bin/sh
# What SMP_POOL_SCOPE rules cost on allocation-heavy programs nobody here
# wrote: sqlite3 inserting 200k rows and python3 building a large dict
# with PYTHONMALLOC=malloc, side by side in one run:
#
#   glibc            no preload
#   pass-through     libsmp_preload.so, no rules
#   caller-only      rules that need only the return address (caller:,
#                    lib:, size:), all resolved, none matching
#   fn               an fn: rule at the default depth, resolved, matching
#                    nothing, so every allocation walks the stack
#   lsan             LeakSanitizer preloaded, stacks on (its defaults)
#
# compare.py interleaves the runs and prints wall, CPU and peak RSS with
# the ratios the rules are held to, from the least CPU times: caller-only /
# pass-through (at most 1.05) and fn / lsan (at most 1). Then the
# instructions each configuration but lsan executes on a tenth of the
# work (callgrind), which a busy machine does not move. It never judges
# the figures.
#
#   bench_rules.sh BUILD_DIR [--quick]
set -eu

build=$(cd "${1:?usage: bench_rules.sh BUILD_DIR [--quick]}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
runs=7
rows=200000
quick=0
if [ "${2:-}" = "--quick" ]; then
    runs=1
    rows=20000
    quick=1
fi

preload=$build/preload/libsmp_preload.so
[ -f "$preload" ] || { echo "bench_rules.sh: no $preload" >&2; exit 1; }
python=/usr/bin/python3
lsan=$(ls /usr/lib/*-linux-gnu/liblsan.so.0 2>/dev/null | head -n 1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The workloads, whole and a tenth of them.
for n in "$rows" $((rows / 10)); do
    $python - "$n" >"$work/insert-$n.sql" <<'PY'
import sys
rows = int(sys.argv[1])
print("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c TEXT);")
print("BEGIN;")
for i in range(rows):
    print("INSERT INTO t(b, c) VALUES('name %d', '%s');" % (i, "x" * (i % 100)))
print("COMMIT;")
print("SELECT count(*), sum(length(c)) FROM t;")
PY
    cat >"$work/dict-$n.py" <<PY
d = {}
for i in range($n * 3):
    d[str(i)] = [i, str(i) * 2, (i, i + 1)]
print(len(d), sum(len(v[1]) for v in d.values()))
PY
done

# LeakSanitizer crashes some programs when merely preloaded; a constructor
# that calls __lsan_init first fixes that.
if [ -n "$lsan" ] && command -v cc >/dev/null; then
    printf 'void __lsan_init(void);\n%s\n' \
        '__attribute__((constructor)) static void start(void) { __lsan_init(); }' \
        >"$work/lsan_init.c"
    cc -shared -fPIC -o "$work/lsan_init.so" "$work/lsan_init.c"
    lsan="$lsan $work/lsan_init.so"
else
    lsan=
fi

caller_rules='keys=caller:getpwnam*;tls=lib:libm.so*;big=size:1G-'
fn_rules='keys=fn:getpwnam*'

echo "bench_rules: $runs run(s) a configuration"
for rules in "$caller_rules" "$fn_rules"; do
    echo "resolution of '$rules' in sqlite3:"
    LD_PRELOAD=$preload SMP_POOL_SCOPE=$rules SMP_OPTIONS=verbosity=1 \
        sqlite3 :memory: 'select 1' 2>&1 >/dev/null | sed 's/^/  /'
done
echo

$python - "$work" "$runs" "$rows" "$preload" "$lsan" "$caller_rules" \
    "$fn_rules" >"$work/spec.json" <<'PY'
import json, sys
work, runs, rows, preload, lsan, caller_rules, fn_rules = sys.argv[1:]
configs = [["glibc", {"LD_PRELOAD": None}],
           ["pass-through", {"LD_PRELOAD": preload}],
           ["caller-only", {"LD_PRELOAD": preload,
                            "SMP_POOL_SCOPE": caller_rules}],
           ["fn", {"LD_PRELOAD": preload, "SMP_POOL_SCOPE": fn_rules}]]
ratios = [["caller-only", "pass-through", "1.05"]]
if lsan:
    configs.append(["lsan", {"LD_PRELOAD": lsan,
                             "LSAN_OPTIONS": "exitcode=0"}])
    ratios.append(["fn", "lsan", "1.00"])
json.dump({"runs": int(runs), "baseline": "pass-through",
           "configs": configs,
           "workloads": [
               ["sqlite3", ["sqlite3", ":memory:"],
                "%s/insert-%s.sql" % (work, rows), {}],
               ["python3", ["/usr/bin/python3",
                            "%s/dict-%s.py" % (work, rows)], None,
                {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"}]],
           "ratios": ratios}, sys.stdout)
PY
$python "$here/compare.py" "$work/spec.json"

# Instructions of each configuration but LeakSanitizer's (it does not run
# under valgrind), on a tenth of the work.
[ "$quick" = 0 ] && command -v valgrind >/dev/null || exit 0
tenth=$((rows / 10))
# instructions ENV-SETTINGS... PROGRAM ARGS...: of the whole process
instructions() {
    valgrind --tool=callgrind --trace-children=yes \
        --callgrind-out-file="$work/cg.%p" env "$@" 2>&1 >/dev/null |
        awk '/Collected/ { n = $4 } END { print n }'
    rm -f "$work"/cg.*
}
echo
echo "instructions (callgrind) on a tenth of each workload; ratios against"
echo "pass-through"
printf '%-8s %-13s %14s %7s\n' program config instructions ratio
for w in sqlite3 python3; do
    base=
    for c in pass-through glibc caller-only fn; do
        case $c in
        glibc) pre= ;;
        *) pre=$preload ;;
        esac
        case $c in
        caller-only) rules=$caller_rules ;;
        fn) rules=$fn_rules ;;
        *) rules= ;;
        esac
        if [ $w = sqlite3 ]; then
            n=$(instructions LD_PRELOAD="$pre" SMP_POOL_SCOPE="$rules" \
                sqlite3 :memory: ".read $work/insert-$tenth.sql")
        else
            n=$(instructions LD_PRELOAD="$pre" SMP_POOL_SCOPE="$rules" \
                PYTHONMALLOC=malloc PYTHONHASHSEED=0 \
                $python "$work/dict-$tenth.py")
        fi
        [ -n "$base" ] || base=$n
        printf '%-8s %-13s %14s %6sx\n' $w $c $n \
            "$(awk -v n="$n" -v b="$base" 'BEGIN { printf "%.3f", n / b }')"
    done
done
