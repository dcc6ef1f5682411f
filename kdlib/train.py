"""Training: one call fits a model on one fold's training windows, validation picks the epoch.

Introduced in ``notebooks/02_fusion_teacher.ipynb``.

:func:`fit` takes the training and the validation windows of a fold -- and nothing else: there is
no test argument, so early stopping and the choice of the best epoch cannot see the test trials.
The loop is small on purpose, and every line of it is a named piece of this module::

    for epoch in range(epochs):
        train_epoch:  for batch in batches(train):         # windows shuffled by a seeded generator
                          step(model, batch, update)        # default: loss = CE_w(model(eeg, eog).logits, y)
                                                            #          update(loss) = optimizer_step: AdamW,
                                                            #          clipped, cosine schedule
        validate(model, val)                                # val_loss, val_acc, val_f1 (infer: eval, no grad)
        BestEpoch: keep the best state; stop after `patience` epochs without gain
    restore the best state

``step`` is the hook the distillation trainers plug into: the frozen-teacher student
(:mod:`kdlib.distill.distill`) passes a loss, variation 3 (:mod:`kdlib.distill.feedback`) a step
that makes a feedback step every k steps before its teaching step. The fold-batched trainer
(:mod:`kdlib.batched`) shares the class weights, the schedule, the validation metrics and the
:class:`BestEpoch` bookkeeping (one per member); its stacked epoch loop is its own (that module
says why). :func:`infer` is the one eval-mode, no-gradient, batched inference loop.

Data stay in memory as tensors and batches are sliced with index tensors: no ``Dataset``, no
per-item Python overhead. Models are called uniformly as ``model(eeg=..., eog=...)`` with
``None`` for every modality not in ``model.modalities``, so an EOG-only model never receives EEG.

Learning rate
-------------
The predecessor (EmotionKD, TensorFlow) used Adam with lr 5e-5 for the teacher and 1e-6 for the
student. kdlib uses **AdamW, lr 1e-3, weight decay 0.01 (matrices only), one warm-up epoch, then
cosine decay**, with early stopping on validation loss. Chosen with
``benchmarks/bench_train.py --tune-lr`` (the teacher on the 5 trial folds of one synthetic
subject, four rates, selected on validation accuracy and on how fast the training loss falls;
the numbers are in ``benchmarks/results/lr_sweep.md``). Rates as low as the predecessor's need
far more epochs than a CPU affords, and the differences between rates are within the
fold-to-fold spread: the choice matters less than early stopping. The EOG student is trained
with the same recipe (:mod:`kdlib.distill.distill` says why the predecessor's 1e-6 is not used).

Threads
-------
On a 2-core machine shared with other processes, one torch thread trains these small models
faster than two (OpenMP threads wait on each other): pass ``num_threads=1``
(``benchmarks/results/bench_train.md`` has the numbers).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Callable, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import f1_score

from kdlib.data.windows import WindowSet, majority_accuracy
from kdlib.io import atomic_path
from kdlib.repro import choose_device, dataloader_generator, seed_everything

__all__ = [
    "TrainConfig",
    "SMOKE",
    "DEFAULT",
    "PAPER",
    "NOTEBOOK",
    "NOTEBOOK_SMOKE",
    "Batch",
    "FitResult",
    "fit",
    "predict",
    "evaluate",
    "infer",
    "class_weights",
    "ce_weights",
    "ce_loss",
    "loss_step",
    "make_optimizer",
    "optimizer_step",
    "train_epoch",
    "validation_row",
    "validate",
    "BestEpoch",
    "EpochMeans",
    "to_tensors",
    "iterate_batches",
    "call_model",
    "save_checkpoint",
    "load_checkpoint",
    "progress_enabled",
]


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains. Frozen: make variants with ``dataclasses.replace``."""

    epochs: int = 40  # maximum epochs (early stopping usually ends sooner)
    batch_size: int = 64  # windows per optimisation step
    lr: float = 1e-3  # AdamW peak learning rate (see the module docstring for the choice)
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW moment coefficients
    schedule: Literal["cosine", "constant"] = "cosine"  # lr after warm-up: cosine to 0 over `epochs`, or flat
    warmup_epochs: float = 1.0  # linear warm-up from 0 to `lr`, in epochs (0: none)
    grad_clip: float | None = 1.0  # clip the gradient's global norm to this (None: no clipping)
    class_weight: Literal["balanced"] | tuple[float, ...] | None = "balanced"  # CE class weights
    monitor: Literal["val_loss", "val_acc", "val_f1"] = "val_loss"  # what picks the best epoch
    patience: int | None = 10  # stop after this many epochs without improvement (None: never)
    min_delta: float = 0.0  # an improvement must beat the best by more than this
    eval_batch_size: int = 256  # windows per forward pass when validating / predicting
    seed: int = 0  # seeds dropout (global RNG) and the batch order
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N" or "mps" (kdlib.repro.choose_device)
    num_threads: int | None = None  # torch CPU threads during fit, restored after (None: leave as is)
    amp: bool = False  # bfloat16 autocast on CUDA in kdlib.batched (ignored on the CPU and by fit)
    progress: bool | None = None  # tqdm bar; None: on in a terminal or notebook, off when piped or $CI

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.monitor not in ("val_loss", "val_acc", "val_f1"):
            raise ValueError(f"monitor must be val_loss, val_acc or val_f1, got {self.monitor!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")


