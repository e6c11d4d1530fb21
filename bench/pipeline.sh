#!/usr/bin/env bash
# The whole small pipeline from scratch (fresh cache, every stage runs) vs bench/notebook.py doing
# what the notebook does in one Python process (pandas, Keras, TensorFlow freeze + SavedModel,
# Python avro). Wall time of the whole command, median of RUNS (default 3). Writes
# bench/out/pipeline.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
runs=${RUNS:-3}
mkdir -p "$out"
cargo build --release --quiet --bin warez-pipe
warez=$root/target/release/warez-pipe
python=${PYTHON:-.venv/bin/python}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$("$python" -c 'import glob, os, onnxruntime as o; print(sorted(glob.glob(os.path.join(os.path.dirname(o.__file__), "capi", "libonnxruntime.so.*")))[-1])')}

seconds() { python3 -c 'import subprocess, sys, time; t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(time.perf_counter() - t)' "$@"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

work=$out/pipeline-work
: > "$out/pipeline_warez.txt"; : > "$out/pipeline_notebook.txt"
for _ in $(seq "$runs"); do
    rm -rf "$work" && mkdir -p "$work"
    cp -r pipelines avro data "$work/"
    (cd "$work" && seconds "$warez" run pipelines/recommender.yaml) >> "$out/pipeline_warez.txt"
    seconds "$python" bench/notebook.py data/ratings_small.csv avro/RecommenderModel.avsc "$work/notebook" >> "$out/pipeline_notebook.txt"
done
noop=$( (cd "$work" && seconds "$warez" run pipelines/recommender.yaml) )
w=$(median < "$out/pipeline_warez.txt"); n=$(median < "$out/pipeline_notebook.txt")
{
    echo "# The whole small pipeline (data/ratings_small.csv), from scratch, median of $runs"
    echo
    echo "| | wall time |"
    echo "|---|---|"
    echo "| warez-pipe \`run pipelines/recommender.yaml\`, empty cache | $(printf %.2f "$w") s |"
    echo "| bench/notebook.py (pandas + Keras + TF export + avro, incl. imports) | $(printf %.2f "$n") s |"
    echo "| ratio notebook / warez-pipe | $(python3 -c "print(f'{$n / $w:.1f}')")× |"
    echo "| warez-pipe again, nothing changed (no-op) | $(printf %.3f "$noop") s |"
} > "$out/pipeline.md"
cat "$out/pipeline.md"
