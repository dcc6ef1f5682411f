"""FusionTeacher's ``pairs`` option (notebook 02, exercise 3): the default is bit-identical to the
adjacent pairs, other pairs build and run, bad pairs fail early."""

from dataclasses import replace

import pytest
import torch

from kdlib.models import SMOKE, FusionTeacher, adjacent_pairs, example_inputs


def _config(n_layers):
    return replace(SMOKE, n_layers=n_layers)


@pytest.mark.parametrize("n_layers", [2, 3])
def test_default_pairs_are_bit_identical_to_explicit_adjacent_pairs(n_layers):
    cfg = _config(n_layers)
    torch.manual_seed(0)
    default = FusionTeacher(cfg).eval()
    torch.manual_seed(0)
    explicit = FusionTeacher(cfg, pairs=adjacent_pairs(n_layers)).eval()
    a, b = default.state_dict(), explicit.state_dict()
    assert list(a) == list(b)  # same parameters, created in the same order
    assert all(torch.equal(a[k], b[k]) for k in a)
    inputs = example_inputs(default, batch=3, seed=1)
    with torch.no_grad():
        out_a, out_b = default(**inputs), explicit(**inputs)
    assert torch.equal(out_a.logits, out_b.logits) and torch.equal(out_a.fused, out_b.fused)
    assert default.fusion.gating.pairs == explicit.fusion.gating.pairs == adjacent_pairs(n_layers)


def test_pairs_one_three_gates_depth_three_from_depth_one():
    cfg = _config(3)
    torch.manual_seed(0)
    teacher = FusionTeacher(cfg, pairs=[(1, 3)]).eval()
    assert teacher.fusion.gating.pairs == [(1, 3)] and len(teacher.fusion.gating.scores) == 1
    with torch.no_grad():
        out = teacher(**example_inputs(teacher, batch=2))
    assert out.logits.shape == (2, cfg.n_classes) and len(out.gates) == 1
    assert list(teacher.gate_maps(out)) == ["1-3"]
    z = [torch.cat([e, o], dim=-1) for e, o in zip(out.eeg_depths, out.eog_depths)]  # 3 x (B, L, 2d)
    g = teacher.fusion.gating.scores[0](z[0])  # scored from depth 1
    assert torch.allclose(out.fused, z[2] + g * z[2], atol=1e-6)  # gates depth 3, on top of z_3
    assert torch.allclose(out.gates[0], g, atol=1e-6)


def test_pairs_outside_the_depths_fail_early():
    with pytest.raises(ValueError, match="outside depths"):
        FusionTeacher(_config(2), pairs=[(1, 3)])