SMOKE = TrainConfig(epochs=2, batch_size=32, warmup_epochs=0.0, patience=None, progress=False)
DEFAULT = TrainConfig()
PAPER = TrainConfig(epochs=100, patience=20)  # longer budget for the full reproduction
#: The notebooks' recipe (03, 04, 06; their recorded numbers come from it): 30 epochs at most with patience 6,
#: one torch thread, no progress bar. Its smoke twin is :data:`SMOKE` with 3 epochs and one thread. Notebooks
#: add their seed: ``replace(NOTEBOOK_SMOKE if SMOKE else NOTEBOOK, seed=SEED)``.
NOTEBOOK = TrainConfig(epochs=30, patience=6, num_threads=1, progress=False)
NOTEBOOK_SMOKE = TrainConfig(epochs=3, batch_size=32, warmup_epochs=0.0, patience=None, num_threads=1, progress=False)


class Batch(NamedTuple):
    """One mini-batch: inputs (``None`` for modalities the model does not read), labels and the
    window indices into the WindowSet (so a custom loss can look up e.g. teacher outputs)."""

    eeg: torch.Tensor | None  # (B, n_eeg, T)
    eog: torch.Tensor | None  # (B, n_eog, T)
    y: torch.Tensor  # (B,) int64
    index: torch.Tensor  # (B,) int64


@dataclass(eq=False)
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : nn.Module
        The trained model, with the weights of ``best_epoch`` restored, in eval mode.
    history : pandas.DataFrame
        One row per epoch: ``epoch, train_loss, train_acc, val_loss, val_acc, val_f1, lr, seconds``
        (``lr`` at the end of the epoch; ``val_*`` NaN without validation).
    best_epoch : int
        1-based epoch whose weights were restored (selected on validation only).
    best_score : float
        ``monitor`` at ``best_epoch``.
    monitor : str
    stopped_early : bool
    class_weights : ndarray or None
        The cross-entropy class weights used (from the training labels).
    checkpoint : Path or None
        Where the best state was saved, if asked.
    seconds : float
        Wall time of the whole fit.
    config : TrainConfig
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_score: float
    monitor: str
    stopped_early: bool
    class_weights: np.ndarray | None
    checkpoint: Path | None
    seconds: float
    config: TrainConfig = field(repr=False)


# --- data ------------------------------------------------------------------------------------

def to_tensors(ws: WindowSet, task: str | None, modalities=("eeg", "eog"),
               device: torch.device | str = "cpu") -> dict[str, torch.Tensor | None]:
    """A WindowSet as tensors on ``device``: ``{"eeg", "eog", "y"}`` (``None`` where not needed).

    The arrays are shared with the WindowSet on the CPU (``torch.from_numpy``), not copied.

    Parameters
    ----------
    ws : WindowSet
    task : {'valence', 'arousal'} or None
        Whose labels go into ``"y"`` (``None``: no labels).
    modalities : tuple of str
        Which of ``"eeg"``, ``"eog"`` to convert (the others are ``None``).
    device : torch.device or str

    Returns
    -------
    dict
        ``eeg (N, n_eeg, T)``, ``eog (N, n_eog, T)`` float32 and ``y (N,)`` int64, or ``None``.
    """
    out = {m: (torch.from_numpy(np.ascontiguousarray(getattr(ws, m), dtype=np.float32)).to(device)
               if m in modalities else None) for m in ("eeg", "eog")}
    out["y"] = torch.from_numpy(ws.labels(task)).to(device) if task is not None else None
    return out


