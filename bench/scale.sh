#!/usr/bin/env bash
# Data scale (issue 12): the whole recommender pipeline from scratch on generated ratings of
# growing size, each stage's wall time and peak RSS, and the growth ratio between sizes.
#
#   bench/scale.sh            # 1M rows / 100k customers / 2k products, then 10M / 1M / 20k
#   bench/scale.sh 100m       # also 100M / 5M / 50k: a ~9 GB CSV, ~12 GB of disk in all (opt-in)
#   SIZES="1m" bench/scale.sh # only the sizes named (1m, 10m, 100m)
#   STAGES=ingest bench/scale.sh  # only the stages named, in pipeline order (default: all four;
#                                 # a stage whose inputs are missing runs the stages before it too)
#
# Per size: `gen-data` writes the CSV into bench/data/scale-SIZE/ (git-ignored; deleted again at
# the end unless KEEP_DATA=1), then every stage runs in its own `warez-pipe run --stage NAME
# --json` (the stages before it are fresh by then, so only NAME runs), under GNU time: the JSON
# run report gives the stage's own wall time, GNU time the process's peak RSS (so a stage's
# figure includes the engine's hashing and cache copies of its outputs), and its CPU time (user +
# system: on a shared machine it follows the load less than the wall time does). Writes
# bench/out/scale.md with the CPU model, the load average and the commit measured.
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
: >"$results"
for size in "${sizes[@]}"; do
    work=$data/scale-$size
    rm -rf "$work"
    mkdir -p "$work/data" "$work/pipelines"
    cp -r avro "$work/"
    sed 's#ratings: data/ratings_small.csv#ratings: data/ratings.csv#' pipelines/recommender.yaml \
        >"$work/pipelines/recommender.yaml"
    # shellcheck disable=SC2086
    "$warez" gen-data ${gen_args[$size]} --seed 42 --out "$work/data/ratings.csv" >&2
    csv_bytes=$(stat -c %s "$work/data/ratings.csv")
    cat "$work/data/ratings.csv" >/dev/null # page cache warm, as for every later read
    for stage in "${stages[@]}"; do
        (cd "$work" && /usr/bin/time -f '%M %U %S' -o "$work/time.txt" \
            "$warez" run --stage "$stage" --json pipelines/recommender.yaml >"$work/report.json" 2>"$work/stderr.txt") ||
            { echo "error: stage $stage failed at size $size:" >&2; tail -5 "$work/stderr.txt" >&2; exit 1; }
        seconds=$(python3 -c 'import json, sys
report = json.load(open(sys.argv[1]))
stages = report["stages"] if isinstance(report, dict) else report
print(next(s["seconds"] for s in stages if s["stage"] == sys.argv[2] and s["outcome"] == "ran"))' \
            "$work/report.json" "$stage")
        read -r kb user sys < <(tail -1 "$work/time.txt")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$stage" "$seconds" "$kb" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$csv_bytes" >>"$results"
        echo "$size $stage: ${seconds}s, peak RSS $((kb / 1024)) MiB" >&2
    done
    [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$work"
done

python3 - "$results" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$commit" \
    "$(nproc)" >"$out/scale.md" <<'PY'
import sys
from collections import defaultdict

results, cpu, load, commit, cores = sys.argv[1:]
rows = defaultdict(dict)
csv_bytes = {}
for line in open(results):
    size, stage, seconds, kb, cpu_seconds, file_bytes = line.split("\t")
    rows[stage][size] = (float(seconds), int(kb) * 1024, float(cpu_seconds))
    csv_bytes[size] = int(file_bytes)
sizes = [s for s in ("1m", "10m", "100m") if s in csv_bytes]
label = {"1m": "1M", "10m": "10M", "100m": "100M"}
pairs = [(a, b) for a, b in zip(sizes, sizes[1:])]
head = ["stage"] + [f"{label[s]}: time (CPU)" for s in sizes] + [f"{label[s]}: peak RSS" for s in sizes]
head += [f"time (CPU) {label[b]}/{label[a]}" for a, b in pairs]
print(f"CPU: {cpu} ({cores} cores); commit {commit}; load average {load} when the runs ended.")
print("CSV sizes: " + ", ".join(f"{label[s]} rows {csv_bytes[s] / 1e6:.0f} MB" for s in sizes) + ".")
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
ingest = rows.get("ingest", {})
print()
for s in sizes:
    if s in ingest:
        seconds, rss, _ = ingest[s]
        print(f"- ingest {label[s]}: {csv_bytes[s] / seconds / 1e6:.0f} MB/s of CSV, peak RSS {rss / csv_bytes[s]:.2f}× the file size")
PY
cat "$out/scale.md"
