"""Benchmark: peak memory of every notebook's kernel, as Binder runs it and in full mode.

Command::

    .venv/bin/python benchmarks/bench_notebook_memory.py                  # binder + full, every notebook
    .venv/bin/python benchmarks/bench_notebook_memory.py --modes binder   # Binder's Run All only (≈ 4 min)
    .venv/bin/python benchmarks/bench_notebook_memory.py --modes full --only 02 03

Modes:

* ``binder``: what "Run All" does on mybinder.org, by the same code path: the smoke set baked as
  ``binder/postBuild`` bakes it (``python -m kdlib.launch bake``), the ``BINDER_*`` variables that
  BinderHub sets in the environment, and **no parameter injected**, so the notebook's own default
  (``SMOKE = smoke_default()``) decides. After each notebook the baked set must still be there.
* ``full``: ``SMOKE=False`` injected, as ``make run`` (``python -m kdlib.notebooks --full``) does;
  notebook 05 reads the finished run ``--results-dir`` (what ``make run`` passes), since running
  its own protocol takes about 2 hours.

Every notebook runs with papermill through ``kdlib.notebooks`` (the headless runner of ``make``),
with a kernel manager that reads the kernel process's **VmHWM** (peak resident set, from
``/proc/<pid>/status``) just before the kernel is shut down, and samples the resident memory of the
kernel *and its child processes* (joblib workers of notebook 05, the ``kdlib`` command of notebook
06) every 0.2 s with psutil: Binder's limit applies to the whole session. The runs use a project
root and data folder of their own (``--root``), so the data set in ``data/`` is never touched.

Results: ``benchmarks/results/notebook_memory.csv`` and ``.md`` (``--name`` for another file; a new
row replaces the one of the same notebook and mode, the others are kept), against the 1 GB target of
Binder (DESIGN.md: 1-2 GB of RAM). ``-p JOBS 1`` injects a parameter too (the mode column shows it).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_MB = 1000.0  # Binder's 1-2 GB: the default notebook configuration must stay under 1 GB
FIELDS = ["notebook", "mode", "kernel_vmhwm_mb", "tree_rss_mb", "tree_pss_mb", "seconds", "wrote_data", "baked_set_kept", "commit", "command"]


def _vmhwm_mb(pid: int) -> float:
    """Peak resident set of a live process (VmHWM of /proc/<pid>/status), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM line")


class _TreeSampler(threading.Thread):
    """Peaks of the summed RSS and PSS of a process and all its descendants, sampled every ``interval`` s.

    RSS counts the pages shared between the kernel and its workers (torch's libraries, a fork's
    copy-on-write pages) once per process; PSS shares them out, so the summed PSS is what a cgroup
    memory limit such as Binder's sees (up to the page cache).
    """

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.root, self.interval, self.stop = psutil.Process(pid), interval, threading.Event()
        self.rss_peak = self.pss_peak = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = pss = 0
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                rss, pss = rss + info.rss, pss + info.pss
            self.rss_peak, self.pss_peak = max(self.rss_peak, rss), max(self.pss_peak, pss)
            self.stop.wait(self.interval)


def _measuring_manager(record: dict):
    """A factory of kernel manager classes (for ``kdlib.notebooks._execute_one``) that fill ``record``."""
    from kdlib import notebooks

    def make(log_path: Path) -> type:
        base = notebooks._logging_kernel_manager(log_path)

        class MeasuringKernelManager(base):
            async def start_kernel(self, **kw):
                await super().start_kernel(**kw)
                record["pid"] = self.provisioner.pid
                record["sampler"] = _TreeSampler(record["pid"])
                record["sampler"].start()

            async def shutdown_kernel(self, now=False, restart=False):
                if "pid" in record and "kernel_vmhwm_mb" not in record:
                    record["kernel_vmhwm_mb"] = _vmhwm_mb(record["pid"])
                    record["sampler"].stop.set()
                    record["sampler"].join()
                    record["tree_rss_mb"] = record["sampler"].rss_peak / 1e6
                    record["tree_pss_mb"] = record["sampler"].pss_peak / 1e6
                await super().shutdown_kernel(now=now, restart=restart)

        return MeasuringKernelManager

    return make


def _copy_notebooks(folder: Path) -> set[str]:
    """Copy the notebooks into the bench root; give copies that lack them the launch cells.

    A notebook that does not have them yet (being edited elsewhere) would run in full mode on Binder;
    its copy gets them (``kdlib.launch.add_launch_cells``) so that binder mode measures what Binder
    will run once they are added. Returns the stems of the notebooks so changed (noted in the table).
    """
    import shutil

    from kdlib import launch

    if folder.is_symlink():
        folder.unlink()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    changed = set()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        copy = Path(shutil.copy2(path, folder / path.name))
        if launch.add_launch_cells(copy):
            changed.add(path.stem)
    return changed


