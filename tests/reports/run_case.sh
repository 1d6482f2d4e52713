#!/bin/bash
# Runs one report test case: run_case.sh CASE PRELOAD BINDIR SRCDIR
# Each case runs a small program under the preload with every allocation
# routed into pools and checks the report's text, JSON and exit status.
set -u
case_name=$1 preload=$2 bin=$3 src=$4
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0

fail() { echo "FAIL [$case_name]: $*"; fails=$((fails + 1)); }

# run PROGRAM [ARGS...] with SMP_OPTIONS from $opts; sets rc, out, err
run() {
    SMP_POOL_SCOPE='all=*' SMP_OPTIONS="$opts" LD_PRELOAD="$preload" \
        "$@" >"$work/out" 2>"$work/err"
    rc=$?
    out=$(cat "$work/out")
    err=$(cat "$work/err")
}

has() { grep -qF -- "$1" <<<"$err" || fail "missing line: $1"; }
hasnt() { ! grep -qF -- "$1" <<<"$err" || fail "unexpected text: $1"; }
has_re() { grep -qE -- "$1" <<<"$err" || fail "no line matches: $1"; }
status() { [ "$rc" = "$1" ] || fail "exit status $rc, expected $1"; }
count() {
    local n
    n=$(grep -cE -- "$1" <<<"$err")
    [ "$n" = "$2" ] || fail "$n lines match '$1', expected $2"
}
# the line of the source that holds TEXT (to check file:line frames)
line_of() { grep -nF -- "$1" "$src/leak_shapes.c" | head -1 | cut -d: -f1; }

shapes_checks() {
    status 23
    [ "$out" = "leak_shapes done" ] || fail "program output lost: '$out'"
    has_re "^==[0-9]+==ERROR: smp: detected memory leaks$"
    has "Direct leak of 100 byte(s) in 1 object(s) from pool 'all' allocated from:"
    has "Direct leak of 32 byte(s) in 1 object(s) from pool 'all' allocated from:"
    has "Indirect leak of 32 byte(s) in 1 object(s) from pool 'all' allocated from:"
    has "SUMMARY: smp: 164 byte(s) leaked in 3 allocation(s)."
    count "leak of" 3
    hasnt "40 byte(s)"
    hasnt "56 byte(s)"
    has_re "^    #0 0x[0-9a-f]+ in malloc .*hooks\.c:[0-9]+$"
    has_re "^    #1 0x[0-9a-f]+ in leak_direct .*/leak_shapes\.c:$(line_of 'malloc(100)')$"
    has_re "^    #1 0x[0-9a-f]+ in leak_tree .*/leak_shapes\.c:$(line_of 'n = malloc')$"
    has_re "^    #1 0x[0-9a-f]+ in leak_tree .*/leak_shapes\.c:$(line_of 'n->child = malloc')$"
    has_re "^    #2 0x[0-9a-f]+ in main .*/leak_shapes\.c:[0-9]+$"
    # direct before indirect, largest first
    local order
    order=$(grep -E "^(Direct|Indirect) leak" <<<"$err" | cut -c1-24 | tr '\n' '|')
    [ "$order" = "Direct leak of 100 byte(|Direct leak of 32 byte(s|Indirect leak of 32 byte|" ] ||
        fail "order of leaks: $order"
}

case $case_name in
shapes)
    opts=""
    run "$bin/leak_shapes"
    shapes_checks
    ;;
counts)
    opts=""
    run "$bin/leak_shapes" 5
    status 23
    has "Direct leak of 500 byte(s) in 5 object(s) from pool 'all'"
    has "Direct leak of 160 byte(s) in 5 object(s) from pool 'all'"
    has "Indirect leak of 160 byte(s) in 5 object(s) from pool 'all'"
    has "SUMMARY: smp: 820 byte(s) leaked in 15 allocation(s)."
    ;;
no_leaks)
    opts=""
    run "$bin/no_leaks"
    status 7
    hasnt "ERROR"
    hasnt "SUMMARY"
    [ "$out" = "no_leaks done" ] || fail "output '$out'"
    ;;
exitcode)
    opts="exitcode=9"
    run "$bin/leak_shapes"
    status 9
    opts="exitcode=0"
    run "$bin/leak_shapes"
    status 0
    has "SUMMARY: smp: 164 byte(s) leaked in 3 allocation(s)."
    ;;
json)
    opts="json=$work/report"
    run "$bin/leak_shapes"
    status 23
    ls "$work"/report.* >/dev/null 2>&1 || fail "no JSON file"
    $py - "$work"/report.* "$(line_of 'malloc(100)')" <<'PY' || fail "JSON content"
