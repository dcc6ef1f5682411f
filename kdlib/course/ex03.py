"""Checks of the exercises of ``notebooks/03_student_alignment.ipynb``.

- ``03.1`` :func:`check_pool_teacher` -- the parameter-free "pool" adapter: the teacher's fused
  feature ``(B, L, 2d)`` averaged over adjacent feature pairs to ``(B, L, d)``, as
  ``kdlib.models.FeatureAdapter(d, 2d, "pool")`` does.
- ``03.2`` :func:`check_kd_gradient` -- the gradient of Hinton's KD loss (with its ``T²``) with
  respect to the student's logits, written from the formula, against autograd of
  ``kdlib.distill.hinton_kd``.
- ``03.3`` :func:`check_linear_cka` -- linear CKA of two feature matrices, against
  ``kdlib.distill.linear_cka``.
- ``03.4`` :func:`check_paired_gain` -- the per-fold difference of one model's score minus
  another's in a scores table like the notebook's, paired by fold.

Every check builds its own small seeded inputs (CPU, well under a second) and computes the
expected values with kdlib or an independent formula.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from kdlib.course import check, expect, paired_by_fold
from kdlib.distill import hinton_kd, linear_cka
from kdlib.models import FeatureAdapter

__all__ = ["check_pool_teacher", "check_kd_gradient", "check_linear_cka", "check_paired_gain"]


def _as_tensor(got, name: str, shape: tuple) -> torch.Tensor:
    expect(torch.is_tensor(got), f"{name} should return a torch.Tensor, got {type(got).__name__}")
    expect(tuple(got.shape) == tuple(shape), f"{name}: expected shape {tuple(shape)}, got {tuple(got.shape)}")
    return got.detach().to(torch.float64)


@check("03.1", "pooling the teacher's fused feature")
def check_pool_teacher(pool_teacher):
    """Check ``pool_teacher(t_fused)``, ``(B, L, 2d) -> (B, L, d)``, against kdlib's "pool" adapter.

    Parameters
    ----------
    pool_teacher : callable
        The student's function.
    """
    g = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 8), (1, 5, 16), (4, 1, 2)):  # d = 4, 8 and the edge case d = 1
        d = shape[-1] // 2
        t = torch.randn(*shape, generator=g)
        t[..., :d] += 3.0  # the EEG half on another level than the EOG half, as after training
        want = FeatureAdapter(d, 2 * d, "pool").teacher_side(t).to(torch.float64)  # (B, L, d)
        before = t.clone()
        got = _as_tensor(pool_teacher(t), "pool_teacher", want.shape)
        expect(torch.equal(t, before), "pool_teacher changed its input in place; return a new tensor")
        halves = (t[..., :d] + t[..., d:]).to(torch.float64) / 2
        hint = ("averages feature k of the EEG half with feature k of the EOG half; pair adjacent "
                "features 2k and 2k+1 instead" if torch.allclose(got, halves, atol=1e-6) else
                "output feature k is the mean of input features 2k and 2k+1")
        expect(torch.allclose(got, want, atol=1e-6),
               f"with input shape {shape}: largest difference from kdlib's pooling "
               f"{(got - want).abs().max():.3g} (hint: {hint})")


def _autograd_kd(z_s: torch.Tensor, z_t: torch.Tensor, temperature: float) -> torch.Tensor:
    z = z_s.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(hinton_kd(z, z_t, temperature), z)
    return grad.to(torch.float64)  # (B, C)


@check("03.2", "the gradient of the KD loss")
def check_kd_gradient(kd_gradient):
    """Check ``kd_gradient(z_s, z_t, T)`` against autograd of ``kdlib.distill.hinton_kd``.

    Parameters
    ----------
    kd_gradient : callable
        The student's function: the gradient of ``T² · KL(softmax(z_t/T) ‖ softmax(z_s/T))``,
        averaged over the batch, with respect to the student's logits ``z_s`` ``(B, C)``.
    """
    g = torch.Generator().manual_seed(0)
    for batch, classes in ((16, 2), (1, 3), (5, 4)):
        z_s = torch.randn(batch, classes, generator=g, dtype=torch.float64)
        z_t = 3 * torch.randn(batch, classes, generator=g, dtype=torch.float64)
        for temperature in (1.0, 2.0, 8.0):
            want = _autograd_kd(z_s, z_t, temperature)
            got = _as_tensor(kd_gradient(z_s, z_t, temperature), "kd_gradient", want.shape)
            ratio = float((got * want).sum() / (want * want).sum())  # the best scale of want matching got
            hint = (f"off by a factor of about {ratio:.3g}: T² (= {temperature ** 2:g}), the 1/T of the chain "
                    f"rule and the 1/B of the batch mean (B = {batch}) all count" if ratio > 0 else
                    "wrong sign: the loss falls when p_s moves towards p_t")
            expect(torch.allclose(got, want, atol=1e-6),
                   f"with B = {batch}, C = {classes}, T = {temperature:g}: largest difference from autograd "
                   f"{(got - want).abs().max():.3g} (hint: {hint})")
    same = _as_tensor(kd_gradient(z_t, z_t, 4.0), "kd_gradient", z_t.shape)
    expect(float(same.abs().max()) < 1e-9, "when the student's logits equal the teacher's the gradient must be 0")


@check("03.3", "linear CKA")
def check_linear_cka(cka):
    """Check ``cka(x, y)`` (arrays ``(n, p)`` and ``(n, q)`` -> float) against ``kdlib.distill.linear_cka``.

    Parameters
    ----------
    cka : callable
        The student's function.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)) + rng.normal(scale=3.0, size=8)  # columns off zero: centring matters
    w = rng.normal(size=(8, 16))
    q = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    cases = {"x against itself": (x, x),
             "x against a rotation of x": (x, x @ q),
             "x against 5·x": (x, 5.0 * x),
             "x (n, 8) against a noisy linear map of x (n, 16)": (x, x @ w + rng.normal(scale=4.0, size=(200, 16)) + 2.0),
             "x against unrelated noise": (x, rng.normal(size=(200, 16)) - 1.0),
             "x against a constant feature": (x, np.full((200, 3), 2.0))}
    for what, (a, b) in cases.items():
        want = linear_cka(a, b)
        got = cka(a.copy(), b.copy())
        expect(np.ndim(got) == 0, f"{what}: expected one number, got an array of shape {np.shape(got)}")
        expect(np.isfinite(float(got)), f"{what}: got {float(got)}; CKA is 0 when one side is constant "
               "(no variance: nothing to align), not a division by zero")
        expect(abs(float(got) - want) < 1e-6,
               f"{what}: got {float(got):.4f}, expected {want:.4f} (hint: centre the columns, square the "
               "numerator ‖YᵀX‖_F, normalise by ‖XᵀX‖_F·‖YᵀY‖_F)")


