"""Checks of notebook 06's exercises (``notebooks/06_bring_your_own_data.ipynb``).

* ``06.1`` :func:`check_resample`: a recording resampled to another rate, onsets kept in seconds.
* ``06.2`` :func:`check_quantisation_step`: the EDF / BDF step of a physical range, as MNE's writer stores it.
* ``06.3`` :func:`check_heog_and_swap`: the bipolar hEOG from named electrodes, and an LO/RO swap found.
* ``06.4`` :func:`check_manifest_toml`: a manifest written as TOML that kdlib's checker accepts.
* ``06.5`` :func:`check_surviving_trials`: which stimuli survive the no-overlap rule of section 6.

Every check builds its own small, seeded inputs (files in a temporary folder), compares with
kdlib's reference (:mod:`kdlib.data.custom`) or an independent construction, and runs in well
under two seconds once MNE is imported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from kdlib.course import check, expect
from kdlib.data import custom

__all__ = ["check_resample", "check_quantisation_step", "check_heog_and_swap", "check_manifest_toml",
           "check_surviving_trials"]


def _array(got, shape: tuple, what: str) -> np.ndarray:
    """``got`` as a float array of ``shape`` (CheckFailed in one line otherwise)."""
    expect(isinstance(got, np.ndarray), f"{what}: expected a numpy array, got {type(got).__name__}")
    expect(got.shape == shape, f"{what}: expected shape {shape}, got {got.shape}")
    return np.asarray(got, dtype=float)


@check("06.1", "resample a recording")
def check_resample(resample):
    """Check ``resample(signals, fs, new_fs)`` on sines and on a bump at a known time.

    Parameters
    ----------
    resample : callable
        The student's function: ``(n_channels, n_times)`` at ``fs`` -> ``(n_channels,
        n_times * new_fs / fs)`` at ``new_fs``, the same signal in time (seconds).
    """
    fs, seconds = 128, 4.0
    t = np.arange(int(seconds * fs)) / fs  # (512,) s
    freqs, phases = np.array([3.0, 7.0, 11.0]), np.array([0.3, 1.1, 2.0])
    sines = 20 * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])  # (3, 512) µV, whole cycles
    for new_fs in (256, 512, 128):
        n_new = int(seconds * new_fs)
        got = _array(resample(sines.copy(), fs, new_fs), (3, n_new), f"{fs} -> {new_fs} Hz")
        t_new = np.arange(n_new) / new_fs
        want = 20 * np.sin(2 * np.pi * freqs[:, None] * t_new + phases[:, None])  # (3, n_new)
        inner = slice(n_new // 16, n_new - n_new // 16)  # edges left out (filters ring there)
        error = np.abs(got[:, inner] - want[:, inner]).max(axis=1) / 20  # (3,) share of the amplitude
        expect(error.max() < 0.01, f"{fs} -> {new_fs} Hz: a 20 µV sine of {freqs[error.argmax()]:g} Hz is off by "
                                   f"{100 * error.max():.1f} % of its amplitude (hint: resample the band-limited "
                                   "signal, e.g. mne.filter.resample or scipy.signal.resample_poly, along time)")
    bump = np.exp(-0.5 * ((t - 1.5) / 0.05) ** 2)[None] * np.array([[30.0], [-10.0]])  # (2, 512): at 1.5 s
    got = _array(resample(bump, fs, 256), (2, 1024), "the bump at 1.5 s")
    peak = int(np.abs(got[0]).argmax())
    expect(abs(peak - 384) <= 1, f"a bump at 1.5 s (sample 192 at 128 Hz) came out at sample {peak} at 256 Hz, "
                                 "expected 384: onsets are seconds, so their sample index doubles")
    expect(abs(got[0, 384] - 30) < 1.0 and got[1, 384] < -9, "the bump's height or sign changed: a resampler "
                                                              "keeps the values in µV, channel by channel")


def _header_ranges(path: Path, fmt: str) -> list[tuple[float, float, int, int]]:
    import edfio

    read = edfio.read_edf if fmt == "edf" else edfio.read_bdf
    return [(s.physical_min, s.physical_max, s.digital_min, s.digital_max) for s in read(path).signals]


@check("06.2", "EDF vs BDF quantisation step")
def check_quantisation_step(quantisation_step):
    """Check ``quantisation_step(physical_min, physical_max, fmt)`` against the headers MNE writes.

    Parameters
    ----------
    quantisation_step : callable
        The student's function: the physical value (µV) of one digital step of a channel with
        that physical range, for ``fmt`` ``'edf'`` (16 bit) or ``'bdf'`` (24 bit).
    """
    rng = np.random.default_rng(6)
    eeg, eog = rng.normal(0, 20, (2, 640)), 250 + rng.normal(0, 90, (2, 640))  # (2, T) µV each
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("edf", "bdf"):
            path = custom.write_recording(Path(tmp) / f"r.{fmt}", eeg, eog, 128, ["Fz", "Cz"], ["LO", "RO"], fmt)
            for lo, hi, dlo, dhi in _header_ranges(path, fmt)[::2]:  # one EEG, one EOG channel
                want, got = (hi - lo) / (dhi - dlo), quantisation_step(lo, hi, fmt)
                expect(np.isscalar(got) and np.isfinite(got), f"{fmt}: expected a number, got {got!r}")
                expect(np.isclose(got, want, rtol=1e-9, atol=0),
                       f"{fmt}, physical range [{lo}, {hi}]: got {got:.9g}, the file's header gives {want:.9g} "
                       f"(its digital range is {dlo} ... {dhi}: count the steps between them)")
    for lo, hi in ((-80.0, 80.0), (-501.783, -36.336), (-1000.0, 1000.0)):  # a symmetric, an offset, a 2 mV range
        for fmt in ("edf", "bdf"):
            want, got = custom.quantisation_step(lo, hi, fmt), quantisation_step(lo, hi, fmt)
            expect(np.isclose(got, want, rtol=1e-9, atol=0), f"{fmt}, [{lo}, {hi}] µV: got {got:.9g}, "
                                                              f"expected {want:.9g}")


def _mono(names_in_order, swapped: bool, offset_lo: float) -> tuple[np.ndarray, np.ndarray]:
    """Monopolar electrodes of a 10 s recording with a known leftward gaze; (mono, left mask)."""
    fs, rng = 128, np.random.default_rng(17)
    n = 10 * fs
    left = np.zeros(n, dtype=bool)
    left[3 * fs: 6 * fs] = True  # the participant looks left from 3 s to 6 s
    heog = 60.0 * left + np.cumsum(rng.normal(0, 0.3, n)) + rng.normal(0, 2, n)  # (T,) LO - RO, µV
    veog = rng.normal(0, 5, n)
    lo, ro, so, io = custom.monopolar_eog(heog, veog, fs, rng)  # (T,) each
    lo = lo + offset_lo  # the left electrode's own offset: hEOG's level is not its sign
    if swapped:  # the two canthus leads swapped at the amplifier: the labels say the opposite
        lo, ro = ro, lo
    by_name = {"LO": lo, "RO": ro, "SO": so, "IO": io}
    return np.stack([by_name[k] for k in names_in_order]), left


@check("06.3", "bipolar hEOG and an LO/RO swap")
def check_heog_and_swap(heog_and_swap):
    """Check ``heog_and_swap(mono, names, left)`` on wired, swapped and reordered electrodes.

    Parameters
    ----------
    heog_and_swap : callable
        The student's function: ``mono`` (n_electrodes, T) µV, ``names`` (their labels),
        ``left`` (T,) bool (samples where the participant looked left) -> ``(heog (T,), swapped)``
        with ``heog = LO - RO`` as labelled and ``swapped`` True when that hEOG goes *down* on the
        leftward gaze.
    """
    import mne

    cases = [(("LO", "RO", "SO", "IO"), False, -200.0), (("SO", "RO", "IO", "LO"), True, 120.0),
             (("IO", "LO", "SO", "RO"), False, 150.0), (("LO", "RO", "SO", "IO"), True, -150.0)]
    for names, swapped, offset in cases:
        mono, left = _mono(names, swapped, offset)
        raw = mne.io.RawArray(mono * 1e-6, mne.create_info(list(names), 128.0, "eog"), verbose="error")
        want = custom.bipolar_eog(raw, [custom.EogDerivation("hEOG", "LO", "RO")])[0] * 1e6  # (T,) µV
        got = heog_and_swap(mono.copy(), list(names), left.copy())
        expect(isinstance(got, tuple) and len(got) == 2, f"expected a tuple (heog, swapped), got {type(got).__name__}")
        heog = _array(got[0], want.shape, f"hEOG with electrodes in the order {names}")
        expect(np.allclose(heog, want, atol=1e-6), f"electrodes in the order {names}: hEOG is not LO - RO "
                                                   "(hint: find the rows by their names, not their positions)")
        expect(isinstance(got[1], (bool, np.bool_)), f"swapped: expected a bool, got {type(got[1]).__name__}")
        expect(bool(got[1]) == swapped,
               f"{'swapped' if swapped else 'correctly wired'} leads, LO's offset {offset:+.0f} µV: got swapped = "
               f"{bool(got[1])} (hint: compare hEOG during the leftward gaze with the rest, not its level)")


def _tiny_set(folder: Path) -> list[dict]:
    """Two short EDF recordings and their trials table; the recordings' entries for a manifest."""
    rng = np.random.default_rng(4)
    recordings = []
    for subject in ("s1", "s2"):
        file = f"raw/{subject}.edf"
        custom.write_recording(folder / file, rng.normal(0, 20, (3, 128 * 20)), rng.normal(0, 80, (4, 128 * 20)),
                               128, ["Fz", "Cz", "Pz"], list(custom.EOG_ELECTRODES))
        recordings.append(dict(subject=subject, id="run1", file=file))
    rows = [dict(subject=r["subject"], recording="run1", trial=k + 1, onset_s=2.0 + 8 * k, duration_s=5.0,
                 baseline_s=1.0, valence=3 + 4 * k, arousal=6) for r in recordings for k in range(2)]
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    return recordings


