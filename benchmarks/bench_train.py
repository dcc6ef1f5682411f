"""Benchmark: training throughput and inference latency of the teacher and the student branch
on this CPU, and the achieved GFLOP/s against a plain matmul measured in the same run.

Command::

    .venv/bin/python benchmarks/bench_train.py              # throughput (about 3 minutes)
    .venv/bin/python benchmarks/bench_train.py --tune-lr    # learning-rate sweep (about 10 minutes)
    .venv/bin/python benchmarks/bench_train.py --feedback   # variation 3 vs 2 (about 5 minutes)

What it measures, for 4 s windows (512 samples, 32 EEG + 2 EOG channels), the DEFAULT model
sizes and ``kdlib.train.fit`` itself (so the Python overhead of the real loop is included):

* ``train_windows_s`` -- training windows per second: ``fit`` over 480 windows (one DEAP
  subject's training windows: 40 trials x 0.8 x 15 windows), no validation, the median epoch
  after the first;
* ``epoch_s`` -- one full epoch *with* validation (480 training + 120 validation windows), as
  :func:`kdlib.train.fit` runs it per fold; the target is "a few seconds" on 2 cores;
* ``latency_ms`` -- inference of one window (eval mode, batch 1), median of 50 calls;
* ``infer_windows_s`` -- batched inference throughput (batch 256);
* ``train_gflops`` -- FLOPs of a training step *counted* with ``FlopCounterMode`` (forward +
  backward of the convolutions, linear layers and matmuls) times ``train_windows_s``; and
  ``matmul_gflops``, the best of a 2048 x 2048 float32 matmul in the same process: their ratio is
  the share of the hardware's reachable peak that training achieves.

Each configuration is run with 1 and 2 torch threads (``--threads``). The machine may be shared:
the load average before and after every measurement is recorded next to it.

``--feedback`` measures what dynamic feedback (variation 3, :mod:`kdlib.distill.feedback`)
costs, with the DEFAULT model sizes and one torch thread, at both ``FeedbackConfig.teacher_scope``
values (``--scopes``; "fusion": the feedback updates the teacher's fusion and head, the branches'
outputs are cached once per fold; "all": the whole teacher, run in full on every batch): the
median time of one feedback step (look-ahead with ``create_graph``, meta-gradient, teacher
update), of one variation-3 teaching step (the teacher's outputs for the batch + the student's
step) and of one variation-2 step (cached teacher targets + the student's step), at batch 64;
and one whole fold of ``kdlib.distill.distill`` with ``PRESETS["v2"]`` and ``PRESETS["v3"]``
(480 teaching, 120 validation and 90 quiz windows, a fixed number of epochs, no early stopping,
so both run the same steps). The aim: variation 3 costs at most 2x variation 2 per fold at the default
schedule (``every_k = 8``, ``teacher_scope = "fusion"``). Results:
``benchmarks/results/bench_feedback.{csv,md}``.

``--tune-lr`` trains the teacher on one fold of a synthetic subject (``kdlib.data.synthetic``)
with several learning rates and seeds and records validation and test accuracy per epoch budget;
kdlib's default learning rate was chosen from it (see ``kdlib/train.py``).

Results: ``benchmarks/results/bench_train.{csv,md}`` and ``lr_sweep.{csv,md}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdlib.data.windows import WindowSet  # noqa: E402
from kdlib.models import DEFAULT as MODEL_DEFAULT  # noqa: E402
from kdlib.models import build_model, count_macs, count_params  # noqa: E402
from kdlib.repro import environment_report, format_environment_report, seed_everything  # noqa: E402
from kdlib.train import DEFAULT as TRAIN_DEFAULT  # noqa: E402
from kdlib.train import call_model, fit  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODELS = {"teacher": "teacher", "student_branch": "eog_only"}  # label -> kdlib.models name


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def random_windows(n: int, seed: int = 0, n_samples: int = 512) -> WindowSet:
    """Normalised-looking random windows (the speed does not depend on the values)."""
    rng = np.random.default_rng(seed)
    n_trials = max(2, n // 15)
    trial = np.arange(n) % n_trials
    ratings = np.c_[np.where(trial % 2, 7.0, 3.0), rng.uniform(1, 9, (n, 3))].astype(np.float32)
    return WindowSet(eeg=rng.standard_normal((n, 32, n_samples), dtype=np.float32),
                     eog=rng.standard_normal((n, 2, n_samples), dtype=np.float32), ratings=ratings,
                     subject=np.full(n, "s01"), trial=trial, start_s=np.zeros(n), fs=128.0,
                     eeg_channels=tuple(f"E{i}" for i in range(32)), eog_channels=("hEOG", "vEOG"))


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def train_flops_per_window(model: torch.nn.Module, batch: int) -> float:
    """FLOPs of one training step (forward + backward), counted, per window."""
    ws = random_windows(batch)
    eeg, eog = torch.from_numpy(ws.eeg), torch.from_numpy(ws.eog)
    y = torch.from_numpy(ws.labels("valence"))
    model.train()
    with FlopCounterMode(display=False) as counter:
        loss = torch.nn.functional.cross_entropy(call_model(model, eeg, eog).logits, y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


@torch.no_grad()
def inference(model: torch.nn.Module, batch: int, repeats: int) -> float:
    """Median seconds of one eval-mode forward pass of ``batch`` windows."""
    ws = random_windows(batch)
    eeg, eog = torch.from_numpy(ws.eeg), torch.from_numpy(ws.eog)
    model.eval()
    for _ in range(3):
        call_model(model, eeg, eog)
    return statistics.median(_timed(lambda: call_model(model, eeg, eog)) for _ in range(repeats))


def bench(threads: int, batch_size: int, epochs: int) -> list[dict]:
    torch.set_num_threads(threads)
    train, val = random_windows(480, seed=0), random_windows(120, seed=1)
    peak = matmul_gflops()
    rows = []
    for label, name in MODELS.items():
        load_before = load()
        seed_everything(0)
        model = build_model(name, MODEL_DEFAULT)
        cfg = replace(TRAIN_DEFAULT, epochs=epochs, batch_size=batch_size, patience=None, progress=False,
                      device="cpu")
        h = fit(model, train, None, "valence", cfg).history
        train_s = statistics.median(h["seconds"].iloc[1:])
        hv = fit(model, train, val, "valence", replace(cfg, epochs=2)).history
        epoch_s = float(hv["seconds"].iloc[-1])
        flops = train_flops_per_window(model, batch_size)
        lat = inference(model, 1, 50)
        batch_inf = inference(model, 256, 5)
        windows_s = len(train) / train_s
        rows.append(dict(
            model=label, kdlib_name=name, threads=threads, batch_size=batch_size,
            params=count_params(model), fwd_mmacs=round(count_macs(model) / 1e6, 2),
            train_gflop_per_window=round(flops / 1e9, 4),
            train_windows_s=round(windows_s, 1), train_epoch_480_s=round(train_s, 2),
            epoch_s=round(epoch_s, 2), latency_ms=round(lat * 1e3, 2),
            infer_windows_s=round(256 / batch_inf, 1),
            train_gflops=round(flops * windows_s / 1e9, 2), matmul_gflops=round(peak, 1),
            share_of_matmul=round(flops * windows_s / 1e9 / peak, 3),
            load_before=load_before, load_after=load()))
        print(rows[-1], flush=True)
    return rows


def tune_lr(lrs: list[float], seeds: list[int], epochs: int, threads: int, folds: int = 5) -> pd.DataFrame:
    """Teacher on every fold of synthetic subject s01 (valence), one run per (lr, seed, fold)."""
    import tempfile

    from kdlib.data import deap, synthetic
    from kdlib.data.splits import trial_kfold
    from kdlib.data.windows import ChannelScaler, make_windows
    from kdlib.train import evaluate

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        arrays = synthetic.generate_subject(0, synthetic.DEFAULT)
        path = deap.save_dat(Path(tmp) / "s01.dat", arrays["data"], arrays["labels"])
        ws = make_windows(deap.load_subject(path))
    task = "valence"
    rows = []
    for fold in trial_kfold(ws, task, n_splits=5, val_size=0.2, seed=0)[:folds]:
        scaler = ChannelScaler.fit(ws.subset(fold.train))
        train, val, test = (scaler.transform(ws.subset(i)) for i in (fold.train, fold.val, fold.test))
        for lr in lrs:
            for seed in seeds:
                seed_everything(seed)
                model = build_model("teacher", MODEL_DEFAULT)
                cfg = replace(TRAIN_DEFAULT, lr=lr, epochs=epochs, patience=None, seed=seed, progress=False,
                              device="cpu")
                res = fit(model, train, val, task, cfg)
                h = res.history
                m = evaluate(res.model, test, task, train_labels=train.labels(task))
                rows.append(dict(lr=lr, seed=seed, fold=fold.index, epochs=epochs, best_epoch=res.best_epoch,
                                 best_val_loss=round(res.best_score, 4),
                                 best_val_acc=round(float(h["val_acc"].iloc[res.best_epoch - 1]), 3),
                                 train_loss_epoch3=round(float(h["train_loss"].iloc[min(2, len(h) - 1)]), 4),
                                 final_train_loss=round(float(h["train_loss"].iloc[-1]), 4),
                                 test_acc=round(m["accuracy"], 3), test_f1=round(m["f1"], 3),
                                 majority_acc=round(m["majority_acc"], 3), seconds=round(res.seconds, 1)))
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def _median_s(fn, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(_timed(fn) for _ in range(repeats))


def bench_feedback(epochs: int, repeats: int, every_k: list[int],
                   scopes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cost of a feedback step vs a teaching step, and of a variation-3 fold vs variation 2,
    for each ``teacher_scope``."""
    from kdlib.distill import (PRESETS, branch_outputs, build_student, distill, feedback_parameters, feedback_step,
                               teacher_outputs, teaching_step)
    from kdlib.distill.distill import teacher_targets
    from kdlib.train import Batch, make_optimizer, to_tensors

    torch.set_num_threads(1)
    train, val, quiz = random_windows(480, seed=0), random_windows(120, seed=1), random_windows(90, seed=2)
    cfg = replace(TRAIN_DEFAULT, epochs=epochs, patience=None, progress=False, device="cpu", num_threads=1)
    seed_everything(0)
    teacher = build_model("teacher", MODEL_DEFAULT).eval()
    model = build_student(MODEL_DEFAULT, PRESETS["v3"]).train()
    opt_s, _ = make_optimizer(model, cfg, 8)
    data = to_tensors(train, "valence", ("eeg", "eog"))
    b = [Batch(data["eeg"][i], data["eog"][i], data["y"][i], i) for i in (torch.arange(64), torch.arange(64, 128))]
    cached = teacher_targets(teacher, train).take(b[0].index)
    v3 = PRESETS["v3"]
    timed = [("v2", "", "v2 teaching step (cached teacher targets)",
              lambda: teaching_step(model, opt_s, b[0].eog, b[0].y, cached, v3))]
    for scope in scopes:  # "fusion": branch outputs cached once per fold, only fusion + head run per batch
        branches = branch_outputs(teacher, data["eeg"], data["eog"]).take(b[0].index) if scope == "fusion" else None
        opt_t = torch.optim.Adam(feedback_parameters(teacher, scope), lr=1e-4)
        fb = replace(v3.feedback_config, teacher_scope=scope)
        timed += [
            ("v3", scope, "v3 teaching step (teacher outputs + student step)",
             lambda br=branches: teaching_step(model, opt_s, b[0].eog, b[0].y,
                                               teacher_outputs(teacher, b[0].eeg, b[0].eog, br), v3)),
            ("v3", scope, "v3 feedback step (look-ahead + meta-gradient + teacher step)",
             lambda br=branches, opt=opt_t, fb=fb: feedback_step(teacher, model.student, model.adapter, opt, b[0],
                                                                 b[1], v3, fb, branches=br))]
    steps = pd.DataFrame([dict(method=method, scope=scope, step=name, batch=64,
                               median_ms=round(_median_s(fn, repeats) * 1e3, 1), load=load())
                          for method, scope, name, fn in timed])
    steps["relative_to_v2_step"] = (steps["median_ms"] / steps["median_ms"].iloc[0]).round(2)
    print(steps.to_string(), flush=True)

    def step_ratio(scope: str, kind: str) -> float:  # kind: "teaching" or "feedback"
        row = (steps["scope"] == scope) & steps["step"].str.contains(kind)
        return float(steps.loc[row, "relative_to_v2_step"].iloc[0])

    rows = []
    for method, scope, k in [("v2", "", None)] + [("v3", s, k) for s in scopes for k in every_k]:
        config = PRESETS[method]
        if k is not None:
            config = replace(config, feedback_config=replace(config.feedback_config, every_k=k, teacher_scope=scope))
        load_before = load()
        res = distill(teacher, train, val, "valence", config, cfg, quiz=quiz)
        n_fb = int((res.steps["phase"] == "feedback").sum()) if res.steps is not None else 0
        from_steps = 1.0 if k is None else (k * step_ratio(scope, "teaching") + step_ratio(scope, "feedback")) / k
        rows.append(dict(method=method, teacher_scope=scope, every_k=k if k is not None else "", epochs=epochs,
                         steps=epochs * 8, feedback_steps=n_fb, fold_s=round(res.seconds, 1),
                         epoch_s=round(float(res.history["seconds"].median()), 2),
                         load_before=load_before, load_after=load(), relative_from_steps=round(from_steps, 2)))
        print(rows[-1], flush=True)
    folds = pd.DataFrame(rows)
    folds["relative_to_v2"] = (folds["fold_s"] / folds["fold_s"].iloc[0]).round(2)
    return steps, folds


