"""Benchmark: what each training and inference optimisation buys on this CPU, before/after.

Command::

    .venv/bin/python benchmarks/bench_speedups.py            # about 5 minutes on 2 cores (half compiling)
    .venv/bin/python benchmarks/bench_speedups.py --quick    # a fast check of every code path

Training (DEFAULT model sizes, 4 s windows: 480 training + 120 validation windows of random data,
batch 64, the step of :func:`kdlib.train.fit`: class-weighted cross-entropy, AdamW from
:func:`kdlib.train.make_optimizer`, gradient clipping, cosine schedule, then validation). For the
teacher (:class:`~kdlib.models.FusionTeacher`) and the EOG student
(:class:`~kdlib.models.EOGStudent`) one *baseline* run (eager, 1 torch thread, contiguous
weights, batches sliced from in-memory tensors as ``fit`` does) and one run per optimisation,
each changing one thing:

* ``compile``: ``torch.compile(model)`` (``--max-autotune`` adds
  ``mode="max-autotune-no-cudagraphs"``); the first epoch includes the compilation (cold: a fresh
  inductor cache directory), ``next_fold_compile_s`` is the compilation of a new model of the
  same class in the same process (what every later fold of a protocol run pays);
* ``channels_last``: ``model.to(memory_format=torch.channels_last)``: the tokeniser's
  convolutions then produce their 4-D ``(B, 64, C, 61)`` activation in channels-last layout;
* ``threads``: 2 torch threads instead of 1;
* ``dataloader``: the windows served by what users usually write, a ``torch.utils.data.Dataset``
  whose ``__getitem__`` returns one window + ``DataLoader`` collation, instead of kdlib's tensor
  slicing (the prepared windows held as tensors, :func:`kdlib.train.to_tensors` and
  :func:`kdlib.train.iterate_batches`). Here the baseline is the *after*.

All runs start from the same weights (same seed), see the same batches in the same order and
keep their own random state (dropout), so their training losses can be compared: equal for the
data-layout change, close for the others. The runs alternate epoch by epoch (round robin), so a
change in the machine's load hits all of them alike. ``epoch_s`` is the median epoch after the
first; ``speedup`` = baseline ``epoch_s`` / ``epoch_s`` (above 1: faster);
``fold_speedup`` does the same for a typical fold of ``--fold-epochs`` epochs, the first epoch
(with any compilation) included. ``share_of_matmul``: counted GFLOP/s of the epoch (forward +
backward of the training windows, forward of the validation windows) over a 2048 x 2048 float32
matmul's GFLOP/s at the same thread count, measured in the same run.

Inference (1 torch thread, eval mode, ``torch.inference_mode``): latency of one window (median of
``--latency-calls`` calls after warm-up, in interleaved rounds) and throughput at batch 256, for
the student eager, TorchScript (``torch.jit.trace``, + ``freeze``; ``torch.jit.script``),
``torch.export`` (:func:`kdlib.models.export_student`), that program compiled ahead of time
(AOTInductor) and ``torch.compile``; and the teacher eager and traced. Every variant's logits
are checked against eager (``allclose``) before timing; ``prepare_s`` is the time to build it.

The machine may be shared: the script waits (up to ``--wait-tries`` x 60 s) for the 1-minute load
average to drop below ``--max-load`` and records the load average around every measurement.
Results: ``benchmarks/results/bench_speedups.{csv,md}`` (inference rows in
``bench_speedups_inference.csv``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_train import load, machine_md, matmul_gflops, md_table, random_windows, train_flops_per_window  # noqa: E402

from kdlib.data.windows import WindowSet  # noqa: E402
from kdlib.models import DEFAULT as MODEL_DEFAULT  # noqa: E402
from kdlib.models import EOGStudent, FusionTeacher, LogitsOnly, count_macs, export_student  # noqa: E402
from kdlib.repro import dataloader_generator, seed_everything  # noqa: E402
from kdlib.train import DEFAULT as TRAIN_DEFAULT  # noqa: E402
from kdlib.train import Batch, call_model, class_weights, iterate_batches, make_optimizer, to_tensors  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TASK = "valence"
MODELS = {"teacher": FusionTeacher, "student": EOGStudent}  # label -> class (DEFAULT sizes)
BASELINE = dict(threads=1, compile_mode=None, channels_last=False, loader="tensor")
BASE = "eager, 1 thread, tensor slicing"  # the baseline's label


# --- batches: kdlib's tensor slicing vs a per-item Dataset + DataLoader -------------------------

def tensor_batches(ws: WindowSet, modalities, batch_size: int, seed: int,
                   shuffle: bool = True) -> Callable[[], Iterator[Batch]]:
    """Batches sliced from in-memory tensors, as :func:`kdlib.train.fit` does (one epoch per call)."""
    data = to_tensors(ws, TASK, modalities)
    gen = dataloader_generator(seed) if shuffle else None

    def epoch():
        for idx in iterate_batches(len(ws), batch_size, gen):
            yield Batch(*(data[m][idx] if data[m] is not None else None for m in ("eeg", "eog")),
                        data["y"][idx], idx)  # (B, n_eeg, T), (B, n_eog, T), (B,), (B,)
    return epoch


class WindowDataset(Dataset):
    """What users usually write: one window per ``__getitem__``, made a tensor there."""

    def __init__(self, ws: WindowSet, modalities):
        self.ws, self.modalities, self.y = ws, tuple(modalities), ws.labels(TASK)

    def __len__(self) -> int:
        return len(self.ws)

    def __getitem__(self, i: int) -> dict:
        item = {m: torch.from_numpy(getattr(self.ws, m)[i]) for m in self.modalities}  # (n_ch, T)
        item["y"] = int(self.y[i])
        return item


class Permutation(Sampler):
    """``torch.randperm(n, generator)`` per epoch: the order of :func:`kdlib.train.iterate_batches`
    (``RandomSampler`` draws one extra permutation per epoch, so its order drifts from epoch 2)."""

    def __init__(self, n: int, generator: torch.Generator | None):
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if self.generator is None:
            return iter(range(self.n))
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


def loader_batches(ws: WindowSet, modalities, batch_size: int, seed: int,
                   shuffle: bool = True) -> Callable[[], Iterator[Batch]]:
    """The same batches through ``Dataset.__getitem__`` + ``DataLoader`` collation (no workers:
    on 2 cores a worker process competes with the training thread)."""
    ds = WindowDataset(ws, modalities)
    loader = DataLoader(ds, batch_size=batch_size,
                        sampler=Permutation(len(ds), dataloader_generator(seed) if shuffle else None),
                        generator=dataloader_generator(seed + 1))  # its base seed: not the global RNG

    def epoch():
        for b in loader:
            yield Batch(b.get("eeg"), b.get("eog"), b["y"], None)  # collated (B, n_ch, T), (B,)
    return epoch


# --- one training run, stepped an epoch at a time -------------------------------------------

@dataclass
class Run:
    """A training run of the step of :func:`kdlib.train.fit`, with its own random state."""

    model: nn.Module  # what is called (compiled or not)
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    train: Callable[[], Iterator[Batch]]
    val: Callable[[], Iterator[Batch]]
    weight: torch.Tensor  # (n_classes,) cross-entropy class weights
    threads: int
    rng: torch.Tensor  # the global torch RNG state between this run's epochs (dropout)


def make_run(cls, train: WindowSet, val: WindowSet, *, threads: int = 1, compile_mode: str | None = None,
             channels_last: bool = False, loader: str = "tensor", seed: int = 0) -> Run:
    """A fresh run: the model built after ``seed_everything(seed)``, one setting changed."""
    seed_everything(seed)
    model = cls(MODEL_DEFAULT)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # the 4-D conv weights
    cfg = replace(TRAIN_DEFAULT, seed=seed, device="cpu", progress=False)
    opt, sched = make_optimizer(model, cfg, -(-len(train) // cfg.batch_size))
    batches = tensor_batches if loader == "tensor" else loader_batches
    called = torch.compile(model, mode=compile_mode) if compile_mode else model
    return Run(called, opt, sched, batches(train, model.modalities, cfg.batch_size, seed),
               batches(val, model.modalities, cfg.eval_batch_size, seed, shuffle=False),
               torch.as_tensor(class_weights(train.labels(TASK))), threads, torch.get_rng_state())


def run_epoch(run: Run) -> tuple[float, float]:
    """One epoch (training + validation) of ``run``: ``(seconds, mean training loss)``."""
    torch.set_num_threads(run.threads)
    torch.set_rng_state(run.rng)
    t0 = time.perf_counter()
    run.model.train()
    loss_sum, seen = 0.0, 0
    for b in run.train():
        logits = call_model(run.model, b.eeg, b.eog).logits  # (B, n_classes)
        loss = F.cross_entropy(logits, b.y, weight=run.weight)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(run.model.parameters(), TRAIN_DEFAULT.grad_clip)
        run.opt.step()
        run.sched.step()
        loss_sum, seen = loss_sum + float(loss.detach()) * len(b.y), seen + len(b.y)
    run.model.eval()
    with torch.no_grad():
        for b in run.val():
            call_model(run.model, b.eeg, b.eog).logits  # (B, n_classes), validation forward
    seconds = time.perf_counter() - t0
    run.rng = torch.get_rng_state()
    return seconds, loss_sum / seen


# --- training: round robin over the variants of one model -----------------------------------

def training_variants(quick: bool, max_autotune: bool) -> dict[str, tuple[str, dict]]:
    """``label -> (optimisation, settings changed from BASELINE)``."""
    v = {BASE: ("baseline", {})}
    if not quick:  # the quick check compiles the student only (see bench_training)
        v["torch.compile (default)"] = ("compile", dict(compile_mode="default"))
    if max_autotune:
        v["torch.compile (max-autotune-no-cudagraphs)"] = ("compile",
                                                            dict(compile_mode="max-autotune-no-cudagraphs"))
    v["channels_last"] = ("channels_last", dict(channels_last=True))
    v["2 threads"] = ("threads", dict(threads=2))
    v["Dataset + DataLoader (per-item collate)"] = ("dataloader", dict(loader="dataloader"))
    return v


def epoch_gflop(cls, n_train: int, n_val: int, batch: int) -> float:
    """Counted GFLOP of one epoch: forward + backward of the training windows, forward of the
    validation windows (conv, linear and matmul FLOPs)."""
    seed_everything(0)
    model = cls(MODEL_DEFAULT)
    return (n_train * train_flops_per_window(model, batch) + n_val * 2 * count_macs(model)) / 1e9


def fold_seconds(first_s: float, steady_s: float, fold_epochs: int) -> float:
    """Seconds of a fold of ``fold_epochs`` epochs: the first epoch, then steady ones."""
    return first_s + (fold_epochs - 1) * steady_s


def bench_training(name: str, train: WindowSet, val: WindowSet, epochs: int, fold_epochs: int,
                   peaks: dict[int, float], quick: bool, max_autotune: bool) -> list[dict]:
    """Every variant of one model, epochs interleaved (round robin); one row per variant."""
    cls = MODELS[name]
    variants = training_variants(quick and name == "teacher", max_autotune)
    runs = {label: make_run(cls, train, val, **{**BASELINE, **kw}) for label, (_, kw) in variants.items()}
    times, losses, loads = ({label: [] for label in runs} for _ in range(3))
    for epoch in range(epochs):
        for label, run in runs.items():
            before = load()
            seconds, loss = run_epoch(run)
            times[label].append(seconds)
            losses[label].append(loss)
            loads[label].append((before, load()))
            print(f"{name:8s} epoch {epoch + 1} {label:45s} {seconds:7.2f} s  loss {loss:.5f}  load {load()}",
                  flush=True)
    gflop = epoch_gflop(cls, len(train), len(val), TRAIN_DEFAULT.batch_size)
    rows = [training_row(name, label, variants[label][0], {**BASELINE, **variants[label][1]}, times[label],
                         times[BASE], losses[label], losses[BASE], loads[label], gflop, peaks, fold_epochs)
            for label in runs]
    for row in rows:
        if row["after"] == "torch.compile (default)":
            add_next_fold(row, cls, train, val, times[BASE], fold_epochs)
    return rows


def add_next_fold(row: dict, cls, train: WindowSet, val: WindowSet, t_base: list[float], fold_epochs: int) -> None:
    """Time the first epoch of a *new* compiled model of the same class in this process (what
    every later fold pays: caches are warm) and add its compilation time and fold ratio to ``row``."""
    run = make_run(cls, train, val, **{**BASELINE, "compile_mode": "default"})
    first, _ = run_epoch(run)
    steady, steady_base = row["_steady"], statistics.median(t_base[1:])
    row["next_fold_compile_s"] = round(first - steady, 1) + 0.0  # + 0.0: no "-0.0"
    row["next_fold_speedup"] = round(fold_seconds(t_base[0], steady_base, fold_epochs)
                                     / fold_seconds(first, steady, fold_epochs), 2)


def training_row(name, label, optimisation, settings, t, t_base, loss, loss_base, loads, gflop, peaks,
                 fold_epochs) -> dict:
    """One result row: before/after epochs and their ratios, the setting's first epoch and share
    of the matmul peak, loss agreement. For the data layout, *before* is the DataLoader and
    *after* kdlib's tensor slicing (the baseline); for the others, before is the baseline."""
    steady, steady_base = statistics.median(t[1:]), statistics.median(t_base[1:])
    fold, fold_base = fold_seconds(t[0], steady, fold_epochs), fold_seconds(t_base[0], steady_base, fold_epochs)
    after = (steady, fold, label) if optimisation != "dataloader" else (steady_base, fold_base, BASE)
    before = (steady_base, fold_base, BASE) if optimisation != "dataloader" else (steady, fold, label)
    compiled = settings["compile_mode"] is not None
    return dict(
        model=name, optimisation=optimisation, before=before[2], after=after[2], threads=settings["threads"],
        epochs=len(t), before_epoch_s=round(before[0], 2), after_epoch_s=round(after[0], 2),
        speedup=round(before[0] / after[0], 2), fold_speedup=round(before[1] / after[1], 2),
        first_epoch_s=round(t[0], 2), compile_s=round(t[0] - steady, 1) if compiled else np.nan,
        next_fold_compile_s=np.nan, next_fold_speedup=np.nan,
        gflops=round(gflop / steady, 2), share_of_matmul=round(gflop / steady / peaks[settings["threads"]], 3),
        final_train_loss=round(loss[-1], 5),
        max_loss_diff=float(f"{np.max(np.abs(np.subtract(loss, loss_base))):.2g}"),
        load_before=loads[0][0], load_after=loads[-1][1], _steady=steady)