def iterate_batches(n: int, batch_size: int, generator: torch.Generator | None = None):
    """Index tensors of mini-batches over ``n`` items; shuffled when a generator is given.

    Parameters
    ----------
    n : int
        Number of items.
    batch_size : int
        Items per batch (the last batch may be smaller).
    generator : torch.Generator, optional
        Draws the order (``torch.randperm``); without it the order is ``0 .. n-1``.

    Yields
    ------
    Tensor (b,) int64
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def call_model(model: nn.Module, eeg: torch.Tensor | None, eog: torch.Tensor | None):
    """``model(eeg=..., eog=...)`` with ``None`` for each modality the model does not read.

    Parameters
    ----------
    model : nn.Module
        Its ``modalities`` attribute (default both) says which inputs it reads.
    eeg : Tensor (B, n_eeg, T) or None
    eog : Tensor (B, n_eog, T) or None

    Returns
    -------
    The model's output (``.logits`` and, for kdlib models, more).
    """
    mods = getattr(model, "modalities", ("eeg", "eog"))
    return model(eeg=eeg if "eeg" in mods else None, eog=eog if "eog" in mods else None)


def class_weights(y: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """"Balanced" cross-entropy weights ``n / (n_classes * count_c)`` (float32).

    A class absent from ``y`` gets the weight of a class seen once (it cannot contribute to the
    training loss anyway).

    Parameters
    ----------
    y : ndarray (N,)
        Integer labels.
    n_classes : int

    Returns
    -------
    ndarray (n_classes,) float32
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    return (len(y) / (n_classes * np.maximum(counts, 1.0))).astype(np.float32)


# --- progress --------------------------------------------------------------------------------

def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_enabled(progress: bool | None) -> bool:
    """Resolve ``TrainConfig.progress``: ``None`` means on in a notebook or a terminal, off when
    output is piped (CI logs, papermill workers) or the ``CI`` environment variable is set."""
    if progress is not None:
        return bool(progress)
    if os.environ.get("CI"):
        return False
    return _in_notebook() or sys.stderr.isatty()


def _progress_bar(total: int, enabled: bool, desc: str):
    """A tqdm bar, or None. In notebooks: a widget if ipywidgets is there, else text on stdout
    (tqdm's own fallback would warn on stderr)."""
    if not enabled:
        return None
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
            return tqdm(total=total, desc=desc, leave=True)
        except ImportError:
            from tqdm import tqdm
            return tqdm(total=total, desc=desc, file=sys.stdout, leave=True)
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, leave=True)


# --- checkpoints -----------------------------------------------------------------------------

def _plain(x):
    """Config dataclasses and numpy values -> builtins that ``weights_only`` loading accepts."""
    if is_dataclass(x) and not isinstance(x, type):
        return {k: _plain(v) for k, v in asdict(x).items()}
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return x


