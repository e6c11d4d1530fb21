#!/usr/bin/env bash
# The remote cache beside `dvc push` / `dvc pull` to the same S3 server (moto), same content:
#   (a) the small recommender pipeline's artifacts, (b) one folder of 10,000 small files,
#   (c) one 1 GiB file. Also: restoring the whole small pipeline into a fresh clone by `run`.
#
#   bench/remote.sh          # writes bench/out/remote.md
#
# Needs: a release build (built here), .venv with moto[server] and boto3 (scripts/test makes
# it), ONNX Runtime for the first run of the small pipeline (as for `run`). dvc and dvc-s3 go
# into bench/.venv-dvc (git-ignored) on first use. Not run by CI. Uses about 6 GB of disk
# under bench/out/ and about 4 GB of memory in moto.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
work=$out/remote-work
rm -rf "$work"
mkdir -p "$work"

cargo build --release --quiet --bin warez-pipe
warez=$root/target/release/warez-pipe
python=$root/.venv/bin/python

venv=$root/bench/.venv-dvc
if [[ ! -x $venv/bin/dvc ]] || ! "$venv/bin/python" -c 'import dvc_s3' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet dvc dvc-s3
fi
dvc=$venv/bin/dvc

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    "$python" -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null && break
    sleep 0.1
done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ALLOW_HTTP=true
"$python" -c "
import boto3
s3 = boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL')
for bucket in ('warez', 'dvc'):
    s3.create_bucket(Bucket=bucket)"

now() { date +%s.%N; }
# seconds CMD...: runs CMD (output to the log), prints the wall time.
seconds() {
    local start end
    start=$(now)
    "$@" >> "$work/commands.log" 2>&1
    end=$(now)
    echo "$end - $start" | bc
}

# The content of each case, made once and shared by both tools.
mkdir -p "$work/content/many"
"$python" - "$work/content/many" <<'PY'
import os, random, sys
rng = random.Random(42)
for i in range(10000):
    sub = os.path.join(sys.argv[1], f"d{i // 500:02d}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i:05d}.bin"), "wb") as f:
        f.write(rng.randbytes(rng.randint(200, 4000)))
PY
head -c 1073741824 /dev/urandom > "$work/content/big.bin"

# warez-pipe: a project whose one stage copies the content into its output.
warez_project() { # warez_project DIR CASE
    mkdir -p "$1/pipelines"
    case $2 in
    a)
        cp -r "$root/pipelines/recommender.yaml" "$1/pipelines/p.yaml"
        mkdir -p "$1/data" "$1/avro"
        cp "$root/data/ratings_small.csv" "$1/data/"
        cp "$root/avro/RecommenderModel.avsc" "$1/avro/"
        ;;
    b) printf 'project_dir: ..\nname: p\nstages:\n  copy:\n    cmd: cp -r %s out\n    outs: [out]\n' "$work/content/many" > "$1/pipelines/p.yaml" ;;
    c) printf 'project_dir: ..\nname: p\nstages:\n  copy:\n    cmd: cp %s out\n    outs: [out]\n' "$work/content/big.bin" > "$1/pipelines/p.yaml" ;;
    esac
}