import json, sys
d = json.load(open(sys.argv[1]))
line = int(sys.argv[2])
assert d["schema"] == "smp-report" and d["version"] == 1, d["version"]
assert d["exit_status"] == 23
s = d["summary"]
assert (s["leaked_bytes"], s["leaked_objects"]) == (164, 3), s
kinds = sorted((l["kind"], l["bytes"]) for l in d["leaks"] if l["kind"] != "reachable")
assert kinds == [("direct", 32), ("direct", 100), ("indirect", 32)], kinds
direct = [l for l in d["leaks"] if l["kind"] == "direct" and l["bytes"] == 100][0]
f = direct["stack"][1]
assert f["function"] == "leak_direct" and f["line"] == line, f
assert f["file"].endswith("leak_shapes.c") and f["module"].endswith("leak_shapes")
assert int(f["offset"], 16) > 0 and len(f["build_id"]) in (0, 40)
assert direct["stack"][0]["function"] == "malloc"
pools = {p["name"]: p for p in d["pools"]}
assert pools["all"]["leaked_blocks"] == 3, pools
assert pools["all"]["reachable_blocks"] >= 3, pools
assert pools["all"]["allocations"] >= 7
reach = sorted(l["bytes"] for l in d["leaks"] if l["kind"] == "reachable")
assert 40 in reach and 56 in reach, reach
PY
    ;;
suppress_match)
    printf '# the tree is known\nleak:leak_tree\n\n' >"$work/supp"
    opts="suppressions=$work/supp"
    run "$bin/leak_shapes"
    status 23
    has "Direct leak of 100 byte(s) in 1 object(s)"
    hasnt "Indirect leak"
    count "leak of" 1
    has "Suppressions used:"
    has_re "^      2         64 leak_tree$"
    has "SUMMARY: smp: 100 byte(s) leaked in 1 allocation(s)."
    ;;
suppress_all)
    # a wildcard, a file name and a module name, each suppressing all
    for pat in 'leak_*' 'leak_shapes.c' '^*/leak_shapes$'; do
        printf 'leak:%s\n' "$pat" >"$work/supp"
        opts="suppressions=$work/supp"
        run "$bin/leak_shapes"
        status 0
        hasnt "ERROR: smp"
        hasnt "SUMMARY"
        has "Suppressions used:"
    done
    opts="suppressions=$work/supp:print_suppressions=0"
    run "$bin/leak_shapes"
    status 0
    hasnt "Suppressions used:"
    ;;
suppress_nomatch)
    printf 'leak:no_such_function\nleak:^eak_tree\n' >"$work/supp"
    opts="suppressions=$work/supp"
    run "$bin/leak_shapes"
    shapes_checks
    hasnt "Suppressions used:"
    ;;
suppress_bad)
    printf 'leak:no_such_function\ninterceptor_via_fun:foo\n' >"$work/supp"
    opts="suppressions=$work/supp"
    run "$bin/leak_shapes"
    status 23
    has_re "^smp: suppressions: .*supp:2: 'interceptor_via_fun:foo' is not leak:PATTERN"
    opts="suppressions=$work/missing"
    run "$bin/leak_shapes"
    status 1
    has_re "^smp: SMP_OPTIONS: .*suppressions.*missing"
    ;;
options)
    opts="detect_leaks=0"
    run "$bin/leak_shapes"
    status 0
    hasnt "SUMMARY"
    opts="print_stats=1"
    run "$bin/leak_shapes"
    has_re "^pool +inst +allocs +frees +live_bytes +peak_bytes"
    has_re "^all +1 +[0-9]+ +[0-9]+ .* 3$"
    # without a scan there is nothing to count as reachable or leaked
    opts="print_stats=1:detect_leaks=0:json=$work/nodetect"
    run "$bin/leak_shapes"
    has_re "^all +1 +[0-9]+ +[0-9]+ .* - +-$"
    $py -c 'import json, sys