# --- inference ----------------------------------------------------------------------------

def trace(module: nn.Module, example, freeze: bool = False) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` (+ ``torch.jit.freeze``): deprecated in torch 2.13, measured for comparison."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the shape checks become constants
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit: known, hence not in kdlib
        traced = torch.jit.trace(module, example)
        return torch.jit.freeze(traced) if freeze else traced


def aot_inductor(program: torch.export.ExportedProgram, folder: Path) -> Callable:
    """The exported program compiled ahead of time (AOTInductor) into a package, and loaded."""
    with warnings.catch_warnings():  # torch's own, when it deep-copies the program:
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)`", FutureWarning)
        path = torch._inductor.aoti_compile_and_package(program, package_path=str(folder / "student.pt2"))
    return torch._inductor.aoti_load_package(path)


def inference_variants(quick: bool, folder: Path) -> dict[tuple[str, str], Callable[[], Callable]]:
    """``(model, variant) -> builder``; each builder returns ``f(eeg, eog) -> logits``. Eager first."""
    seed_everything(0)
    student, teacher = EOGStudent(MODEL_DEFAULT).eval(), FusionTeacher(MODEL_DEFAULT).eval()
    wrapped = LogitsOnly(student).eval()
    x2 = torch.randn(2, MODEL_DEFAULT.n_eog, MODEL_DEFAULT.n_samples)  # (2, n_eog, T): example batch
    e2 = torch.randn(2, MODEL_DEFAULT.n_eeg, MODEL_DEFAULT.n_samples)  # (2, n_eeg, T)
    eog_only = lambda f: (lambda eeg, eog: f(eog))  # noqa: E731
    v = {("student", "eager"): lambda: eog_only(wrapped),
         ("student", "torch.jit.trace (deprecated)"): lambda: eog_only(trace(wrapped, x2)),
         ("student", "torch.jit.trace + freeze (deprecated)"): lambda: eog_only(trace(wrapped, x2, freeze=True)),
         ("student", "torch.jit.script"): lambda: eog_only(torch.jit.script(wrapped)),
         ("student", "export_student: torch.export"): lambda: eog_only(export_student(student).module())}
    if not quick:
        v[("student", "export_student + AOTInductor")] = (
            lambda: eog_only(aot_inductor(export_student(student), folder)))
        v[("student", "torch.compile (default)")] = lambda: eog_only(torch.compile(wrapped))
    v[("teacher", "eager")] = lambda: (lambda eeg, eog: teacher(eeg, eog).logits)
    v[("teacher", "torch.jit.trace + freeze (deprecated)")] = lambda: (
        lambda f: (lambda eeg, eog: f(eeg, eog)[0]))(trace(teacher, (e2, x2), freeze=True))
    return v


