"""Benchmark: kdlib against torcheeg's ``DEAPDataset`` preparing the same DEAP windows (issue #8).

Command (what ``make bench`` runs; ``make bench`` first builds the torcheeg environment)::

    .venv/bin/python benchmarks/bench_vs_torcheeg.py

Both libraries prepare the same windows from the same 32 full-size DEAP-format files (the
synthetic set of ``bench_data.py``, ``data/bench-deap-full/``, written once):

* channels 1-34 (32 EEG + hEOG + vEOG), windows of W s (W = 1 and 4) without overlap, cut
  after the 3 s pre-trial baseline;
* from every channel of a trial, the mean of its 3 s baseline is subtracted;
* float32 windows; labels valence and arousal, high if rating >= 5.

torcheeg 1.1.3 (in its own environment, ``benchmarks/.bench-venv``: it needs numpy<2)::

    DEAPDataset(root_path, io_path, chunk_size=128*W, overlap=0, num_channel=34,
                num_baseline=3, baseline_chunk_size=128,
                offline_transform=Compose([BaselineCorrection(), Lambda(float32, targets=['eeg'])]),
                label_transform=Compose([Select(['valence', 'arousal']), Binary(5.0)]),
                num_worker=0)

(its baseline is the mean of three 1 s baseline chunks, of which ``BaselineCorrection``
subtracts the mean: the mean of the 3 s baseline; ``Binary`` counts a rating equal to the
threshold as high). kdlib: ``PrepConfig(window_s=W, stride_s=W, baseline="mean",
eog_band=None, threshold=5.0, rule=">=")`` (no EOG band-pass: torcheeg has none).

Before timing anything, every window and label of two subjects is compared between the two
(``numpy.allclose``): the run stops if they differ. Then, each step in a fresh process (so that
its peak RSS, ``ru_maxrss``, is its own), with the files already in the OS page cache:

* ``read``   -- kdlib's ``load_dat`` of every file (the floor: merely reading the files);
* ``cold``   -- an empty cache, filled: kdlib ``build_cache(...)`` (every subject, one at a time,
  writes its cache entry; nothing is kept); torcheeg ``DEAPDataset(...)`` (writes its LMDB store);
* ``cold_2threads`` -- kdlib only: ``cold`` with ``build_cache(..., jobs=2)`` (its parallel
  option), reported beside the one-process comparison;
* ``cached`` -- the same calls again, then every window is read through the library's own
  interface: kdlib's ``WindowSet`` arrays subject by subject (memory-mapped cache entries; the
  float32 sum of every window and both labels' counts, vectorised: kdlib hands out arrays);
  torcheeg ``dataset[i]`` for every ``i`` (the same sums and counts, window by window: torcheeg
  hands out items).

The checksums and label counts of the two libraries must agree too. Times exclude the
import of the library (reported apart); peak RSS includes it (torch is part of torcheeg).
Both run in one process (``num_worker=0``), on the same machine.

Targets (issue #8): kdlib >= 5x faster cold and >= 10x faster cached, at lower peak memory;
kdlib cold within 1.5x of the read.
Results: ``benchmarks/results/bench_vs_torcheeg.csv`` (+ ``_runs.csv``) and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TORCHEEG_PY = ROOT / "benchmarks" / ".bench-venv" / "bin" / "python"
FS = 128
N_BASE = 3 * FS  # samples of the pre-trial baseline
CHECK_SUBJECTS = (1, 2)  # every window of these is compared before timing
ATOL, RTOL = 1e-3, 1e-5  # microvolts; float32 windows of values up to a few thousand uV


def _rss_mb() -> float:
    """Peak resident memory of this process so far, MB: ``VmHWM``. Not ``ru_maxrss``: Linux
    carries that over from the parent through fork and exec, so a child would report at least
    the parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024  # KiB
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- children: one measurement each, in the environment of its library ---------------------

def _kdlib_config(window_s: float):
    from kdlib.data.windows import PrepConfig

    return PrepConfig(window_s=window_s, stride_s=window_s, baseline="mean", eog_band=None,
                      threshold=5.0, rule=">=")


