#!/usr/bin/env bash
# The Keras/TensorFlow peer of warez-pipe's train stage (bench/train_keras.py), run in the
# project's Python venv (.venv, made by scripts/test; created here with just what this needs if
# missing).
#
# usage: bench/train_keras.sh [RATINGS_CSV [OUT_JSON [SEED]]]
#   defaults: data/ratings_uuid_small.csv, bench/out/keras.json, 42
set -euo pipefail
cd "$(dirname "$0")/.."
ratings=${1:-data/ratings_uuid_small.csv}
out=${2:-bench/out/keras.json}
seed=${3:-42}
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
if ! .venv/bin/python -c 'import avro, keras, pandas, tensorflow' 2>/dev/null; then
    .venv/bin/python -m pip install --disable-pip-version-check -q avro tensorflow-cpu pandas
fi
exec .venv/bin/python bench/train_keras.py "$ratings" "$out" "$seed"