def inputs(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``eeg (batch, n_eeg, T)``, ``eog (batch, n_eog, T)``."""
    g = torch.Generator().manual_seed(seed)
    c = MODEL_DEFAULT
    return torch.randn(batch, c.n_eeg, c.n_samples, generator=g), torch.randn(batch, c.n_eog, c.n_samples, generator=g)


def median_s(fn: Callable[[], object], calls: int) -> float:
    """Median seconds of ``calls`` calls."""
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.inference_mode()
def prepare_inference(quick: bool, batch: int, folder: Path) -> tuple[dict, list[dict]]:
    """Build every variant (timed), check its logits against eager on batch 1 and ``batch``."""
    x1, xb = inputs(1, 1), inputs(batch, 2)
    ready, eager, rows = {}, {}, []
    for (model, variant), build in inference_variants(quick, folder).items():
        t = time.perf_counter()
        try:
            f = build()
            out1, outb = f(*x1), f(*xb)  # the first calls (compilation for torch.compile)
        except Exception as e:  # noqa: BLE001 (recorded: e.g. a model torch.jit.script cannot compile)
            rows.append(dict(model=model, variant=variant, status=f"fails: {type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0][:90]}"))
            print(rows[-1], flush=True)
            continue
        prepare = time.perf_counter() - t
        ref1, refb = eager.setdefault(model, (out1, outb))  # the eager variant comes first
        diff = max(float((out1 - ref1).abs().max()), float((outb - refb).abs().max()))
        ok = all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in ((out1, ref1), (outb, refb)))
        if ok:
            ready[(model, variant)] = f
        rows.append(dict(model=model, variant=variant, status="ok" if ok else "outputs differ",
                         prepare_s=round(prepare, 2), max_abs_diff=float(f"{diff:.2g}")))
        print(rows[-1], flush=True)
    return ready, rows


@torch.inference_mode()
def bench_inference(quick: bool, calls: int, batch: int, rounds: int, folder: Path) -> list[dict]:
    """Latency (batch 1) and throughput (``batch``) of every variant whose outputs agree."""
    torch.set_num_threads(1)
    fns, rows = prepare_inference(quick, batch, folder)
    x1, xb = inputs(1, 3), inputs(batch, 4)
    for f in fns.values():  # warm-up
        for _ in range(10):
            f(*x1)
        f(*xb)
    lat, thr, loads = ({k: [] for k in fns} for _ in range(3))
    for _ in range(rounds):  # interleaved rounds: a load change hits every variant
        for key, f in fns.items():
            before = load()
            lat[key].append(median_s(lambda: f(*x1), calls))
            thr[key].append(batch / median_s(lambda: f(*xb), 3))
            loads[key].append((before, load()))
    for row in rows:
        key = (row["model"], row["variant"])
        if key in fns:
            row.update(latency_ms=round(statistics.median(lat[key]) * 1e3, 3),
                       infer_windows_s=round(statistics.median(thr[key]), 1),
                       load_before=loads[key][0][0], load_after=loads[key][-1][1])
    return finish_inference(pd.DataFrame(rows), batch)


def finish_inference(df: pd.DataFrame, batch: int) -> list[dict]:
    """Ratios: against the same model's eager run, and the teacher's eager latency over this one."""
    eager = df[df["variant"] == "eager"].set_index("model")
    df["latency_speedup"] = (df["model"].map(eager["latency_ms"]) / df["latency_ms"]).round(2)
    df["throughput_speedup"] = (df["infer_windows_s"] / df["model"].map(eager["infer_windows_s"])).round(2)
    df["teacher_latency_over_this"] = (eager.loc["teacher", "latency_ms"] / df["latency_ms"]).round(2)
    df.insert(2, "threads", 1)
    df.insert(3, "batch", batch)
    return df.to_dict("records")


# --- machine, load, main ------------------------------------------------------------------

def wait_for_quiet(max_load: float, tries: int) -> str:
    """Wait (60 s at a time, at most ``tries`` times) until the 1-minute load is below ``max_load``."""
    log = [load()]
    for _ in range(tries):
        if os.getloadavg()[0] <= max_load:
            break
        print(f"load {log[-1]} > {max_load}: waiting 60 s", flush=True)
        time.sleep(60)
        log.append(load())
    return " -> ".join(log)


def write_md(path: Path, command: str, train: pd.DataFrame, infer: pd.DataFrame, peaks: dict, start_load: str,
             args) -> None:
    """The Markdown report: machine, peaks, the two tables, what the columns mean."""
    tcols = ["model", "optimisation", "before", "after", "threads", "before_epoch_s", "after_epoch_s", "speedup",
             "compile_s", "next_fold_compile_s", "fold_speedup", "next_fold_speedup", "share_of_matmul",
             "max_loss_diff", "load_before", "load_after"]
    icols = ["model", "variant", "status", "prepare_s", "max_abs_diff", "latency_ms", "latency_speedup",
             "infer_windows_s", "throughput_speedup", "teacher_latency_over_this", "load_before", "load_after"]
    path.write_text("\n".join([
        "# Speed-ups on this CPU: training (compile, channels-last, threads, data layout) and inference "
        "(TorchScript, torch.export, AOTInductor, torch.compile)", "",
        machine_md(command), "",
        f"- load average (1/5/15 min) at the start, while waiting for it to fall below {args.max_load}: {start_load}",
        f"- float32 2048x2048 matmul, same run: {peaks[1]:.1f} GFLOP/s on 1 thread, {peaks[2]:.1f} GFLOP/s "
        "on 2 threads", "",
        f"## Training: one epoch = {args.n_train} training + {args.n_val} validation windows, batch 64, "
        "DEFAULT sizes", "",
        "One change at a time against the baseline (eager, 1 thread, contiguous weights, batches sliced from "
        "in-memory tensors as `kdlib.train.fit` does); same initial weights, batches and dropout stream; the "
        f"runs alternate epoch by epoch. `*_epoch_s`: median of epochs 2..{args.epochs} (training + "
        "validation); `speedup`: `before_epoch_s` / `after_epoch_s` (above 1: *after* is faster; for the data "
        "layout, *before* is the per-item DataLoader and *after* kdlib's tensor slicing); `compile_s`: the "
        "compiled run's first epoch minus its steady epoch (cold inductor cache); `next_fold_compile_s`: the "
        f"same for a new model in the same process; `fold_speedup`: the same ratio for a fold of {args.fold_epochs} "
        "epochs, first epoch included (`next_fold_speedup`: with `next_fold_compile_s`); `share_of_matmul`: "
        "counted GFLOP/s of the row's setting over the matmul's at its thread count; `max_loss_diff`: largest "
        "difference of the per-epoch mean training loss from the baseline's. All columns, with the first "
        "epochs and losses, are in `bench_speedups.csv`.", "",
        md_table(train[tcols].astype(object).fillna("")), "",
        "## Inference: 1 thread, eval mode, `torch.inference_mode`", "",
        f"`latency_ms`: one window (batch 1), median of {args.latency_calls} calls, median over {args.rounds} "
        f"interleaved rounds; `infer_windows_s`: windows per second at batch {args.infer_batch} (median of 3 calls "
        "per round); `prepare_s`: "
        "building the variant and its first calls (compilation included, fresh inductor cache folder); "
        "`max_abs_diff`: largest "
        "logit "
        "difference from eager (checked with `allclose(rtol=1e-4, atol=1e-5)` before timing); "
        "`teacher_latency_over_this`: the eager teacher's latency over this row's. Also in "
        "`bench_speedups_inference.csv`.", "",
        md_table(infer[[c for c in icols if c in infer.columns]].astype(object).fillna("")), ""]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the .csv and .md results")
    p.add_argument("--quick", action="store_true", help="tiny sizes, student-only compile: a check of the code")
    p.add_argument("--max-autotune", action="store_true",
                   help="also torch.compile(mode='max-autotune-no-cudagraphs') (adds minutes of compilation)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per training run (>= 2)")
    p.add_argument("--fold-epochs", type=int, default=15,
                   help="epochs of a typical fold (early stopping: best epoch 3-6 + patience 10)")
    p.add_argument("--latency-calls", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3, help="interleaved inference rounds")
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--max-load", type=float, default=1.5, help="wait for the 1-minute load to fall below this")
    p.add_argument("--wait-tries", type=int, default=5, help="minutes to wait at most")
    args = p.parse_args(argv)
    args.n_train, args.n_val = (96, 32) if args.quick else (480, 120)
    if args.quick:
        args.epochs, args.latency_calls, args.rounds, args.wait_tries = 2, 20, 1, 0
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench_speedups.py", *sys.argv[1:]])
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="kdlib-bench-"))
    try:
        return run(args, command, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cold_compiler(scratch: Path, section: str) -> Path:
    """Make the next compilations cold: forget compiled code and point inductor's on-disk cache
    at a new, empty folder. Returns that folder (also used for the AOTInductor package)."""
    torch._dynamo.reset()
    folder = scratch / section
    folder.mkdir()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    return folder


def run(args, command: str, scratch: Path) -> int:
    """Wait for a quiet machine, measure training and inference, write the results (``scratch``:
    a temporary folder for the compilers' caches and the AOTInductor package)."""
    start_load = wait_for_quiet(args.max_load, args.wait_tries)
    peaks = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        peaks[threads] = matmul_gflops()
    train, val = random_windows(args.n_train, seed=0), random_windows(args.n_val, seed=1)
    rows = []
    for name in MODELS:
        cold_compiler(scratch, name)
        rows += bench_training(name, train, val, max(2, args.epochs), args.fold_epochs, peaks, args.quick,
                               args.max_autotune)
    table = pd.DataFrame(rows).drop(columns="_steady")
    infer = pd.DataFrame(bench_inference(args.quick, args.latency_calls, args.infer_batch, args.rounds,
                                         cold_compiler(scratch, "inference")))
    table.to_csv(args.out / "bench_speedups.csv", index=False)
    infer.to_csv(args.out / "bench_speedups_inference.csv", index=False)
    write_md(args.out / "bench_speedups.md", command, table, infer, peaks, start_load, args)
    print(table.to_string(), infer.to_string(), sep="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
