#!/usr/bin/env python3
"""Runs whole programs under several configurations and prints them side
by side: median wall time, least and median CPU time (user + system) and
median peak RSS of each, with ratios against a baseline configuration.

Rounds interleave the configurations, so that drift on a shared machine
hits them alike; the least CPU time is what a run costs when nothing else
gets in its way, the figure the ratios are taken from. Every run's output
must equal the baseline's: a configuration that changes what a program
prints is a bug, not a speed.

usage: compare.py SPEC.json
SPEC: {"runs": N, "baseline": "CONFIG",
       "configs": [["NAME", {ENV}], ...],
       "workloads": [["NAME", [ARGV], STDIN-PATH or null, {ENV}], ...],
       "ratios": [["CONFIG", "AGAINST", "TARGET"], ...]}
An ENV value of null removes the variable.

Each run goes through rusage.c (built here, static), so that peak RSS is
the program's own: a child forked from python would start with python's.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def environment(*layers):
    env = dict(os.environ)
    for layer in layers:
        for k, v in layer.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
    return env


def build_launcher(work):
    """The rusage launcher, static when the C library allows it."""
    exe = os.path.join(work, "rusage")
    src = os.path.join(HERE, "rusage.c")
    for flags in (["-static"], []):
        if subprocess.run(["cc", "-O2", *flags, "-o", exe, src],
                          stderr=subprocess.DEVNULL).returncode == 0:
            return exe
    sys.exit("compare: cannot build %s (is a C compiler installed?)" % src)


def run(launcher, figures, argv, stdin, env):
    """One run: wall seconds, CPU seconds, peak RSS in KiB, stdout."""
    with open(stdin or os.devnull, "rb") as f:
        start = time.perf_counter()
        child = subprocess.run([launcher, figures] + argv, stdin=f,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=env)
        wall = time.perf_counter() - start
    if child.returncode != 0:
        sys.exit("compare: %s exited with %d" % (argv[0], child.returncode))
    with open(figures) as f:
        user, system, rss = f.read().split()
    return wall, float(user) + float(system), int(rss), child.stdout


def measure(spec, launcher, figures, name, argv, stdin, extra):
    configs = spec["configs"]
    got = {c: {"wall": [], "cpu": [], "rss": []} for c, _ in configs}
    expected = None
    for _ in range(spec["runs"]):
        for cname, cenv in configs:
            wall, cpu, rss, out = run(launcher, figures, argv, stdin,
                                      environment(extra, cenv))
            if expected is None:
                expected = out
            elif out != expected:
                sys.exit("compare: %s prints something else under %s"
                         % (name, cname))
            got[cname]["wall"].append(wall)
            got[cname]["cpu"].append(cpu)
            got[cname]["rss"].append(rss)
    return {c: {"wall": statistics.median(v["wall"]),
                "least": min(v["cpu"]),
                "cpu": statistics.median(v["cpu"]),
                "rss": statistics.median(v["rss"])}
            for c, v in got.items()}


def report(spec, base, launcher, figures):
    print("%d interleaved run(s) a configuration; ratios against %s, "
          "from the least CPU time" % (spec["runs"], base))
    print("%-8s %-12s %8s %8s %8s %7s %9s %7s" % (
        "program", "config", "wall_med", "cpu_min", "cpu_med", "ratio",
        "rss_MiB", "ratio"))
    for name, argv, stdin, extra in spec["workloads"]:
        r = measure(spec, launcher, figures, name, argv, stdin, extra)
        for c, _ in spec["configs"]:
            print("%-8s %-12s %8.3f %8.3f %8.3f %6.3fx %9.1f %6.3fx" % (
                name, c, r[c]["wall"], r[c]["least"], r[c]["cpu"],
                r[c]["least"] / r[base]["least"], r[c]["rss"] / 1024,
                r[c]["rss"] / r[base]["rss"]))
        for a, b, target in spec.get("ratios", []):
            print("%-8s %s / %s: CPU %.3fx least, %.3fx median; peak RSS "
                  "%.3fx (target <= %s)" % (
                      name, a, b, r[a]["least"] / r[b]["least"],
                      r[a]["cpu"] / r[b]["cpu"], r[a]["rss"] / r[b]["rss"],
                      target))
        sys.stdout.flush()


def main():
    spec = json.load(open(sys.argv[1]))
    base = spec["baseline"]
    work = tempfile.mkdtemp(prefix="compare.")
    try:
        report(spec, base, build_launcher(work),
               os.path.join(work, "figures"))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
