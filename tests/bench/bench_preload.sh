#!/bin/sh
# The preload's cost on real programs and on one malloc+free pair, side by
# side with a plain run and with mimalloc preloaded the same way.
#
#   plain      no preload: glibc malloc
#   idle       libsmp_preload.so loaded, nothing routed
#   all        SMP_POOL_SCOPE='all=*', stack capture and leak check off
#   mimalloc   libmimalloc.so.2 preloaded, for scale
#
# Workloads: python3 (PYTHONMALLOC=malloc) building, serializing and
# parsing 300,000 small objects; sqlite3 running 200,000 INSERT statements
# into an in-memory table. compare.py runs the configurations in
# interleaved rounds (RUNS of them) and prints median wall time, least and
# median CPU time and median peak RSS, with ratios from the least CPU
# time: on a machine shared with other work, single runs vary by 10% or
# more. When valgrind is there the script also counts instructions
# (callgrind) on a tenth of each workload: a figure that contention does
# not move.
#
# usage: bench_preload.sh BUILD_DIR [RUNS]
set -e
build=${1:?usage: bench_preload.sh BUILD_DIR [RUNS]}
runs=${2:-7}
here=$(cd "$(dirname "$0")" && pwd)
preload=$(cd "$build" && pwd)/preload/libsmp_preload.so
mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
python=/usr/bin/python3

[ -f "$preload" ] || { echo "no $preload: build first"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/work.py" <<'EOF'
import json
items = [{"id": i, "name": "item-%d" % i, "tags": [str(i), str(i * 2)]}
         for i in range(300000)]
text = json.dumps(items)
back = json.loads(text)
index = {item["name"]: item for item in back}
print(len(text), len(back), len(index))
EOF
awk 'BEGIN {
    print "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);"
    print "BEGIN;"
    for (i = 1; i <= 200000; i++)
        printf "INSERT INTO t VALUES(%d, %cname-%d%c, %d.5);\n", i, 39, i, 39, i
    print "COMMIT;"
    print "SELECT count(*), sum(v) FROM t;"
}' >"$tmp/inserts.sql"

sed 's/range(300000)/range(30000)/' "$tmp/work.py" >"$tmp/work-small.py"
sed -n '1,20002p' "$tmp/inserts.sql" >"$tmp/inserts-small.sql"
echo 'COMMIT;' >>"$tmp/inserts-small.sql"

cc -O2 -fno-builtin -o "$tmp/pair" "$here/bench_preload_pair.c"

# env prefixes per configuration, in table order
configs="plain idle all"
[ -f "$mimalloc" ] && configs="$configs mimalloc"
env_of() {
    case $1 in
    plain) echo "env -u LD_PRELOAD" ;;
    idle) echo "env LD_PRELOAD=$preload" ;;
    all) echo "env LD_PRELOAD=$preload SMP_POOL_SCOPE=all=* SMP_OPTIONS=malloc_context_size=0:detect_leaks=0" ;;
    mimalloc) echo "env LD_PRELOAD=$mimalloc" ;;
    esac
}

# the whole-program comparison, as a spec for compare.py
"$python" - "$tmp" "$runs" "$preload" "$mimalloc" $configs \
    >"$tmp/spec.json" <<'EOF'
import json, sys
tmp, runs, preload, mimalloc, configs = (sys.argv[1], int(sys.argv[2]),
                                         sys.argv[3], sys.argv[4],
                                         sys.argv[5:])
envs = {"plain": {"LD_PRELOAD": None},
        "idle": {"LD_PRELOAD": preload},
        "all": {"LD_PRELOAD": preload, "SMP_POOL_SCOPE": "all=*",
                "SMP_OPTIONS": "malloc_context_size=0:detect_leaks=0"},
        "mimalloc": {"LD_PRELOAD": mimalloc}}
json.dump({"runs": runs, "baseline": "plain",
           "configs": [[c, envs[c]] for c in configs],
           "workloads": [
               ["python", ["/usr/bin/python3", tmp + "/work.py"], None,
                {"PYTHONMALLOC": "malloc"}],
               ["sqlite", ["sqlite3", ":memory:"], tmp + "/inserts.sql", {}]],
           "ratios": [["idle", "plain", "1.02"],
                      ["all", "plain", "1.2, RSS 1.3"]]}, sys.stdout)
EOF
"$python" "$here/compare.py" "$tmp/spec.json"

for c in $configs; do
    echo "$c $($(env_of "$c") "$tmp/pair" | tr '\n' ' ')"
done >"$tmp/pair.txt"

# instructions of the whole process tree, as callgrind counts them
instructions() {
    valgrind --tool=callgrind --trace-children=yes \
        --callgrind-out-file="$tmp/cg.%p" "$@" 2>&1 >/dev/null |
        awk '/Collected/ { n = $4 } END { print n }'
    rm -f "$tmp"/cg.*
}
: >"$tmp/ir.txt"
if command -v valgrind >/dev/null; then
    for c in $configs; do
        echo "python $c $(instructions $(env_of "$c") PYTHONMALLOC=malloc \
            "$python" "$tmp/work-small.py")" >>"$tmp/ir.txt"
        echo "sqlite $c $(instructions $(env_of "$c") sqlite3 :memory: \
            ".read $tmp/inserts-small.sql")" >>"$tmp/ir.txt"
    done
fi

"$python" - "$tmp" $configs <<'EOF'
import sys
tmp, configs = sys.argv[1], sys.argv[2:]
ir = {}
for line in open(f"{tmp}/ir.txt"):
    w, c, n = line.split()
    ir[w, c] = int(n)
if ir:
    print()
    print("instructions (callgrind) on a tenth of each workload; ratios "
          "against plain")
    print("%-7s %-9s %14s %7s" % ("program", "config", "instructions",
                                  "ratio"))
    for w in ("python", "sqlite"):
        for c in configs:
            print("%-7s %-9s %14d %6.3fx" % (w, c, ir[w, c],
                                           ir[w, c] / ir[w, "plain"]))
print()
print("malloc+free pair: best CPU ns per pair of 31 rounds; "
      "ratios against plain")
pairs = {}
for line in open(f"{tmp}/pair.txt"):
    f = line.split()
    pairs[f[0]] = {int(f[i]): float(f[i + 1]) for i in range(1, len(f), 2)}
sizes = sorted(pairs["plain"])
print("%-9s" % "config" + "".join("%9s %7s" % (f"{s} B", "ratio") for s in sizes))
for c in configs:
    print("%-9s" % c + "".join("%9.2f %6.2fx" % (
        pairs[c][s], pairs[c][s] / pairs["plain"][s]) for s in sizes))
EOF
