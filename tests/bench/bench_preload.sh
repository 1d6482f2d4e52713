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
# into an in-memory table. Whole-program wall time by hyperfine (median of
# RUNS runs after a warm-up) and CPU time (user + system, mean), which a
# machine busy with other work disturbs less; peak RSS by /usr/bin/time
# (median of three).
#
# usage: bench_preload.sh BUILD_DIR [RUNS]
set -e
build=${1:?usage: bench_preload.sh BUILD_DIR [RUNS]}
runs=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
preload=$(cd "$build" && pwd)/preload/libsmp_preload.so
mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
python=/usr/bin/python3

[ -f "$preload" ] || { echo "no $preload: build first"; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is needed"; exit 1; }
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

workload_cmd() {
    case $1 in
    python) echo "$python $tmp/work.py" ;;
    sqlite) echo "sqlite3 :memory: \".read $tmp/inserts.sql\"" ;;
    esac
}

peak_rss() { # median of three, KiB
    for i in 1 2 3; do
        sh -c "/usr/bin/time -f %M $1 >/dev/null 2>$tmp/rss.err" \
            2>/dev/null || true
        tail -n 1 "$tmp/rss.err"
    done | sort -n | sed -n 2p
}

for w in python sqlite; do
    set --
    for c in $configs; do
        set -- "$@" -n "$c" "$(env_of "$c") PYTHONMALLOC=malloc $(workload_cmd "$w")"
    done
    hyperfine -N --style none --warmup 1 --runs "$runs" \
        --export-json "$tmp/$w.json" "$@" >/dev/null
    for c in $configs; do
        echo "$w $c $(peak_rss "$(env_of "$c") PYTHONMALLOC=malloc $(workload_cmd "$w")")"
    done >"$tmp/$w.rss"
done

for c in $configs; do
    echo "$c $($(env_of "$c") "$tmp/pair" | tr '\n' ' ')"
done >"$tmp/pair.txt"

"$python" - "$tmp" $configs <<'EOF'
import json, sys
tmp, configs = sys.argv[1], sys.argv[2:]
print("whole program: median wall time and mean CPU time (s), peak RSS "
      "(MiB); ratios against plain")
print("%-7s %-9s %7s %7s %7s %7s %8s %7s" % ("program", "config", "wall",
      "ratio", "cpu", "ratio", "peak RSS", "ratio"))
for w in ("python", "sqlite"):
    res = {r["command"]: r for r in json.load(open(f"{tmp}/{w}.json"))["results"]}
    cpu = {c: r["user"] + r["system"] for c, r in res.items()}
    rss = {}
    for line in open(f"{tmp}/{w}.rss"):
        _, c, kib = line.split()
        rss[c] = int(kib)
    for c in configs:
        r = res[c]
        print("%-7s %-9s %7.3f %6.3fx %7.3f %6.3fx %8.1f %6.3fx" % (
            w, c, r["median"], r["median"] / res["plain"]["median"],
            cpu[c], cpu[c] / cpu["plain"], rss[c] / 1024,
            rss[c] / rss["plain"]))
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
