#!/usr/bin/env bash
# No-op and first-hash timings of warez-pipe beside `dvc repro` and blake3 itself.
#
#   bench/noop.sh            # writes bench/out/noop.md
#
# Needs: a release build (built here), python3. dvc and the `blake3` Python package (the
# reference for "blake3's own speed", like b3sum) are installed into bench/.venv-dvc
# (git-ignored) on first use. Not run by CI. Uses about 2 GB of disk under bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
work=$out/noop-work
mkdir -p "$out"

cargo build --release --quiet --bin warez-pipe
warez=$root/target/release/warez-pipe

venv=$root/bench/.venv-dvc
if [[ ! -x $venv/bin/dvc ]] || ! "$venv/bin/python" -c 'import blake3' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet dvc blake3
fi
export PATH=$venv/bin:$PATH

# One folder per tool and input size, each a copy of bench/noop/ with the same input bytes.
setup() { # setup DIR INPUT_FILE
    rm -rf "$1"
    mkdir -p "$1/data"
    cp "$root"/bench/noop/*.yaml "$1/"
    cp "$2" "$1/data/input.bin"
    (cd "$1" && dvc init --no-scm --quiet && dvc config core.analytics false)
}

results=$out/noop.json
echo "{}" > "$results"
for size in 1 1024; do
    input=$work/input-${size}mb.bin
    mkdir -p "$work"
    head -c "$(( size * 1024 * 1024 ))" /dev/urandom > "$input"
    setup "$work/warez-${size}mb" "$input"
    setup "$work/dvc-${size}mb" "$input"
    rm "$input"
    python3 "$root/bench/noop_timing.py" "$warez" "$work/warez-${size}mb" "$work/dvc-${size}mb" "$results" "$size"
done
python3 "$root/bench/noop_timing.py" --report "$results" > "$out/noop.md"
cat "$out/noop.md"