def _literal(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "notebooks", "kdlib"], cwd=ROOT, capture_output=True,
                           text=True)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _measure(path: Path, mode: str, out_dir: Path, results_dir: str, command: str, copies: set[str],
             extra: dict) -> dict:
    """Run one notebook in one mode; return its row."""
    from kdlib import launch, notebooks

    declared = notebooks.notebook_parameters(path)
    parameters = {}
    if mode == "full":
        parameters = {"SMOKE": False}
        if "RESULTS_DIR" in declared and results_dir:
            parameters["RESULTS_DIR"] = results_dir
    parameters.update({k: v for k, v in extra.items() if k in declared})
    record: dict = {}
    t0 = time.perf_counter()
    notebooks._execute_one(path, out_dir / path.name, parameters, "kdlib", kernel_manager=_measuring_manager(record))
    seconds = time.perf_counter() - t0
    wrote = "writing the synthetic" in (out_dir / path.name).read_text()  # launch.write_synthetic's line
    return {
        "notebook": path.stem, "mode": mode + "".join(f" {k}={v!r}" for k, v in extra.items() if k in declared),
        "kernel_vmhwm_mb": round(record["kernel_vmhwm_mb"], 1), "tree_rss_mb": round(record["tree_rss_mb"], 1),
        "tree_pss_mb": round(record["tree_pss_mb"], 1),
        "seconds": round(seconds, 1), "wrote_data": wrote,
        "baked_set_kept": launch.baked_preset() == "smoke" if mode == "binder" else "",
        "commit": _commit() + (" (launch cells added to the copy)" if path.stem in copies else ""),
        "command": command,
    }


def _write(rows: list[dict], name: str = "notebook_memory") -> None:
    csv_path, md_path = RESULTS / f"{name}.csv", RESULTS / f"{name}.md"
    from kdlib.io import atomic_write

    with atomic_write(csv_path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Peak memory of the notebooks (kernel VmHWM and kernel + child processes)",
        "",
        "Commands (`benchmarks/bench_notebook_memory.py`; its docstring says what each mode is): "
        + "; ".join(f"`{c}`" for c in dict.fromkeys(r.get("command") or "(not recorded)" for r in rows)) + ".",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs (shared with other work), "
        f"Python {platform.python_version()}; target: under {TARGET_MB:.0f} MB (Binder gives 1-2 GB).",
        "",
        "`binder`: Run All as on mybinder.org (BINDER_* set, the smoke set baked, no parameter injected: the "
        "notebook's own default decides). `full`: SMOKE=False injected, as `make run` does (05 reads a finished "
        "run). `kernel VmHWM`: the kernel process's peak resident set (exact, from /proc). `kernel + children`: "
        "peaks of the summed RSS and PSS of the kernel and its child processes (joblib workers, the kdlib "
        "command), sampled every 0.25 s (lower bounds); PSS counts shared pages once, as a cgroup limit does. "
        "`under 1 GB` compares the larger of the kernel's VmHWM and the summed PSS with 1000 MB. "
        "`wrote a data set`: the notebook printed launch.write_synthetic's line (it replaced the folder's set); "
        "in binder mode it must not, and the baked smoke set must still be there afterwards.",
        "",
        "| notebook | mode | kernel VmHWM (MB) | kernel + children RSS (MB) | kernel + children PSS (MB) | under 1 GB "
        "| time (s) | wrote a data set | baked set kept | commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak = max(float(r["kernel_vmhwm_mb"]), float(r["tree_pss_mb"]))
        lines.append(f"| {r['notebook']} | {r['mode']} | {r['kernel_vmhwm_mb']} | {r['tree_rss_mb']} | "
                     f"{r['tree_pss_mb']} | {'yes' if peak < TARGET_MB else '**no**'} | {r['seconds']} | "
                     f"{r['wrote_data']} | {r['baked_set_kept']} | {r['commit']} |")
    with atomic_write(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _recorded(name: str = "notebook_memory") -> list[dict]:
    """The rows already in the results file (read again before every write)."""
    csv_path = RESULTS / f"{name}.csv"
    if not csv_path.is_file():
        return []
    with open(csv_path) as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", nargs="+", default=["binder", "full"], choices=("binder", "full"))
    parser.add_argument("--only", nargs="+", metavar="NN", help="only these notebooks")
    parser.add_argument("--root", default="/tmp/kdlib-bench-memory", help="project root of the runs (data, build)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="also inject this parameter (a Python literal) into the notebooks that declare it")
    parser.add_argument("--name", default="notebook_memory", help="results file name (.csv, .md)")
    parser.add_argument("--results-dir", default=str(ROOT / "results" / "synthetic-recorded"),
                        help="finished run that notebook 05 reads in full mode")
    args = parser.parse_args()
    bench_root = Path(args.root)
    (bench_root / "build" / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ["KDLIB_ROOT"] = str(bench_root)  # inherited by the kernels
    os.environ.pop("KDLIB_DATA_DIR", None)
    os.environ.pop("KDLIB_SMOKE", None)
    from kdlib import launch, notebooks

    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    command = f"{threads}python benchmarks/bench_notebook_memory.py {' '.join(sys.argv[1:])}".strip()
    copies = _copy_notebooks(bench_root / "notebooks")
    rows = []
    for mode in args.modes:
        for key in launch.BINDER_ENV_VARS:
            os.environ.pop(key, None)
        if mode == "binder":
            launch.bake("smoke")  # what binder/postBuild does
            os.environ["BINDER_REPO_URL"] = f"https://github.com/{launch.REPOSITORY}"
            os.environ["BINDER_LAUNCH_HOST"] = "https://mybinder.org/"
        for path in notebooks.discover_notebooks(args.only):
            row = _measure(path, mode, bench_root / "build" / "notebooks", args.results_dir, command, copies,
                           {name: _literal(value) for name, value in args.parameter})
            print(row, flush=True)
            rows.append(row)
            merged = {(r["notebook"], r["mode"]): r for r in _recorded(args.name) + rows}  # new rows replace old
            _write(sorted(merged.values(), key=lambda r: (r["mode"], r["notebook"])), args.name)


if __name__ == "__main__":
    main()
