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
"""
import json
import os
import statistics
import subprocess
import sys
import time


def environment(*layers):
    env = dict(os.environ)
    for layer in layers:
        for k, v in layer.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
    return env


def run(argv, stdin, env):
    """One run: wall seconds, CPU seconds, peak RSS in KiB, stdout."""
    with open(stdin or os.devnull, "rb") as f:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdin=f, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env=env)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit("compare: %s exited with %d" % (argv[0], child.returncode))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out


def measure(spec, name, argv, stdin, extra):
    configs = spec["configs"]
    got = {c: {"wall": [], "cpu": [], "rss": []} for c, _ in configs}
    expected = None
    for _ in range(spec["runs"]):
        for cname, cenv in configs:
            wall, cpu, rss, out = run(argv, stdin, environment(extra, cenv))
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


def main():
    spec = json.load(open(sys.argv[1]))
    base = spec["baseline"]
    print("%d interleaved run(s) a configuration; ratios against %s, "
          "from the least CPU time" % (spec["runs"], base))
    print("%-8s %-12s %8s %8s %8s %7s %9s %7s" % (
        "program", "config", "wall_med", "cpu_min", "cpu_med", "ratio",
        "rss_MiB", "ratio"))
    for name, argv, stdin, extra in spec["workloads"]:
        r = measure(spec, name, argv, stdin, extra)
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


if __name__ == "__main__":
    main()