def _child_kdlib(step: str, args) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    from kdlib.data import cache, deap
    import_s, rss_import = time.perf_counter() - t0, _rss_mb()
    config = _kdlib_config(args.window)
    out: dict = {}
    t0 = time.perf_counter()
    if step == "read":
        n = 0
        for f in deap.subject_files(args.data):
            n += deap.load_dat(f, validate=False)["data"].shape[0]
        out["n_trials"] = n
    elif step == "check":
        ws = cache.prepare_dataset(args.data, config, subjects=list(CHECK_SUBJECTS), use_cache=False, progress=False)
        x = np.concatenate([ws.eeg, ws.eog], axis=1)  # (N, 34, T)
        y = np.stack([ws.labels("valence"), ws.labels("arousal")], axis=1)  # (N, 2)
        key = np.stack([np.char.lstrip(ws.subject.astype(str), "s").astype(int), ws.trial - 1,
                        np.rint(ws.start_s * FS).astype(int) + N_BASE], axis=1)  # (subject, trial from 0, start sample)
        np.savez(args.out, x=x, y=y, key=key)
    elif step in ("cold", "cold_2threads"):  # fill an empty cache, keeping nothing
        out["n_windows"] = cache.build_cache(args.data, config, cache_dir=args.cache, progress=False,
                                             jobs=2 if step == "cold_2threads" else 1)
    else:  # cached: open every entry (memory-mapped), subject by subject, and read every window
        n_windows, checksum, n_high = 0, 0.0, np.zeros(2, np.int64)
        for f in deap.subject_files(args.data):
            ws = cache.prepare_subject(f, config, cache_dir=args.cache)
            sums = ws.eeg.sum(axis=(1, 2)) + ws.eog.sum(axis=(1, 2))  # (N,) float32, one per window
            checksum += float(sums.sum(dtype=np.float64))
            n_high += [ws.labels("valence").sum(), ws.labels("arousal").sum()]
            n_windows += len(ws)
            del ws
        out.update(n_windows=n_windows, checksum=checksum, n_high=n_high.tolist())
    out.update(seconds=time.perf_counter() - t0, import_s=import_s, rss_import_mb=rss_import, peak_rss_mb=_rss_mb())
    return out


def _to_float32(x):
    import numpy as np

    return np.asarray(x, dtype=np.float32)


def _child_torcheeg(step: str, args) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    from torcheeg import transforms
    from torcheeg.datasets import DEAPDataset
    import_s, rss_import = time.perf_counter() - t0, _rss_mb()

    def dataset(root: Path, io_path: Path):
        return DEAPDataset(
            root_path=str(root), io_path=str(io_path), chunk_size=int(FS * args.window), overlap=0,
            num_channel=34, num_baseline=3, baseline_chunk_size=FS,
            offline_transform=transforms.Compose([transforms.BaselineCorrection(),
                                                  transforms.Lambda(_to_float32, targets=["eeg"])]),
            label_transform=transforms.Compose([transforms.Select(["valence", "arousal"]), transforms.Binary(5.0)]),
            num_worker=0, verbose=False)

    out: dict = {}
    t0 = time.perf_counter()
    if step == "check":
        ds = dataset(args.root, args.cache)
        items = [ds[i] for i in range(len(ds))]
        info = ds.info
        key = np.stack([info["subject_id"].str.extract(r"s(\d+)\.dat")[0].astype(int).to_numpy(),
                        info["trial_id"].to_numpy(), info["start_at"].to_numpy()], axis=1)
        np.savez(args.out, x=np.stack([x for x, _ in items]), y=np.array([y for _, y in items]), key=key)
    else:
        ds = dataset(args.root, args.cache)
        out["n_windows"] = len(ds)
        if step == "cached":
            checksum, n_high = 0.0, np.zeros(2, np.int64)
            for i in range(len(ds)):
                x, y = ds[i]
                checksum += float(x.sum())  # float32 sum of the window, as kdlib's
                n_high += y
            out["checksum"], out["n_high"] = checksum, n_high.tolist()
    out.update(seconds=time.perf_counter() - t0, import_s=import_s, rss_import_mb=rss_import, peak_rss_mb=_rss_mb())
    return out


# --- parent ---------------------------------------------------------------------------------

