#!/usr/bin/env bash
# Data scale (issue 12): the whole recommender pipeline from scratch on generated ratings of
# growing size, each stage's wall time and peak RSS, and the growth ratio between sizes.
#
#   bench/scale.sh            # 1M rows / 100k customers / 2k products, then 10M / 1M / 20k
#   bench/scale.sh 100m       # also 100M / 5M / 50k: a ~9 GB CSV, ~12 GB of disk in all (opt-in)
#   SIZES="1m" bench/scale.sh # only the sizes named (1m, 10m, 100m)
#   STAGES=ingest bench/scale.sh  # only the stages named, in pipeline order (default: all four;
#                                 # a stage whose inputs are missing runs the stages before it too)
#   REPEAT=1 bench/scale.sh   # runs per stage and size (default 3; the figures are the medians)
#
# Per size: `gen-data` writes the CSV into bench/data/scale-SIZE/ (git-ignored; deleted again at
# the end unless KEEP_DATA=1); then every stage runs in its own `warez-pipe run --stage NAME
# --json` (the stages before it are fresh by then, so only NAME runs), under GNU time: the JSON
# run report gives the stage's own wall time, GNU time the process's peak RSS (so a stage's
# figure includes the engine's hashing and cache copies of its outputs), and its CPU time (user +
# system: on a shared machine it follows the load less than the wall time does).
#
# Each stage runs REPEAT times per size: first in pipeline order as above, then again from
# scratch after each round's earlier stages (its outputs and their cache objects removed, so it
# writes and caches them anew; its inputs stay); each round measures every size in turn. The figures are the medians: on a VM one run's
# wall time moves with what the kernel and the hypervisor make of the memory the stages before
# it freed and the bytes they left to write back (the same stage alone varies by 1.5x at 10M).
# Writes bench/out/scale.md with the CPU model, the load average and the commit measured.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
data=$root/bench/data
mkdir -p "$out" "$data"

sizes=(${SIZES:-1m 10m})
[[ ${1:-} == 100m ]] && sizes+=(100m)
declare -A gen_args=(
    [1m]="--rows 1000000 --customers 100000 --products 2000"
    [10m]="--rows 10000000 --customers 1000000 --products 20000"
    [100m]="--rows 100000000 --customers 5000000 --products 50000"
)
stages=(${STAGES:-ingest train export_tf write_avro})
repeat=${REPEAT:-3}

# WAREZ=path/to/warez-pipe measures another build (e.g. main's, for a before/after); COMMIT=…
# names the commit it was built from in the report (default: this checkout's).
if [[ -z ${WAREZ:-} ]]; then
    cargo build --release --quiet --bin warez-pipe
fi
warez=${WAREZ:-$root/target/release/warez-pipe}
python=${PYTHON:-$root/.venv/bin/python}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$("$python" -c 'import glob, os, onnxruntime as o; print(sorted(glob.glob(os.path.join(os.path.dirname(o.__file__), "capi", "libonnxruntime.so.*")))[-1])')}
export SOURCE_DATE_EPOCH=0

# The commit measured, taken before the runs (with a mark when the worktree differs from it).
commit=${COMMIT:-"$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes')"}
results=$out/scale.tsv

# Removes a stage's outputs and their cache objects (files, folders' manifests and files), as the
# lock file names them, so the next `run --stage` runs it from scratch.
forget_outputs() {
    python3 - "$1" "$2" <<'PY'
import os, re, shutil, sys

work, stage = sys.argv[1:]
hex64 = re.compile(r"[0-9a-f]{64}")
def sharded(folder, digest):
    return os.path.join(work, "cache", folder, digest[:2], digest[2:])
outputs, in_stage, in_outputs = [], False, False
for line in open(os.path.join(work, "pipelines", "recommender.lock")):
    if re.match(r"^  \S", line):
        in_stage, in_outputs = line.strip() == stage + ":", False
    elif in_stage and re.match(r"^    \S", line):
        in_outputs = line.strip() == "outputs:"
    elif in_stage and in_outputs:
        path, _, digest = line.strip().rpartition(": ")
        outputs.append((path, digest))
assert outputs, f"no outputs of {stage} in the lock file"
for path, digest in outputs:
    target = os.path.join(work, path)
    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    tree = sharded("trees", digest)
    digests = [digest]
    if os.path.exists(tree):
        digests += hex64.findall(open(tree).read())
        os.remove(tree)
    for each in digests:
        if os.path.exists(sharded("objects", each)):
            os.remove(sharded("objects", each))
PY
}

