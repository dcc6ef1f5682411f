"""Benchmark: preparing the windows of 32 DEAP-format subjects, cold and from the cache,
against merely reading the files.

Command (what ``make bench`` runs)::

    .venv/bin/python benchmarks/bench_data.py

It writes (once) the synthetic set at full DEAP size (32 subjects x 40 trials x 40 channels x
8064 samples, float64: 3.3 GB) to ``data/bench-deap-full/``, then measures, each in a fresh
process so that peak memory (``ru_maxrss``) belongs to that step alone:

* ``read``   -- load every ``sNN.dat`` (kdlib's safe unpickler, no validation): the floor;
* ``cold``   -- ``kdlib.data.cache.build_cache`` with an empty cache, one thread: every subject
  loaded, validated, EOG band-passed, baseline-corrected, cut into windows and written as its
  cache entry (atomically), nothing kept;
* ``cached`` -- ``prepare_subject`` of every subject again, from the cache, and the sum of every
  window (the entries are memory-mapped: opening one reads nothing, so the step reads the
  windows to count what a user pays);
* ``cold_2threads`` -- ``cold`` with ``jobs=2`` (two subjects at once, in threads).

Subjects are processed one at a time (two in ``cold_2threads``) and dropped, as in a
per-subject training loop, so that the steps hold about the same amount of data at once. The file pages are in the OS cache for
every step (a warm-up read runs first): this measures the code, not the disk.

Targets (issue #2): cold within 2x of read; cached faster than read.
Results: ``benchmarks/results/bench_data.csv`` and ``bench_data.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _measure(step: str, data_dir: Path, cache_dir: Path, n_subjects: int) -> dict:
    """Run one step in this process; return seconds and peak RSS."""
    import numpy as np

    from kdlib.data import cache, deap
    from kdlib.data.windows import DEFAULT

    files = deap.subject_files(data_dir)[:n_subjects]
    subjects = [deap.subject_id_from_path(f) for f in files]
    t0 = time.perf_counter()
    n_windows, checksum = 0, 0.0
    if step == "read":
        for f in files:
            n_windows += deap.load_dat(f, validate=False)["data"].shape[0]  # trials
    elif step.startswith("cold"):  # fill the empty cache, keeping nothing (one thread, or two)
        n_windows = cache.build_cache(data_dir, DEFAULT, subjects, cache_dir, progress=False,
                                      jobs=2 if step == "cold_2threads" else 1)
    else:  # cached: open every entry (memory-mapped) and read every window
        for f in files:
            ws = cache.prepare_subject(f, DEFAULT, cache_dir=cache_dir)
            sums = ws.eeg.sum(axis=(1, 2)) + ws.eog.sum(axis=(1, 2))  # (N,) float32, one per window
            checksum += float(sums.sum(dtype=np.float64))
            n_windows += len(ws)
    seconds = time.perf_counter() - t0
    return {"step": step, "seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "items": n_windows}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process, MB: ``VmHWM``. Not ``ru_maxrss``: Linux carries
    that over from the parent through fork and exec, so a child reports at least the parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024  # KiB
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_child(step: str, args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, "--data", str(args.data),
                          "--cache", str(args.cache), "--subjects", str(args.subjects)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _du_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "bench-deap-full",
                        help="folder for the full-size synthetic set (written if missing)")
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "bench-cache",
                        help="cache folder used by the benchmark (emptied before each cold run)")
    parser.add_argument("--subjects", type=int, default=32, help="number of subjects (DEAP: 32)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each step")
    parser.add_argument("--child", choices=["read", "cold", "cached", "cold_2threads"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child, args.data, args.cache, args.subjects)))
        return

    from kdlib.data import synthetic

    config = synthetic.SynthConfig(n_subjects=args.subjects)
    t0 = time.perf_counter()
    synthetic.write_dataset(args.data, config, progress=True)
    print(f"synthetic set ready in {time.perf_counter() - t0:.1f} s: {args.data}")
    source_mb = _du_mb(args.data)
    _run_child("read", args)  # warm the page cache

    rows, load_before = [], os.getloadavg()[0]
    for rep in range(args.repeat):
        rows.append({**_run_child("read", args), "rep": rep, "load1": os.getloadavg()[0]})
        shutil.rmtree(args.cache, ignore_errors=True)
        rows.append({**_run_child("cold", args), "rep": rep, "load1": os.getloadavg()[0]})
        rows.append({**_run_child("cached", args), "rep": rep, "load1": os.getloadavg()[0]})
        shutil.rmtree(args.cache, ignore_errors=True)
        rows.append({**_run_child("cold_2threads", args), "rep": rep, "load1": os.getloadavg()[0]})
    cache_mb = _du_mb(args.cache)
    _report(rows, source_mb, cache_mb, args, load_before)


def _report(rows, source_mb, cache_mb, args, load_before) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    summary = df.groupby("step", sort=False).agg(seconds_median=("seconds", "median"), seconds_min=("seconds", "min"),
                                                 peak_rss_mb=("peak_rss_mb", "max"))
    summary["source_MB_per_s"] = source_mb / summary["seconds_median"]
    read = summary.loc["read", "seconds_median"]
    summary["x_read_time"] = summary["seconds_median"] / read
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "bench_data_runs.csv", index=False)
    summary.round(3).to_csv(RESULTS / "bench_data.csv")
    cold, cached = summary.loc["cold", "x_read_time"], summary.loc["cached", "x_read_time"]
    cold2 = summary.loc["cold_2threads", "x_read_time"]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine()) if os.path.exists("/proc/cpuinfo") else platform.machine()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine = f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; Python {platform.python_version()}, {platform.platform()}"
    md = [
        f"# bench_data: preparing {args.subjects} DEAP-format subjects",
        "",
        f"- Command: `.venv/bin/python benchmarks/bench_data.py --subjects {args.subjects} --repeat {args.repeat}`",
        f"- Machine: {machine}",
        f"- Load average (1 min): {load_before:.2f} before, {df.load1.min():.2f}-{df.load1.max():.2f} during the steps "
        "(other jobs share this machine)",
        f"- Source: {args.subjects} synthetic subjects at full DEAP size, {source_mb:.0f} MB of `sNN.dat`; "
        f"cache: {cache_mb:.0f} MB (kdlib's default `PrepConfig`: EOG band-pass, baseline mean, float32 windows, "
        "4 s, no overlap).",
        "- Steps: `read` = `load_dat` of every file (the floor: numpy arrays out of the files); `cold` = "
        "`build_cache` with an empty cache, one thread (load, validate, EOG band-pass, baseline, windows, entry "
        "written; nothing kept); `cached` = `prepare_subject` of every file from the cache (memory-mapped) and "
        "the sum of every window; `cold_2threads` = `cold` with `jobs=2`. Each step in a fresh process, file "
        "pages already in the OS cache; median of the repetitions; peak RSS = `VmHWM` of the step's process.",
        "",
        summary.round(3).to_markdown(),
        "",
        f"Targets: cold preparation within 2x of the read time: **{cold:.2f}x** with one thread "
        f"({'met' if cold <= 2 else 'NOT met'}), **{cold2:.2f}x** with two ({'met' if cold2 <= 2 else 'NOT met'}); "
        f"cached load faster than the read: **{cached:.2f}x** ({'met' if cached < 1 else 'NOT met'}).",
    ]
    (RESULTS / "bench_data.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
