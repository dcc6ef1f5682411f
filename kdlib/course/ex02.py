"""Checks of the exercises of ``notebooks/02_fusion_teacher.ipynb``.

- ``02.1`` :func:`check_gap_interval` -- the gap between two models in a scores table like the
  notebook's, paired by fold: mean of the per-fold differences and its 95 % t interval, against
  :func:`kdlib.stats.t_interval` of the paired differences.
- ``02.2`` :func:`check_gates_by_class` -- the mean fusion gates of the high-class windows minus
  those of the low-class windows, per depth pair, against a direct computation.
- ``02.3`` :func:`check_interaction_ratio` -- per window, the size of the teacher's interactive
  feature relative to its heterogeneous one, against what :class:`kdlib.models.ModalFusion`
  returns, for teachers with the default pairs, with ``pairs=[(1, 3)]`` and without gates.
- ``02.4`` :func:`check_seen_share` -- the share of a fold's test windows whose trial a teacher
  was trained on (1 for a teacher trained once on all trials), against a direct count.

Every check builds its own small seeded inputs (CPU, well under a second) and computes the
expected values with kdlib or an independent formula.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from kdlib.course import check, expect, paired_by_fold
from kdlib.models import SMOKE, FusionTeacher, LateFusionTeacher, example_inputs
from kdlib.stats import t_interval

__all__ = ["check_gap_interval", "check_gates_by_class", "check_interaction_ratio", "check_seen_share"]


def _scores(rng: np.random.Generator, n_folds: int = 5) -> pd.DataFrame:
    """A scores table as notebook 02 builds it; rows shuffled, one fold missing for ``eeg_only``."""
    rows = [dict(model=m, fold=f, accuracy=rng.uniform(0.4, 0.8), f1=rng.uniform(0.3, 0.8))
            for f in range(n_folds) for m in ("teacher", "late_fusion", "eeg_only", "eog_only")
            if not (m == "eeg_only" and f == 2)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=int(rng.integers(1000))).reset_index(drop=True)


@check("02.1", "a paired gap with its interval")
def check_gap_interval(gap_interval):
    """Check ``gap_interval(scores, model_a, model_b, metric)`` -> ``(mean, low, high)`` of the
    per-fold differences ``a - b`` (folds both models have), against :func:`kdlib.stats.t_interval`.

    Parameters
    ----------
    gap_interval : callable
        The student's function.
    """
    rng = np.random.default_rng(0)
    for a, b, metric in (("eog_only", "eeg_only", "accuracy"), ("teacher", "late_fusion", "f1"),
                         ("eeg_only", "teacher", "f1")):
        scores = _scores(rng)
        want = np.array(t_interval(paired_by_fold(scores, a, b, metric)))
        got = gap_interval(scores.copy(), a, b, metric)
        expect(isinstance(got, tuple) and len(got) == 3, f"expected a tuple (mean, low, high), got {got!r}")
        got = np.asarray(got, dtype=float)
        unpaired = scores.loc[scores.model == a, metric].mean() - scores.loc[scores.model == b, metric].mean()
        hint = ("the mean is not paired: take the difference fold by fold, on the folds both models have"
                if np.isclose(got[0], unpaired) else "95 % t interval (n - 1 degrees of freedom) of the "
                "per-fold differences a - b: kdlib.stats.t_interval")
        expect(np.allclose(got, want, atol=1e-9),
               f"{a} - {b} on {metric}: got {np.round(got, 4).tolist()}, expected {np.round(want, 4).tolist()} ({hint})")


@check("02.2", "gates of high minus low windows")
def check_gates_by_class(gates_by_class):
    """Check ``gates_by_class(gate_maps, labels)`` -> ``{pair: (L, F) mean gate of class 1 minus
    class 0}``, and that it raises ``ValueError`` when a class has no window.

    Parameters
    ----------
    gates_by_class : callable
        The student's function.
    """
    rng = np.random.default_rng(1)
    maps = {"1-2": rng.uniform(-1, 1, (7, 5, 6)), "2-3": rng.uniform(-1, 1, (7, 5, 6))}  # (B, L, F) each
    maps["2-3"][:, :, :3] += 0.5  # the first half on another level, as an EEG half might be
    for labels in (np.array([1, 1, 0, 1, 0, 0, 1]), np.array([0, 0, 0, 0, 0, 1, 0])):
        got = gates_by_class({k: v.copy() for k, v in maps.items()}, labels.copy())
        expect(isinstance(got, dict) and sorted(got) == sorted(maps),
               f"expected a dict with the same pairs {sorted(maps)}, got {type(got).__name__} "
               f"{sorted(got) if isinstance(got, dict) else ''}")
        for pair, g in maps.items():
            want = g[labels == 1].mean(axis=0) - g[labels == 0].mean(axis=0)  # (L, F)
            have = np.asarray(got[pair], dtype=float)
            expect(have.shape == want.shape, f"pair {pair}: expected shape {want.shape} (tokens, features), "
                   f"got {have.shape} (hint: average over the windows only)")
            expect(np.allclose(have, want, atol=1e-9),
                   f"pair {pair} with labels {labels.tolist()}: largest difference {np.abs(have - want).max():.3g} "
                   "(hint: mean over the class-1 windows minus mean over the class-0 windows, each class on its own)")
    try:
        gates_by_class(maps, np.ones(7, dtype=int))
        raised = False
    except ValueError:
        raised = True
    expect(raised, "with every window of class 1, expected a ValueError (class 0 has no window to average: "
           "say so instead of returning NaN)")


def _teachers() -> dict:
    cfg = replace(SMOKE, n_layers=3)  # three depths, so that the pair (1, 3) exists
    teachers = {}
    for name, build in (("default pairs", lambda: FusionTeacher(cfg)),
                        ("pairs=[(1, 3)]", lambda: FusionTeacher(cfg, pairs=[(1, 3)])),
                        ("late fusion (no gates)", lambda: LateFusionTeacher(cfg))):
        torch.manual_seed(0)
        teachers[name] = build().eval()
    return teachers


@check("02.3", "size of the interaction")
def check_interaction_ratio(interaction_ratio):
    """Check ``interaction_ratio(teacher, eeg, eog)`` -> ``(B,)`` tensor,
    ``||interactive|| / ||heterogeneous||`` per window, against :class:`kdlib.models.ModalFusion`.

    Parameters
    ----------
    interaction_ratio : callable
        The student's function.
    """
    for name, teacher in _teachers().items():
        inputs = example_inputs(teacher, batch=3, seed=1)
        with torch.no_grad():
            out = teacher(**inputs)
            z_last = torch.cat([out.eeg_depths[-1], out.eog_depths[-1]], dim=-1)  # (B, L, 2d)
            inter = (teacher.fusion(out.eeg_depths, out.eog_depths).interactive if hasattr(teacher, "fusion")
                     else torch.zeros_like(z_last))  # (B, L, 2d)
            want = inter.flatten(1).norm(dim=1) / z_last.flatten(1).norm(dim=1)  # (B,)
            got = interaction_ratio(teacher, inputs["eeg"], inputs["eog"])
        expect(torch.is_tensor(got) and tuple(got.shape) == (3,),
               f"{name}: expected a tensor of shape (3,), one ratio per window, got "
               f"{tuple(got.shape) if torch.is_tensor(got) else type(got).__name__}")
        expect(torch.allclose(got.detach().double(), want.double(), rtol=1e-4, atol=1e-6),
               f"{name}: got {got.detach().numpy().round(4).tolist()}, expected {want.numpy().round(4).tolist()} "
               "(hint: interactive = fused - [eeg_N ; eog_N], Frobenius norms over tokens and features per window)")


@check("02.4", "test windows a teacher has seen")
def check_seen_share(seen_share):
    """Check ``seen_share(teacher_groups, groups, test)`` -> the share of the test windows whose
    trial is among the teacher's training trials.

    Parameters
    ----------
    seen_share : callable
        The student's function.
    """
    rng = np.random.default_rng(3)
    groups = np.repeat(np.array(["s01/t1", "s01/t2", "s01/t3", "s02/t1", "s02/t2"]), [5, 3, 8, 2, 6])  # (N,)
    for test, teacher_groups in ((np.arange(5, 18), np.array(["s01/t2"])),  # windows 5-17: t2, t3, s02/t1
                                 (np.arange(5, 18), np.unique(groups)),  # trained on everything: all seen
                                 (np.arange(0, 5), np.array(["s01/t2", "s02/t1"])),  # nothing seen
                                 (rng.permutation(len(groups))[:9], np.array(["s01/t3", "s02/t2"]))):
        want = float(np.isin(groups[test], teacher_groups).mean())
        got = seen_share(teacher_groups.copy(), groups.copy(), test.copy())
        expect(np.ndim(got) == 0, f"expected one number (a share in [0, 1]), got {got!r}")
        expect(np.isclose(float(got), want),
               f"teacher trained on {teacher_groups.tolist()}, test windows {test.tolist()}: got {float(got):.4f}, "
               f"expected {want:.4f} (hint: the share of test *windows* whose trial id the teacher saw)")