def save_checkpoint(model: nn.Module | dict, path: str | Path, **meta) -> Path:
    """Save a state dict (and plain metadata) atomically: write a temporary file, then rename.

    Parameters
    ----------
    model : nn.Module or dict
        A model (its ``state_dict()`` is saved) or a state dict.
    path : str or Path
    **meta
        Small metadata (numbers, strings, config dataclasses), stored as builtins.

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict() if isinstance(model, nn.Module) else model
    payload = {"state_dict": {k: v.detach().cpu() for k, v in state.items()}, "meta": _plain(meta)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(model: nn.Module, path: str | Path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model``
    (``torch.load(..., weights_only=True)``: no pickled code runs).

    Parameters
    ----------
    model : nn.Module
        Loaded in place (same architecture as the saved one).
    path : str or Path

    Returns
    -------
    dict
        The checkpoint's metadata.
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(payload["state_dict"])
    return payload.get("meta", {})


# --- inference -------------------------------------------------------------------------------

def _take(x, idx: torch.Tensor):
    """Rows ``idx`` of a pytree of tensors (dicts, tuples, ``None``, objects with ``.take``)."""
    if x is None or isinstance(x, (int, float, str)):
        return x
    if isinstance(x, torch.Tensor):
        return x[idx]
    if hasattr(x, "take"):
        return x.take(idx)
    if isinstance(x, dict):
        return {k: _take(v, idx) for k, v in x.items()}
    return type(x)(_take(v, idx) for v in x)


def _first_tensor(x) -> torch.Tensor | None:
    """The first tensor of a pytree (None if it holds none)."""
    if x is None or isinstance(x, torch.Tensor):
        return x
    for v in (x.values() if isinstance(x, dict) else x if isinstance(x, (tuple, list)) else ()):
        t = _first_tensor(v)
        if t is not None:
            return t
    return None


def _cat(parts: list):
    """Per-batch pytrees of tensors -> one pytree of tensors concatenated along the window axis."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    items = [_cat([p[i] for p in parts]) for i in range(len(first))]
    return type(first)(*items) if hasattr(first, "_fields") else type(first)(items)


def _logits_of(out) -> torch.Tensor:
    return out.logits.float()  # (b, n_classes)


@torch.no_grad()
def infer(model: nn.Module, inputs, batch_size: int = 256, *, call: Callable | None = None,
          keep: Callable = _logits_of):
    """Run ``model`` over many windows in eval mode, without gradient, batch by batch.

    The one inference loop of kdlib: predictions, validation, the frozen teacher's targets, the
    teacher's cached branch outputs and the CKA probes all run through it.

    Parameters
    ----------
    model : nn.Module
        Put in eval mode (and left there).
    inputs : dict, tuple or object with ``.take``
        Tensors with the window axis first, e.g. ``{"eeg": (N, n_eeg, T) or None, "eog": (N,
        n_eog, T), ...}`` from :func:`to_tensors`, or cached branch outputs
        (:class:`~kdlib.models.BranchOutputs`); each batch is ``inputs`` at the batch's rows.
    batch_size : int
        Windows per forward pass.
    call : callable, optional
        ``call(model, batch_inputs) -> output``. Default: :func:`call_model` on the batch's
        ``"eeg"`` and ``"eog"`` entries.
    keep : callable, optional
        ``keep(output) -> tensor or tuple of tensors`` (window axis first): what is kept of each
        batch. Default: the logits as float32.

    Returns
    -------
    Tensor or tuple of Tensor
        What ``keep`` returns, concatenated over all ``N`` windows (e.g. logits ``(N, n_classes)``).
    """
    model.eval()
    call = call or (lambda m, x: call_model(m, x["eeg"], x["eog"]))
    n = len(_first_tensor(inputs))
    return _cat([keep(call(model, _take(inputs, idx))) for idx in iterate_batches(n, batch_size)])


