#!/usr/bin/env python3
"""Growth tables from the samples of `SAMPLES=FILE bench/engine_side_by_side.sh`.

    bench/engine_growth.py FILE...

Each FILE holds one line per measurement: pipeline folder (`<shape>-<stages>`), command, side
(before/after), run number, wall s, CPU s, peak RSS MB (tab-separated); several FILEs are pooled.
Prints a Markdown table with, per shape, command and binary: the CPU time's min and median at the
smallest and the largest size, and the growth between them as the ratio of the medians, of the
minima, and the range of the per-run ratios (run i at the large size over run i at the small
one: measured within a minute or two of each other, so they saw about the same load). Not run
by CI.
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
    sides = sorted({key[0] for key in order}, key=lambda side: side != "before")
    print("| shape | command | "
          + " | ".join(f"{side}: CPU s, small → large (min / median) | {side}: growth, medians (minima; per run)"
                       for side in sides) + " |")
    print("|---|---|" + "---|---|" * len(sides))
    rows = []
    for _, shape, command in order:
        if (shape, command) not in rows:
            rows.append((shape, command))
    for shape, command in sorted(rows, key=lambda row: row[0]):
        cells = []
        for side in sides:
            runs = cpu.get((side, shape, command))
            if not runs:
                cells += ["-", "-"]
                continue
            sizes = sorted(runs)
            small, large = runs[sizes[0]], runs[sizes[-1]]
            pairs = sorted(large[run] / small[run] for run in large if run in small)
            cells.append(" → ".join(f"{min(r.values()):.3f} / {statistics.median(r.values()):.3f}"
                                    for r in (small, large)))
            medians = statistics.median(large.values()) / statistics.median(small.values())
            minima = min(large.values()) / min(small.values())
            cells.append(f"**{medians:.1f}×** ({minima:.1f}×; {pairs[0]:.1f}–{pairs[-1]:.1f}×)")
        print(f"| {shape} {sizes[0]:,} → {sizes[-1]:,} | `{command}` | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