def _run(lib: str, step: str, args, window: float, *, cache: Path | None = None, root: Path | None = None,
         out: Path | None = None) -> dict:
    python = str(args.torcheeg_python) if lib == "torcheeg" else sys.executable
    cmd = [python, __file__, "--child", f"{lib}:{step}", "--window", str(window), "--data", str(args.data)]
    for flag, value in (("--cache", cache), ("--root", root), ("--out", out)):
        if value is not None:
            cmd += [flag, str(value)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{lib} {step} (window {window:g} s) failed:\n{proc.stderr[-4000:]}")
    return {"lib": lib, "step": step, "window_s": window, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _disk_mb(folder: Path) -> float:
    """Space the files take on disk (allocated blocks, as ``du``), MB."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) / 1e6


def _torcheeg_root(args, subjects) -> Path:
    """A folder holding only the ``sNN.dat`` files (as links): torcheeg opens every file of its
    ``root_path``, and the synthetic set also holds ``synthetic_config.json``."""
    root = args.work / ("root-" + "-".join(f"{s:02d}" for s in subjects) if subjects else "root-all")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    from kdlib.data import deap

    for f in deap.subject_files(args.data, subjects):
        (root / f.name).symlink_to(f.resolve())
    return root


def _check_same_windows(args, window: float) -> dict:
    import numpy as np

    root = _torcheeg_root(args, list(CHECK_SUBJECTS))
    tg_io = args.work / "check-torcheeg"
    shutil.rmtree(tg_io, ignore_errors=True)
    _run("torcheeg", "check", args, window, cache=tg_io, root=root, out=args.work / "check-torcheeg.npz")
    _run("kdlib", "check", args, window, out=args.work / "check-kdlib.npz")
    shutil.rmtree(tg_io, ignore_errors=True)
    got = {}
    for lib in ("kdlib", "torcheeg"):
        with np.load(args.work / f"check-{lib}.npz") as z:
            order = np.lexsort(z["key"].T[::-1])  # by subject, trial, start
            got[lib] = {k: z[k][order] for k in ("x", "y", "key")}
    kd, tg = got["kdlib"], got["torcheeg"]
    problems = [f"{k}: kdlib {kd[k].shape} vs torcheeg {tg[k].shape}" for k in ("x", "y", "key")
                if kd[k].shape != tg[k].shape]
    if not problems:
        if not np.array_equal(kd["key"], tg["key"]):
            problems.append("the windows start at different samples")
        if not np.array_equal(kd["y"], tg["y"]):
            problems.append(f"labels differ in {(kd['y'] != tg['y']).sum()} places")
        if not np.allclose(kd["x"], tg["x"], rtol=RTOL, atol=ATOL):
            problems.append(f"windows differ: max |diff| {np.abs(kd['x'] - tg['x']).max():.3g} uV")
    if problems:
        raise SystemExit(f"kdlib and torcheeg do NOT prepare the same windows ({window:g} s): " + "; ".join(problems))
    diff = float(np.abs(kd["x"] - tg["x"]).max())
    print(f"  same windows ({window:g} s): {len(kd['x'])} windows x {kd['x'].shape[1:]} of subjects "
          f"{list(CHECK_SUBJECTS)}, both labels equal, max |diff| {diff:.2g} uV")
    return {"window_s": window, "n_windows": len(kd["x"]), "max_abs_diff_uV": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "bench-deap-full",
                        help="folder for the full-size synthetic set (written if missing)")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "bench-vs-torcheeg",
                        help="caches of both libraries (emptied before each cold run)")
    parser.add_argument("--subjects", type=int, default=32, help="number of subjects (DEAP: 32)")
    parser.add_argument("--windows", type=float, nargs="+", default=[1.0, 4.0], help="window lengths, s")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each step")
    parser.add_argument("--torcheeg-python", type=Path, default=TORCHEEG_PY,
                        help="python of the torcheeg environment (make bench builds it)")
    # children
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--window", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        lib, step = args.child.split(":")
        print(json.dumps((_child_torcheeg if lib == "torcheeg" else _child_kdlib)(step, args)))
        return

    if not args.torcheeg_python.exists():
        raise SystemExit(f"{args.torcheeg_python} not found: build the torcheeg environment with `make bench` "
                         "(target benchmarks/.bench-venv/.installed)")
    from kdlib.data import synthetic

    synthetic.write_dataset(args.data, synthetic.SynthConfig(n_subjects=args.subjects), progress=False)
    source_mb = sum(p.stat().st_size for p in args.data.glob("s*.dat")) / 1e6
    args.work.mkdir(parents=True, exist_ok=True)
    root = _torcheeg_root(args, None)
    load_before = os.getloadavg()
    checks = [_check_same_windows(args, w) for w in args.windows]

    _run("kdlib", "read", args, args.windows[0])  # warm the page cache
    rows, disk = [], {}
    for rep in range(args.repeat):
        rows.append({**_run("kdlib", "read", args, args.windows[0]), "rep": rep, "load1": os.getloadavg()[0]})
        for w in args.windows:
            for lib in ("kdlib", "torcheeg"):
                cache = args.work / f"cache-{lib}-{w:g}s"
                shutil.rmtree(cache, ignore_errors=True)
                for step in ("cold", "cached"):
                    row = _run(lib, step, args, w, cache=cache, root=root)
                    rows.append({**row, "rep": rep, "load1": os.getloadavg()[0]})
                    print(f"  rep {rep} {lib:8s} {step:6s} {w:g} s: {row['seconds']:7.2f} s, "
                          f"peak {row['peak_rss_mb']:6.0f} MB (load {os.getloadavg()[0]:.2f})")
                disk[(lib, w)] = _disk_mb(cache)
                if lib == "kdlib":  # kdlib's parallel option, beside the one-thread comparison
                    shutil.rmtree(cache, ignore_errors=True)
                    row = _run(lib, "cold_2threads", args, w, cache=cache, root=root)
                    rows.append({**row, "rep": rep, "load1": os.getloadavg()[0]})
                    print(f"  rep {rep} kdlib    cold, 2 threads {w:g} s: {row['seconds']:7.2f} s, "
                          f"peak {row['peak_rss_mb']:6.0f} MB")
    _check_checksums(rows)
    _report(rows, disk, checks, source_mb, load_before, os.getloadavg(), args)


def _check_checksums(rows) -> None:
    """Both libraries must have read the same windows in the cached step (sums and label counts)."""
    cached = {}
    for r in rows:
        if r["step"] == "cached":
            cached.setdefault(r["window_s"], {})[r["lib"]] = r
    for w, by_lib in cached.items():
        kd, tg = by_lib["kdlib"], by_lib["torcheeg"]
        same = (kd["n_windows"] == tg["n_windows"] and kd["n_high"] == tg["n_high"]
                and abs(kd["checksum"] - tg["checksum"]) <= 1e-6 * max(1.0, abs(tg["checksum"])) + 1e-3 * kd["n_windows"])
        if not same:
            raise SystemExit(f"the cached windows differ ({w:g} s): kdlib {kd['n_windows']} windows, sum "
                             f"{kd['checksum']:.6g}, high {kd['n_high']}; torcheeg {tg['n_windows']}, "
                             f"{tg['checksum']:.6g}, {tg['n_high']}")


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; {platform.platform()}; "
            f"Python {platform.python_version()}")


def _versions(args) -> str:
    import numpy

    tg = subprocess.run([str(args.torcheeg_python), "-c", "import torcheeg, torch, numpy, scipy; "
                         "print(f'torcheeg {torcheeg.__version__}, torch {torch.__version__}, "
                         "numpy {numpy.__version__}, scipy {scipy.__version__}')"],
                        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return f"kdlib: numpy {numpy.__version__}; torcheeg env: {tg.stdout.strip() or 'unknown'}"


def _report(rows, disk, checks, source_mb, load_before, load_after, args) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / "bench_vs_torcheeg_runs.csv", index=False)
    read_s = df.loc[df.step == "read", "seconds"].median()
    table = []
    for w in args.windows:
        for step in ("cold", "cached"):
            med = {lib: df[(df.lib == lib) & (df.step == step) & (df.window_s == w)] for lib in ("kdlib", "torcheeg")}
            kd, tg = med["kdlib"], med["torcheeg"]
            table.append({
                "window_s": w, "step": step, "windows": int(kd["n_windows"].iloc[0]),
                "kdlib_s": kd["seconds"].median(), "torcheeg_s": tg["seconds"].median(),
                "speedup": tg["seconds"].median() / kd["seconds"].median(),
                "kdlib_x_read": kd["seconds"].median() / read_s,
                "kdlib_peak_MB": kd["peak_rss_mb"].max(), "torcheeg_peak_MB": tg["peak_rss_mb"].max(),
                "kdlib_disk_MB": disk[("kdlib", w)], "torcheeg_disk_MB": disk[("torcheeg", w)],
            })
    summary = pd.DataFrame(table)
    summary.round(3).to_csv(RESULTS / "bench_vs_torcheeg.csv", index=False)
    two = df[(df.lib == "kdlib") & (df.step == "cold_2threads")].groupby("window_s").agg(
        kdlib_s=("seconds", "median"), kdlib_peak_MB=("peak_rss_mb", "max")).reset_index()
    two["kdlib_x_read"] = two["kdlib_s"] / read_s
    two = two.merge(summary[summary.step == "cold"][["window_s", "torcheeg_s", "torcheeg_peak_MB"]], on="window_s")
    two["speedup_vs_torcheeg_1_process"] = two["torcheeg_s"] / two["kdlib_s"]
    imports = df[df.step != "read"].groupby("lib").agg(import_s=("import_s", "median"),
                                                       rss_after_import_MB=("rss_import_mb", "max"))

    def verdict(ok: bool) -> str:
        return "met" if ok else "**NOT met**"

    cold, cached = summary[summary.step == "cold"], summary[summary.step == "cached"]
    targets = [
        ("kdlib >= 5x faster cold", cold.speedup.min() >= 5, f"{cold.speedup.min():.1f}x at worst"),
        ("kdlib >= 10x faster cached", cached.speedup.min() >= 10, f"{cached.speedup.min():.1f}x at worst"),
        ("kdlib at lower peak memory (cold)", bool((cold.kdlib_peak_MB < cold.torcheeg_peak_MB).all()),
         ", ".join(f"{r.window_s:g} s: {r.kdlib_peak_MB:.0f} vs {r.torcheeg_peak_MB:.0f} MB" for r in cold.itertuples())),
        ("kdlib at lower peak memory (cached)", bool((cached.kdlib_peak_MB < cached.torcheeg_peak_MB).all()),
         ", ".join(f"{r.window_s:g} s: {r.kdlib_peak_MB:.0f} vs {r.torcheeg_peak_MB:.0f} MB" for r in cached.itertuples())),
        ("kdlib cold within 1.5x of the read, one thread", cold.kdlib_x_read.max() <= 1.5,
         f"{cold.kdlib_x_read.max():.2f}x at worst"),
        ("kdlib cold within 1.5x of the read, two threads (`jobs=2`)", two.kdlib_x_read.max() <= 1.5,
         f"{two.kdlib_x_read.max():.2f}x at worst"),
    ]
    loads = df["load1"]
    cmd = ".venv/bin/python benchmarks/bench_vs_torcheeg.py" + (
        f" --repeat {args.repeat}" if args.repeat != 3 else "")
    md = [
        "# bench_vs_torcheeg: kdlib vs torcheeg preparing the same DEAP windows",
        "",
        f"- Command: `{cmd}` (part of `make bench`)",
        f"- Machine: {_machine()}",
        f"- Versions: {_versions(args)}",
        f"- Load average (1 min): {load_before[0]:.2f} before, {loads.min():.2f}-{loads.max():.2f} during the steps, "
        f"{load_after[0]:.2f} after (other jobs share this machine)",
        f"- Source: {args.subjects} synthetic subjects at full DEAP size, {source_mb:.0f} MB of `sNN.dat`, "
        "in the OS page cache; read (kdlib `load_dat` of every file, the floor): "
        f"**{read_s:.2f} s** (median)",
        "- Same work on both sides: channels 1-34, windows without overlap after the 3 s baseline, baseline mean "
        "subtracted, float32, labels valence/arousal with rating >= 5 high; checked before timing: "
        + "; ".join(f"{c['window_s']:g} s: {c['n_windows']} windows equal (max |diff| {c['max_abs_diff_uV']:.1g} uV)"
                    for c in checks)
        + "; the cached steps' checksums and label counts agree too.",
        "- Steps: `cold` = an empty cache filled (kdlib: `build_cache`, every subject one at a time, each "
        "writing its entry; torcheeg: `DEAPDataset(...)` writing its LMDB store); `cached` = the same calls again, "
        "then every window read (kdlib: the memory-mapped entries subject by subject, the float32 sum of every "
        "window in one vectorised pass; torcheeg: `dataset[i]` for every `i`, the same sums). Both single-process "
        "(torcheeg `num_worker=0`, kdlib one thread).",
        f"- Median of {args.repeat} runs, each step in a fresh process; times without the library import "
        "(imports: " + ", ".join(f"{lib} {r.import_s:.2f} s, {r.rss_after_import_MB:.0f} MB"
                                  for lib, r in imports.iterrows()) + "); peak RSS with it; disk: the cache folder.",
        "",
        summary.rename(columns={"speedup": "speedup (torcheeg/kdlib)", "kdlib_x_read": "kdlib / read"})
        .round(2).to_markdown(index=False),
        "",
        "kdlib's cold preparation with two threads (`build_cache(..., jobs=2)`; torcheeg stays at one process, "
        "so the speed-up column is not a like-for-like comparison):",
        "",
        two.round(2).to_markdown(index=False),
        "",
        "Targets (issue #8):",
        "",
        *[f"- {name}: {verdict(ok)} ({detail})" for name, ok, detail in targets],
        "",
    ]
    (RESULTS / "bench_vs_torcheeg.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
