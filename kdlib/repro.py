"""Reproducibility: seeds, device choice and an environment report.

Introduced in notebooks/01_data_preparation.ipynb (setup cell) and used by every notebook:
``seed_everything(SEED)`` first, ``environment_report()`` printed in the summary.

What "reproducible" means here
------------------------------
On the CPU, PyTorch's kernels give bit-identical results run after run for a fixed seed and a
fixed number of threads (reductions split the work by thread count). That is what CI and
``pytest --nbval`` check. ``torch.use_deterministic_algorithms`` is therefore *not* switched on
for the CPU: it would only turn a few CPU ops into warnings or errors and make ``torch.empty``
fill memory, with nothing to gain. On CUDA it is switched on (``warn_only=True``, so an op
without a deterministic kernel warns instead of stopping a lesson), together with
``CUBLAS_WORKSPACE_CONFIG`` and deterministic cuDNN. Results still differ between CPU and GPU,
between machines and between thread counts.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import subprocess
import sys

import numpy as np
import torch

from kdlib import __version__, paths

__all__ = [
    "seed_everything",
    "dataloader_generator",
    "seed_worker",
    "choose_device",
    "environment_report",
    "format_environment_report",
]

_DEVICE_TYPES = ("cpu", "cuda", "mps")
_VERSIONED = {
    "numpy": "numpy",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "pandas": "pandas",
    "mne": "mne",
    "matplotlib": "matplotlib",
}


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices) and make CUDA deterministic.

    Parameters
    ----------
    seed : int
        The seed, ``0 <= seed < 2**32``.

    Returns
    -------
    torch.Generator
        A CPU generator seeded with ``seed``, for ``DataLoader(generator=...)`` or
        ``random_split``; the same as ``dataloader_generator(seed)``.

    Notes
    -----
    Seeds ``random``, NumPy's global generator and ``torch.manual_seed`` (which seeds the CPU,
    CUDA and MPS generators). When CUDA is available it also sets
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (unless already set; it must be set before the first
    cuBLAS call), ``cudnn.deterministic`` and ``use_deterministic_algorithms(True,
    warn_only=True)``. On the CPU nothing more is needed: see the module docstring.
    ``PYTHONHASHSEED`` cannot be changed from inside a running interpreter; kdlib does not
    depend on string hashing order.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return dataloader_generator(seed)


def dataloader_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``.

    Parameters
    ----------
    seed : int
        The seed.

    Returns
    -------
    torch.Generator
        Pass it as ``DataLoader(..., generator=g)`` so that the shuffle order (and the base
        seed of the workers) depends on ``seed`` only, not on how much of the global torch
        random stream ran before.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def seed_worker(worker_id: int) -> None:
    """Seed NumPy and ``random`` inside a DataLoader worker; use as ``worker_init_fn``.

    Parameters
    ----------
    worker_id : int
        Given by the DataLoader; unused (torch already gives each worker its own seed).

    Notes
    -----
    PyTorch seeds each worker's torch generator with ``base_seed + worker_id`` (the base seed
    drawn from the DataLoader's generator) but leaves NumPy and ``random`` as they were forked,
    so every worker would draw the same NumPy numbers. This derives them from the torch seed.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def choose_device(prefer: str = "auto") -> torch.device:
    """The device to compute on.

    Parameters
    ----------
    prefer : str
        ``"auto"``: CUDA if available, else Apple MPS, else the CPU. ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"``: that device, or an error when it is not available.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        For a name that is none of the above.
    RuntimeError
        When the requested device is not available, saying why.
    """
    if prefer == "auto":
        return torch.device(_auto_device_type())
    try:
        device = torch.device(prefer)
    except RuntimeError as err:
        raise ValueError(f"unknown device {prefer!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if device.type not in _DEVICE_TYPES:
        raise ValueError(f"unsupported device {prefer!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    _check_available(device)
    return device


def _auto_device_type() -> str:
    """'cuda', 'mps' or 'cpu': the first one available."""
    if torch.cuda.is_available():
        return "cuda"
    if _mps_available():
        return "mps"
    return "cpu"


def _mps_available() -> bool:
    """Whether Apple's Metal backend can be used."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _check_available(device: torch.device) -> None:
    """Raise RuntimeError when ``device`` cannot be used here."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"CUDA was requested but is not available (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda}); use 'auto' or 'cpu'"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"{device} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not _mps_available():
        raise RuntimeError("Apple MPS was requested but is not available here; use 'auto' or 'cpu'")


def _git_commit() -> str | None:
    """The checkout's commit (with ``-dirty`` when it has changes), or None outside git."""
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12", "--exclude=*"],
            cwd=paths.project_root(), capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _version(distribution: str) -> str | None:
    """Installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_report() -> dict[str, object]:
    """What a result depends on: interpreter, machine, library versions, device, commit.

    Returns
    -------
    dict
        Keys ``python``, ``platform``, ``machine``, ``cpu_count``, ``kdlib``, ``torch``,
        ``numpy``, ``scipy``, ``sklearn``, ``pandas``, ``mne``, ``matplotlib``,
        ``torch_threads``, ``torch_cuda``, ``device`` and ``git_commit`` (None outside a git
        checkout or before the first commit). Versions are None for a library that is not
        installed.
    """
    report: dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "kdlib": __version__,
        "torch": torch.__version__,
    }
    report.update({key: _version(dist) for key, dist in _VERSIONED.items()})
    report.update(
        torch_threads=torch.get_num_threads(),
        torch_cuda=torch.version.cuda,
        device=str(choose_device("auto")),
        git_commit=_git_commit(),
    )
    return report


def format_environment_report(report: dict[str, object]) -> str:
    """The report as aligned ``key : value`` lines, for a notebook's summary cell.

    Parameters
    ----------
    report : dict
        As returned by ``environment_report``.

    Returns
    -------
    str
        One line per key, in the report's order.
    """
    width = max(map(len, report), default=0)
    return "\n".join(f"{key:<{width}} : {value}" for key, value in report.items())


if __name__ == "__main__":
    print(format_environment_report(environment_report()), file=sys.stdout)