p = json.load(open(sys.argv[1]))["pools"][0]
assert p["reachable_blocks"] is None and p["leaked_blocks"] is None, p' \
        "$work"/nodetect.* || fail "JSON counts without a scan"
    # a long pool name widens the column: the figures stay under their heads
    SMP_POOL_SCOPE='a-pool-name-of-thirty-letters=*' \
        SMP_OPTIONS=print_stats=1:detect_leaks=0 LD_PRELOAD="$preload" \
        "$bin/leak_shapes" >/dev/null 2>"$work/wide"
    head_end=$(grep -E "^pool " "$work/wide" | awk '{ print length($0) }')
    row_end=$(grep -E "^a-pool-name" "$work/wide" | awk '{ print length($0) }')
    [ -n "$head_end" ] && [ "$head_end" = "$row_end" ] ||
        fail "columns: head ends at '$head_end', row at '$row_end'"
    opts="report_reachable=1"
    run "$bin/leak_shapes"
    has "Reachable block of 40 byte(s) in 1 object(s) from pool 'all'"
    has "Reachable block of 56 byte(s) in 1 object(s) from pool 'all'"
    # the leaks come first, the reachable blocks after them
    order=$(grep -E "^(Direct|Indirect) leak|^Reachable" <<<"$err" |
        cut -c1-8 | uniq | tr '\n' '|')
    [ "$order" = "Direct l|Indirect|Reachabl|" ] || fail "order: $order"
    has "SUMMARY: smp: 164 byte(s) leaked in 3 allocation(s)."
    opts="max_leaks=1"
    run "$bin/leak_shapes"
    has "The 1 top leak(s):"
    has "Omitting 2 more leak(s)."
    count "leak of" 1
    has "SUMMARY: smp: 164 byte(s) leaked in 3 allocation(s)."
    opts="malloc_context_size=2"
    run "$bin/leak_shapes"
    count "^    #2 " 0
    count "^    #1 0x[0-9a-f]+ in leak_" 3
    # without stacks, blocks of one kind and pool make one group
    opts="malloc_context_size=0"
    run "$bin/leak_shapes"
    count "^    <empty stack>$" 2
    has "Direct leak of 132 byte(s) in 2 object(s) from pool 'all'"
    opts="log_path=$work/log"
    run "$bin/leak_shapes"
    status 23
    hasnt "SUMMARY"
    grep -qF "SUMMARY: smp: 164 byte(s)" "$work"/log.* || fail "no report in log_path"
    opts="verbosity=2:mlock=off:scope_exit=keep:config_errors=warn"
    run "$bin/leak_shapes"
    shapes_checks
    ;;
help)
    opts="help=1"
    run "$bin/leak_shapes"
    status 0
    [ -z "$out" ] || fail "the program ran after help=1"
    for name in detect_leaks exitcode log_path json suppressions \
            print_suppressions malloc_context_size report_reachable \
            print_stats max_leaks mlock scope_exit verbosity config_errors help; do
        has_re "^  $name=[^ ]+ +[^ ]"
    done
    ;;
bad_options)
    # each: SMP_OPTIONS text | what the one line must contain
    while IFS='|' read -r text want; do
        opts=$text
        run "$bin/leak_shapes"
        status 1
        [ -z "$out" ] || fail "$text: the program ran"
        count "^smp: SMP_OPTIONS" 1
        has "$want"
        opts="$text:config_errors=warn"
        run "$bin/leak_shapes"
        status 23
        has "$want"
    done <<'LIST'
exitcode=300|bad value '300' for option 'exitcode' at column 1: expected an integer from 0 to 255
exitcode=abc|bad value 'abc' for option 'exitcode'
detect_leaks=maybe|bad value 'maybe' for option 'detect_leaks' at column 1: expected 0, 1, no, yes, false or true
malloc_context_size=65|expected an integer from 0 to 64
mlock=sometimes|bad value 'sometimes' for option 'mlock' at column 1: expected require, try or off
scope_exit=drop|expected wipe or keep
verbosity=9|bad value '9' for option 'verbosity'
max_leaks=-1|bad value '-1' for option 'max_leaks'
log_path=|bad value '' for option 'log_path'
unknown_thing=1|unknown option 'unknown_thing' at column 1; known options: detect_leaks,
print_stats|'print_stats' at column 1 is not name=value
exitcode=+5|bad value '+5' for option 'exitcode'
json=/no/such/dir/report|json: cannot write into '/no/such/dir'
suppressions=/|suppressions: cannot read '/' (Is a directory)
LIST
    opts="config_errors=never"
    run "$bin/leak_shapes"
    status 1
    has "bad value 'never' for option 'config_errors' at column 1: expected exit or warn"
    ;;