@check("06.4", "a manifest as TOML")
def check_manifest_toml(manifest_toml):
    """Check ``manifest_toml(recordings, eeg, eog, fs)``: kdlib's checker accepts the TOML and reads it back.

    Parameters
    ----------
    manifest_toml : callable
        The student's function: recordings (list of dicts ``subject``, ``id``, ``file``), EEG
        channel names, EOG derivations (dict name -> ``[anode, cathode]``) and the common
        sampling rate -> the text of a TOML manifest whose trials table is ``trials.csv``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recordings = _tiny_set(folder)
        cases = [(["Pz", "Fz", "Cz"], {"hEOG": ["LO", "RO"], "vEOG": ["SO", "IO"]}, 128.0),
                 (["Cz"], {"vEOG": ["SO", "IO"], "hEOG": ["LO", "RO"]}, 64.0)]
        for k, (eeg, eog, fs) in enumerate(cases):
            text = manifest_toml([dict(r) for r in recordings], list(eeg), {n: list(p) for n, p in eog.items()}, fs)
            expect(isinstance(text, str), f"expected the manifest's text (str), got {type(text).__name__}")
            path = folder / f"manifest{k}.toml"
            path.write_text(text, encoding="utf-8")
            try:
                manifest, problems = custom.check_manifest_file(path)
            except custom.ManifestError as err:
                manifest, problems = None, err.problems
            expect(not problems, f"case {k + 1}: kdlib's checker found {len(problems)} problem(s), the first: "
                                 f"{problems[0] if problems else ''}")
            got = [(r.subject, r.recording, r.path.name) for r in manifest.recordings]
            expect(got == [(r["subject"], r["id"], Path(r["file"]).name) for r in recordings],
                   f"case {k + 1}: recordings read back as {got}")
            expect(manifest.channels.eeg == tuple(eeg), f"case {k + 1}: EEG channels {manifest.channels.eeg}, "
                                                         f"expected {tuple(eeg)} in that order")
            derivations = {d.name: [d.anode, d.cathode] for d in manifest.channels.eog}
            expect(derivations == eog, f"case {k + 1}: EOG derivations {derivations}, expected {eog}")
            expect(manifest.preprocessing.fs == fs, f"case {k + 1}: preprocessing fs {manifest.preprocessing.fs}, "
                                                     f"expected {fs}")


@check("06.5", "trials that survive the no-overlap rule")
def check_surviving_trials(surviving_trials):
    """Check ``surviving_trials(onsets_s, end_s, baseline_s, duration_s)`` against kdlib.data.custom.isolated_onsets.

    Parameters
    ----------
    surviving_trials : callable
        The student's function -> a boolean mask over the onsets: True where no other onset (and
        neither end of the recording) falls inside the baseline before or the trial after it.
    """
    rng = np.random.default_rng(5)
    cases = [(np.array([0.2, 1.0, 5.0, 6.0, 9.0, 11.5]), 13.0, 0.5, 2.0),  # start, close pairs, end
             (np.array([0.5, 3.0, 5.0, 7.5]), 9.5, 0.5, 2.0),  # gaps exactly equal to the rule's limits
             (np.sort(rng.uniform(0, 200, 60)).round(3), 200.0, 0.5, 2.0),
             (np.sort(rng.uniform(0, 100, 30)).round(3), 101.0, 1.0, 3.0), (np.array([4.0]), 6.0, 1.0, 2.0)]
    for onsets, end_s, baseline_s, duration_s in cases:
        want = custom.isolated_onsets(onsets, end_s, baseline_s, duration_s)
        got = np.asarray(surviving_trials(onsets.copy(), end_s, baseline_s, duration_s))
        expect(got.shape == want.shape, f"{len(onsets)} onsets: expected a mask of shape {want.shape}, got {got.shape}")
        wrong = np.flatnonzero(got.astype(bool) != want)
        expect(not len(wrong), f"{len(onsets)} onsets in {end_s:g} s (baseline {baseline_s:g} s, trial "
                               f"{duration_s:g} s): {int(got.astype(bool).sum())} kept, expected {int(want.sum())}; "
                               f"the first wrong one is at {onsets[wrong[0]] if len(wrong) else 0:g} s (hint: a gap "
                               "equal to the limit is enough; the recording's start and end count as neighbours)")
