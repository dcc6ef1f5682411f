"""Tests of kdlib.repro: seeds, DataLoader order, device choice, environment report."""

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from kdlib import repro


class NoisyIndex(Dataset):
    """Returns (index, a NumPy draw, a torch draw): shows what each worker's generators give."""

    def __len__(self):
        return 16

    def __getitem__(self, index):
        return index, np.random.rand(), torch.rand(()).item()


def draws(seed):
    """Python, NumPy and torch draws right after seeding."""
    repro.seed_everything(seed)
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), torch.randn(2, 2).tolist()


def loader_items(seed, num_workers):
    """Everything a shuffled DataLoader yields for a given seed."""
    loader = DataLoader(
        NoisyIndex(), batch_size=4, shuffle=True, num_workers=num_workers,
        generator=repro.dataloader_generator(seed), worker_init_fn=repro.seed_worker,
    )
    return [tuple(t.tolist() for t in batch) for batch in loader]


def test_same_seed_same_draws():
    assert draws(7) == draws(7)


def test_different_seeds_differ():
    first, second = draws(7), draws(8)
    assert all(a != b for a, b in zip(first, second))


def test_seed_everything_returns_seeded_generator():
    generator = repro.seed_everything(3)
    expected = torch.randperm(10, generator=repro.dataloader_generator(3))
    assert torch.equal(torch.randperm(10, generator=generator), expected)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_out_of_range(seed):
    with pytest.raises(ValueError, match="seed"):
        repro.seed_everything(seed)


def order(seed):
    """The shuffled index order of a single-process DataLoader."""
    return [i for batch in loader_items(seed, num_workers=0) for i in batch[0]]


def test_shuffle_order_depends_on_seed_only():
    first = order(11)
    torch.rand(100)  # moving the global stream must not change the order
    assert order(11) == first
    assert order(12) != first
    assert sorted(first) == list(range(16))


def test_workers_reproducible_and_numpy_draws_distinct():
    first = loader_items(5, num_workers=2)
    assert loader_items(5, num_workers=2) == first
    numpy_draws = [x for batch in first for x in batch[1]]
    assert len(set(numpy_draws)) == len(numpy_draws)  # workers do not repeat each other


def test_choose_device_cpu_and_auto(monkeypatch):
    assert repro.choose_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(repro, "_mps_available", lambda: False)
    assert repro.choose_device() == torch.device("cpu")


def test_choose_device_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(repro, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert repro.choose_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert repro.choose_device("auto").type == "mps"


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "mps"])
def test_choose_device_unavailable_raises(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(repro, "_mps_available", lambda: False)
    with pytest.raises(RuntimeError, match="not available"):
        repro.choose_device(name)


def test_choose_device_index_out_of_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert repro.choose_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(RuntimeError, match="only 1 CUDA"):
        repro.choose_device("cuda:1")


@pytest.mark.parametrize("name", ["gpu", "tpu", "meta", ""])
def test_choose_device_unknown_name(name):
    with pytest.raises(ValueError, match="device"):
        repro.choose_device(name)


def test_environment_report_keys_and_format():
    report = repro.environment_report()
    expected = {
        "python", "platform", "machine", "cpu_count", "kdlib", "torch", "numpy", "scipy",
        "sklearn", "pandas", "mne", "matplotlib", "torch_threads", "torch_cuda", "device", "git_commit",
    }
    assert set(report) == expected
    assert report["torch"] == torch.__version__
    assert report["numpy"] == np.__version__
    assert report["device"] in {"cpu", "cuda", "mps"}
    lines = repro.format_environment_report(report).splitlines()
    assert len(lines) == len(report)
    assert all(line.split(" : ")[0].strip() in report for line in lines)
