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
# It prints the median wall time and the least and median CPU time of each,
# and the ratios the rules are held to, from the least CPU times (what a
# run costs when nothing else gets in its way) and from the medians:
# caller-only / pass-through (at most 1.05) and fn / lsan (at most 1). It
# never judges them; a busy machine moves the figures.
#
#   bench_rules.sh BUILD_DIR [--quick]
set -eu

build=$(cd "${1:?usage: bench_rules.sh BUILD_DIR [--quick]}" && pwd)
runs=7
rows=200000
if [ "${2:-}" = "--quick" ]; then
    runs=1
    rows=20000
fi

preload=$build/preload/libsmp_preload.so
[ -f "$preload" ] || { echo "bench_rules.sh: no $preload" >&2; exit 1; }
python=/usr/bin/python3
lsan=$(ls /usr/lib/*-linux-gnu/liblsan.so.0 2>/dev/null | head -n 1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The workloads.
$python - "$rows" >"$work/insert.sql" <<'PY'
import sys
rows = int(sys.argv[1])
print("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c TEXT);")
print("BEGIN;")
for i in range(rows):
    print("INSERT INTO t(b, c) VALUES('name %d', '%s');" % (i, "x" * (i % 100)))
print("COMMIT;")
print("SELECT count(*), sum(length(c)) FROM t;")
PY
cat >"$work/dict.py" <<PY
d = {}
for i in range($rows * 3):
    d[str(i)] = [i, str(i) * 2, (i, i + 1)]
print(len(d), sum(len(v[1]) for v in d.values()))
PY

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

$python - "$work" "$runs" "$preload" "$lsan" "$caller_rules" "$fn_rules" <<'PY'
import os, resource, statistics, subprocess, sys, time

work, runs, preload, lsan, caller_rules, fn_rules = sys.argv[1:]
runs = int(runs)
base = {k: v for k, v in os.environ.items()
        if k not in ("LD_PRELOAD", "SMP_POOL_SCOPE", "SMP_OPTIONS")}

configs = [("glibc", {}),
           ("pass-through", {"LD_PRELOAD": preload}),
           ("caller-only", {"LD_PRELOAD": preload,
                            "SMP_POOL_SCOPE": caller_rules}),
           ("fn", {"LD_PRELOAD": preload, "SMP_POOL_SCOPE": fn_rules})]
if lsan:
    configs.append(("lsan", {"LD_PRELOAD": lsan}))

workloads = [("sqlite3", ["sqlite3", ":memory:"], work + "/insert.sql", {}),
             ("python3", ["/usr/bin/python3", work + "/dict.py"], None,
              {"PYTHONMALLOC": "malloc"})]

def run(cmd, stdin, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(stdin or os.devnull) as f:
        out = subprocess.run(cmd, stdin=f, env=env, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        sys.exit("bench_rules: %s failed (%d): %s"
                 % (cmd[0], out.returncode, out.stderr.decode()[-500:]))
    return wall, cpu, out.stdout

for name, cmd, stdin, extra in workloads:
    walls = {c: [] for c, _ in configs}
    cpus = {c: [] for c, _ in configs}
    expected = None
    # rounds interleave the configurations, so drift hits them alike
    for _ in range(runs):
        for cname, cenv in configs:
            env = dict(base, **extra, **cenv)
            wall, cpu, out = run(cmd, stdin, env)
            if expected is None:
                expected = out
            elif out != expected:
                sys.exit("bench_rules: %s output differs under %s"
                         % (name, cname))
            walls[cname].append(wall)
            cpus[cname].append(cpu)
    wall = {c: statistics.median(walls[c]) for c, _ in configs}
    least = {c: min(cpus[c]) for c, _ in configs}
    med = {c: statistics.median(cpus[c]) for c, _ in configs}
    print()
    print("%-8s %-14s %10s %10s %10s %9s" % (name, "configuration",
          "wall_med_s", "cpu_min_s", "cpu_med_s", "cpu/pass"))
    for c, _ in configs:
        print("%-8s %-14s %10.3f %10.3f %10.3f %8.2fx"
              % (name, c, wall[c], least[c], med[c],
                 least[c] / least["pass-through"]))

    def ratio(a, b, target):
        print("%-8s %s / %s (CPU): %.3fx least, %.3fx median (target <= %s)"
              % (name, a, b, least[a] / least[b], med[a] / med[b], target))
    ratio("caller-only", "pass-through", "1.05")
    if lsan:
        ratio("fn", "lsan", "1.00")
PY
