"""Timings for bench/noop.sh.

    noop_timing.py WAREZ WAREZ_DIR DVC_DIR RESULTS.json SIZE_MB   time prepared folders, add to RESULTS
    noop_timing.py --report RESULTS.json                print the Markdown table

Run with the bench venv's python (it imports `blake3`, the reference for blake3's own speed).
"""
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


def timed(command, cwd, runs, before=None):
    """(median, min) wall time of `runs` runs, in seconds. The min shows the tool's own cost
    on a busy machine; the median what a user waits."""
    times = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "NO_COLOR": "1"})
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def cpu_seconds(command, cwd, runs, before):
    """Least CPU time (user + system) of the child over `runs` runs: what the work costs,
    whatever else the machine is doing."""
    costs = []
    for _ in range(runs):
        before()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        costs.append(after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime)
    return min(costs)


def blake3_cpu_seconds(path, runs=5):
    """Least CPU time of hashing `path` on one thread in this process."""
    import blake3
    costs = []
    for _ in range(runs):
        used = resource.getrusage(resource.RUSAGE_SELF)
        hasher = blake3.blake3(max_threads=1)
        hasher.update_mmap(path)
        hasher.hexdigest()
        after = resource.getrusage(resource.RUSAGE_SELF)
        costs.append(after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime)
    return min(costs)


def blake3_seconds(path, threads, runs=3):
    import blake3
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        hasher = blake3.blake3(max_threads=threads)
        hasher.update_mmap(path)
        hasher.hexdigest()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def measure(warez, folder, dvc_folder, results_path, size_mb):
    import blake3
    stat_cache = os.path.join(folder, "cache", "stat-cache.json")

    def cold_stat_cache():
        if os.path.exists(stat_cache):
            os.remove(stat_cache)

    figures = {
        "warez_first_run": timed([warez, "run", "warez.yaml"], folder, 1),
        "warez_first_hash": timed([warez, "status", "warez.yaml"], folder, 5, before=cold_stat_cache),
        "dvc_first_run": timed(["dvc", "repro", "--quiet"], dvc_folder, 1),
        "dvc_noop": timed(["dvc", "repro", "--quiet"], dvc_folder, 5),
    }
    # The stat cache takes no entry younger than 2 s (racy-clean guard): let the files settle,
    # fill it once, then time no-op runs.
    time.sleep(2.5)
    timed([warez, "status", "warez.yaml"], folder, 1)
    figures["warez_noop"] = timed([warez, "run", "warez.yaml"], folder, 20)
    path = os.path.join(folder, "data", "input.bin")
    figures["blake3_1_thread"] = blake3_seconds(path, 1, runs=5)
    figures["blake3_all_threads"] = blake3_seconds(path, blake3.blake3.AUTO, runs=5)
    figures["warez_first_hash_cpu"] = cpu_seconds(
        [warez, "status", "warez.yaml"], folder, 5, before=cold_stat_cache)
    figures["blake3_cpu"] = blake3_cpu_seconds(path)
    results = json.load(open(results_path))
    results[str(size_mb)] = figures
    json.dump(results, open(results_path, "w"), indent=2)


def report(results_path):
    results = json.load(open(results_path))
    small, big = results["1"], results["1024"]
    ms = lambda pair: f"{pair[0] * 1000:.1f} ms ({pair[1] * 1000:.1f})"
    cpu = platform.processor() or platform.machine()
    rows = [
        ("no-op `warez-pipe run` (six stages)", "warez_noop"),
        ("no-op `dvc repro` (same six stages)", "dvc_noop"),
        ("first run, warez-pipe (hash + run six stages)", "warez_first_run"),
        ("first run, dvc", "dvc_first_run"),
        ("first hash: `warez-pipe status`, empty stat cache", "warez_first_hash"),
        ("blake3 of the input, 1 thread (b3sum --num-threads 1)", "blake3_1_thread"),
        ("blake3 of the input, all threads (b3sum)", "blake3_all_threads"),
    ]
    lines = [
        "# No-op and first-hash timings (bench/noop.sh)",
        "",
        f"{os.cpu_count()} cores ({cpu}), load average {os.getloadavg()[0]:.1f} when the report "
        "was written; median (min) of 20 no-op runs of warez-pipe, 5 of dvc, 5 hashes; first runs "
        "once. Input files warm in the page cache.",
        "",
        "| measurement | 1 MB input | 1 GB input |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {ms(small[key])} | {ms(big[key])} |" for label, key in rows]
    lines += [
        "",
        f"- no-op (medians): dvc / warez-pipe = {small['dvc_noop'][0] / small['warez_noop'][0]:.0f}x "
        f"(1 MB), {big['dvc_noop'][0] / big['warez_noop'][0]:.0f}x (1 GB input: the stat cache "
        "skips re-reading it).",
        f"- first hash of 1 GB (mins): warez-pipe status / blake3 1 thread = "
        f"{big['warez_first_hash'][1] / big['blake3_1_thread'][1]:.2f}, / blake3 all threads = "
        f"{big['warez_first_hash'][1] / big['blake3_all_threads'][1]:.2f} "
        "(warez-pipe hashes large files memory-mapped on all cores, like b3sum; the status "
        "figure includes starting the process and hashing the six small outputs).",
        f"- CPU time (least of 5), which the machine's load does not inflate: first hash of 1 GB "
        f"by `warez-pipe status` {big['warez_first_hash_cpu'] * 1000:.0f} ms, blake3 1 thread "
        f"{big['blake3_cpu'] * 1000:.0f} ms.",
        "",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2])
    else:
        measure(*sys.argv[1:6])