# Runs one stage (the stages before it are fresh) and appends its figures to the results.
measure_stage() {
    local size=$1 work=$2 stage=$3 csv_bytes=$4 round=$5
    (cd "$work" && /usr/bin/time -f '%M %U %S' -o "$work/time.txt" \
        "$warez" run --stage "$stage" --json pipelines/recommender.yaml >"$work/report.json" 2>"$work/stderr.txt") ||
        { echo "error: stage $stage failed at size $size:" >&2; tail -5 "$work/stderr.txt" >&2; exit 1; }
    seconds=$(python3 -c 'import json, sys
report = json.load(open(sys.argv[1]))
stages = report["stages"] if isinstance(report, dict) else report
print(next(s["seconds"] for s in stages if s["stage"] == sys.argv[2] and s["outcome"].startswith("ran")))' \
        "$work/report.json" "$stage")
    read -r kb user sys < <(tail -1 "$work/time.txt")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$stage" "$seconds" "$kb" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$csv_bytes" >>"$results"
    echo "$size $stage (run $round): ${seconds}s, peak RSS $((kb / 1024)) MiB" >&2
}

: >"$results"
declare -A csv_bytes
for size in "${sizes[@]}"; do
    work=$data/scale-$size
    rm -rf "$work"
    mkdir -p "$work/data" "$work/pipelines"
    cp -r avro "$work/"
    sed 's#ratings: data/ratings_small.csv#ratings: data/ratings.csv#' pipelines/recommender.yaml \
        >"$work/pipelines/recommender.yaml"
    # shellcheck disable=SC2086
    "$warez" gen-data ${gen_args[$size]} --seed 42 --out "$work/data/ratings.csv" >&2
    csv_bytes[$size]=$(stat -c %s "$work/data/ratings.csv")
done
# Round by round, every size in turn: a drift of the machine's speed over the minutes of a
# benchmark (a VM's neighbours) touches every size alike instead of the last size measured.
for round in $(seq "$repeat"); do
    for size in "${sizes[@]}"; do
        work=$data/scale-$size
        for stage in "${stages[@]}"; do
            ((round == 1)) || forget_outputs "$work" "$stage"
            # The CSV warm in the page cache, as for every later read of it.
            [[ $stage != ingest ]] || cat "$work/data/ratings.csv" >/dev/null
            measure_stage "$size" "$work" "$stage" "${csv_bytes[$size]}" "$round"
        done
    done
done
[[ ${KEEP_DATA:-0} == 1 ]] || for size in "${sizes[@]}"; do rm -rf "$data/scale-$size"; done

python3 - "$results" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$commit" \
    "$(nproc)" >"$out/scale.md" <<'PY'
import sys
from collections import defaultdict
from statistics import median

results, cpu, load, commit, cores = sys.argv[1:]
runs = defaultdict(lambda: defaultdict(list))  # stage → size → [(seconds, peak bytes, CPU seconds)]
csv_bytes = {}
for line in open(results):
    size, stage, seconds, kb, cpu_seconds, file_bytes = line.split("\t")
    runs[stage][size].append((float(seconds), int(kb) * 1024, float(cpu_seconds)))
    csv_bytes[size] = int(file_bytes)
sizes = [s for s in ("1m", "10m", "100m") if s in csv_bytes]
label = {"1m": "1M", "10m": "10M", "100m": "100M"}
pairs = [(a, b) for a, b in zip(sizes, sizes[1:])]
# Per stage and size: the median time, the median CPU time, the largest peak RSS.
rows = {
    stage: {
        size: (median(r[0] for r in each), max(r[1] for r in each), median(r[2] for r in each))
        for size, each in by_size.items()
    }
    for stage, by_size in runs.items()
}
counts = sorted({len(each) for by_size in runs.values() for each in by_size.values()})
head = ["stage"] + [f"{label[s]}: time (CPU)" for s in sizes] + [f"{label[s]}: peak RSS" for s in sizes]
head += [f"time (CPU) {label[b]}/{label[a]}" for a, b in pairs]
print(f"CPU: {cpu} ({cores} cores); commit {commit}; load average {load} when the runs ended.")
print("CSV sizes: " + ", ".join(f"{label[s]} rows {csv_bytes[s] / 1e6:.0f} MB" for s in sizes) + ".")
print(f"Medians of {' or '.join(map(str, counts))} runs per stage and size (peak RSS: the largest); growth as the ratio of the medians.")
print()
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for stage, by_size in rows.items():
    cells = [stage]
    cells += [f"{by_size[s][0]:.2f} s ({by_size[s][2]:.2f} s)" if s in by_size else "-" for s in sizes]
    cells += [f"{by_size[s][1] / 2**20:.0f} MiB" if s in by_size else "-" for s in sizes]
    cells += [
        f"{by_size[b][0] / by_size[a][0]:.1f}× ({by_size[b][2] / by_size[a][2]:.1f}×)" if a in by_size and b in by_size else "-"
        for a, b in pairs
    ]
    print("| " + " | ".join(cells) + " |")
print()
print("Each run, wall (CPU) seconds, the first in pipeline order:")
for stage, by_size in runs.items():
    shown = "; ".join(
        f"{label[s]} " + ", ".join(f"{r[0]:.2f} ({r[2]:.2f})" for r in by_size[s]) for s in sizes if s in by_size
    )
    print(f"- {stage}: {shown}")
ingest = rows.get("ingest", {})
print()
for s in sizes:
    if s in ingest:
        seconds, rss, _ = ingest[s]
        print(f"- ingest {label[s]}: {csv_bytes[s] / seconds / 1e6:.0f} MB/s of CSV (median), peak RSS {rss / csv_bytes[s]:.2f}× the file size")
PY
cat "$out/scale.md"
