"""Gates for plotting come from the forward pass's output (``gate_maps``), not from module state."""

from __future__ import annotations

import numpy as np
import torch

from test_train import MODEL, planted

from kdlib.models import EOGStudent, FusionTeacher
from kdlib.models.fusion import gate_maps
from kdlib.train import to_tensors


def test_gate_maps_come_from_the_forward_pass():
    ws = planted(n_trials=2, seed=4)
    torch.manual_seed(0)
    t, s = FusionTeacher(MODEL).eval(), EOGStudent(MODEL).eval()
    data = to_tensors(ws, None)
    out_t, out_s = t(eeg=data["eeg"], eog=data["eog"]), s(eog=data["eog"])
    maps_t, maps_s = t.gate_maps(out_t), s.gate_maps(out_s)
    assert list(maps_t) == ["1-2"] and maps_t["1-2"].shape == (len(ws), MODEL.n_tokens, 2 * MODEL.d_model)
    np.testing.assert_array_equal(maps_t["1-2"], out_t.gates[0].detach().numpy())
    np.testing.assert_array_equal(maps_s["1-2"], out_s.gates[0].detach().numpy())
    assert gate_maps(out_s.gates, s.gating.pairs).keys() == maps_s.keys()