def _logits(model: nn.Module, data: dict, batch_size: int) -> torch.Tensor:
    """Eval-mode logits ``(N, n_classes)`` of tensors from :func:`to_tensors`."""
    return infer(model, {"eeg": data["eeg"], "eog": data["eog"]}, batch_size)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def predict(model: nn.Module, ws: WindowSet, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of every window, ``(N, n_classes)`` float32, on the model's device.

    Parameters
    ----------
    model : nn.Module
        A kdlib model (uniform ``model(eeg, eog)`` signature).
    ws : WindowSet
    batch_size : int

    Returns
    -------
    ndarray, shape (N, n_classes)
    """
    data = to_tensors(ws, None, getattr(model, "modalities", ("eeg", "eog")), _device_of(model))
    return _logits(model, data, batch_size).softmax(-1).cpu().numpy()


def _metrics(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None) -> dict:
    pred = logits.argmax(-1).cpu().numpy()
    yt = y.cpu().numpy()
    return dict(loss=float(F.cross_entropy(logits, y, weight=weight)), acc=float((pred == yt).mean()),
                f1=float(f1_score(yt, pred, average="macro", labels=np.arange(logits.shape[1]),
                                  zero_division=0)))


def evaluate(model: nn.Module, ws: WindowSet, task: str, train_labels: np.ndarray | None = None,
             batch_size: int = 256) -> dict:
    """Window-level accuracy, macro F1 (sklearn) and the majority-class baseline.

    Parameters
    ----------
    model : nn.Module
    ws : WindowSet
        Windows to score (e.g. the test fold, after training is finished).
    task : {'valence', 'arousal'}
    train_labels : ndarray, optional
        Labels of the training windows: the majority baseline predicts *their* majority class
        (the honest floor). Without it, the majority class of ``ws`` itself is used.
    batch_size : int

    Returns
    -------
    dict
        ``n, accuracy, f1, majority_acc, loss`` (loss: unweighted cross-entropy).
    """
    data = to_tensors(ws, task, getattr(model, "modalities", ("eeg", "eog")), _device_of(model))
    m = _metrics(_logits(model, data, batch_size), data["y"], None)
    y = ws.labels(task)
    return dict(n=len(ws), accuracy=m["acc"], f1=m["f1"],
                majority_acc=majority_accuracy(y if train_labels is None else train_labels, y), loss=m["loss"])


# --- the pieces of fit: optimiser, one step, one epoch, validation, the best epoch ----------------

def _lr_lambda(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    warm = int(round(config.warmup_epochs * steps_per_epoch))
    total = config.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if config.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
    return factor


def _is_better(score: float, best: float, monitor: str, min_delta: float) -> bool:
    if monitor == "val_loss":
        return score < best - min_delta
    return score > best + min_delta


def ce_weights(class_weight, y: np.ndarray, n_classes: int = 2) -> np.ndarray | None:
    """The cross-entropy class weights that ``TrainConfig.class_weight`` asks for (every trainer's).

    Parameters
    ----------
    class_weight : 'balanced', sequence of float or None
        ``TrainConfig.class_weight``.
    y : ndarray (N,)
        The training labels ("balanced": :func:`class_weights` of these).
    n_classes : int

    Returns
    -------
    ndarray (n_classes,) float32, or None (unweighted)
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, str) and class_weight == "balanced":
        return class_weights(y, n_classes)
    cw = np.asarray(class_weight, dtype=np.float32)
    if cw.shape != (n_classes,):
        raise ValueError(f"class_weight needs {n_classes} values, got {class_weight}")
    return cw


def make_optimizer(model: nn.Module, config: TrainConfig, steps_per_epoch: int,
                   device: torch.device | str = "cpu"):
    """AdamW (weight decay on matrices only, not on biases, norms or the position embedding)
    and the per-step learning-rate schedule of ``config`` (warm-up, then cosine or constant).

    Parameters
    ----------
    model : nn.Module
        Its trainable parameters are optimised.
    config : TrainConfig
        ``lr``, ``betas``, ``weight_decay``, ``epochs``, ``warmup_epochs``, ``schedule``.
    steps_per_epoch : int
        Optimiser steps per epoch (the schedule is per step).
    device : torch.device or str
        Where the parameters live (the fused AdamW kernel on CPU and CUDA).

    Returns
    -------
    (torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR)
        Call ``sched.step()`` after every ``opt.step()`` (:func:`optimizer_step` does).
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = lambda n, p: p.ndim < 2 or n.endswith("pos")  # noqa: E731
    groups = [{"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": config.weight_decay},
              {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas,
                            fused=torch.device(device).type in ("cpu", "cuda"))  # one kernel for all
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config, steps_per_epoch))


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, params=None,
                   grad_clip: float | None = None, scheduler=None) -> None:
    """One optimiser step on ``loss``: zero the gradients, backward, clip, step, schedule.

    Every sequential trainer of kdlib steps its model through this function (:func:`fit`'s
    default step, the students of :mod:`kdlib.distill`, variation 3's teaching phase).

    Parameters
    ----------
    loss : Tensor ()
    optimizer : torch.optim.Optimizer
    params : iterable of Tensor, optional
        Whose global gradient norm is clipped (needed when ``grad_clip`` is given).
    grad_clip : float, optional
        Clip that norm to this.
    scheduler : optional
        Stepped after the optimiser.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def ce_loss(weight: torch.Tensor | None = None) -> Callable:
    """The default loss of :func:`fit`: ``loss_fn(model, batch) -> (CE_w, logits)``.

    Parameters
    ----------
    weight : Tensor (C,), optional
        Class weights of the cross-entropy.

    Returns
    -------
    callable
    """
    def loss_fn(model: nn.Module, batch: Batch):
        logits = call_model(model, batch.eeg, batch.eog).logits  # (B, n_classes)
        return F.cross_entropy(logits, batch.y, weight=weight), logits
    return loss_fn


def loss_step(loss_fn: Callable) -> Callable:
    """A :func:`fit` step from a loss: ``loss_fn(model, batch) -> (loss, logits[, parts])``,
    then ``update(loss)``.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(model, batch: Batch) -> (loss, logits)`` or ``(loss, logits, parts)``
        (``parts``: a dict of floats, averaged over the epoch into history columns).

    Returns
    -------
    callable
        ``step(model, batch, update) -> (loss, logits, parts)``.
    """
    def step(model: nn.Module, batch: Batch, update: Callable):
        loss, logits, *parts = loss_fn(model, batch)
        update(loss)
        return loss, logits, (parts[0] if parts else {})
    return step


class EpochMeans:
    """Per-epoch averages over windows: ``add(values, n)`` per batch, ``means()`` at the end."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, values: dict, n: int) -> None:
        """Add a batch of windows.

        Parameters
        ----------
        values : dict of str -> float
            The batch's mean values.
        n : int
            The batch's number of windows (the weight of its values).
        """
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * n
        self.n += n

    def means(self) -> dict:
        """The window-weighted means of everything added."""
        return {k: v / max(self.n, 1) for k, v in self.sums.items()}


def _batch(data: dict, idx: torch.Tensor) -> Batch:
    """The mini-batch of windows ``idx`` (on the CPU) of tensors from :func:`to_tensors`."""
    idx_d = idx.to(data["y"].device)
    return Batch(data["eeg"][idx_d] if data["eeg"] is not None else None,  # (B, n_eeg, T)
                 data["eog"][idx_d] if data["eog"] is not None else None,  # (B, n_eog, T)
                 data["y"][idx_d], idx)  # (B,)


def train_epoch(model: nn.Module, data: dict, step: Callable, update: Callable, batch_size: int,
                generator: torch.Generator) -> tuple[dict, dict]:
    """One epoch of ``step`` over mini-batches of ``data`` in a seeded order, the model in train mode.

    Parameters
    ----------
    model : nn.Module
    data : dict
        Training tensors from :func:`to_tensors` (``eeg``, ``eog``, ``y``).
    step : callable
        ``step(model, batch, update) -> (loss, logits, parts)`` (:func:`loss_step`).
    update : callable
        ``update(loss)``: the optimiser step (:func:`optimizer_step` with fit's optimiser).
    batch_size : int
    generator : torch.Generator
        Draws the batch order.

    Returns
    -------
    row : dict
        ``train_loss`` and ``train_acc``, averaged over the epoch's windows.
    parts : dict
        The steps' ``parts``, averaged over the epoch's windows.
    """
    model.train()
    means, parts, correct = EpochMeans(), EpochMeans(), 0
    for idx in iterate_batches(len(data["y"]), batch_size, generator):
        batch = _batch(data, idx)
        loss, logits, batch_parts = step(model, batch, update)
        means.add({"loss": float(loss.detach())}, len(idx))
        parts.add(batch_parts, len(idx))
        correct += int((logits.detach().argmax(-1) == batch.y).sum())
    return dict(train_loss=means.means()["loss"], train_acc=correct / means.n), parts.means()


def validation_row(logits: torch.Tensor | None, y: torch.Tensor | None, weight: torch.Tensor | None) -> dict:
    """``val_loss`` (class-weighted CE), ``val_acc``, ``val_f1`` of validation logits (NaN without).

    Parameters
    ----------
    logits : Tensor (N, C) or None
    y : Tensor (N,) or None
    weight : Tensor (C,), optional

    Returns
    -------
    dict
    """
    if logits is None:
        return dict(val_loss=math.nan, val_acc=math.nan, val_f1=math.nan)
    m = _metrics(logits, y, weight)
    return dict(val_loss=m["loss"], val_acc=m["acc"], val_f1=m["f1"])


def validate(model: nn.Module, data: dict | None, weight: torch.Tensor | None = None,
             batch_size: int = 256) -> dict:
    """One model's validation: :func:`validation_row` of its eval-mode logits (:func:`infer`).

    Parameters
    ----------
    model : nn.Module
    data : dict or None
        Validation tensors from :func:`to_tensors` (with ``y``); ``None``: no validation (NaN).
    weight : Tensor (C,), optional
        Class weights of the validation cross-entropy (the training weights, as in :func:`fit`).
    batch_size : int

    Returns
    -------
    dict
        ``val_loss``, ``val_acc``, ``val_f1``.
    """
    if data is None:
        return validation_row(None, None, None)
    return validation_row(_logits(model, data, batch_size), data["y"], weight)


class BestEpoch:
    """Early stopping and the best epoch of one model (:func:`fit`; each member of
    :func:`kdlib.batched.fit_batched`).

    Parameters
    ----------
    config : TrainConfig
        ``monitor``, ``min_delta``, ``patience``.

    Attributes
    ----------
    score : float or None
        ``monitor`` at the best epoch (None: no validation, the last epoch counts).
    epoch : int
    state : dict or None
        The best epoch's state dict.
    stopped_early : bool
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        self.score, self.epoch, self.state, self.since = None, 0, None, 0
        self.stopped_early = False

    def update(self, epoch: int, score: float | None, state: Callable[[], dict]) -> bool:
        """Record an epoch; keep ``state()`` if it is the best so far. Returns whether it was.

        Parameters
        ----------
        epoch : int
        score : float or None
            The epoch's ``monitor`` (None without validation: every epoch is "better").
        state : callable
            Returns the model's state dict (copied), called only when the epoch is kept.
        """
        c = self.config
        if score is None or self.score is None or _is_better(score, self.score, c.monitor, c.min_delta):
            self.score, self.epoch, self.since = score, epoch, 0
            self.state = state()
            return True
        self.since += 1
        return False

    def should_stop(self, has_val: bool) -> bool:
        """Whether ``patience`` epochs have passed without improvement (never without validation)."""
        if self.config.patience is not None and has_val and self.since >= self.config.patience:
            self.stopped_early = True
        return self.stopped_early

    @property
    def best_score(self) -> float:
        return float("nan") if self.score is None else float(self.score)


# --- fit -------------------------------------------------------------------------------------

def fit(model: nn.Module, train: WindowSet, val: WindowSet | None, task: str,
        config: TrainConfig = DEFAULT, *, loss_fn: Callable | None = None, step: Callable | None = None,
        checkpoint: str | Path | None = None, desc: str | None = None,
        on_epoch_end: Callable[[int, nn.Module, dict], dict | None] | None = None) -> FitResult:
    """Train ``model`` on ``train``; pick and restore the best epoch on ``val``.

    Parameters
    ----------
    model : nn.Module
        A kdlib model; called as ``model(eeg=..., eog=...)``, must return ``.logits``.
    train : WindowSet
        The fold's training windows (already normalised, e.g. by ``ChannelScaler``).
    val : WindowSet or None
        Validation windows, from *training trials* only. They drive early stopping and the
        choice of the best epoch. ``None`` (or empty): train all epochs, keep the last.
    task : {'valence', 'arousal'}
    config : TrainConfig
    loss_fn : callable, optional
        ``loss_fn(model, batch: Batch) -> (loss, logits)`` or ``(loss, logits, parts)``; default
        class-weighted cross-entropy (:func:`ce_loss`). Validation always scores class-weighted
        cross-entropy. Ignored when ``step`` is given.
    step : callable, optional
        ``step(model, batch, update) -> (loss, logits, parts)``: one training step, which calls
        ``update(loss)`` (fit's optimiser step, :func:`optimizer_step`) for the model's update.
        Default :func:`loss_step` of ``loss_fn``. Variation 3 passes its own
        (:mod:`kdlib.distill.feedback`: a feedback step every k steps, then the teaching step).
        ``parts`` (a dict of floats) are averaged over the epoch into history columns.
    checkpoint : str or Path, optional
        Save the best state here (atomically) whenever validation improves.
    desc : str, optional
        Progress-bar label.
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch, model, row) -> dict or None``, called after each epoch's validation
        with the epoch's history row so far; the dict's entries become extra columns of the row
        (distillation logs loss shares and a feature-similarity score this way). It must not
        change the model.

    Returns
    -------
    FitResult

    Notes
    -----
    There is deliberately no ``test`` parameter: the test fold cannot influence training or
    model selection. Seeding: ``kdlib.repro.seed_everything(config.seed)`` at the start (dropout)
    and a generator from ``dataloader_generator(config.seed)`` for the batch order. Build the
    model after seeding too, for identical initial weights.
    """
    if len(train) == 0:
        raise ValueError("fit: no training windows")
    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        return _fit(model, train, val, task, config, step, loss_fn, checkpoint, desc, on_epoch_end)
    finally:
        torch.set_num_threads(threads)


def _fit(model, train, val, task, config, step, loss_fn, checkpoint, desc, on_epoch_end) -> FitResult:
    """:func:`fit`'s loop: epochs of ``step``, validation, the best epoch, early stopping."""
    t0 = time.perf_counter()
    val = val if val is not None and len(val) else None
    seed_everything(config.seed)
    gen = dataloader_generator(config.seed)
    device = choose_device(config.device)
    model.to(device)
    mods = getattr(model, "modalities", ("eeg", "eog"))
    tr = to_tensors(train, task, mods, device)
    va = to_tensors(val, task, mods, device) if val is not None else None
    cw = ce_weights(config.class_weight, train.labels(task), getattr(getattr(model, "config", None), "n_classes", 2))
    weight = torch.as_tensor(cw, device=device) if cw is not None else None
    step = step or loss_step(loss_fn or ce_loss(weight))
    opt, sched = make_optimizer(model, config, math.ceil(len(train) / config.batch_size), device)

    def update(loss):  # the model's optimiser step
        optimizer_step(loss, opt, model.parameters(), config.grad_clip, sched)

    best, rows = BestEpoch(config), []
    bar = _progress_bar(config.epochs, progress_enabled(config.progress), desc or f"fit {task}")
    try:
        for epoch in range(1, config.epochs + 1):
            te = time.perf_counter()
            row, parts = train_epoch(model, tr, step, update, config.batch_size, gen)
            row = dict(epoch=epoch, **row)
            row.update(validate(model, va, weight, config.eval_batch_size))
            row.update(parts)
            if on_epoch_end is not None:
                row.update(on_epoch_end(epoch, model, row) or {})
            row.update(lr=opt.param_groups[0]["lr"], seconds=time.perf_counter() - te)
            rows.append(row)
            score = row[config.monitor] if va is not None else None
            if best.update(epoch, score, lambda: {k: v.detach().clone() for k, v in model.state_dict().items()}):
                _save_best(checkpoint, best, model, config, task, score)
            _show(bar, row, best.epoch)
            if best.should_stop(va is not None):
                break
    finally:
        if bar is not None:
            bar.close()
    return _finish(model, best, rows, cw, checkpoint, va is not None, config, task, time.perf_counter() - t0)


def _save_best(checkpoint, best: BestEpoch, model, config, task, score) -> None:
    """Save the new best state whenever validation improves (when asked)."""
    if checkpoint is not None and score is not None:
        save_checkpoint(best.state, checkpoint, epoch=best.epoch, monitor=config.monitor, score=score, task=task,
                        model_config=getattr(model, "config", None), train_config=config)


def _show(bar, row: dict, best_epoch: int) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{row['val_loss']:.3f}",
                        acc=f"{row['val_acc']:.2f}", best=best_epoch)


def _finish(model, best: BestEpoch, rows, cw, checkpoint, has_val, config, task, seconds) -> FitResult:
    """Restore the best state (eval mode), save it without validation, wrap up the FitResult."""
    model.load_state_dict(best.state)
    model.eval()
    if checkpoint is not None and not has_val:
        save_checkpoint(best.state, checkpoint, epoch=best.epoch, task=task,
                        model_config=getattr(model, "config", None), train_config=config)
    return FitResult(model=model, history=pd.DataFrame(rows), best_epoch=best.epoch, best_score=best.best_score,
                     monitor=config.monitor, stopped_early=best.stopped_early, class_weights=cw,
                     checkpoint=Path(checkpoint) if checkpoint is not None else None, seconds=seconds,
                     config=config)
