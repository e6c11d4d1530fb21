"""Cores in use by a process and its descendants, every 0.5 s until it exits (bench/sweep.sh).

usage: python3 bench/sweep_cores.py PID   ->  lines "SECONDS_SINCE_START CORES"

CPU time (user + system) of every process in the tree, read from /proc/PID/stat, plus what
each collected from its children that ended (cutime + cstime: an ended child's time moves
there); cores in use over an interval = CPU seconds spent in it / its length.
"""

import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
root = int(sys.argv[1])


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name may hold spaces: the fields start after its closing parenthesis.
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ppid, utime + stime, cutime + cstime


def tree_ticks():
    """CPU ticks of the tree rooted at `root`, or None once it has exited."""
    parents, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid, own, reaped = stat(int(entry))
        except (OSError, ValueError):
            continue
        parents[int(entry)] = ppid
        ticks[int(entry)] = own + reaped
    if root not in parents:
        return None
    total = 0
    for pid in parents:
        walk = pid
        while walk not in (root, 0, 1) and walk in parents:
            walk = parents[walk]
        if walk == root:
            total += ticks[pid]
    return total


start = time.monotonic()
last_time, last_ticks = start, tree_ticks()
while last_ticks is not None:
    time.sleep(0.5)
    now, ticks = time.monotonic(), tree_ticks()
    if ticks is None:
        break
    cores = (ticks - last_ticks) / TICK / (now - last_time)
    print(f"{now - start:.1f} {max(cores, 0.0):.2f}", flush=True)
    last_time, last_ticks = now, ticks
