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

# One folder per tool, each a copy of bench/noop/ with its own data.
setup() { # setup DIR INPUT_MB
    rm -rf "$1"
    mkdir -p "$1/data"
    cp "$root"/bench/noop/*.yaml "$1/"
    head -c "$(( $2 * 1024 * 1024 ))" /dev/urandom > "$1/data/input.bin"
    (cd "$1" && dvc init --no-scm --quiet && dvc config core.analytics false)
}

results=$out/noop.json
echo "{}" > "$results"

for size in 1 1024; do
    dir=$work/input-${size}mb
    setup "$dir" "$size"
    python3 "$root/bench/noop_timing.py" "$warez" "$dir" "$results" "$size"
done
python3 "$root/bench/noop_timing.py" --report "$results" > "$out/noop.md"
cat "$out/noop.md"
