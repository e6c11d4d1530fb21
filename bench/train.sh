#!/usr/bin/env bash
# warez-pipe's train stage vs Keras (bench/train_keras.py) on the same ratings file: training
# samples per second and validation MSLE, side by side, over several seeds (validation MSLE after
# one epoch moves with the seed by about as much as the two trainers differ). Writes
# bench/out/train.md.
#
# Every figure is recorded with what produced it: the CPU model, the commit (with `+dirty` when
# the worktree had changes), the load average when the run ended, and the run's peak RSS and CPU
# time (user + system, all threads: less sensitive to a shared machine's load than samples/s).
#
# usage: bench/train.sh [RATINGS_CSV]   (default: the 1M-row file bench/ingest.sh generates)
#        SEEDS="42 1 2" (default) picks the seeds; KERAS=0 skips the Keras side.
#        WAREZ=path/to/warez-pipe runs that binary instead of building this tree (to compare two
#        builds side by side), COMMIT=label records what it was built from (default "unknown");
#        OUT=folder writes there instead of bench/out (one folder per binary compared).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$(realpath -m "${OUT:-$root/bench/out}")
csv=$(realpath -m "${1:-$root/bench/out/ratings_1m.csv}")
seeds=${SEEDS:-42 1 2}
python=${PYTHON:-.venv/bin/python}
keras=${KERAS:-1}
mkdir -p "$out"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
if [ -n "${WAREZ:-}" ]; then
    warez=$(realpath "$WAREZ")
    commit=${COMMIT:-unknown}
else
    commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo +dirty)
    cargo build --release --quiet --bin warez-pipe
    warez=$root/target/release/warez-pipe
fi
if [ ! -f "$csv" ]; then
    "$warez" gen-data --rows 1000000 --customers 100000 --products 2000 --seed 42 --out "$csv"
fi
# The venv's ONNX Runtime, so no first-use provisioning lands inside the timed stage.
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$("$python" -c 'import glob, os, onnxruntime as o; print(sorted(glob.glob(os.path.join(os.path.dirname(o.__file__), "capi", "libonnxruntime.so.*")))[-1])')}

# warez-pipe: ingest + train in a throwaway project with its own cache, one run per seed.
work=$out/train-work
rm -rf "$work" && mkdir -p "$work/data"
ln -s "$csv" "$work/data/ratings.csv"
cat > "$work/pipeline.yaml" <<'YAML'
name: bench-train
model_path: model
stages:
  ingest:
    kind: ingest
    deps: { ratings: data/ratings.csv }
  train:
    kind: train
    deps: { ratings: model/ratings.bin }
YAML
: > "$out/train_warez.jsonl"; : > "$out/train_keras.jsonl"
for seed in $seeds; do
    (cd "$work" && /usr/bin/time -f '%M %U %S' -o time.txt "$warez" run pipeline.yaml --set "train.seed=$seed" --json > run.json 2> run.log)
    load=$(cut -d' ' -f1 /proc/loadavg)
    python3 - "$work" "$seed" "$cpu" "$commit" "$load" >> "$out/train_warez.jsonl" <<'PY'
import json, re, sys
work, seed, cpu, commit, load = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
run = {s["stage"]: s for s in json.load(open(f"{work}/run.json"))["stages"]}
metrics = json.load(open(f"{work}/model/metrics.json"))
loop = re.search(r"\((\d+) training samples/s\)", open(f"{work}/run.log").read())
time = open(f"{work}/time.txt").read().split()
print(json.dumps({
    "seed": seed,
    "train_rows": metrics["train_rows"],
    "stage_seconds": run["train"]["seconds"],
    "stage_samples_per_second": round(metrics["train_rows"] * len(metrics["epochs"]) / run["train"]["seconds"]),
    "loop_samples_per_second": int(loop.group(1)),
    "val_msle": metrics["epochs"][-1]["val_msle"],
    # The whole run (ingest is restored from the cache after the first seed).
    "peak_rss_mib": round(int(time[0]) / 1024),
    "cpu_seconds": round(float(time[1]) + float(time[2]), 2),
    "cpu": cpu,
    "commit": commit,
    "load": load,
}))
PY
    [ "$keras" = 1 ] || continue
    bench/train_keras.sh "$csv" "$out/train_keras_$seed.json" "$seed" > /dev/null 2>&1
    python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$out/train_keras_$seed.json" >> "$out/train_keras.jsonl"
done

python3 - "$out" "$csv" > "$out/train.md" <<'PY'
import json, statistics, sys
out, csv = sys.argv[1], sys.argv[2].rsplit("/", 1)[-1]
w = [json.loads(line) for line in open(f"{out}/train_warez.jsonl")]
k = [json.loads(line) for line in open(f"{out}/train_keras.jsonl")]
loads = ", ".join(f"{r['load']:.1f}" for r in w)
med = lambda rows, key: statistics.median(r[key] for r in rows)
mean = lambda rows, key: statistics.fmean(r[key] for r in rows)
seeds = ", ".join(str(r["seed"]) for r in w)
print(f"# Training, 1 epoch at batch 64 on `{csv}` ({w[0]['train_rows']:,} training rows), seeds {seeds}\n")
print(f"CPU: {w[0]['cpu']}; warez-pipe at commit {w[0]['commit']}; load average at the end of each run: {loads}.\n")
print("| | samples/s, training loop | samples/s, whole stage | validation MSLE, mean (per seed) |")
print("|---|---|---|---|")
per = lambda rows: ", ".join(f"{r['val_msle']:.5f}" for r in rows)
print(f"| warez-pipe `train` | {med(w, 'loop_samples_per_second'):,.0f} | {med(w, 'stage_samples_per_second'):,.0f} | {mean(w, 'val_msle'):.5f} ({per(w)}) |")
if k:
    print(f"| {k[0]['framework']} | {med(k, 'samples_per_second'):,.0f} | — | {mean(k, 'val_msle'):.5f} ({per(k)}) |")
    ratio = med(w, 'loop_samples_per_second') / med(k, 'samples_per_second')
    print(f"| ratio warez-pipe / Keras | {ratio:.0f}× | | {mean(w, 'val_msle') / mean(k, 'val_msle'):.3f} |")
print()
print("Samples/s are medians. The training loop is timed the same way on both sides (first batch to")
print("validation); the whole stage adds building the graphs, ONNX Runtime sessions, scoring the")
print("validation rows and writing every artifact.")
print(f"Peak RSS of the run (ingest + train), median: {med(w, 'peak_rss_mib'):,.0f} MiB.")
cpu = ", ".join(f"{r['cpu_seconds']:.2f}" for r in w)
print(f"CPU time of each run (user + system; the first seed's run includes ingest): {cpu} s.")
PY
cat "$out/train.md"