def md_table(df: pd.DataFrame, index: bool = False) -> str:
    """A Markdown table (pandas' to_markdown needs the optional 'tabulate')."""
    if index:
        df = df.reset_index()
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def machine_md(command: str) -> str:
    return "\n".join([
        f"- command: `{command}`",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "",
        "```",
        format_environment_report(environment_report()),
        "```",
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="1,2", help="torch thread counts to try, comma-separated")
    p.add_argument("--batch-size", type=int, default=TRAIN_DEFAULT.batch_size)
    p.add_argument("--epochs", type=int, default=3, help="epochs per throughput measurement (>= 2)")
    p.add_argument("--tune-lr", action="store_true", help="run the learning-rate sweep instead")
    p.add_argument("--lrs", default="1e-4,3e-4,1e-3,3e-3")
    p.add_argument("--seeds", default="0")
    p.add_argument("--folds", type=int, default=5, help="folds of the sweep (of 5)")
    p.add_argument("--sweep-epochs", type=int, default=10)
    p.add_argument("--feedback", action="store_true", help="cost of variation 3 vs variation 2 instead")
    p.add_argument("--feedback-epochs", type=int, default=5, help="epochs of each fold in --feedback")
    p.add_argument("--every-k", default="4,8", help="feedback schedules (every k teaching steps) to time")
    p.add_argument("--scopes", default="fusion,all", help="FeedbackConfig.teacher_scope values to time")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench_train.py", *sys.argv[1:]])
    args.out.mkdir(parents=True, exist_ok=True)

    if args.feedback:
        steps, folds = bench_feedback(args.feedback_epochs, 10, [int(k) for k in args.every_k.split(",")],
                                      args.scopes.split(","))
        folds.to_csv(args.out / "bench_feedback.csv", index=False)
        (args.out / "bench_feedback.md").write_text("\n".join([
            "# Cost of dynamic feedback (variation 3) relative to variation 2, DEFAULT model sizes, 1 thread",
            "", machine_md(command), "",
            "`scope`: `FeedbackConfig.teacher_scope` of variation 3. `fusion` (default): the feedback "
            "updates the teacher's fusion and head only; the EEG and EOG branches stay frozen, their outputs "
            "are computed once per fold and cached, and each batch runs only the fusion and the head. `all`: "
            "the whole teacher is updated and run in full on every batch.", "",
            "Median of 10 calls at batch 64 (`relative_to_v2_step`: over the variation-2 teaching step):", "",
            md_table(steps), "",
            "One fold of `kdlib.distill.distill` (480 teaching + 120 validation windows of random data, 90 quiz "
            "windows for the feedback batches, "
            "8 steps per epoch, fixed epochs, no early stopping; `fold_s` includes the teacher's "
            "forward passes and, for scope `fusion`, caching the branch outputs; `load_*`: load average "
            "around the run, the machine may be shared; `relative_from_steps`: `(k * teaching + feedback) / k` "
            "from the step table, in variation-2 steps, less sensitive to the load):", "",
            md_table(folds), ""]))
        return 0

    if args.tune_lr:
        table = tune_lr([float(x) for x in args.lrs.split(",")], [int(s) for s in args.seeds.split(",")],
                        args.sweep_epochs, threads=int(args.threads.split(",")[-1]), folds=args.folds)
        table.to_csv(args.out / "lr_sweep.csv", index=False)
        summary = table.groupby("lr")[["best_val_loss", "best_val_acc", "train_loss_epoch3", "final_train_loss",
                                       "best_epoch", "test_acc", "test_f1", "majority_acc"]].mean().round(3)
        (args.out / "lr_sweep.md").write_text("\n".join([
            "# Learning-rate sweep: FusionTeacher, synthetic subject s01, valence, 5 trial folds",
            "", machine_md(command), "",
            "Synthetic data (kdlib.data.synthetic): says nothing about accuracy on DEAP. "
            "Early stopping on validation trials, test = the fold's held-out trials. The rate is chosen on the "
            "validation and training columns; the test columns are shown for information and were not used "
            "to choose. Mean over folds and seeds:",
            "", md_table(summary, index=True), "", "All runs:", "", md_table(table), ""]))
        print(summary)
        return 0

    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        rows += bench(threads, args.batch_size, max(2, args.epochs))
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "bench_train.csv", index=False)
    cols = ["model", "threads", "params", "fwd_mmacs", "train_windows_s", "train_epoch_480_s", "epoch_s",
            "latency_ms", "infer_windows_s", "train_gflops", "matmul_gflops", "share_of_matmul", "load_before",
            "load_after"]
    (args.out / "bench_train.md").write_text("\n".join([
        "# Training and inference speed: teacher and student branch, 4 s windows, CPU",
        "", machine_md(command), "",
        "`train_epoch_480_s`: one training epoch over 480 windows (one DEAP subject's training "
        "windows), `epoch_s`: the same plus validation on 120 windows. `share_of_matmul`: counted "
        "training GFLOP/s over a 2048x2048 float32 matmul's GFLOP/s in the same run. "
        "`load_*`: load average (1/5/15 min) around the measurement (the machine may be shared).",
        "", md_table(table[cols]), ""]))
    print(table[cols].to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
