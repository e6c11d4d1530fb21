#!/usr/bin/env bash
# Engine scale: load + plan + no-op of generated pipelines of trivial `cmd` stages
# (bench/gen_stages.py: a chain and a fan-out/fan-in), wall time and peak RSS via /usr/bin/time -v.
#
#   bench/engine_scale.sh              # 1000 10000 100000 stages
#   bench/engine_scale.sh 1000 10000   # other sizes
#
# Each size is timed: `status` before anything ran (load + plan, every stage stale), the first
# `run` (runs every stage: one `sh` each), then `status`, `run --dry-run` and `run` with
# everything up to date. Prints the growth ratio of each command between consecutive sizes.
# RUST_BACKTRACE is unset: with it, every error value (such as "input missing" of a stage not
# run yet) captures a backtrace. Not run by CI; uses bench/out/engine-scale/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/bench/out/engine-scale
sizes=("${@:-1000 10000 100000}")
read -r -a sizes <<<"${sizes[*]}"

cargo build --release --quiet --bin warez-pipe
warez=$root/target/release/warez-pipe

# measure DIR ARGS... -> "seconds peak_kb"
measure() {
    local dir=$1
    shift
    (cd "$dir" && /usr/bin/time -v "$warez" "$@" pipeline.yaml >/dev/null 2>"$work/time.txt") || true
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i] }
                /Maximum resident set size/ { kb = $2 }
                END { printf "%.2f %d\n", s, kb }' "$work/time.txt"
}

unset RUST_BACKTRACE RUST_LIB_BACKTRACE
mkdir -p "$work"
echo "| shape | stages | command | wall s | peak RSS MB | growth vs previous size |"
echo "|---|---|---|---|---|---|"
for shape in chain fan; do
    declare -A previous=()
    for n in "${sizes[@]}"; do
        dir=$work/$shape-$n
        rm -rf "$dir"
        python3 "$root/bench/gen_stages.py" "$shape" "$n" "$dir"
        for command in "status (nothing ran)" "first run" status "run --dry-run" run; do
            case $command in
            "status (nothing ran)") args=(status) ;;
            "first run") args=(run) ;;
            *) read -r -a args <<<"$command" ;;
            esac
            read -r seconds kb < <(measure "$dir" "${args[@]}")
            growth=-
            if [[ -n ${previous[$command]:-} ]]; then
                growth=$(awk -v a="$seconds" -v b="${previous[$command]}" 'BEGIN { printf "%.1f×", (b > 0 ? a / b : 0) }')
            fi
            previous[$command]=$seconds
            printf '| %s | %d | `%s` | %s | %d | %s |\n' "$shape" "$n" "$command" "$seconds" $((kb / 1024)) "$growth"
        done
        rm -rf "$dir"
    done
    unset previous
done
