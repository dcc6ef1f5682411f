"""Shared fixtures: small DEAP-format folders written with kdlib's own writer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/_py2pickle.py

from kdlib.data import deap  # noqa: E402


def random_subject(seed: int, n_trials: int = 6) -> dict[str, np.ndarray]:
    """DEAP-shaped arrays: noise in µV, ratings spread over 1-9."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, 10.0, size=(n_trials, deap.N_CHANNELS, deap.N_SAMPLES))
    labels = rng.uniform(1.0, 9.0, size=(n_trials, 4))
    return {"data": data, "labels": labels}


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a test module: these models are tiny, and on a shared 2-core
    machine two OpenMP threads wait on each other (10x slower steps when another process is busy)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def deap_dir(tmp_path) -> Path:
    """A folder with three small DEAP-format subjects s01-s03 (6 trials each)."""
    folder = tmp_path / "deap"
    for i in (1, 2, 3):
        arrays = random_subject(i)
        deap.save_dat(folder / f"s{i:02d}.dat", arrays["data"], arrays["labels"])
    return folder
