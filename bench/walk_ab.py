#!/usr/bin/python3
"""Interleaved A/B timing of whole commands (e.g. two builds of `morsel walk`
against find and fdfind), for a machine whose speed drifts: each round runs
every command once, in an order that rotates from round to round; the
medians of wall time and of the child's user+system CPU time are printed,
then the ratios asked for.

    bench/walk_ab.py REPS CMDFILE [A:B ...]

CMDFILE has one command a line: a name, a tab, the shell command. Output
goes to /dev/null. Each command runs once unmeasured first (warm cache).
Example (BENCHMARKS.md, directory walk):

    T=/tmp/morsel-walk-tree
    printf 'find\\tfind %s\\nold\\t/path/old/morsel walk %s\\nnew\\tbuild-bench/morsel walk %s\\n' \\
        $T $T $T > /tmp/cmds
    bench/walk_ab.py 15 /tmp/cmds new:old old:find new:find
"""
import os
import statistics
import subprocess
import sys
import time


def run(cmd, devnull):
    start = time.perf_counter()
    child = subprocess.Popen(cmd, shell=True, stdout=devnull, stderr=devnull)
    _, _, usage = os.wait4(child.pid, 0)
    return (time.perf_counter() - start) * 1000, (usage.ru_utime + usage.ru_stime) * 1000


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    reps = int(sys.argv[1])
    with open(sys.argv[2]) as f:
        cmds = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    names = [name for name, _ in cmds]
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    devnull = os.open(os.devnull, os.O_WRONLY)
    for _, cmd in cmds:
        run(cmd, devnull)
    for r in range(reps):
        k = r % len(cmds)
        for name, cmd in cmds[k:] + cmds[:k]:
            w, c = run(cmd, devnull)
            wall[name].append(w)
            cpu[name].append(c)
    mw = {n: statistics.median(wall[n]) for n in names}
    mc = {n: statistics.median(cpu[n]) for n in names}
    for n in names:
        print(f"{n:12s} wall {mw[n]:8.1f} ms   cpu {mc[n]:8.1f} ms")
    for pair in sys.argv[3:]:
        a, b = pair.split(":")
        print(f"{a} / {b}: wall {mw[a] / mw[b]:.3f}  cpu {mc[a] / mc[b]:.3f}")


if __name__ == "__main__":
    main()
