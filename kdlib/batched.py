"""Fold-batched training: the k folds of one subject x task x seed trained as one stacked ensemble.

The models of a unit are small (d = 64, 61 tokens), so on a CPU most of a training step is
per-operation overhead, not arithmetic. The k folds of a subject train models of the same shapes
with the same settings; :func:`fit_batched` stacks their weights (``torch.func.stack_module_state``,
a leading member axis ``K`` on every parameter and buffer) and runs the loop of
:func:`kdlib.train.fit` once for all of them, each operation under ``torch.func.vmap``::

    for epoch in range(epochs):
        for idx in batches(n):                          # one seeded order, as in fit
            batch = members' windows[:, idx]            # (K, B, ...): each member its own fold
            loss (K,) = vmap(loss_fn)(weights, batch)   # functional_call of the shared skeleton
            sum(loss).backward()                        # member k's gradient is d loss_k / d w_k
            clip each member's gradient norm; AdamW step (elementwise: per-member state)
        validate every member; per-member best epoch and early stopping;
        members that stopped leave the stack (their best state is kept)
    unstack -> K modules with their own best weights

What each member sees is its own fold only: its windows, its labels, its class weights, its
batch-norm statistics and its teacher's outputs all sit on its own slice of the member axis, and
nothing sums over that axis except the total loss, whose gradient splits exactly into the members'
own (``tests/test_batched.py`` checks that a member whose labels are shuffled changes no other
member's weights).

Agreement with :func:`kdlib.train.fit`
--------------------------------------
Same initial weights, batch order, schedule, clipping, early stopping and selection. Without
dropout a member's history, best epoch and weights equal a sequential fit of its fold to float
rounding (batched matmuls and grouped convolutions sum in another order, and Adam's normalised
steps amplify it): ``tests/test_batched.py`` states the tolerance, validation losses within
``1e-3`` and test probabilities within ``1e-2`` after 4 epochs of the smoke models. The same
tolerance bounds how much a member's numbers depend on which members share its stack (a stack of
one and a stack of three use different kernels). **Dropout** draws its masks under
``vmap(randomness="same")``: every member gets the mask one model of that seed would draw
(as in the sequential path, where every fold re-seeds, all folds of a seed share the stream),
but the masks are laid out in another memory order than in the sequential path, so with dropout
the two paths are different (equally valid) random draws. The batched path is deterministic in
its own right: same seed, same members, same numbers (bitwise on the CPU).

Speed
-----
On the kit's 2-core CPU the stack trains **no faster per core** than one model at a time
(``benchmarks/results/bench_batched.md``: step-time ratios around 1 at the smoke and kit sizes).
The premise that these small models are dominated by per-operation overhead does not hold there:
most of a step is memory-bound work (the tokeniser's convolutions over 32 channels, batch norm,
elementwise operations), which ``vmap`` does not make cheaper and partly makes dearer (batched
layouts, grouped convolutions). So ``kdlib reproduce --trainer auto`` (the default) stacks only on
CUDA, where a stack of small models runs in about the time of one; that gain is an expectation,
not a measurement, until ``benchmarks/gpu_check.sh`` has run on a GPU.

What is shared with :func:`kdlib.train.fit` and what is not
----------------------------------------------------------
Shared: the class weights (:func:`~kdlib.train.ce_weights`), the schedule (``_lr_lambda``), the
batch order (:func:`~kdlib.train.iterate_batches` on the same seeded generator), the validation
metrics (:func:`~kdlib.train.validation_row`), each member's early stopping and best epoch
(:class:`~kdlib.train.BestEpoch`, one per member) and the history's columns. Separate, because
the stack is not one ``nn.Module``: the epoch loop over stacked batches (:func:`_train_epoch`:
the loss is a ``(K,)`` tensor from ``vmap`` and the per-member sums stay on the device, so there
is no float per step to average), and the optimiser step (one fused AdamW over the stacked
weights, each member's gradient clipped on its own by :func:`_clip`, the learning rate set by
hand because members leave the stack and the optimiser is rebuilt without them). A ``step``
hook as in :func:`kdlib.train.fit` would have to be a vmapped, tensor-only function; the
batched ``loss_fn`` is exactly that.

Requirements: every member has the same number of training windows (the schedule and the
batches are shared; :func:`group_by_size` groups folds that do), the same architecture and the
same :class:`~kdlib.train.TrainConfig`. Validation sets may differ in size (they are padded;
in eval mode a window's output does not depend on the others). Variation 3's feedback loop is
not batched (:mod:`kdlib.distill.feedback`): it stays sequential.

Introduced for ``kdlib reproduce`` (issue 15); ``benchmarks/bench_batched.py`` measures it.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from kdlib.data.windows import WindowSet
from kdlib.repro import choose_device, dataloader_generator, seed_everything
from kdlib.train import (DEFAULT, Batch, BestEpoch, FitResult, TrainConfig, _lr_lambda, call_model, ce_weights,
                         iterate_batches, validation_row)

__all__ = ["Ensemble", "stack_windows", "group_by_size", "fit_batched", "ce_loss"]


# --- data ---------------------------------------------------------------------------------------

def stack_windows(sets: list[WindowSet], task: str | None, modalities, device) -> dict:
    """The members' windows stacked on a leading member axis, padded to the longest set.

    Parameters
    ----------
    sets : list of WindowSet
        One per member.
    task : str or None
        Labels of this task (``None``: no labels).
    modalities : tuple of str
        Which of ``eeg``/``eog`` to stack (the others are ``None``).
    device : torch.device

    Returns
    -------
    dict
        ``eeg (K, N, n_eeg, T)``, ``eog (K, N, n_eog, T)``, ``y (K, N)`` (or ``None``) and
        ``n (K,)`` the real lengths (rows beyond ``n[k]`` are zeros).
    """
    n = [len(ws) for ws in sets]
    width = max(n)

    def stack(get):
        out = None
        for k, ws in enumerate(sets):
            a = torch.from_numpy(np.ascontiguousarray(get(ws)))
            if out is None:
                out = torch.zeros((len(sets), width) + tuple(a.shape[1:]), dtype=a.dtype)
            out[k, :len(a)] = a
        return out.to(device)  # (K, N, ...)
    data = {m: stack(lambda ws, m=m: getattr(ws, m).astype(np.float32, copy=False)) if m in modalities else None
            for m in ("eeg", "eog")}
    data["y"] = stack(lambda ws: ws.labels(task)) if task is not None else None
    data["n"] = n
    return data


def group_by_size(sets: list[WindowSet]) -> list[list[int]]:
    """Indices of ``sets`` grouped by their number of windows (first appearance order): the
    members of one :func:`fit_batched` call must have equally many training windows."""
    groups: dict[int, list[int]] = {}
    for i, ws in enumerate(sets):
        groups.setdefault(len(ws), []).append(i)
    return list(groups.values())


# --- the stacked ensemble -----------------------------------------------------------------------

class _Call(nn.Module):
    """Wraps ``model`` so that a whole loss computation is one ``functional_call``: the loss may
    use any submodule (e.g. the student's adapter) with the member's weights swapped in."""

    def __init__(self, model: nn.Module, fn: Callable):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *args):
        return self.fn(self.model, *args)


class Ensemble:
    """K models of one architecture with their weights stacked on a leading member axis.

    Parameters
    ----------
    models : list of nn.Module
        Same class and sizes; their current weights become the members'.
    device : torch.device

    Attributes
    ----------
    params : dict of str -> Tensor (K, ...)
        Leaf tensors that require grad (the optimiser's parameters).
    buffers : dict of str -> Tensor (K, ...)
        Batch-norm running statistics, updated per member in training mode.
    members : list of int
        Which of the original members the rows of the stack are (members leave when they stop).
    """

    def __init__(self, models: list[nn.Module], device: torch.device | str = "cpu"):
        params, buffers = stack_module_state([m.to(device) for m in models])
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}  # (K, ...)
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}  # (K, ...)
        self.skeleton = copy.deepcopy(models[0]).to("meta")
        self.modalities = getattr(models[0], "modalities", ("eeg", "eog"))
        self.members = list(range(len(models)))

    def __len__(self) -> int:
        return len(self.members)

    def map(self, fn: Callable, *args, train: bool = False):
        """``fn(model, *args_k)`` for every member k, vectorised with ``torch.func.vmap``.

        Parameters
        ----------
        fn : callable
            Receives the skeleton module (with member k's weights swapped in) and the member's
            slices of ``args``; must use tensor operations only (no ``float()``/``.item()``).
        *args
            Pytrees of tensors with the member axis first (``(K, ...)``).
        train : bool
            Training mode (dropout on, batch norm on batch statistics and updating its
            buffers) or eval mode.

        Returns
        -------
        What ``fn`` returns, with a member axis first on every tensor.
        """
        call = _Call(self.skeleton, fn)
        call.train(train)

        def member(p, b, *a):
            return functional_call(call, ({f"model.{k}": v for k, v in p.items()},
                                          {f"model.{k}": v for k, v in b.items()}), a)
        dims = (0, 0) + tuple(_in_dims(a) for a in args)
        return vmap(member, in_dims=dims, randomness="same")(self.params, self.buffers, *args)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the stack's ``rows`` (positions, not member ids); new leaf tensors."""
        self.params = {k: v.detach()[rows].clone().requires_grad_(True) for k, v in self.params.items()}
        self.buffers = {k: v[rows].clone() for k, v in self.buffers.items()}
        self.members = [self.members[i] for i in rows.tolist()]

    def state(self, row: int) -> dict:
        """Row ``row``'s state dict (detached copies), loadable into one model."""
        return {k: v[row].detach().clone() for k, v in {**self.params, **self.buffers}.items()}


def _in_dims(x):
    """vmap's ``in_dims`` for a pytree of tensors and ``None`` (e.g. a Batch without EEG)."""
    if x is None or isinstance(x, torch.Tensor):
        return None if x is None else 0
    if isinstance(x, dict):
        return {k: _in_dims(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_in_dims(v) for v in x))
    return type(x)(_in_dims(v) for v in x)


def _decay(name: str, ndim: int) -> bool:
    """Weight decay on matrices only, as :func:`kdlib.train.make_optimizer` (``ndim`` of one member)."""
    return not (ndim < 2 or name.endswith("pos"))


def _optimizer(ens: Ensemble, config: TrainConfig, device, state: dict | None = None):
    """Fused AdamW over the stacked parameters: elementwise, so every member has its own moments."""
    names = list(ens.params)
    groups = [{"params": [ens.params[n] for n in names if _decay(n, ens.params[n].ndim - 1)],
               "weight_decay": config.weight_decay},
              {"params": [ens.params[n] for n in names if not _decay(n, ens.params[n].ndim - 1)],
               "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas,
                            fused=torch.device(device).type in ("cpu", "cuda"))
    for n, s in (state or {}).items():
        opt.state[ens.params[n]] = s
    return opt


def _slice_state(opt, ens: Ensemble, rows: torch.Tensor) -> dict:
    """The optimiser's per-parameter state restricted to ``rows`` of the member axis."""
    out = {}
    for n, p in ens.params.items():
        s = opt.state.get(p)
        if s:
            out[n] = {k: (v[rows].clone() if v.ndim and v.shape[0] == p.shape[0] and k != "step" else v.clone())
                      for k, v in s.items()}
    return out


def _clip(ens: Ensemble, max_norm: float) -> None:
    """Clip every member's own global gradient norm to ``max_norm`` (as ``clip_grad_norm_``)."""
    grads = [p.grad for p in ens.params.values() if p.grad is not None]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads], dim=1).norm(dim=1)  # (K,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # (K,)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.ndim - 1))))


# --- losses and evaluation ------------------------------------------------------------------------

def ce_loss(model: nn.Module, batch: Batch, aux: dict):
    """The default per-member loss: class-weighted cross-entropy (``aux["weight"] (C,)`` or absent).

    Parameters
    ----------
    model : nn.Module
        The skeleton with one member's weights swapped in.
    batch : Batch
        The member's batch.
    aux : dict
        The member's auxiliary inputs (``"weight"``: its class weights).

    Returns
    -------
    ``(loss (), logits (B, C), parts {})`` like every batched ``loss_fn``.
    """
    logits = call_model(model, batch.eeg, batch.eog).logits  # (B, C)
    return F.cross_entropy(logits, batch.y, weight=aux.get("weight")), logits, {}


@torch.no_grad()
def _member_logits(ens: Ensemble, data: dict, ids: list[int], batch_size: int) -> torch.Tensor:
    """Eval-mode logits ``(K, N, C)`` of the stack's members (member ``ids``, in stack order) on
    their own windows of ``data`` (from :func:`stack_windows` over all original members)."""
    device = next(x for x in (data["eeg"], data["eog"]) if x is not None).device
    rows = torch.tensor(ids, device=device)
    outs = []
    for idx in iterate_batches(max(data["n"][i] for i in ids), batch_size):
        idx = idx.to(rows.device)
        args = [x[rows[:, None], idx[None, :]] if x is not None else None for x in (data["eeg"], data["eog"])]
        outs.append(ens.map(lambda m, e, o: call_model(m, e, o).logits.float(), *args))  # (K, b, C)
    return torch.cat(outs, dim=1)  # (K, N, C)


# --- fit_batched --------------------------------------------------------------------------------------

def fit_batched(models: list[nn.Module], trains: list[WindowSet], vals: list[WindowSet | None], task: str,
                config: TrainConfig = DEFAULT, *, loss_fn: Callable | None = None, aux: dict | None = None,
                on_epoch_end: Callable | None = None) -> list[FitResult]:
    """Train ``K`` models, member k on ``trains[k]`` with ``vals[k]``, as one stacked ensemble.

    Parameters
    ----------
    models : list of nn.Module
        K models of one architecture, already initialised (seed first, as for :func:`~kdlib.train.fit`).
        Trained in place: on return each holds its best epoch's weights, in eval mode.
    trains : list of WindowSet
        Each member's training windows; all of one length (:func:`group_by_size`).
    vals : list of WindowSet or None
        Each member's validation windows (any lengths); all given or all ``None``.
    task : {'valence', 'arousal'}
    config : TrainConfig
        Shared by all members (``num_threads`` is applied as in :func:`~kdlib.train.fit`).
    loss_fn : callable, optional
        ``loss_fn(model, batch: Batch, aux_k: dict) -> (loss (), logits (B, C), parts)`` for one
        member, under ``vmap`` (tensor operations only); ``parts`` is a dict of scalar tensors
        (or ``None``) averaged over the epoch's windows into history columns. ``aux_k`` holds
        the member's ``weight`` (class weights) and its slices of ``aux``. Default :func:`ce_loss`.
    aux : dict, optional
        Extra per-member tensors: ``{name: Tensor (K, N, ...)}`` rows per training window (taken
        by the batch's indices, e.g. teacher outputs); ``{name: Tensor (K, ...)}`` under a key
        starting with ``"member_"`` passed whole.
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch, ensemble, rows) -> list of dict``: ``rows`` are the epoch's history
        rows so far (training, validation and loss parts) of the members in the stack, in
        ``ensemble.members`` order; the returned dicts add columns, as in :func:`~kdlib.train.fit`.

    Returns
    -------
    list of FitResult
        One per member, in order; ``seconds`` is the batch's wall time divided by K and each
        history row's ``seconds`` the epoch's wall time divided by the members still training.

    Notes
    -----
    See the module docstring for what agrees with :func:`~kdlib.train.fit` and to what tolerance.
    """
    if len({len(ws) for ws in trains}) != 1 or len(trains[0]) == 0:
        raise ValueError(f"fit_batched: members need equally many (> 0) training windows, got "
                         f"{[len(ws) for ws in trains]}")
    if len(models) != len(trains) or len(vals) != len(trains):
        raise ValueError(f"fit_batched: {len(models)} models, {len(trains)} training and {len(vals)} validation sets")
    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        return _fit_batched(models, trains, vals, task, config, loss_fn or ce_loss, aux or {}, on_epoch_end)
    finally:
        torch.set_num_threads(threads)


def _class_weights(trains, task, n_classes, config, device):
    """Per-member class weights ``(K, C)`` and their numpy rows (None when unweighted)."""
    rows = [ce_weights(config.class_weight, ws.labels(task), n_classes) for ws in trains]
    if rows[0] is None:
        return None, rows
    return torch.as_tensor(np.stack(rows), device=device), rows


def _take(aux: dict, weight, rows: torch.Tensor, idx: torch.Tensor) -> dict:
    """The members' auxiliary inputs for a batch: ``(K, N, ...)`` rows at ``idx``, per-member whole."""
    out = {k: (v[rows] if k.startswith("member_") else v[rows[:, None], idx[None, :]]) for k, v in aux.items()}
    if weight is not None:
        out["weight"] = weight[rows]  # (K, C)
    return out


def _fit_batched(models, trains, vals, task, config, loss_fn, aux, on_epoch_end) -> list[FitResult]:
    t0 = time.perf_counter()
    device = choose_device(config.device)
    seed_everything(config.seed)
    gen = dataloader_generator(config.seed)
    ens = Ensemble(models, device)
    tr = stack_windows(trains, task, ens.modalities, device)
    has_val = all(v is not None and len(v) for v in vals)
    va = stack_windows(vals, task, ens.modalities, device) if has_val else None
    n_classes = getattr(getattr(models[0], "config", None), "n_classes", 2)
    weight, cw_rows = _class_weights(trains, task, n_classes, config, device)
    n = len(trains[0])
    steps_per_epoch = math.ceil(n / config.batch_size)
    factor = _lr_lambda(config, steps_per_epoch)
    opt, step = _optimizer(ens, config, device), 0
    _set_lr(opt, config.lr * factor(0))
    members, histories = [BestEpoch(config) for _ in models], [[] for _ in models]  # per member
    for epoch in range(1, config.epochs + 1):
        te = time.perf_counter()
        rows = torch.tensor(ens.members, device=device)  # member ids of the stack's rows
        sums = _train_epoch(ens, opt, tr, aux, weight, rows, n, config, gen, loss_fn, step, factor)
        step += steps_per_epoch
        val_rows = _validate(ens, va, weight, config) if has_val else [validation_row(None, None, None)] * len(ens)
        epoch_rows = _epoch_rows(epoch, sums, val_rows, n)
        if on_epoch_end is not None:
            for row, ex in zip(epoch_rows, on_epoch_end(epoch, ens, epoch_rows)):
                row.update(ex)
        seconds = (time.perf_counter() - te) / len(ens)
        for r, (mid, row) in enumerate(zip(ens.members, epoch_rows)):
            row.update(lr=opt.param_groups[0]["lr"], seconds=seconds)
            histories[mid].append(row)
            members[mid].update(epoch, row[config.monitor] if has_val else None, lambda r=r: ens.state(r))
        keep = [r for r, mid in enumerate(ens.members) if not members[mid].should_stop(has_val)]
        if not keep:
            break
        if len(keep) < len(ens):
            opt = _leave(ens, opt, keep, config, device)
    return _results(models, members, histories, cw_rows, config, (time.perf_counter() - t0) / len(models))


def _epoch_rows(epoch: int, sums: dict, val_rows: list[dict], n: int) -> list[dict]:
    """The stack's history rows of an epoch (the columns and order of :func:`kdlib.train.fit`'s):
    training loss and accuracy, validation, the loss parts averaged over the ``n`` windows."""
    rows = []
    for r, vrow in enumerate(val_rows):
        row = dict(epoch=epoch, train_loss=sums["loss"][r] / n, train_acc=sums["correct"][r] / n)
        row.update(vrow)
        row.update({k: v[r] / n for k, v in sums.items() if k not in ("loss", "correct")})  # loss parts
        rows.append(row)
    return rows


def _leave(ens: Ensemble, opt, keep: list[int], config: TrainConfig, device):
    """Members that stopped leave the stack: keep rows ``keep``, with their optimiser state and lr."""
    rows_t = torch.tensor(keep, device=device)
    state = _slice_state(opt, ens, rows_t)
    lr = opt.param_groups[0]["lr"]
    ens.keep(rows_t)
    opt = _optimizer(ens, config, device, state)
    _set_lr(opt, lr)
    return opt


def _autocast(device: torch.device, amp: bool):
    """bfloat16 autocast on CUDA when ``amp`` (no loss scaling needed); off elsewhere, so CPU
    results are float32 and unchanged."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(amp) and device.type == "cuda")


def _set_lr(opt, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def _train_epoch(ens, opt, tr, aux, weight, rows, n, config, gen, loss_fn, step, factor) -> dict:
    """One epoch of every member in the stack; per-member sums ``{"loss", "correct", parts...}`` (lists)."""
    sums: dict[str, torch.Tensor] = {}
    names: list[str] = []  # the loss parts' names, in the loss's order (unused ones are None)

    def member_loss(m, b, a):
        loss, logits, parts = loss_fn(m, b, a)
        names[:] = list(parts)
        return loss, logits, {k: v for k, v in parts.items() if v is not None}  # vmap returns tensors only
    for idx in iterate_batches(n, config.batch_size, gen):
        idx_d = idx.to(rows.device)
        pick = (rows[:, None], idx_d[None, :])  # gathers (K, B) rows: each member its own windows
        batch = Batch(*(tr[m][pick] if tr[m] is not None else None for m in ("eeg", "eog")),  # (K, B, ...)
                      tr["y"][pick], idx_d.expand(len(rows), -1))  # (K, B)
        with _autocast(rows.device, config.amp):
            loss, logits, parts = ens.map(member_loss, batch, _take(aux, weight, rows, idx_d),
                                          train=True)  # (K,), (K, B, C), parts (K,)
        loss, logits = loss.float(), logits.float()
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # member k's gradient: d loss_k / d w_k (members share nothing)
        if config.grad_clip is not None:
            _clip(ens, config.grad_clip)
        opt.step()
        step += 1
        _set_lr(opt, config.lr * factor(step))
        b = len(idx)
        done = {"loss": loss.detach() * b, "correct": (logits.detach().argmax(-1) == batch.y).sum(1).double()}
        done.update({k: (parts[k].detach() * b if k in parts else torch.full_like(loss, math.nan))
                     for k in names})  # an unused part is NaN, as in the sequential log
        for k, v in done.items():
            sums[k] = sums.get(k, 0.0) + v.detach().double()
    return {k: v.cpu().tolist() for k, v in sums.items()}


def _validate(ens: Ensemble, va: dict, weight, config: TrainConfig) -> list[dict]:
    """Validation loss, accuracy and macro F1 of every member in the stack (:func:`kdlib.train.validation_row`)."""
    logits = _member_logits(ens, va, ens.members, config.eval_batch_size)  # (K, N, C)
    return [validation_row(logits[r, :va["n"][mid]], va["y"][mid, :va["n"][mid]],
                           weight[mid] if weight is not None else None) for r, mid in enumerate(ens.members)]


def _results(models, members: list[BestEpoch], histories, cw_rows, config, seconds) -> list[FitResult]:
    """Load each member's best state into its model; one FitResult each."""
    out = []
    for model, best, rows, cw in zip(models, members, histories, cw_rows):
        model.load_state_dict(best.state)
        model.eval()
        out.append(FitResult(model=model, history=pd.DataFrame(rows), best_epoch=best.epoch,
                             best_score=best.best_score, monitor=config.monitor, stopped_early=best.stopped_early,
                             class_weights=cw, checkpoint=None, seconds=seconds, config=config))
    return out