stress)
    opts="json=$work/report"
    start=$(date +%s)
    run "$bin/leak_stress"
    status 23
    [ "$out" = "leak_stress done" ] || fail "output '$out'"
    has "Direct leak of 48000 byte(s) in 1000 object(s) from pool 'all'"
    has "SUMMARY: smp: 48000 byte(s) leaked in 1000 allocation(s)."
    hasnt "did not stop"
    $py - "$work"/report.* <<'PY' || fail "JSON of the stress run"
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]
assert s["threads_stopped"] >= 8 and s["threads_missed"] == 0, s
assert s["leaked_objects"] == 1000, s
pools = {p["name"]: p for p in d["pools"]}
assert pools["all"]["reachable_blocks"] >= 100000, pools["all"]
PY
    [ $(($(date +%s) - start)) -lt 30 ] || fail "took too long"
    ;;
escape)
    opts=""
    run "$bin/escape"
    status 0
    [ "$out" = "escape done" ] || fail "output '$out'"
    has_re "^==[0-9]+==WARNING: smp: 1 block\(s\) outlived the scope that owned their pool"
    has "Escaped scope 'session': 72 byte(s) in 1 object(s) allocated from:"
    has_re "^    #1 0x[0-9a-f]+ in open_session .*/escape\.c:[0-9]+$"
    hasnt "ERROR: smp"
    ;;
fault)
    opts="verbosity=1"
    run "$bin/leak_fault"
    status 23
    [ "$out" = "leak_fault done" ] || fail "output '$out'"
    has "Direct leak of 24 byte(s) in 1 object(s) from pool 'all'"
    has "smp: leak scan: 1 mapping(s) could not be read and were skipped"
    has "SUMMARY: smp: 24 byte(s) leaked in 1 allocation(s)."
    ;;
dlclose)
    opts="json=$work/report"
    run "$bin/leak_dlclose" "$bin/libleaky_lib.so"
    status 23
    [ "$out" = "leak_dlclose done" ] || fail "output '$out'"
    has "Direct leak of 33 byte(s) in 1 object(s) from pool 'all'"
    has_re "^    #1 0x[0-9a-f]+ in leaky_make .*/leaky_lib\.c:8$"
    $py - "$work"/report.* <<'PY' || fail "JSON of the unloaded library's frame"
import json, sys
d = json.load(open(sys.argv[1]))
leak = [l for l in d["leaks"] if l["kind"] == "direct"][0]
f = leak["stack"][1]
assert f["module"].endswith("/libleaky_lib.so"), f
assert f["function"] == "leaky_make" and f["line"] == 8, f
assert int(f["offset"], 16) < 0x100000, f
PY
    ;;
plain)
    # nothing scrubs the stack: stale copies of the address must not count
    opts=""
    run "$bin/leak_plain"
    status 23
    [ "$out" = "leak_plain done" ] || fail "output '$out'"
    has "Direct leak of 31 byte(s) in 1 object(s) from pool 'all'"
    has_re "^    #1 0x[0-9a-f]+ in lose .*/leak_plain\.c:13$"
    ;;
stdio)
    # the leak's status, every line of output, the unclosed stream's too,
    # whether standard output is a file or a pipe
    opts=""
    run "$bin/leak_stdio" "$work/file"
    status 23
    [ "$(wc -l <"$work/out")" = 5001 ] || fail "lines of output lost"
    [ "$(tail -1 "$work/out")" = "leak_stdio done" ] || fail "last line lost"
    [ "$(cat "$work/file")" = "leak_stdio file" ] || fail "stream lost"
    has "Direct leak of 45 byte(s) in 1 object(s) from pool 'all'"
    SMP_POOL_SCOPE='all=*' LD_PRELOAD="$preload" "$bin/leak_stdio" \
        "$work/file" 2>"$work/err" | tail -1 >"$work/out"
    rc=${PIPESTATUS[0]}
    status 23
    [ "$(cat "$work/out")" = "leak_stdio done" ] || fail "piped output lost"
    ;;
stripped)
    # no symbols, no debug file: module and offset, and no debuginfod
    # query (at exit it would download, and start libcurl in a dying
    # process)
    strip -o "$work/leak_plain" "$bin/leak_plain" || fail "strip"
    opts=""
    DEBUGINFOD_URLS=http://127.0.0.1:1/ DEBUGINFOD_VERBOSE=1 \
        run "$work/leak_plain"
    status 23
    has "Direct leak of 31 byte(s) in 1 object(s) from pool 'all'"
    has_re "^    #1 0x[0-9a-f]+  \($work/leak_plain\+0x[0-9a-f]+\)$"
    hasnt "debuginfod"
    ;;
