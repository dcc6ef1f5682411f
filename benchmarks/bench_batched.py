"""Benchmark: sequential vs fold-batched training (kdlib.batched), side by side in one run.

Command::

    .venv/bin/python benchmarks/bench_batched.py            # about 15 minutes on a loaded 2-core machine
    .venv/bin/python benchmarks/bench_batched.py --quick    # smoke sizes only, seconds (checks the script)
    .venv/bin/python benchmarks/bench_batched.py --check cuda   # what benchmarks/gpu_check.sh runs

What it measures, one torch thread, 4 s windows (512 samples, 32 EEG + 2 EOG channels), K = 5
folds of 480 training and 120 validation windows (one DEAP-size subject's fold):

* ``epoch``: per model (the teacher, the EEG-/EOG-only nets, late fusion, the v2 student with its
  cached teacher targets) and model size (``smoke``, ``default``), the median epoch time of
  :func:`kdlib.train.fit` on one fold against the median *per-member* epoch time of
  :func:`kdlib.batched.fit_batched` with the 5 folds stacked (its epoch time / 5); their ratio
  is the throughput gain per core. Sequential and batched epochs alternate (``--repeats``), so
  the machine's load hits both alike. ``share_of_matmul``: counted training FLOPs per second
  against a 2048 x 2048 float32 matmul measured in the same run.
* ``unit``: the full method set of one (task, subject, seed) of a synthetic subject, 5 folds:
  :func:`kdlib.evaluate.run_unit` five times against one :func:`kdlib.evaluate.run_batch`.
* ``paper``: the paper protocol's time (32 DEAP-size subjects x 2 tasks x 5 folds, kit-size
  models, ``--preset paper``) extrapolated from the measured default-size epochs: methods x
  25 epochs per fold (the paper preset's early stopping, README), variation 3 at 1.35 x
  variation 2 (``bench_feedback.md``), 320 folds over 2 cores. An extrapolation, not a timed run.

Results: ``benchmarks/results/bench_batched.{csv,md}``; the load average is recorded beside
every measurement.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train import load, machine_md, matmul_gflops, md_table, random_windows, train_flops_per_window  # noqa: E402

from kdlib import models as kmodels  # noqa: E402
from kdlib.batched import fit_batched  # noqa: E402
from kdlib.distill.distill import PRESETS, distill, distill_batched  # noqa: E402
from kdlib.repro import seed_everything  # noqa: E402
from kdlib.train import DEFAULT as TRAIN_DEFAULT  # noqa: E402
from kdlib.train import fit  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
K = 5
MODELS = ("teacher", "eeg_only", "eog_only", "late_fusion", "v2_student")


def _build(name: str, cfg):
    seed_everything(0)
    return kmodels.build_model(name, cfg)


def _epoch_pair(name: str, cfg, trains, vals, teachers, train_cfg) -> tuple[float, float]:
    """(sequential epoch s on fold 0, batched per-member epoch s): the median over the epochs after the first."""
    if name == "v2_student":
        s = distill(teachers[0], trains[0], vals[0], "valence", PRESETS["v2"], train_cfg, model_config=cfg)
        b = distill_batched(teachers, trains, vals, "valence", PRESETS["v2"], train_cfg, model_config=cfg)
        hs, hb = s.history, b[0].history
    else:
        hs = fit(_build(name, cfg), trains[0], vals[0], "valence", train_cfg).history
        hb = fit_batched([_build(name, cfg) for _ in trains], trains, vals, "valence", train_cfg)[0].history
    return statistics.median(hs["seconds"].iloc[1:]), statistics.median(hb["seconds"].iloc[1:])


def bench_epochs(sizes: list[str], epochs: int, repeats: int, peak: float) -> pd.DataFrame:
    trains = [random_windows(480, seed=k) for k in range(K)]
    vals = [random_windows(120, seed=10 + k) for k in range(K)]
    train_cfg = replace(TRAIN_DEFAULT, epochs=epochs, patience=None, progress=False, device="cpu")
    rows = []
    for size in sizes:
        cfg = {"smoke": kmodels.SMOKE, "default": kmodels.DEFAULT}[size]
        teachers = [_build("teacher", cfg) for _ in range(K)]
        for name in MODELS:
            before = load()
            pairs = [_epoch_pair(name, cfg, trains, vals, teachers, train_cfg) for _ in range(repeats)]
            seq, bat = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
            model = kmodels.EOGStudent(cfg) if name == "v2_student" else _build(name, cfg)
            flops = train_flops_per_window(model, train_cfg.batch_size) if name != "v2_student" else float("nan")
            rows.append(dict(what="epoch", size=size, model=name, sequential_s=round(seq, 3),
                             batched_per_member_s=round(bat, 3), ratio=round(seq / bat, 2),
                             share_of_matmul_seq=round(flops * 480 / seq / 1e9 / peak, 3),
                             share_of_matmul_batched=round(flops * 480 / bat / 1e9 / peak, 3),
                             load_before=before, load_after=load()))
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def bench_unit(epochs: int, tmp: Path) -> dict:
    """run_unit x 5 folds vs run_batch of the 5 folds: one synthetic subject, all methods, smoke sizes."""
    from kdlib import evaluate
    from kdlib.data import synthetic

    synthetic.write_dataset(tmp / "synthetic", synthetic.SynthConfig(n_subjects=1), progress=False)
    spec = evaluate.DataSpec(dataset="synthetic", data_dir=str(tmp / "synthetic"), cache_dir=str(tmp / "cache"))
    config = evaluate.ProtocolConfig(model_preset="smoke", train_preset="smoke", epochs=epochs, tasks=("valence",))
    units = evaluate.plan_units(spec.load(), config)
    before = load()
    t0 = time.perf_counter()
    for u in units:
        evaluate.run_unit(spec, u, config, device="cpu")
    seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate.run_batch(spec, units, replace(config, trainer="batched"), device="cpu")
    bat = time.perf_counter() - t0
    return dict(what="unit (9 methods x 5 folds, smoke sizes)", size="smoke", model="all", sequential_s=round(seq, 2),
                batched_per_member_s=round(bat, 2), ratio=round(seq / bat, 2), load_before=before, load_after=load())


def paper_estimate(epochs: pd.DataFrame) -> pd.DataFrame:
    """Hours for 320 folds of the paper preset on 2 cores, from the default-size epoch times."""
    d = epochs[(epochs["what"] == "epoch") & (epochs["size"] == "default")].set_index("model")
    out = []
    for path, col in (("sequential", "sequential_s"), ("batched", "batched_per_member_s")):
        e = d[col]
        per_epoch = e["eeg_only"] + e["eog_only"] + e["late_fusion"] + e["teacher"] + e["v2_student"] * (3 + 1.35)
        fold_s = per_epoch * 25
        out.append(dict(what="paper protocol, extrapolated", size="default", model=path,
                        fold_min=round(fold_s / 60, 1), hours_2_cores=round(fold_s * 320 / 2 / 3600, 1)))
    return pd.DataFrame(out)


def device_check(device: str, quick: bool, out: Path, tmp: Path) -> pd.DataFrame:
    """``--check DEVICE`` (benchmarks/gpu_check.sh): on ``device``, an epoch (sequential vs batched,
    mixed precision off and on), one fold-batched unit and a paper-protocol subset, timed.

    ``quick``: smoke sizes and one epoch, so that the whole check runs on a CPU in about a minute
    (tests/test_batched.py runs it that way)."""
    from kdlib import evaluate
    from kdlib.data import synthetic

    size = "smoke" if quick else "default"
    cfg = {"smoke": kmodels.SMOKE, "default": kmodels.DEFAULT}[size]
    epochs = 2 if quick else 3
    trains = [random_windows(480 if not quick else 64, seed=k) for k in range(K)]
    vals = [random_windows(120 if not quick else 16, seed=10 + k) for k in range(K)]
    rows = []
    for amp in (False, True):
        train_cfg = replace(TRAIN_DEFAULT, epochs=epochs, patience=None, progress=False, device=device, amp=amp)
        seq = fit(_build("teacher", cfg), trains[0], vals[0], "valence", train_cfg).history
        bat = fit_batched([_build("teacher", cfg) for _ in trains], trains, vals, "valence", train_cfg)[0].history
        s, b = statistics.median(seq["seconds"].iloc[1:]), statistics.median(bat["seconds"].iloc[1:])
        rows.append(dict(what=f"teacher epoch (amp={amp}; sequential has no amp)", device=device, size=size,
                         sequential_s=round(s, 3), batched_per_member_s=round(b, 4), ratio=round(s / b, 2)))
    n_trials = 10 if quick else 40
    synthetic.write_dataset(tmp / "synthetic", synthetic.SynthConfig(n_subjects=1, n_trials=n_trials), progress=False)
    spec = evaluate.DataSpec(dataset="synthetic", data_dir=str(tmp / "synthetic"), cache_dir=str(tmp / "cache"))
    preset = "smoke" if quick else "default"
    for what, train_preset, ep in (("unit: 9 methods x 5 folds (3 with --quick), one task", preset,
                                    1 if quick else epochs),
                                   ("paper subset: 1 subject x 1 task x 5 folds (3), paper preset", "paper" if not quick
                                    else "smoke", 1 if quick else 5)):
        config = evaluate.ProtocolConfig(model_preset=preset, train_preset=train_preset, epochs=ep,
                                         tasks=("valence",), trainer="batched", n_folds=3 if quick else 5)
        units = evaluate.plan_units(spec.load(), config)
        t0 = time.perf_counter()
        tables = evaluate.run_batch(spec, units, config, device=device)
        took = time.perf_counter() - t0
        row = dict(what=what, device=device, size=preset, batched_unit_s=round(took, 2), epochs=ep,
                   rows=sum(len(t) for t in tables))
        if what.startswith("paper"):  # 25 epochs per fold (README), 5 folds, 32 subjects x 2 tasks, one device
            row["paper_hours_extrapolated"] = round(took * 25 / ep * (5 / config.n_folds) * 32 * 2 / 3600, 2)
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(out.with_suffix(".csv"), index=False)
    import platform
    name = torch.cuda.get_device_name(0) if torch.device(device).type == "cuda" else platform.processor() or "cpu"
    out.with_suffix(".md").write_text("\n".join([
        "# gpu_check: the fold-batched trainer on a device", "", f"device: {device} ({name}), torch "
        f"{torch.__version__}, CUDA {torch.version.cuda}", "", machine_md("benchmarks/gpu_check.sh"), "",
        md_table(table), "", "paper_hours_extrapolated: the subset's time x 25/epochs x 64 (subject, task) "
        "batches, one device; an extrapolation, not a timed run.", ""]))
    return table


def main(argv=None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke sizes, 2 epochs, 1 repeat (checks the script)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="results stem (default benchmarks/results/bench_batched, "
                    "or gpu_check with --check)")
    ap.add_argument("--check", metavar="DEVICE", default=None,
                    help="the device check of benchmarks/gpu_check.sh on DEVICE (cuda, or cpu with --quick)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            device_check(args.check, args.quick, Path(args.out or RESULTS / "gpu_check"), Path(tmp))
        return 0
    args.out = args.out or str(RESULTS / "bench_batched")
    sizes = ["smoke"] if args.quick else ["smoke", "default"]
    epochs, repeats = (2, 1) if args.quick else (args.epochs, args.repeats)
    peak = matmul_gflops()
    table = bench_epochs(sizes, epochs, repeats, peak)
    with tempfile.TemporaryDirectory() as tmp:
        table = pd.concat([table, pd.DataFrame([bench_unit(2, Path(tmp))])], ignore_index=True)
    paper = paper_estimate(table) if not args.quick else pd.DataFrame()
    out = Path(args.out)
    table.to_csv(out.with_suffix(".csv"), index=False)
    command = "python benchmarks/bench_batched.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = ["# bench_batched: sequential vs fold-batched training, one run", "", machine_md(command), "",
            f"matmul rate: {peak:.1f} GFLOP/s (2048 x 2048 float32, 1 thread)", "", md_table(table)]
    if len(paper):
        text += ["", "## The paper protocol, extrapolated (not a timed run)", "", md_table(paper)]
    text += ["", "No GPU was available: GPU times are estimates (benchmarks/gpu_check.sh measures them).", ""]
    out.with_suffix(".md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
