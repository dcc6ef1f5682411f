"""kdlib.plotting.custom: notebook 06's figure of the monopolar eye electrodes and their bipolar derivations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kdlib import plotting  # noqa: E402


def test_draws_the_electrodes_and_their_differences():
    t = np.arange(256) / 128
    rng = np.random.default_rng(0)
    mono = rng.normal(0, 10, (4, 256)) + np.array([[300], [310], [-200], [-190]])
    axes = plotting.plot_monopolar_eog(t, mono, ["RO", "LO", "SO", "IO"], {"hEOG": ("LO", "RO"), "vEOG": ("SO", "IO")})
    top, bottom = axes
    assert [line.get_label() for line in top.lines] == ["RO", "LO", "SO", "IO"]
    assert [line.get_label() for line in bottom.lines] == ["hEOG = LO − RO", "vEOG = SO − IO"]
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), mono[1] - mono[0])  # by name, not by position
    np.testing.assert_allclose(bottom.lines[1].get_ydata(), mono[2] - mono[3])
    assert top.get_ylabel() == bottom.get_ylabel() == "µV" and bottom.get_xlabel() == "time in the recording (s)"
    plt.close("all")


def test_bad_input_fails_early():
    t = np.arange(10) / 128
    with pytest.raises(ValueError, match="do not match"):
        plotting.plot_monopolar_eog(t, np.zeros((3, 10)), ["LO", "RO"], {"hEOG": ("LO", "RO")})
    with pytest.raises(ValueError, match=r"\['SO'\]"):
        plotting.plot_monopolar_eog(t, np.zeros((2, 10)), ["LO", "RO"], {"vEOG": ("SO", "RO")})
    plt.close("all")
