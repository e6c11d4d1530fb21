#!/usr/bin/env bash
# Brings a pipeline made by bench/gen_stages.py up to date without one first run of all its
# stages: a first run of 100,000 `cmd` stages takes over an hour, because each stage's `sh` is
# started with `fork`, whose cost grows with the (large) warez-pipe process. Instead, the stages
# run in pipelines of CHUNK stages each (default 1,000: small processes, cheap forks), with the
# same stage text, so every stage's key is in the run cache; then one `run` of the whole
# pipeline restores and records them (no stage runs again but the fan's sink, left out of the
# chunks because it reads every middle output). The chunk pipelines and their lock files are
# removed afterwards; the cache and the whole pipeline's lock file are as a first run leaves them.
#
#   bench/engine_chunked_first_run.sh DIR [CHUNK]   # DIR holds pipeline.yaml; WAREZ_BIN as in engine_scale.sh
set -euo pipefail
dir=$1
chunk=${2:-1000}
warez=${WAREZ_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/warez-pipe}
cd "$dir"
python3 - "$chunk" <<'PY'
import re
import sys

chunk = int(sys.argv[1])
head, body = open("pipeline.yaml").read().split("stages:\n", 1)
stages = [s for s in re.split(r"(?m)^(?=  \S)", body) if s and not s.startswith("  sink:")]
source = [s for s in stages if s.startswith("  src:")]
rest = [s for s in stages if not s.startswith("  src:")]
for number, start in enumerate(range(0, len(rest), chunk)):
    with open(f"chunk{number:05d}.yaml", "w") as f:
        f.write(f"name: chunk{number:05d}\nstages:\n" + "".join(source + rest[start:start + chunk]))
PY
# run FILE: `warez-pipe run FILE`, its summary shown only if it fails.
run() {
    "$warez" run "$1" >/dev/null 2>run.log || { cat run.log >&2; exit 1; }
}
for file in chunk*.yaml; do
    run "$file"
done
rm -f chunk*.yaml chunk*.lock
run pipeline.yaml
rm -f run.log
