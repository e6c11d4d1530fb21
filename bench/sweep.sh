#!/usr/bin/env bash
# The six-variant sweep (pipelines/recommender-sweep.yaml: n_factors 16/32/64 × dropout 0.1/0.2,
# `select` by validation MSLE, export and Avro of the winner) on 1M generated ratings: wall time
# and the cores in use over time (CPU time of warez-pipe and its child processes, sampled every
# 0.5 s), then a second run after adding one n_factors value, which must train only the new
# variants (asserted from the run's JSON summary). Writes bench/out/sweep.md.
#
# usage: bench/sweep.sh            EPOCHS=1 (default) sets the trainings' epochs; JOBS=$(nproc) -j.
# Not run by CI; uses bench/out/ (gitignored): ratings_1m.csv (shared with bench/train.sh) and
# sweep-work/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
csv=$out/ratings_1m.csv
epochs=${EPOCHS:-1}
jobs=${JOBS:-$(nproc)}
python=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
cargo build --release --quiet --bin warez-pipe
warez=$root/target/release/warez-pipe
if [ ! -f "$csv" ]; then
    "$warez" gen-data --rows 1000000 --customers 100000 --products 2000 --seed 42 --out "$csv"
fi
# The venv's ONNX Runtime, so no first-use provisioning lands inside the timed run.
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$("$python" -c 'import glob, os, onnxruntime as o; print(sorted(glob.glob(os.path.join(os.path.dirname(o.__file__), "capi", "libonnxruntime.so.*")))[-1])')}

# The shipped sweep, reading the generated file, in a throwaway project with its own cache.
work=$out/sweep-work
rm -rf "$work" && mkdir -p "$work/data" "$work/pipelines" "$work/avro"
ln -s "$csv" "$work/data/ratings.csv"
cp avro/RecommenderModel.avsc "$work/avro/"
sed -e 's#data/ratings_small.csv#data/ratings.csv#' \
    -e "s#epochs: [0-9]*#epochs: $epochs#" \
    pipelines/recommender-sweep.yaml > "$work/pipelines/sweep.yaml"
grep -q "data/ratings.csv" "$work/pipelines/sweep.yaml"
grep -q "epochs: $epochs" "$work/pipelines/sweep.yaml"

# run NAME: one timed run with its CPU sampled; writes NAME.json (summary), NAME.log, NAME.cores
run() {
    local name=$1
    local start end
    start=$(date +%s.%N)
    (cd "$work" && "$warez" run pipelines/sweep.yaml -j "$jobs" --json > "$name.json" 2> "$name.log") &
    local pid=$!
    python3 "$root/bench/sweep_cores.py" "$pid" > "$work/$name.cores" &
    local sampler=$!
    wait "$pid"
    end=$(date +%s.%N)
    wait "$sampler"
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }' > "$work/$name.wall"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
run first
# One more n_factors value: the two variants 128 × {0.1, 0.2} are new.
sed -i 's#n_factors: \[16, 32, 64\]#n_factors: [16, 32, 64, 128]#' "$work/pipelines/sweep.yaml"
grep -q "n_factors: \[16, 32, 64, 128\]" "$work/pipelines/sweep.yaml"
run second
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work" "$jobs" "$epochs" "$load_before" "$load_after" > "$out/sweep.md" <<'PY'
import json, platform, subprocess, sys
work, jobs, epochs, load_before, load_after = sys.argv[1:]

def stages(name):
    return {s["stage"]: s for s in json.load(open(f"{work}/{name}.json"))["stages"]}

def trained(name):
    return sorted(s for s, r in stages(name).items() if s.startswith("train@") and r["outcome"] == "ran")

first, second = trained("first"), trained("second")
assert len(first) == 6, first
assert second == ["train@n_factors=128,dropout=0.1", "train@n_factors=128,dropout=0.2"], second
assert stages("second")["ingest"]["outcome"] == "up_to_date"
selection = json.load(open(f"{work}/models/recommender-sweep/selection.json"))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"CPU: {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; commit {commit}; "
      f"load average before/after: {load_before} / {load_after}; -j {jobs}; epochs {epochs}\n")
print("| run | wall s | stages that trained | seconds per training (median) | cores in use: mean / max |")
print("|---|---|---|---|---|")
for name, label, ran in (("first", "from scratch, 6 variants", first), ("second", "after adding n_factors 128", second)):
    report = stages(name)
    seconds = sorted(report[s]["seconds"] for s in ran)
    samples = [float(line.split()[1]) for line in open(f"{work}/{name}.cores") if line.strip()]
    mean = sum(samples) / len(samples) if samples else 0.0
    wall = open(f"{work}/{name}.wall").read()
    print(f"| {label} | {wall} | {len(ran)} | {seconds[len(seconds) // 2]:.1f} | {mean:.2f} / {max(samples, default=0):.2f} |")
print(f"\nWinner: `{selection['winner']}` of {len(selection['variants'])} "
      f"(validation MSLE {min(v['metric'] for v in selection['variants']):.5f}).\n")
print("Cores in use over the first run (one sample per 0.5 s):\n")
print("```")
print(" ".join(f"{float(line.split()[1]):.1f}" for line in open(f"{work}/first.cores") if line.strip()))
print("```")
PY
cat "$out/sweep.md"
