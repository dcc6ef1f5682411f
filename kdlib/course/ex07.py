"""Checks of notebook 07's exercises (``notebooks/07_when_does_distillation_help.ipynb``).

* ``07.1`` :func:`check_path_free_grid`: a :class:`~kdlib.sweep.SweepGrid` without the EEG → EOG path.
* ``07.2`` :func:`check_kd_share`: the share of the weighted KD term in the student's loss, per epoch.
* ``07.3`` :func:`check_resume_plan`: which points of a grown grid a resumed sweep trains, which it keeps.

Nothing is trained: the checks build grids, small seeded histories and a sweep folder's
``point.json`` markers in a temporary folder, and compare with :mod:`kdlib.sweep` and
:func:`kdlib.distill.losses.loss_shares`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from kdlib import sweep
from kdlib.course import check, expect
from kdlib.data import synthetic
from kdlib.distill.losses import loss_shares
from kdlib.evaluate import ProtocolConfig

__all__ = ["check_path_free_grid", "check_kd_share", "check_resume_plan"]


def _protocol(n_folds: int = 2) -> ProtocolConfig:
    """A small protocol like the smoke grid's (nothing is run with it here)."""
    return ProtocolConfig(tasks=("valence",), methods=sweep.SWEEP_METHODS, model_preset="smoke",
                          train_preset="smoke", n_folds=n_folds, seeds=(0,), epochs=1)


@check("07.1", "a grid without the EEG → EOG path")
def check_path_free_grid(path_free_grid):
    """Check ``path_free_grid(noise_values, protocol)``: its points, their data sets and its protocol.

    Parameters
    ----------
    path_free_grid : callable
        The student's function -> a ``SweepGrid`` centred on ``synthetic.PRESETS["no_path"]`` that
        moves ``rating_noise_sd`` through ``noise_values`` and runs ``protocol`` at every point.
    """
    centre = synthetic.PRESETS["no_path"]
    for values, folds in (((0.5, 2.0), 2), ((2.5,), 3), ((1.0, 0.25, 3.0), 2)):  # the last lists the centre
        protocol = _protocol(folds)
        grid = path_free_grid(tuple(values), protocol)
        expect(isinstance(grid, sweep.SweepGrid), f"expected a kdlib.sweep.SweepGrid, got {type(grid).__name__}")
        want = sweep.grid_points(sweep.SweepGrid(synth=centre, knobs=(("rating_noise_sd", tuple(values)),),
                                                 protocol=protocol))
        got = sweep.grid_points(grid)
        expect([p.key for p in got] == [p.key for p in want],
               f"noise values {values}: the grid's points are {[p.key for p in got]}, expected "
               f"{[p.key for p in want]} (hint: one knob, rating_noise_sd; the centre is always a point)")
        for point, ref in zip(got, want):
            expect(point.config == ref.config,
                   f"point {point.key}: its data set is not no_path's with that noise (eeg_to_eog = "
                   f"{point.config.eeg_to_eog}, n_trials = {point.config.n_trials}; hint: centre the grid on "
                   "synthetic.PRESETS['no_path'])")
        expect(grid.protocol == protocol, "the grid does not run the protocol it was given")


def _history(rng: np.random.Generator, n_epochs: int, with_feat: bool) -> pd.DataFrame:
    """A distill history's loss columns: ce, kd (T^2 KL), feat (NaN without the feature term)."""
    return pd.DataFrame({"epoch": np.arange(1, n_epochs + 1), "ce": rng.uniform(0.45, 0.75, n_epochs),
                         "kd": rng.uniform(0.02, 0.3, n_epochs),
                         "feat": rng.uniform(0.8, 2.0, n_epochs) if with_feat else np.full(n_epochs, np.nan),
                         "val_acc": rng.uniform(0.4, 0.6, n_epochs)})


