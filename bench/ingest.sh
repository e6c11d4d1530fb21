#!/usr/bin/env bash
# Ingest + id maps of the 1M-row synthetic ratings file: warez-pipe's `ingest` stage vs the
# notebook's pandas (read_csv + unique + map). Generates the file with gen-data into bench/out/
# (git-ignored), runs each side RUNS times (default 5), and writes bench/out/ingest.md
# (median wall and CPU time, peak resident memory, as ratios too) plus the raw JSON lines. The
# machine's load average goes into the report: on a shared 2-core box the wall time follows it,
# the CPU time much less.
#
# usage: bench/ingest.sh            (PYTHON=... picks a Python with pandas; default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

out=bench/out
csv=$out/ratings_1m.csv
runs=${RUNS:-5}
python=${PYTHON:-.venv/bin/python}
gen_args=(--rows 1000000 --customers 100000 --products 2000 --seed 42)
mkdir -p "$out"

cargo build --release --quiet --bin warez-pipe --example ingest_bench
target/release/warez-pipe gen-data "${gen_args[@]}" --out "$csv"
"$python" -c 'import pandas' || { echo "error: $python has no pandas (set PYTHON=...)" >&2; exit 1; }

# One untimed read of each first, so both sides start with the file in the page cache.
cat "$csv" >/dev/null
: >"$out/ingest_warez.jsonl"
: >"$out/ingest_pandas.jsonl"
for _ in $(seq "$runs"); do
    target/release/examples/ingest_bench "$csv" >>"$out/ingest_warez.jsonl"
    "$python" bench/ingest_pandas.py "$csv" >>"$out/ingest_pandas.jsonl"
done

"$python" - "$out" "$runs" "${gen_args[*]}" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json
import statistics
import sys

out, runs, gen_args, load = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sides = {}
for side in ("warez", "pandas"):
    with open(f"{out}/ingest_{side}.jsonl") as lines:
        sides[side] = [json.loads(line) for line in lines]
w, p = sides["warez"], sides["pandas"]
for key in ("rows", "customers", "products"):
    assert w[0][key] == p[0][key], f"{key}: warez-pipe {w[0][key]} vs pandas {p[0][key]}"
size = w[0]["file_bytes"]
secs = {side: statistics.median(r["seconds"] for r in runs_) for side, runs_ in sides.items()}
cpu = {side: statistics.median(r["cpu_seconds"] for r in runs_) for side, runs_ in sides.items()}
rss = {side: max(r["peak_rss_bytes"] for r in runs_) for side, runs_ in sides.items()}
mib = lambda n: f"{n / 2**20:.0f} MiB"
pandas_imports = max(r["rss_after_imports_bytes"] for r in p)
report = f"""# Ingest + id maps, 1M-row file

File: `gen-data {gen_args}`: {w[0]['rows']:,} rows, {w[0]['customers']:,} customers,
{w[0]['products']:,} products, {size / 1e6:.1f} MB. Median of {runs} runs each, page cache warm,
load average {load} when the runs ended (2 cores).

| | wall time | CPU time | peak RSS | peak RSS / file size |
|---|---|---|---|---|
| warez-pipe `ingest` (read, validate, map, write ratings.bin + maps) | {secs['warez']:.3f} s | {cpu['warez']:.3f} s | {mib(rss['warez'])} | {rss['warez'] / size:.2f}× |
| pandas `read_csv` + `unique` + `map` (in memory only) | {secs['pandas']:.3f} s | {cpu['pandas']:.3f} s | {mib(rss['pandas'])} | {rss['pandas'] / size:.2f}× |
| ratio pandas / warez-pipe | {secs['pandas'] / secs['warez']:.1f}× | {cpu['pandas'] / cpu['warez']:.1f}× | {rss['pandas'] / rss['warez']:.1f}× | |

Targets (issue 3): ≤ 0.3 s and peak memory ≤ 3× the file size. pandas' peak RSS includes
{mib(pandas_imports)} for the interpreter and its imports; warez-pipe's is the whole process.
Raw runs: `ingest_warez.jsonl`, `ingest_pandas.jsonl`.
"""
with open(f"{out}/ingest.md", "w") as md:
    md.write(report)
print(report)
PY