openssl)
    # a real program that tears its libraries down in atexit: the report
    # symbolizes its frames after that, and must leave them alone
    head -c 10000 /dev/zero | tr '\0' 'x' >"$work/data"
    openssl genrsa -out "$work/key.pem" 2048 2>/dev/null || fail "genrsa"
    openssl dgst -sha256 -sign "$work/key.pem" "$work/data" >"$work/plain"
    opts="json=$work/report:report_reachable=1"
    run openssl dgst -sha256 -sign "$work/key.pem" "$work/data"
    status 0
    cmp -s "$work/out" "$work/plain" || fail "the signature differs"
    $py -c 'import json, sys; json.load(open(sys.argv[1]))' \
        "$work"/report.* || fail "JSON report"
    ;;
inline)
    # a frame per inlined function, each name beside a line of its own
    opts="json=$work/report"
    run "$bin/leak_inline"
    status 23
    [ "$out" = "leak_inline done" ] || fail "output '$out'"
    has "Direct leak of 41 byte(s) in 1 object(s) from pool 'all'"
    src_line() { grep -nF -- "$1" "$src/leak_inline.c" | cut -d: -f1; }
    has_re "^    #1 0x[0-9a-f]+ in make .*/leak_inline\.c:$(src_line 'inlined frame')$"
    has_re "^    #2 0x[0-9a-f]+ in lose .*/leak_inline\.c:$(src_line 'outer frame')$"
    has_re "^    #3 0x[0-9a-f]+ in main .*/leak_inline\.c:[0-9]+$"
    $py - "$work"/report.* <<'PY' || fail "JSON of the inlined frame"
import json, sys
d = json.load(open(sys.argv[1]))
leak = [l for l in d["leaks"] if l["kind"] == "direct"][0]
f1, f2 = leak["stack"][1], leak["stack"][2]
assert f1["function"] == "make" and f1["inlined"] is True, f1
assert f2["function"] == "lose" and f2["inlined"] is False, f2
assert f1["pc"] == f2["pc"] and f1["offset"] == f2["offset"], (f1, f2)
PY
    ;;
versioned)
    # suppressions see the name the report prints, without '@@VERSION'
    opts=""
    run "$bin/leak_versioned"
    status 23
    has_re "^    #1 0x[0-9a-f]+ in versioned_make .*/versioned_lib\.c:[0-9]+$"
    printf 'leak:^versioned_make$\n' >"$work/supp"
    opts="suppressions=$work/supp"
    run "$bin/leak_versioned"
    status 0
    [ "$out" = "leak_versioned done" ] || fail "output '$out'"
    has '      1         19 ^versioned_make$'
    ;;
chdir)
    # relative paths name the starting directory, not where the program
    # went (it has no JSON report there, nor suppressions)
    mkdir "$work/start" "$work/elsewhere"
    printf 'leak:leak_chdir.c\n' >"$work/start/supp"
    cd "$work/start" || fail "cd"
    opts="json=report:suppressions=supp"
    run "$bin/leak_chdir" "$work/elsewhere"
    cd - >/dev/null || fail "cd -"
    status 0
    [ "$out" = "leak_chdir done" ] || fail "output '$out'"
    has "Suppressions used:"
    ls "$work"/start/report.* >/dev/null 2>&1 || fail "no JSON report"
    ;;
reload)
    # a library unloaded, another loaded at its address: stacks stay exact
    opts="json=$work/report"
    run "$bin/leak_reload" "$bin/libreload_200.so" "$bin/libreload_400.so"
    status 23
    [ "$out" = "leak_reload done" ] || fail "output '$out'"
    # a stale rule gave the second one a frame in decoy
    count "^Direct leak of 27 byte\(s\) in 1 object\(s\) from pool 'all'" 2
    count "^    #2 0x[0-9a-f]+ in main .*/leak_reload\.c:[0-9]+$" 2
    hasnt " in decoy "
    # the same addresses, two objects: each leak names its own
    $py - "$work"/report.* <<'EOF' || fail "modules of the two leaks"
import json, sys
d = json.load(open(sys.argv[1]))
mods = sorted(f["module"].rsplit("/", 1)[-1] for l in d["leaks"]
              if l["kind"] == "direct" for f in l["stack"]
              if f["function"] == "reload_make")
assert mods == ["libreload_200.so", "libreload_400.so"], mods
EOF
    ;;
*)
    fail "unknown case"
    ;;
esac

if [ "$fails" -gt 0 ]; then
    echo "---- stderr of the last run:"
    head -c 4000 "$work/err"
    exit 1
fi
echo "ok [$case_name]"
