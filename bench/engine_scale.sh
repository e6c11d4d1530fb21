#!/usr/bin/env bash
# Engine scale: load + plan + no-op of generated pipelines of trivial `cmd` stages
# (bench/gen_stages.py: a chain and a fan-out/fan-in), wall time, CPU time and peak RSS via
# /usr/bin/time -v.
#
#   bench/engine_scale.sh                      # 1000 10000 100000 stages, chain and fan
#   bench/engine_scale.sh 1000 10000           # other sizes
#   SHAPES=chain bench/engine_scale.sh 100000  # one shape
#   WAREZ_BIN=/path/to/warez-pipe bench/engine_scale.sh 10000   # another build (before/after)
#   FIRST_RUN=chunks bench/engine_scale.sh 100000   # first run in chunks (engine_chunked_first_run.sh)
#
# Each size is timed: `status` before anything ran (load + plan, every stage stale), the first
# `run` (runs every stage: one `sh` each); then, once the outputs are older than the stat
# cache's 2 s racy window, `status`, `run --dry-run`, the first `run` after (it re-hashes the
# outputs the first run wrote and records the stages as up to date) and a no-op `run` (nothing
# to do, nothing written). Prints the growth ratio of each command between consecutive sizes.
# RUST_BACKTRACE is unset: with it, every error value (such as "input missing" of a stage not
# run yet) captures a backtrace. Not run by CI; uses bench/out/engine-scale/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/bench/out/engine-scale
sizes=("${@:-1000 10000 100000}")
read -r -a sizes <<<"${sizes[*]}"
read -r -a shapes <<<"${SHAPES:-chain fan}"

if [[ -z ${WAREZ_BIN:-} ]]; then
    cargo build --release --quiet --bin warez-pipe
fi
warez=${WAREZ_BIN:-$root/target/release/warez-pipe}

# measure DIR ARGS... -> "wall_seconds cpu_seconds peak_kb"
measure() {
    local dir=$1
    shift
    (cd "$dir" && /usr/bin/time -v "$warez" "$@" pipeline.yaml >/dev/null 2>"$work/time.txt") || true
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i] }
                /User time/ { cpu += $2 } /System time/ { cpu += $2 }
                /Maximum resident set size/ { kb = $2 }
                END { printf "%.2f %.2f %d\n", s, cpu, kb }' "$work/time.txt"
}

unset RUST_BACKTRACE RUST_LIB_BACKTRACE
mkdir -p "$work"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores);" \
    "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); binary $warez;" \
    "load at start:$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| shape | stages | command | wall s | CPU s | peak RSS MB | wall growth vs previous size |"
echo "|---|---|---|---|---|---|---|"
for shape in "${shapes[@]}"; do
    declare -A previous=()
    for n in "${sizes[@]}"; do
        dir=$work/$shape-$n
        rm -rf "$dir"
        python3 "$root/bench/gen_stages.py" "$shape" "$n" "$dir"
        for command in "status (nothing ran)" "first run" status "run --dry-run" "run (after the first)" "no-op run"; do
            if [[ $command == "first run" && ${FIRST_RUN:-} == chunks ]]; then
                # Wall time only: many processes (one `run` per chunk, then the whole pipeline's).
                start=$(date +%s.%N)
                WAREZ_BIN=$warez "$root/bench/engine_chunked_first_run.sh" "$dir"
                seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
                printf '| %s | %d | `first run, in chunks of 1,000 stages` | %s | - | - | - |\n' "$shape" "$n" "$seconds"
                continue
            fi
            case $command in
            "status (nothing ran)") args=(status) ;;
            "first run") args=(run) ;;
            "run (after the first)" | "no-op run") args=(run) ;;
            *) read -r -a args <<<"$command" ;;
            esac
            if [[ $command == status ]]; then
                sleep 2.1 # past the stat cache's racy window
            fi
            read -r seconds cpu kb < <(measure "$dir" "${args[@]}")
            growth=-
            if [[ -n ${previous[$command]:-} ]]; then
                growth=$(awk -v a="$seconds" -v b="${previous[$command]}" 'BEGIN { printf "%.1f×", (b > 0 ? a / b : 0) }')
            fi
            previous[$command]=$seconds
            printf '| %s | %d | `%s` | %s | %s | %d | %s |\n' "$shape" "$n" "$command" "$seconds" "$cpu" $((kb / 1024)) "$growth"
        done
        rm -rf "$dir"
    done
    unset previous
done
echo
echo "load at end:$(cut -d' ' -f1-3 /proc/loadavg)"
