"""DEAP's original BDF files: Status decoding, both channel orders, 512 -> 128 Hz, EOG pairs.

The BDF files are written by ``tests/_bdf.py`` in DEAP's layout (BioSemi 24-bit, 512 Hz,
32 EEG + EXG1-8 + GSR1 ... Temp + Status), with Status bits above the trigger code set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _bdf import write_bdf
from kdlib.data import deap_bdf
from kdlib.data.deap import EEG_CHANNELS, DeapFormatError

FS = 512
HIGH_BITS = 0x100000 | 0x10000 | 0x100  # a status bit, BioSemi's epoch bit and bit 8: all masked out
ONSETS_S = (10.0, 80.0, 150.0)  # video starts; 60 s follow each
VIDEOS = (3, 1, 2)  # Experiment_id of presentation trials 1, 2, 3
DURATION_S = 220


def _signals(order) -> dict[str, np.ndarray]:
    """The same signals in the given EEG order; EEG channel i carries a (2 + i/4) Hz sine."""
    t = np.arange(DURATION_S * FS) / FS
    eeg = {ch: 20.0 * np.sin(2 * np.pi * (2.0 + EEG_CHANNELS.index(ch) / 4) * t) + 1000.0 for ch in order}
    offset = 20000.0  # large common DC of the monopolar EXG electrodes (cancels in the pairs)
    exg = {"EXG1": 100.0 * np.sin(2 * np.pi * 0.5 * t) + offset, "EXG2": np.full_like(t, offset),
           "EXG3": 80.0 * np.sin(2 * np.pi * 0.25 * t) + offset + 7.0, "EXG4": np.full_like(t, offset)}
    exg |= {f"EXG{i}": np.zeros_like(t) for i in range(5, 9)}
    rest = {name: np.zeros_like(t) for name in deap_bdf.PERIPHERAL_BDF_CHANNELS[:-1]}
    return eeg | exg | rest


def _status() -> np.ndarray:
    status = np.full(DURATION_S * FS, HIGH_BITS, dtype=np.int64)
    for onset in ONSETS_S:
        i = int(onset * FS)
        status[i - 5 * FS:i] |= 3  # fixation screen before the video
        status[i:i + 60 * FS] |= 4  # the video (code held)
        status[i + 60 * FS:i + 63 * FS] |= 5
    return status


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("deap_original")
    write_bdf(out / "s01.bdf", _signals(deap_bdf.TWENTE_CHANNELS), _status(), FS)
    write_bdf(out / "s23.bdf", _signals(EEG_CHANNELS), _status(), FS)
    rows = [dict(Participant_id=p, Trial=k + 1, Experiment_id=v, Start_time=0, Valence=1 + k + p / 10,
                 Arousal=9 - k, Dominance=5, Liking=2 + k, Familiarity=1)
            for p in (1, 23) for k, v in enumerate(VIDEOS)]
    pd.DataFrame(rows).to_csv(out / "participant_ratings.csv", index=False)
    return out


def test_status_decoding_masks_high_bits():
    status = np.array([HIGH_BITS, HIGH_BITS | 4, HIGH_BITS | 4, HIGH_BITS, 0x104, 4, 4, 3, 0xFF04, 4])
    assert deap_bdf.decode_status(status).tolist() == [0, 4, 4, 0, 4, 4, 4, 3, 4, 4]
    assert deap_bdf.video_onsets(status).tolist() == [1, 4, 8]  # rises to 4, a held code counts once
    assert deap_bdf.video_onsets(status, code=3).tolist() == [7]
    assert deap_bdf.video_onsets(status, mask=0xFFFF).tolist() == [5, 9]  # 0x104, 0xFF04 are not 4 unmasked


def test_original_file_becomes_a_recording(folder):
    rec = deap_bdf.load_original_subject(folder / "s01.bdf", folder / "participant_ratings.csv")
    assert rec.subject == "s01" and rec.fs == 128.0 and rec.baseline_s == 3.0
    assert rec.eeg.shape == (3, 32, 8064) and rec.eog.shape == (3, 2, 8064)
    assert rec.eeg_channels == EEG_CHANNELS and rec.eog_channels == ("hEOG", "vEOG")
    assert rec.trial_ids.tolist() == [1, 2, 3]  # sorted by video
    # video 1 was presentation trial 2: its ratings and its onset (80 s)
    np.testing.assert_allclose(rec.ratings[0], [2.1, 8, 5, 3], rtol=1e-6)
    t = 80.0 - 3.0 + np.arange(8064) / 128.0  # the 3 s before the video start, then 60 s
    for name, freq in (("Fp1", 2.0), ("Cz", 2.0 + 23 / 4), ("O2", 2.0 + 31 / 4)):
        expected = 20.0 * np.sin(2 * np.pi * freq * t) + 1000.0
        np.testing.assert_allclose(rec.eeg[0, EEG_CHANNELS.index(name)], expected, atol=0.1)
    np.testing.assert_allclose(rec.eog[0, 0], 100.0 * np.sin(2 * np.pi * 0.5 * t), atol=0.1)  # EXG1 - EXG2
    np.testing.assert_allclose(rec.eog[0, 1], 80.0 * np.sin(2 * np.pi * 0.25 * t) + 7.0, atol=0.1)  # EXG3 - EXG4


def test_both_channel_orders_give_the_same_recording(folder):
    ratings = folder / "participant_ratings.csv"
    twente = deap_bdf.load_original_subject(folder / "s01.bdf", ratings)
    geneva = deap_bdf.load_original_subject(folder / "s23.bdf", ratings)
    assert geneva.subject == "s23" and geneva.eeg_channels == twente.eeg_channels
    np.testing.assert_array_equal(twente.eeg, geneva.eeg)
    np.testing.assert_array_equal(twente.eog, geneva.eog)
    np.testing.assert_array_equal(twente.trial_ids, geneva.trial_ids)


def test_event_count_mismatch_and_missing_files_are_named(folder, tmp_path):
    with pytest.raises(DeapFormatError, match=r"s01\.bdf: 3 video starts .* 2 rated trials"):
        rows = pd.read_csv(folder / "participant_ratings.csv")
        rows[rows["Trial"] < 3].to_csv(tmp_path / "r.csv", index=False)
        deap_bdf.load_original_subject(folder / "s01.bdf", tmp_path / "r.csv")
    with pytest.raises(DeapFormatError, match="no ratings for participant 7"):
        deap_bdf.load_original_subject(folder / "s01.bdf", folder / "participant_ratings.csv", participant=7)
    with pytest.raises(DeapFormatError, match="file not found"):
        deap_bdf.load_original_subject(tmp_path / "s02.bdf", folder / "participant_ratings.csv")
    signals = _signals(EEG_CHANNELS)
    del signals["Oz"]
    write_bdf(tmp_path / "s05.bdf", signals, _status(), FS)
    with pytest.raises(DeapFormatError, match=r"s05\.bdf: channel\(s\) \['Oz'\] not found"):
        deap_bdf.load_original_subject(tmp_path / "s05.bdf", folder / "participant_ratings.csv", participant=1)


@pytest.mark.parametrize("column, value, match", [
    ("Valence", 11.0, r"participant 1, trial 2: Valence = 11 is not a rating in \[1, 9\]"),
    ("Arousal", np.nan, r"participant 1, trial 2: Arousal = nan is not a rating"),
    ("Experiment_id", 7, r"participant 1: a Experiment_id number appears twice"),
    ("Trial", 1.5, r"participant 1: column Trial must hold whole numbers"),
])
def test_participant_ratings_are_checked_naming_the_row(folder, tmp_path, column, value, match):
    rows = pd.read_csv(folder / "participant_ratings.csv")
    rows[column] = rows[column].astype(float)
    first = rows.index[rows["Participant_id"] == 1]
    rows.loc[first[1], column] = value if column != "Experiment_id" else rows.loc[first[0], column]
    rows.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(DeapFormatError, match=r"r\.csv: " + match):
        deap_bdf.read_participant_ratings(tmp_path / "r.csv", 1)
    (tmp_path / "bad.csv").write_bytes(b"Participant_id,Trial\n\xff\xfe\x00,1\n\"unclosed\n")
    with pytest.raises(DeapFormatError, match=r"bad\.csv: (not a readable CSV file|missing column)"):
        deap_bdf.read_participant_ratings(tmp_path / "bad.csv", 1)