declare -A t
for case in a b c; do
    # warez-pipe: build once locally, push, then pull into a fresh clone with an empty cache.
    src=$work/warez-$case
    warez_project "$src" "$case"
    (cd "$src" && SOURCE_DATE_EPOCH=1764115200 "$warez" run pipelines/p.yaml >> "$work/commands.log" 2>&1)
    t[warez-push-$case]=$(cd "$src" && seconds "$warez" push pipelines/p.yaml --remote "s3://warez/$case")
    clone=$work/warez-$case-clone
    warez_project "$clone" "$case"
    cp "$src/pipelines/p.lock" "$clone/pipelines/"
    t[warez-pull-$case]=$(cd "$clone" && seconds "$warez" pull pipelines/p.yaml --remote "s3://warez/$case")
    diff -r "$src/$( [ $case = a ] && echo models || echo out)" "$clone/$( [ $case = a ] && echo models || echo out)" > /dev/null

    # dvc: the same files, `dvc add`ed, pushed, and pulled into a fresh clone.
    dsrc=$work/dvc-$case
    mkdir -p "$dsrc"
    case $case in
    a) cp -r "$src/models" "$dsrc/models"; target=models ;;
    b) cp -r "$work/content/many" "$dsrc/out"; target=out ;;
    c) cp "$work/content/big.bin" "$dsrc/out"; target=out ;;
    esac
    (cd "$dsrc" && "$dvc" init --no-scm --quiet && "$dvc" config core.analytics false \
        && "$dvc" remote add -d store "s3://dvc/$case" >> "$work/commands.log" \
        && "$dvc" remote modify store endpointurl "$AWS_ENDPOINT_URL" \
        && "$dvc" add "$target" >> "$work/commands.log" 2>&1)
    t[dvc-push-$case]=$(cd "$dsrc" && seconds "$dvc" push)
    dclone=$work/dvc-$case-clone
    mkdir -p "$dclone/.dvc"
    cp "$dsrc/.dvc/config" "$dclone/.dvc/"
    cp "$dsrc/$target.dvc" "$dclone/"
    t[dvc-pull-$case]=$(cd "$dclone" && seconds "$dvc" pull)
    diff -r "$dsrc/$target" "$dclone/$target" > /dev/null
done

# Restoring the whole small pipeline into a fresh clone through `run` (read-through).
fresh=$work/warez-a-run
warez_project "$fresh" a
cp "$work/warez-a/pipelines/p.lock" "$fresh/pipelines/"
t[warez-run-a]=$(cd "$fresh" && seconds "$warez" run pipelines/p.yaml --remote s3://warez/a)
diff -r "$work/warez-a/models" "$fresh/models" > /dev/null

ratio() { echo "scale=1; ${t[$1]} / ${t[$2]}" | bc; }
fmt() { printf '%.2f s' "${t[$1]}"; }
{
    echo "# Remote cache vs dvc push / dvc pull (bench/remote.sh)"
    echo
    echo "One moto_server $("$python" -c 'import moto; print(moto.__version__)') on 127.0.0.1, one bucket per tool;"\
         "$("$dvc" --version | sed 's/^/dvc /') with dvc-s3 $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("dvc-s3"))');"\
         "warez-pipe at commit $(git rev-parse --short HEAD)."
    echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores. One run of each; pull goes into a fresh clone with an empty cache."
    echo
    echo "| content | warez-pipe push | dvc push | dvc / warez | warez-pipe pull | dvc pull | dvc / warez |"
    echo "|---|---|---|---|---|---|---|"
    for case in a b c; do
        case $case in
        a) label="(a) small pipeline's artifacts ($(du -sh "$work/dvc-a/models" | cut -f1))" ;;
        b) label="(b) folder of 10,000 small files ($(du -sh --apparent-size "$work/content/many" | cut -f1))" ;;
        c) label="(c) one 1 GiB file" ;;
        esac
        echo "| $label | $(fmt warez-push-$case) | $(fmt dvc-push-$case) | $(ratio dvc-push-$case warez-push-$case)× | $(fmt warez-pull-$case) | $(fmt dvc-pull-$case) | $(ratio dvc-pull-$case warez-pull-$case)× |"
    done
    echo
    echo "- Restoring the whole small pipeline into a fresh clone by \`warez-pipe run --remote\` (every stage"\
         "\`restored (remote)\`, outputs compared byte for byte): $(fmt warez-run-a) (goal ≤ 1 s)."
    echo "- Goals: ≥ 5× faster than dvc on (b), at least as fast on (a) and (c)."
} > "$out/remote.md"
cat "$out/remote.md"
