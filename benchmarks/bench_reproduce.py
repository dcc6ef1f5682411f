"""Benchmark: wall time of ``kdlib reproduce`` on the synthetic set at 1 and 2 jobs, and of
``make run`` end to end.

Command (what ``make bench`` runs)::

    .venv/bin/python benchmarks/bench_reproduce.py            # reproduce at 1 and 2 jobs
    .venv/bin/python benchmarks/bench_reproduce.py --make-run # also time `make run` (minutes)

The reproduce runs use the smoke preset sizes on 2 subjects x 2 folds x 2 tasks with every
method (9 models per fold, the teacher retrained in each), each in a fresh results folder, the
windows already cached. Results: ``benchmarks/results/bench_reproduce.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _timed(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", default="s01,s02", help="subjects of the reproduce runs")
    parser.add_argument("--folds", type=int, default=2, help="folds per subject")
    parser.add_argument("--preset", default="smoke", choices=("smoke", "default"), help="model/training sizes")
    parser.add_argument("--make-run", action="store_true", help="also time `make run` end to end")
    args = parser.parse_args()

    import pandas as pd

    py = sys.executable
    work = ROOT / "data" / "bench-reproduce"
    shutil.rmtree(work, ignore_errors=True)
    data = work / "synthetic"
    subprocess.run([py, "-m", "kdlib", "synth", "--out", str(data), "--preset", "smoke", "--quiet"], cwd=ROOT,
                   check=True)
    base = [py, "-m", "kdlib", "reproduce", "--data-dir", str(data), "--subjects", args.subjects,
            "--folds", str(args.folds), "--preset", args.preset, "--cache-dir", str(work / "cache"), "--quiet",
            "--no-report"]
    subprocess.run(base + ["--methods", "majority", "--out", str(work / "warm")], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)  # fills the window cache
    rows = []
    for jobs in (1, 2):
        seconds = _timed(base + ["--jobs", str(jobs), "--out", str(work / f"jobs{jobs}")])
        rows.append(dict(what=f"kdlib reproduce, {jobs} job(s)", seconds=seconds, load=os.getloadavg()[0]))
        print(rows[-1])
    rows[1]["speed_up"] = rows[0]["seconds"] / rows[1]["seconds"]
    if args.make_run:
        seconds = _timed(["make", "run"])
        rows.append(dict(what="make run (venv present)", seconds=seconds, load=os.getloadavg()[0]))
    table = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.round(3).to_csv(RESULTS / "bench_reproduce.csv", index=False)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"
    md = [
        "# bench_reproduce: wall time of a reproduction run",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_reproduce.py{' --make-run' if args.make_run else ''}`",
        f"Machine: {machine}",
        f"Runs: synthetic set, subjects {args.subjects}, {args.folds} folds, both tasks, all 9 methods, "
        f"preset {args.preset}, windows cached. `load` is the 1-min load average after each run.",
        "",
        table.round(2).to_markdown(index=False),
        "",
    ]
    (RESULTS / "bench_reproduce.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
