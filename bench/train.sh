#!/usr/bin/env bash
# warez-pipe's train stage vs Keras (bench/train_keras.py) on the same ratings file: training
# samples per second and validation MSLE, side by side. Writes bench/out/train.md.
#
# usage: bench/train.sh [RATINGS_CSV]   (default: the 1M-row file bench/ingest.sh generates)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
csv=${1:-$out/ratings_1m.csv}
mkdir -p "$out"
cargo build --release --quiet --bin warez-pipe
warez=$root/target/release/warez-pipe
if [ ! -f "$csv" ]; then
    "$warez" gen-data --rows 1000000 --customers 100000 --products 2000 --seed 42 --out "$csv"
fi

# warez-pipe: ingest + train in a throwaway project with its own cache, train forced to run.
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
(cd "$work" && "$warez" run pipeline.yaml --json > run.json 2> run.log)
python3 - "$work" "$csv" > "$out/train_warez.json" <<'PY'
import json, sys
work, csv = sys.argv[1], sys.argv[2]
run = {s["stage"]: s for s in json.load(open(f"{work}/run.json"))["stages"]}
metrics = json.load(open(f"{work}/model/metrics.json"))
rows = metrics["train_rows"] * len(metrics["epochs"])
print(json.dumps({
    "ratings": csv.rsplit("/", 1)[-1],
    "train_rows": metrics["train_rows"],
    "stage_seconds": run["train"]["seconds"],
    "samples_per_second": round(rows / run["train"]["seconds"]),
    "val_msle": metrics["epochs"][-1]["val_msle"],
}))
PY
bench/train_keras.sh "$csv" "$out/train_keras.json" 42 > /dev/null

python3 - "$out" > "$out/train.md" <<'PY'
import json, sys
out = sys.argv[1]
w = json.load(open(f"{out}/train_warez.json"))
k = json.load(open(f"{out}/train_keras.json"))
print(f"# Training, 1 epoch at batch 64 on `{w['ratings']}` ({w['train_rows']:,} training rows)\n")
print("| | samples/s | validation MSLE |")
print("|---|---|---|")
print(f"| warez-pipe `train` (whole stage: graphs, training, validation, artifacts) | {w['samples_per_second']:,} | {w['val_msle']:.6f} |")
print(f"| {k['framework']} (training loop only) | {k['samples_per_second']:,} | {k['val_msle']:.6f} |")
print(f"| ratio warez-pipe / Keras | {w['samples_per_second'] / k['samples_per_second']:.1f}× | {w['val_msle'] / k['val_msle']:.3f} |")
PY
cat "$out/train.md"
