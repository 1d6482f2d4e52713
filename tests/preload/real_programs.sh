#!/bin/sh
# Real programs under SMP_POOL_SCOPE='all=*' (every allocation in a pool)
# must give the same output and exit status as a plain run. Each scenario
# runs twice in a fresh directory, plainly and under the preload; the
# transcripts (output and status of every command) must match.
# Leak reports are off: these programs leave memory live at exit on
# purpose, and a report would change their exit status by design.
# usage: real_programs.sh LIBSMP_PRELOAD python|sqlite|openssl|git|perl
preload=$1
scenario=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# step CMD...: runs one command, appending its output and status
step() {
    "$@" >>"$transcript" 2>&1
    echo "[exit $?]" >>"$transcript"
}

python_normalize() {
    # drop the timings and load figures that differ from run to run
    sed -E -e 's/^[0-9]+:[0-9]{2}:[0-9]{2}( load avg: [0-9.]+)? //' \
        -e '/^Total duration/d' -e '/running: /d' \
        -e 's/ in [0-9.]+ (sec|ms|min)//'
}

run_python() {
    export PYTHONMALLOC=malloc PYTHONHASHSEED=0
    step /usr/bin/python3 -m test test_threading test_json test_dict \
        test_list test_set test_heapq test_struct test_bisect \
        test_textwrap test_string test_operator
    step /usr/bin/python3 -m test test_subprocess -m POSIXProcessTestCase
    python_normalize <"$transcript" >"$transcript.n"
    mv "$transcript.n" "$transcript"
}

run_sqlite() {
    cat >rows.sql <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
                        WHERE x < 200000)
INSERT INTO t SELECT x, 'name-' || x, x * 1.5, zeroblob(x % 64) FROM c;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(v), max(name), sum(length(blob)) FROM t;
SELECT name FROM t WHERE id % 20000 = 0 ORDER BY name;
SELECT substr(name, 1, 7), count(*) FROM t GROUP BY 1 ORDER BY 2 DESC, 1
LIMIT 5;
DELETE FROM t WHERE id % 3 = 0;
UPDATE t SET name = upper(name) WHERE id % 5 = 0;
SELECT count(*), min(name), max(name) FROM t;
PRAGMA integrity_check;
SQL
    step sqlite3 rows.db <rows.sql
    step sqlite3 rows.db "SELECT count(*) FROM t WHERE name LIKE 'NAME-1%'"
}

run_openssl() {
    head -c 100000 /dev/zero | tr '\0' 'x' >data
    step openssl genrsa -out rsa.pem 2048
    step openssl rsa -in rsa.pem -check -noout
    step openssl dgst -sha256 -sign rsa.pem -out rsa.sig data
    step openssl rsa -in rsa.pem -pubout -out rsa.pub
    step openssl dgst -sha256 -verify rsa.pub -signature rsa.sig data
    step openssl ecparam -name prime256v1 -genkey -noout -out ec.pem
    step openssl ec -in ec.pem -pubout -out ec.pub
    step openssl dgst -sha256 -sign ec.pem -out ec.sig data
    step openssl dgst -sha256 -verify ec.pub -signature ec.sig data
    echo tampered >>data
    step openssl dgst -sha256 -verify ec.pub -signature ec.sig data
}

run_git() {
    export HOME="$PWD" GIT_CONFIG_NOSYSTEM=1
    export GIT_AUTHOR_DATE='2024-01-01T12:00:00Z'
    export GIT_COMMITTER_DATE='2024-01-01T12:00:00Z'
    mkdir repo && cd repo || return
    step git init -q -b main
    step git config user.name 'smp test'
    step git config user.email 'smp@example.org'
    for i in $(seq 1 40); do
        seq 1 "$((i * 50))" | sed "s/^/file $i line /" >"file$i.txt"
    done
    mkdir sub && seq 1 1000 >sub/numbers
    step git add .
    step git commit -q -m 'first'
    sed -i 's/line 7$/line seven/' file3.txt file30.txt
    rm file12.txt
    step git commit -q -a -m 'second'
    step git log --stat --format='%H %an %s'
    step git diff HEAD~1 --stat
    step git fsck --full --strict
    step git gc -q
    step git count-objects -v
    step git log --oneline
}

run_perl() {
    step perl -e '
        my %h;
        $h{"key$_"} = $_ * 2 for 1 .. 300000;
        my $sum = 0;
        $sum += $h{$_} for keys %h;
        delete $h{"key$_"} for 1 .. 1000;
        my @top = (sort { $h{$b} <=> $h{$a} } keys %h)[0 .. 4];
        print scalar(keys %h), " $sum @top\n";
        my %words;
        $words{join "", map { chr(97 + ($_ * 7 + $_[0]) % 26) } 1 .. 12}++
            for 1 .. 1000;
        print join(",", map { length } keys %words), "\n";
    '
}

# run MODE: one pass of the scenario, in its own directory
run() {
    mkdir "$tmp/$1" && cd "$tmp/$1" || exit 1
    transcript="$tmp/$1.log"
    : >"$transcript"
    if [ "$1" = preload ]; then
        export LD_PRELOAD="$preload" SMP_POOL_SCOPE='all=*'
        export SMP_OPTIONS="detect_leaks=0${SMP_TEST_OPTIONS:+:$SMP_TEST_OPTIONS}"

        # the preload is really there: a process's memory is locked
        locked=$(awk '/^Locked:/ { print $2 }' /proc/self/smaps_rollup)
        if [ "${locked:-0}" -eq 0 ]; then
            echo "no locked memory under the preload: it did not load"
            exit 1
        fi
    fi
    "run_$scenario"
}

case $scenario in
python | sqlite | openssl | git | perl) ;;
*) echo "unknown scenario: $scenario"; exit 2 ;;
esac

(run plain) || exit 1
(run preload) || exit 1
cat "$tmp/preload.log"
if ! diff -u "$tmp/plain.log" "$tmp/preload.log"; then
    echo "$scenario: the run under the preload differs from the plain run"
    exit 1
fi
echo "$scenario: same output and status with every allocation in pools"
