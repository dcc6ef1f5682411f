"""Model sizes and shapes: parameter counts, multiply-accumulates, a shape trace per stage.

Introduced in ``notebooks/02_fusion_teacher.ipynb``.

MACs are *counted*, not estimated from a formula: a forward pass of one window runs under
:class:`torch.utils.flop_counter.FlopCounterMode`, which records every convolution, linear layer
and matrix product (the attention products included: :class:`~kdlib.models.blocks.SelfAttention`
writes them as explicit matmuls). MACs = counted FLOPs / 2. Element-wise work (batch norm,
softmax, activations, gating products) is not included: it is a few percent of the total.
"""

from __future__ import annotations

from typing import Mapping

import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .baselines import EEGOnly, EOGOnly
from .config import DEFAULT, ModelConfig
from .teacher import FusionTeacher, LateFusionTeacher

__all__ = ["MODELS", "build_model", "model_zoo", "example_inputs", "count_params", "count_macs",
           "complexity_table", "shape_table", "latency_ms"]

MODELS = {
    "teacher": FusionTeacher,  # EEG + EOG, gated fusion (the paper's teacher)
    "late_fusion": LateFusionTeacher,  # EEG + EOG, pooled features concatenated
    "eeg_only": EEGOnly,  # EEG branch alone
    "eog_only": EOGOnly,  # EOG branch alone (the student's structure without distillation)
}


def build_model(name: str, config: ModelConfig = DEFAULT) -> nn.Module:
    """A fresh model by name (one of :data:`MODELS`).

    Parameters
    ----------
    name : {'teacher', 'late_fusion', 'eeg_only', 'eog_only'}
        A key of :data:`MODELS`; any other name raises ``KeyError`` listing them.
    config : ModelConfig
        Sizes and input shape of the model.

    Returns
    -------
    torch.nn.Module
        Newly initialised (from torch's current random state), in training mode.
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name](config)


def model_zoo(config: ModelConfig = DEFAULT) -> dict[str, nn.Module]:
    """All models of :data:`MODELS`, built with one config (for :func:`complexity_table`)."""
    return {name: build_model(name, config) for name in MODELS}


def example_inputs(model: nn.Module, batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor | None]:
    """Random ``eeg``/``eog`` keyword inputs of the model's config, ``None`` for modalities it
    does not read: call ``model(**example_inputs(model))``.

    Parameters
    ----------
    model : torch.nn.Module
        A kdlib model: it has ``config`` (a :class:`ModelConfig`) and ``modalities``.
    batch : int
        Windows per input.
    seed : int
        Seed of the generator the inputs are drawn from (standard normal); torch's global
        random state is not touched.

    Returns
    -------
    dict
        ``{"eeg": (batch, n_eeg, n_samples) or None, "eog": (batch, n_eog, n_samples) or None}``,
        float32 tensors on the model's device.
    """
    c = model.config
    g = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    shapes = {"eeg": (batch, c.n_eeg, c.n_samples), "eog": (batch, c.n_eog, c.n_samples)}
    return {m: (torch.randn(*shapes[m], generator=g).to(dev) if m in model.modalities else None)
            for m in ("eeg", "eog")}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (``sum(p.numel())``).

    Parameters
    ----------
    model : torch.nn.Module
    trainable_only : bool
        Count only parameters with ``requires_grad`` (e.g. leave out a frozen teacher).

    Returns
    -------
    int
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, inputs=None, batch: int = 1) -> int:
    """Multiply-accumulates of one forward pass, counted by
    :class:`~torch.utils.flop_counter.FlopCounterMode` (conv, linear, matmul; FLOPs / 2).

    Parameters
    ----------
    model : nn.Module
        A kdlib model, or any module when ``inputs`` is given.
    inputs : Tensor, tuple or dict, optional
        Positional (tensor or tuple) or keyword (dict) inputs. Default: :func:`example_inputs`
        (``batch`` random windows of the model's config).
    batch : int
        Windows in the default inputs.

    Returns
    -------
    int
        MACs of the whole batch (per window with the default ``batch=1``).
    """
    if inputs is None:
        inputs = example_inputs(model, batch)
    args, kwargs = ((), inputs) if isinstance(inputs, dict) else (
        (inputs if isinstance(inputs, tuple) else (inputs,)), {})
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*args, **kwargs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2)


def latency_ms(model: nn.Module, repeats: int = 50, warmup: int = 5, threads: int = 1) -> float:
    """Median wall time of one forward pass of one window, in milliseconds (inference mode).

    Parameters
    ----------
    model : nn.Module
        Put in eval mode; its inputs are :func:`example_inputs` with ``batch=1``.
    repeats, warmup : int
        Timed and untimed passes.
    threads : int
        torch threads while timing (the previous setting is restored).

    Returns
    -------
    float
    """
    model.eval()
    x = example_inputs(model, batch=1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(**x)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(**x)
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 1000 * float(np.median(times))


def complexity_table(models: Mapping[str, nn.Module]):
    """Parameters and MACs per window of several models (pandas).

    Parameters
    ----------
    models : mapping of name -> model
        E.g. :func:`model_zoo`.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, modalities, window_s, tokens, params, macs, mmacs`` (MACs per window
        and in millions).
    """
    import pandas as pd

    rows = []
    for name, model in models.items():
        c = model.config
        macs = count_macs(model)
        rows.append(dict(model=name, modalities="+".join(model.modalities), window_s=c.n_samples / c.fs,
                         tokens=c.n_tokens, params=count_params(model), macs=macs, mmacs=round(macs / 1e6, 2)))
    return pd.DataFrame(rows)


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return str(tuple(x.shape))
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # NamedTuple
        return ", ".join(f"{k} {_describe(v)}" for k, v in zip(x._fields, x))
    if isinstance(x, (list, tuple)):
        if not x:
            return "()"
        parts = [_describe(v) for v in x]
        return f"{len(parts)} x {parts[0]}" if len(set(parts)) == 1 else "[" + ", ".join(parts) + "]"
    return type(x).__name__


def shape_table(model: nn.Module, eeg: torch.Tensor | None = None, eog: torch.Tensor | None = None,
                max_depth: int = 2):
    """Run one forward pass and list the output shape of every submodule, in call order.

    Parameters
    ----------
    model : nn.Module
    eeg, eog : Tensor, optional
        Inputs; default :func:`example_inputs` with a batch of 2.
    max_depth : int
        Submodules up to this nesting depth are listed (``eeg.tokenizer`` has depth 2).

    Returns
    -------
    pandas.DataFrame
        Columns ``module, type, output`` (the first rows are the inputs, the last the model).
    """
    import pandas as pd

    if eeg is None and eog is None:
        inputs = example_inputs(model, batch=2)
    else:
        inputs = {"eeg": eeg, "eog": eog}
    rows = [dict(module=f"input.{k}", type="Tensor", output=_describe(v)) for k, v in inputs.items()
            if v is not None]
    hooks = []
    for name, module in model.named_modules():
        if name and name.count(".") < max_depth and not isinstance(module, (nn.ModuleList, nn.ModuleDict)):
            hooks.append(module.register_forward_hook(
                lambda m, args, out, name=name: rows.append(dict(module=name, type=type(m).__name__,
                                                                 output=_describe(out)))))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(**inputs)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    rows.append(dict(module="(model)", type=type(model).__name__, output=_describe(out)))
    return pd.DataFrame(rows)