@check("07.2", "the KD term's share of the loss")
def check_kd_share(kd_share):
    """Check ``kd_share(history, alpha, beta)`` against :func:`kdlib.distill.losses.loss_shares`, epoch by epoch.

    Parameters
    ----------
    kd_share : callable
        The student's function: a distill history (columns ``ce``, ``kd``, ``feat``; ``feat`` NaN
        when unused) and the weights -> ndarray (n_epochs,): ``alpha * kd`` over the whole loss
        ``ce + alpha * kd + beta * feat``.
    """
    rng = np.random.default_rng(7)
    cases = [(6, False, 1.0, 0.0), (5, False, 4.0, 0.0), (4, True, 1.0, 1.0), (4, True, 0.5, 2.0),
             (3, False, 0.0, 0.0)]  # V1, V1 with a larger alpha, V2, other weights, scratch (kd logged, weight 0)
    for n_epochs, with_feat, alpha, beta in cases:
        history = _history(rng, n_epochs, with_feat)
        want = np.array([loss_shares(row, alpha, beta)["share_kd"]
                         for row in history[["ce", "kd", "feat"]].to_dict("records")])  # (n_epochs,)
        got = np.asarray(kd_share(history.copy(), alpha, beta), dtype=float)
        expect(got.shape == want.shape, f"alpha {alpha}, beta {beta}: expected one share per epoch {want.shape}, "
                                        f"got shape {got.shape}")
        expect(np.all(np.isfinite(got)), f"alpha {alpha}, beta {beta}: the shares contain NaN (hint: an unused "
                                         "term's column is NaN; it adds nothing to the loss)")
        expect(np.allclose(got, want, atol=1e-9), f"alpha {alpha}, beta {beta}: got {np.round(got, 3).tolist()}, "
                                                  f"expected {np.round(want, 3).tolist()} (hint: the loss is "
                                                  "ce + alpha * kd + beta * feat; CE's weight is 1)")


def _mark_done(out: Path, key: str) -> None:
    """What run_sweep leaves for a finished point: its run folder with point.json."""
    folder = out / "points" / key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / sweep.DONE_FILE).write_text(json.dumps({"key": key}))


@check("07.3", "what a resumed sweep trains")
def check_resume_plan(resume_plan):
    """Check ``resume_plan(grid, out)`` on a sweep folder with finished, unfinished and foreign points.

    Parameters
    ----------
    resume_plan : callable
        The student's function -> ``(train, keep)``: the keys of ``grid``'s points that
        ``kdlib.sweep.run_sweep(grid, out)`` would train and those it would keep, each in the
        order the sweep visits them (:func:`kdlib.sweep.grid_points`).
    """
    base = sweep.SWEEP_PRESETS["smoke"]
    knobs = dict(base.knobs)
    grown = replace(base, knobs=(("rating_noise_sd", knobs["rating_noise_sd"]), ("eeg_to_eog", knobs["eeg_to_eog"]),
                                 ("n_trials", (*knobs["n_trials"], 16))))
    for grid, finished in ((grown, slice(None)), (grown, slice(0, 2)), (base, slice(0, 0))):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            old = [p.key for p in sweep.grid_points(base)]
            for key in old[finished]:
                _mark_done(out, key)
            (out / "points" / old[-1] / "folds").mkdir(parents=True, exist_ok=True)  # started, not finished
            _mark_done(out, "rating_noise_sd=9.0__eeg_to_eog=0.5__n_trials=20")  # another grid's point
            keys = [p.key for p in sweep.grid_points(grid)]
            done = [(out / "points" / k / sweep.DONE_FILE).is_file() for k in keys]
            want = ([k for k, d in zip(keys, done) if not d], [k for k, d in zip(keys, done) if d])
            got = resume_plan(grid, out)
            expect(isinstance(got, tuple) and len(got) == 2,
                   f"expected a tuple (train, keep), got {type(got).__name__}")
            got = (list(got[0]), list(got[1]))
            expect(got == want, f"{len(keys)} points, {sum(done)} finished: got train {got[0]}, keep {got[1]}; "
                                f"expected train {want[0]}, keep {want[1]} (hint: a point is finished when its "
                                f"points/<key>/{sweep.DONE_FILE} exists; a folder alone is not enough)")