def _scores_table(seed: int) -> pd.DataFrame:
    """A scores table like notebook 03's: one row per (fold, model), rows in a shuffled order."""
    rng = np.random.default_rng(seed)
    models = ["teacher", "scratch", "v1", "v2"]
    rows = [dict(fold=k, model=m, accuracy=rng.uniform(0.4, 0.8), f1=rng.uniform(0.3, 0.8), majority_acc=0.55)
            for k in range(5) for m in models]
    table = pd.DataFrame(rows)
    return table.iloc[rng.permutation(len(table))].reset_index(drop=True)


@check("03.4", "a paired gain over folds")
def check_paired_gain(paired_gain):
    """Check ``paired_gain(scores, a, b, metric)`` -> Series of ``a − b`` indexed by fold.

    Parameters
    ----------
    paired_gain : callable
        The student's function.
    """
    for seed, (a, b, metric) in enumerate((("v1", "scratch", "accuracy"), ("teacher", "v2", "accuracy"),
                                           ("v2", "v1", "f1"))):
        table = _scores_table(seed)
        if seed == 2:  # a fold the model b has no score for: it cannot be paired
            table = table[~((table["model"] == b) & (table["fold"] == 3))]
        want = paired_by_fold(table, a, b, metric)
        got = paired_gain(table.copy(), a, b, metric)
        expect(isinstance(got, pd.Series), f"expected a pandas Series indexed by fold, got {type(got).__name__}")
        got = got.dropna()
        expect(sorted(got.index) == sorted(want.index),
               f"{a} − {b}: expected one value per fold that both models have, {sorted(want.index)}, "
               f"got the index {list(got.index)} (hint: index the result by fold)")
        got = got.loc[want.index].to_numpy(dtype=float)
        expect(not np.allclose(got, -want.to_numpy()), f"{a} − {b}: the sign is reversed (expected {a} minus {b})")
        expect(np.allclose(got, want.to_numpy(), atol=1e-9),
               f"{a} − {b} ({metric}): got {np.round(got, 3).tolist()}, expected "
               f"{np.round(want.to_numpy(), 3).tolist()} per fold (hint: pair the two models' rows by "
               "their fold, not by their position in the table, and use the metric asked for)")
