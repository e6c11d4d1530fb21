#!/usr/bin/env python3
"""Growth tables from the samples of `SAMPLES=FILE bench/engine_side_by_side.sh`.

    bench/engine_growth.py FILE...

Each FILE holds one line per measurement: pipeline folder (`<shape>-<stages>`), command, side
(before/after), run number, wall s, CPU s, peak RSS MB (tab-separated). Prints, per binary, shape
and command: the CPU time's min and median at each size, and the growth from the smallest to the
largest size as the ratio of the medians, of the minima, and the range of the per-run ratios
(run i at the large size over run i at the small one: both were measured within a minute of
each other, so they saw about the same load). Not run by CI.
"""
import collections
import statistics
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    # (side, shape, command) -> size -> run -> cpu
    cpu = collections.defaultdict(lambda: collections.defaultdict(dict))
    order = []
    for number, name in enumerate(sys.argv[1:]):
        for line in open(name):
            folder, command, side, run, _wall, seconds, _rss = line.rstrip("\n").split("\t")
            shape, stages = folder.rsplit("-", 1)
            key = (side, shape, command)
            if key not in order:
                order.append(key)
            cpu[key][int(stages)][(number, int(run))] = float(seconds)
    print("| binary | shape | command | small: min / median CPU s (n) | large: min / median CPU s (n)"
          " | growth: medians / minima | growth per run: min–median–max |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(order, key=lambda k: (k[0] != "before", k[1], order.index(k))):
        side, shape, command = key
        sizes = sorted(cpu[key])
        small, large = cpu[key][sizes[0]], cpu[key][sizes[-1]]
        pairs = sorted(large[run] / small[run] for run in large if run in small)
        cells = []
        for runs in (small, large):
            values = list(runs.values())
            cells.append(f"{min(values):.2f} / {statistics.median(values):.2f} ({len(values)})")
        medians = statistics.median(large.values()) / statistics.median(small.values())
        minima = min(large.values()) / min(small.values())
        spread = f"{pairs[0]:.1f}–{statistics.median(pairs):.1f}–{pairs[-1]:.1f}×" if pairs else "-"
        print(f"| {side} | {shape} {sizes[0]:,}→{sizes[-1]:,} | `{command}` | {cells[0]} | {cells[1]}"
              f" | {medians:.1f}× / {minima:.1f}× | {spread} |")


if __name__ == "__main__":
    main()
