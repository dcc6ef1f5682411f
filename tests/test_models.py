"""kdlib.models: shapes at every stage and window length, gradients, gating, MAC/param counts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from kdlib.models import (DEFAULT, MODELS, SMOKE, Branch, DepthGating, EEGOnly, Encoder, EOGOnly,
                          FusionTeacher, LateFusionTeacher, ModalFusion, ModelConfig, SelfAttention,
                          TeacherOutput, Tokenizer, build_model, complexity_table, count_macs, count_params,
                          example_inputs, model_zoo, shape_table)

FS = 128
WINDOWS_S = (1, 2, 4, 8)
TOKENS = {1: 13, 2: 29, 4: 61, 8: 125}  # (128 s - 32) // 8 + 1


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(window_s: float = 4, **kw) -> ModelConfig:
    """The SMOKE sizes for a window of ``window_s`` seconds."""
    return replace(SMOKE, n_samples=int(window_s * FS), **kw)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- shapes ----------------------------------------------------------------------------------

def test_paper_reading_defaults():
    c = DEFAULT
    assert (c.kernel_size, c.stride, c.n_filters, c.d_model, c.n_heads, c.n_layers) == (32, 8, 64, 64, 8, 3)
    assert c.n_tokens == 61  # a 4 s window of 512 samples gives 61 tokens
    assert replace(c, fs=256.0, n_samples=1024).kernel_size == 64  # fs / 4


@pytest.mark.parametrize("window_s", WINDOWS_S)
def test_block_shapes_every_window_length(window_s):
    c = small(window_s)
    B, T, L, d = 3, window_s * FS, TOKENS[window_s], c.d_model
    assert c.n_tokens == L
    eeg, eog = torch.randn(B, c.n_eeg, T), torch.randn(B, c.n_eog, T)

    tok = Tokenizer(c.n_eeg, d, c.n_filters, c.kernel_size, c.stride)
    assert tok(eeg).shape == (B, L, d)
    assert tok.n_tokens(T) == L
    enc = Encoder(L, d, c.n_heads, c.n_layers, c.mlp_ratio)
    depths = enc(tok(eeg))
    assert len(depths) == c.n_layers and all(z.shape == (B, L, d) for z in depths)
    assert SelfAttention(d, c.n_heads)(depths[0]).shape == (B, L, d)

    eeg_depths, eog_depths = Branch(c.n_eeg, c)(eeg), Branch(c.n_eog, c)(eog)
    f = ModalFusion(d, c.n_layers, c.gate_hidden)(eeg_depths, eog_depths)
    for z in (f.fused, f.interactive, f.heterogeneous, *f.gates):
        assert z.shape == (B, L, 2 * d)
    assert len(f.gates) == c.n_layers - 1

    out = FusionTeacher(c)(eeg, eog)
    assert isinstance(out, TeacherOutput)
    assert out.logits.shape == (B, 2) and out.fused.shape == (B, L, 2 * d) and out.pooled.shape == (B, 2 * d)
    assert [z.shape for z in out.eeg_depths] == [(B, L, d)] * c.n_layers == [z.shape for z in out.eog_depths]
    late = LateFusionTeacher(c)(eeg, eog)
    assert late.logits.shape == (B, 2) and late.fused.shape == (B, L, 2 * d) and late.gates == ()
    e, o = EEGOnly(c)(eeg=eeg), EOGOnly(c)(eog=eog)
    assert e.logits.shape == o.logits.shape == (B, 2)
    assert e.feature.shape == o.feature.shape == (B, L, d) and o.pooled.shape == (B, d)


def test_full_size_teacher_shapes():
    out = FusionTeacher(DEFAULT)(torch.randn(2, 32, 512), torch.randn(2, 2, 512))
    assert out.fused.shape == (2, 61, 128) and len(out.eeg_depths) == 3 and len(out.gates) == 2


def test_fused_is_heterogeneous_plus_gated_depths():
    """The documented fusion formula: fused = [eeg_N; eog_N] + sum_i g_i * [eeg_i+1; eog_i+1]."""
    c = small(2)
    m = FusionTeacher(c).eval()
    out = m(**example_inputs(m, batch=4))
    z = [torch.cat([e, o], -1) for e, o in zip(out.eeg_depths, out.eog_depths)]
    expected = z[-1] + sum(g * z[j] for g, j in zip(out.gates, range(1, c.n_layers)))
    torch.testing.assert_close(out.fused, expected)
    torch.testing.assert_close(out.pooled, out.fused.mean(1))


def test_shorter_window_uses_prefix_of_position_embedding_longer_raises():
    m = FusionTeacher(small(4))
    assert m(torch.randn(2, 32, 256), torch.randn(2, 2, 256)).fused.shape[1] == TOKENS[2]
    with pytest.raises(ValueError, match="position embedding"):
        m(torch.randn(2, 32, 1024), torch.randn(2, 2, 1024))


def test_bad_inputs_raise():
    c = small(1)
    with pytest.raises(ValueError, match="expected"):
        Tokenizer(32)(torch.randn(2, 31, 128))
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=60, n_heads=8)
    with pytest.raises(ValueError, match="outside"):
        DepthGating(16, 2, pairs=[(2, 3)])
    with pytest.raises(KeyError):
        build_model("nope", c)


# --- single-modality models refuse the other modality -------------------------------------------

def test_single_modality_models_refuse_the_other_input():
    c = small(1)
    eeg, eog = torch.randn(2, 32, 128), torch.randn(2, 2, 128)
    assert EOGOnly(c).modalities == ("eog",) and EEGOnly(c).modalities == ("eeg",)
    assert FusionTeacher.modalities == ("eeg", "eog")
    with pytest.raises(ValueError, match="EOG only"):
        EOGOnly(c)(eeg=eeg, eog=eog)
    with pytest.raises(ValueError, match="EEG only"):
        EEGOnly(c)(eeg=eeg, eog=eog)
    with pytest.raises(ValueError, match="needs"):
        EOGOnly(c)(eeg=None, eog=None)


# --- gradients ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradients_reach_every_parameter(name):
    model = build_model(name, small(2))
    out = model(**example_inputs(model, batch=4))
    F.cross_entropy(out.logits, torch.tensor([0, 1, 0, 1])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


# --- the gating module ---------------------------------------------------------------------------

def test_gates_are_exposed_for_plotting():
    c = small(1)
    m = FusionTeacher(c)
    out = m(**example_inputs(m, batch=3))
    gates = m.gate_maps(out)
    assert list(gates) == ["1-2"]  # SMOKE has 2 depths: one adjacent pair
    g = gates["1-2"]
    assert isinstance(g, np.ndarray) and g.shape == (3, TOKENS[1], 2 * c.d_model)
    assert np.all(np.abs(g) < 1)  # softsign
    np.testing.assert_array_equal(g, out.gates[0].detach().numpy())


def test_depth_gating_reusable_on_one_modality():
    """What the later EOG-only student needs: the same gating across its own depths (width d)."""
    c = replace(DEFAULT, n_samples=256, dropout=0.0)
    depths = Branch(c.n_eog, c)(torch.randn(4, 2, 256))
    gating = DepthGating(c.d_model, c.n_layers, c.gate_hidden)
    assert gating.pairs == [(1, 2), (2, 3)]
    out = gating(depths)
    assert out.fused.shape == (4, TOKENS[2], c.d_model) and len(out.gates) == 2
    torch.testing.assert_close(out.fused, depths[-1] + out.gates[0] * depths[1] + out.gates[1] * depths[2])
    assert set(gating.gate_maps(out.gates)) == {"1-2", "2-3"}
    custom = DepthGating(c.d_model, c.n_layers, pairs=[(1, 3)])
    assert custom(depths).gates[0].shape == (4, TOKENS[2], c.d_model)


# --- counting -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_param_counts_match_numel(name):
    model = build_model(name, DEFAULT)
    n = count_params(model)
    assert n > 0 and n == sum(p.numel() for p in model.parameters())


def test_macs_are_counted_not_guessed():
    """The counter sees every conv, linear and attention matmul: it matches a hand count."""
    B, C, T, F_, K, S, d, h = 2, 32, 512, 64, 32, 8, 64, 8
    L = (T - K) // S + 1
    tok = Tokenizer(C, d, F_, K, S)
    assert count_macs(tok, torch.randn(B, C, T)) == B * (F_ * C * L * K + d * F_ * C * L)
    attn = SelfAttention(d, h)
    assert count_macs(attn, torch.randn(B, L, d)) == B * (3 * L * d * d + 2 * L * L * d + L * d * d)


def test_macs_positive_and_scale_with_window_length():
    macs = {}
    for s in WINDOWS_S:
        zoo = model_zoo(replace(DEFAULT, n_samples=s * FS))
        macs[s] = {name: count_macs(m) for name, m in zoo.items()}
    for name in MODELS:
        series = [macs[s][name] for s in WINDOWS_S]
        assert all(m > 0 for m in series)
        assert series == sorted(series) and len(set(series)) == len(series)
        ratio = macs[8][name] / macs[4][name]
        assert 2.0 < ratio < 2.6, (name, ratio)  # linear in tokens, plus the quadratic attention
    assert macs[4]["teacher"] > macs[4]["late_fusion"] > macs[4]["eeg_only"] > macs[4]["eog_only"]


def test_complexity_and_shape_tables():
    table = complexity_table(model_zoo(small(4)))
    assert isinstance(table, pd.DataFrame) and list(table["model"]) == list(MODELS)
    assert {"params", "macs", "mmacs", "tokens", "window_s"} <= set(table.columns)
    assert (table["params"] > 0).all() and (table["macs"] > 0).all() and (table["tokens"] == 61).all()

    m = FusionTeacher(small(4))
    m.train()
    shapes = shape_table(m)
    assert m.training  # restored
    rows = dict(zip(shapes["module"], shapes["output"]))
    d = SMOKE.d_model
    assert rows["input.eeg"] == "(2, 32, 512)" and rows["eeg.tokenizer"] == f"(2, 61, {d})"
    assert rows["eeg.encoder"] == f"2 x (2, 61, {d})" and rows["head"] == "(2, 2)"
    assert rows["fusion"].startswith(f"fused (2, 61, {2 * d})")
    assert list(shape_table(EOGOnly(small(1)))["module"])[0] == "input.eog"


def test_config_for_windows_takes_layout_from_data():
    from kdlib.data.windows import WindowSet

    n, T = 4, 256
    ws = WindowSet(eeg=np.zeros((n, 14, T), np.float32), eog=np.zeros((n, 1, T), np.float32),
                   ratings=np.full((n, 4), 5.0, np.float32), subject=np.full(n, "x"), trial=np.arange(n),
                   start_s=np.zeros(n), fs=128.0, eeg_channels=tuple(f"E{i}" for i in range(14)),
                   eog_channels=("vEOG",))
    c = SMOKE.for_windows(ws)
    assert (c.n_eeg, c.n_eog, c.n_samples, c.fs, c.n_tokens, c.d_model) == (14, 1, 256, 128.0, 29, SMOKE.d_model)
    out = FusionTeacher(c)(torch.from_numpy(ws.eeg), torch.from_numpy(ws.eog))
    assert out.fused.shape == (n, 29, 2 * SMOKE.d_model)


def test_latency_ms_is_a_positive_median_and_restores_the_thread_count():
    import torch
    from kdlib import models
    before = torch.get_num_threads()
    ms = models.latency_ms(models.build_model("eog_only", models.SMOKE), repeats=3, warmup=1, threads=1)
    assert ms > 0 and torch.get_num_threads() == before
