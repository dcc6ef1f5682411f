"""Benchmark: sequential vs fold-batched training (kdlib.batched), side by side in one run.

Command::

    .venv/bin/python benchmarks/bench_batched.py            # about 15 minutes on a loaded 2-core machine
    .venv/bin/python benchmarks/bench_batched.py --epoch-sizes smoke,default  # + kit-size epochs
    .venv/bin/python benchmarks/bench_batched.py --quick    # smoke sizes only, seconds (checks the script)
    .venv/bin/python benchmarks/bench_batched.py --check cuda   # what benchmarks/gpu_check.sh runs
    .venv/bin/python benchmarks/bench_batched.py --reproduce    # kdlib reproduce end to end, both trainers

What it measures, one torch thread, 4 s windows (512 samples, 32 EEG + 2 EOG channels), K = 5
folds of 480 training and 120 validation windows (one DEAP-size subject's fold):

* ``epoch`` (smoke sizes unless ``--epoch-sizes``): per model (the teacher, the EEG-/EOG-only
  nets, late fusion, the v2 student with its cached teacher targets), the median epoch time of
  :func:`kdlib.train.fit` on one fold against the median *per-member* epoch time of
  :func:`kdlib.batched.fit_batched` with the 5 folds stacked (its epoch time / 5); their ratio
  is the throughput gain per core (one fit after the other: a changing load biases it; the
  ``step`` rows do not). ``share_of_matmul``: counted training FLOPs per second
  against a 2048 x 2048 float32 matmul measured in the same run.
* ``unit``: the full method set of one (task, subject, seed) of a synthetic subject, 5 folds:
  :func:`kdlib.evaluate.run_unit` five times against one :func:`kdlib.evaluate.run_batch`.
* ``step``: the same models' training steps (batch 64), K steps of one model against one step of
  the K-member stack, interleaved pair by pair: the robust ratio on a machine whose load changes.
* ``paper``: the paper protocol's time (32 DEAP-size subjects x 2 tasks x 5 folds, kit-size
  models, ``--preset paper``): the README's sequential extrapolation (19 h on 2 cores) scaled by
  the default-size step times of this run (:func:`paper_estimate`). An extrapolation, not a timed run.

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
NOTE = ("How to read it: `ratio` = sequential / batched time per fold (> 1: the stack is faster). The `step` "
        "rows interleave the two sides pair by pair and are the load-robust ratios; the `epoch` and `unit` rows "
        "run one side after the other, so a changing load biases them. With the machine shared (see the load "
        "columns) absolute times and the matmul rate are inflated alike; the shares of the matmul rate are "
        "measured against the rate of this run.")
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


def _step_fns(name: str, cfg, train_cfg, batch: int):
    """One training step of a model (as ``fit`` makes it) and of a K-member stack (as ``fit_batched``)."""
    import torch.nn.functional as F

    from kdlib.batched import Ensemble, _clip, _optimizer, ce_loss
    from kdlib.train import Batch, call_model, make_optimizer

    ws = random_windows(batch)
    eeg, eog, y = torch.from_numpy(ws.eeg), torch.from_numpy(ws.eog), torch.from_numpy(ws.labels("valence"))
    model = _build(name, cfg)
    opt, _ = make_optimizer(model, train_cfg, 8)
    model.train()

    def seq():
        loss = F.cross_entropy(call_model(model, eeg, eog).logits, y)  # (B, C) -> ()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    ens = Ensemble([_build(name, cfg) for _ in range(K)])
    bopt = _optimizer(ens, train_cfg, "cpu")
    stack = Batch(*(x.expand(K, *x.shape).contiguous() for x in (eeg, eog, y)), torch.arange(batch).expand(K, -1))

    def bat():
        loss, _, _ = ens.map(ce_loss, stack, {}, train=True)  # (K,)
        bopt.zero_grad(set_to_none=True)
        loss.sum().backward()
        _clip(ens, 1.0)
        bopt.step()
    return seq, bat


def bench_steps(sizes: list[str], repeats: int, peak: float) -> pd.DataFrame:
    """Training steps (batch 64) of one model x K against one K-member stack, interleaved pair by pair
    (robust to a changing load: both sides of a ratio see the same minutes)."""
    train_cfg = replace(TRAIN_DEFAULT, device="cpu")
    rows = []
    for size in sizes:
        cfg = {"smoke": kmodels.SMOKE, "default": kmodels.DEFAULT}[size]
        for name in ("teacher", "eeg_only", "eog_only", "late_fusion"):
            seq, bat = _step_fns(name, cfg, train_cfg, 64)
            seq(), bat()  # warm-up
            before, pairs = load(), []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(K):
                    seq()
                t1 = time.perf_counter()
                bat()
                pairs.append((t1 - t0, time.perf_counter() - t1))
            s, b = statistics.median(p[0] for p in pairs) / K, statistics.median(p[1] for p in pairs) / K
            flops = train_flops_per_window(_build(name, cfg), 64) * 64
            rows.append(dict(what="step (batch 64), interleaved", size=size, model=name, sequential_s=round(s, 4),
                             batched_per_member_s=round(b, 4), ratio=round(s / b, 2),
                             share_of_matmul_seq=round(flops / s / 1e9 / peak, 3),
                             share_of_matmul_batched=round(flops / b / 1e9 / peak, 3), load_before=before,
                             load_after=load()))
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


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


def paper_estimate(table: pd.DataFrame) -> pd.DataFrame:
    """The paper protocol on 2 cores, sequential (the README's extrapolation from measured folds,
    19 h) and batched (scaled by the default-size step times of this run). An extrapolation.

    Per fold and epoch the cost is taken as the sum of the models' step times: the EEG-only,
    EOG-only and late-fusion nets, the teacher, three students (scratch, v1, v2: an EOG-only net
    and an adapter, counted as the EOG-only step) and variation 3 at 1.35 x v2, which stays
    sequential in the batched path (``bench_feedback.md``)."""
    d = table[(table["what"].str.startswith("step")) & (table["size"] == "default")].set_index("model")
    if d.empty:
        return pd.DataFrame()
    seq, bat = d["sequential_s"], d["batched_per_member_s"]
    base = ["eeg_only", "eog_only", "late_fusion", "teacher"]
    seq_sum = seq[base].sum() + seq["eog_only"] * (3 + 1.35)
    bat_sum = bat[base].sum() + bat["eog_only"] * 3 + seq["eog_only"] * 1.35
    hours = 19.0  # README: 320 folds x ~7 min per fold and core / 2 cores, sequential
    return pd.DataFrame([dict(what="paper protocol, extrapolated", size="default", model=path,
                              hours_2_cores=round(hours * s_ / seq_sum, 1))
                         for path, s_ in (("sequential", seq_sum), ("batched", bat_sum))])


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
    for what, train_preset, ep in (("unit: 9 methods x 5 folds (2 with --quick), one task", preset,
                                    1 if quick else epochs),
                                   ("paper subset: 1 subject x 1 task x 5 folds (2), paper preset", "paper" if not quick
                                    else "smoke", 1 if quick else 5)):
        config = evaluate.ProtocolConfig(model_preset=preset, train_preset=train_preset, epochs=ep,
                                         tasks=("valence",), trainer="batched", n_folds=2 if quick else 5)
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


def bench_reproduce(tmp: Path) -> pd.DataFrame:
    """``kdlib reproduce`` end to end, ``--trainer sequential`` then ``batched``, on the same small
    configuration (2 synthetic subjects, 5 folds, valence, all 9 methods, smoke sizes, 2 epochs, 1 job)."""
    import subprocess

    py = sys.executable
    subprocess.run([py, "-m", "kdlib", "synth", "--out", str(tmp / "data"), "--subjects", "2", "--quiet"], check=True)
    rows = []
    for trainer in ("sequential", "batched"):
        before = load()
        cmd = [py, "-m", "kdlib", "reproduce", "--data-dir", str(tmp / "data"), "--cache-dir", str(tmp / "cache"),
               "--tasks", "valence", "--preset", "smoke", "--epochs", "2", "--device", "cpu", "--trainer", trainer,
               "--out", str(tmp / trainer), "--no-report", "--quiet"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        rows.append(dict(what="kdlib reproduce, 2 subjects x 5 folds x valence x 9 methods, smoke, 2 epochs",
                         model=trainer, seconds=round(time.perf_counter() - t0, 1), load_before=before,
                         load_after=load()))
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke sizes, 2 epochs, 1 repeat (checks the script)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="fits per model for the epoch rows")
    ap.add_argument("--step-repeats", type=int, default=7, help="interleaved step pairs per model")
    ap.add_argument("--no-epochs", action="store_true", help="steps and the unit only (no whole-epoch rows)")
    ap.add_argument("--epoch-sizes", default="smoke", help="model sizes of the whole-epoch rows (default smoke; "
                    "'smoke,default' adds the kit size, ~30 min on a loaded 2-core machine)")
    ap.add_argument("--out", default=None, help="results stem (default benchmarks/results/bench_batched, "
                    "or gpu_check with --check)")
    ap.add_argument("--reproduce", action="store_true", help="only kdlib reproduce end to end, both trainers")
    ap.add_argument("--check", metavar="DEVICE", default=None,
                    help="the device check of benchmarks/gpu_check.sh on DEVICE (cuda, or cpu with --quick)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.reproduce:
        with tempfile.TemporaryDirectory() as tmp:
            table = bench_reproduce(Path(tmp))
        out = Path(args.out or RESULTS / "bench_batched_reproduce")
        table.to_csv(out.with_suffix(".csv"), index=False)
        command = "python benchmarks/bench_batched.py --reproduce"
        out.with_suffix(".md").write_text("\n".join(["# bench_batched --reproduce: kdlib reproduce end to end, "
                                                     "sequential then batched", "", machine_md(command), "",
                                                     md_table(table), ""]))
        print(md_table(table))
        return 0
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            device_check(args.check, args.quick, Path(args.out or RESULTS / "gpu_check"), Path(tmp))
        return 0
    args.out = args.out or str(RESULTS / "bench_batched")
    sizes = ["smoke"] if args.quick else ["smoke", "default"]
    epochs, repeats = (2, 1) if args.quick else (args.epochs, args.repeats)
    peak = matmul_gflops()
    table = bench_steps(sizes, 3 if args.quick else args.step_repeats, peak)
    if not args.no_epochs:
        table = pd.concat([table, bench_epochs(args.epoch_sizes.split(","), epochs, repeats, peak)], ignore_index=True)
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
    text += ["", NOTE, "", "No GPU was available: GPU times are estimates (benchmarks/gpu_check.sh measures them).", ""]
    out.with_suffix(".md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
