"""kdlib.models.export: the EOG student's exported logits equal the eager ones, for any batch."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from kdlib.models import SMOKE, EOGOnly, EOGStudent, FusionTeacher, LogitsOnly, export_student
from kdlib.repro import seed_everything

CONFIG = replace(SMOKE, n_samples=128)  # 1 s windows keep the test fast

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def windows(batch: int) -> torch.Tensor:
    return torch.randn(batch, CONFIG.n_eog, CONFIG.n_samples)  # (B, n_eog, T)


@pytest.mark.parametrize("cls", [EOGStudent, EOGOnly])
def test_exported_logits_equal_eager_for_any_batch(tmp_path, cls):
    seed_everything(0)
    model = cls(CONFIG)
    model.train()  # export_student must switch to eval mode itself
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exporting is silent
        program = export_student(model)
    assert not model.training
    torch.export.save(program, tmp_path / "student.pt2")
    loaded = torch.export.load(tmp_path / "student.pt2")
    for batch in (1, 5):
        eog = windows(batch)
        with torch.inference_mode():
            expected = model(eog=eog).logits  # (B, n_classes)
            for f in (program.module(), loaded.module()):
                got = f(eog)
                assert got.shape == (batch, CONFIG.n_classes)
                torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_exported_program_refuses_another_window_length():
    program = export_student(EOGStudent(CONFIG))
    with pytest.raises(Exception):
        program.module()(torch.randn(2, CONFIG.n_eog, CONFIG.n_samples // 2))


def test_refuses_models_that_read_eeg():
    with pytest.raises(ValueError, match="EOG-only"):
        export_student(FusionTeacher(CONFIG))
    with pytest.raises(ValueError, match="EOG-only"):
        LogitsOnly(FusionTeacher(CONFIG))


def test_gates_of_eager_calls_survive_export():
    student = EOGStudent(CONFIG).eval()
    eog = windows(3)
    before = student.gate_maps(student(eog=eog))
    export_student(student)
    after = student.gate_maps(student(eog=eog))  # the eager module is unchanged by the export
    assert after["1-2"].shape == (3, CONFIG.n_tokens, CONFIG.d_model)
    np.testing.assert_array_equal(after["1-2"], before["1-2"])
