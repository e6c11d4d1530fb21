#!/usr/bin/env bash
# Two warez-pipe binaries side by side on prepared pipelines of bench/gen_stages.py, alternating
# command by command: `status` and `run --dry-run` of the pipeline before anything ran (a fresh
# copy of its pipeline.yaml and data), then `status`, `run --dry-run` and a no-op `run` of the
# up-to-date pipeline itself. Wall s / CPU s (user + sys) / peak RSS MB, ranges over RUNS runs;
# every pipeline and both binaries take turns within each run of a command.
#
#   bench/engine_side_by_side.sh BEFORE AFTER DIR...   # RUNS=3 by default
#   SAMPLES=FILE bench/engine_side_by_side.sh ...      # also appends every measurement to FILE
#                                                      # (see bench/engine_growth.py)
#
# Each DIR must hold a pipeline brought up to date and settled (e.g. gen_stages.py, then
# engine_chunked_first_run.sh, then one more `run` over 2 s later, so the stat cache knows every
# output): this bench's commands then write nothing there (tests/engine_scale.rs checks that a
# no-op `run` and `status` leave every file as it was), so both binaries see the same files.
# The fresh copies go to DIR.fresh and are removed at the end. RUST_BACKTRACE is unset (see
# engine_scale.sh). Not run by CI.
set -euo pipefail
before=$1
after=$2
shift 2
runs=${RUNS:-3}
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

# measure BIN DIR ARGS... -> "wall cpu rss_mb": the child's own rusage, to the microsecond
# (`/usr/bin/time` prints CPU seconds to 0.01 s, ~5% of a 10,000-stage command).
measure() {
    local bin=$1 dir=$2
    shift 2
    (cd "$dir" && python3 -c '
import os, subprocess, sys, time
start = time.monotonic()
with open(os.devnull, "wb") as null:
    child = subprocess.Popen(sys.argv[1:], stdout=null, stderr=null)
    _, _, usage = os.wait4(child.pid, 0)
print(f"{time.monotonic() - start:.3f} {usage.ru_utime + usage.ru_stime:.3f} {usage.ru_maxrss // 1024}")
' "$bin" "$@" pipeline.yaml)
}

# range "v1 v2 ..." -> "min–max" (or the value when all are equal)
range() {
    tr ' ' '\n' <<<"$1" | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print (lo == hi ? lo : lo "–" hi) }'
}

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores);" \
    "before $before, after $after; $runs runs each; load at start:$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| pipeline | command | before wall / CPU / RSS | after wall / CPU / RSS |"
echo "|---|---|---|---|"
dirs=()
for dir in "$@"; do
    dirs+=("$(cd "$dir" && pwd)")
done
commands=("status (nothing ran)" "run --dry-run (nothing ran)" status "run --dry-run" "no-op run")
declare -A wall=() cpu=() rss=()
# Command by command; within a command, run by run, every pipeline and both binaries in turn, so
# a change of the machine's load touches both binaries and every size alike (the growth ratio
# between sizes is read from these figures too).
for command in "${commands[@]}"; do
    read -r -a args <<<"${command% (nothing ran)}"
    [[ $command == "no-op run" ]] && args=(run)
    for ((i = 0; i < runs; i++)); do
        for dir in "${dirs[@]}"; do
            for side in before after; do
                bin=$before
                [[ $side == after ]] && bin=$after
                where=$dir
                if [[ $command == *"(nothing ran)" ]]; then
                    where=$dir.fresh
                    rm -rf "$where"
                    mkdir -p "$where/out/m"
                    cp -r "$dir/pipeline.yaml" "$dir/data" "$where/"
                fi
                read -r w c r < <(measure "$bin" "$where" "${args[@]}")
                if [[ -n ${SAMPLES:-} ]]; then
                    printf '%s\t%s\t%s\t%d\t%s\t%s\t%s\n' "$(basename "$dir")" "$command" "$side" "$i" \
                        "$w" "$c" "$r" >>"$SAMPLES"
                fi
                wall[$dir $command $side]+="$w "
                cpu[$dir $command $side]+="$c "
                rss[$dir $command $side]+="$r "
            done
            rm -rf "$dir.fresh"
        done
    done
done
for dir in "${dirs[@]}"; do
    for command in "${commands[@]}"; do
        cells=()
        for side in before after; do
            key="$dir $command $side"
            cells+=("$(range "${wall[$key]}") / $(range "${cpu[$key]}") / $(range "${rss[$key]}")")
        done
        printf '| %s | `%s` | %s | %s |\n' "$(basename "$dir")" "$command" "${cells[0]}" "${cells[1]}"
    done
done
echo
echo "load at end:$(cut -d' ' -f1-3 /proc/loadavg)"
