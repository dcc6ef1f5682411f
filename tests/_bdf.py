"""A minimal BioSemi-style BDF writer for tests (24-bit samples, a raw ``Status`` channel).

MNE can export BDF (through edfio), but it rescales every channel to the full digital range,
Status included, and MNE's reader takes Status' digital values as they are: the trigger codes
would not survive. Real BioSemi files store Status with physical range = digital range; this
writer does the same, so the files read back exactly like DEAP's ``data_original/sNN.bdf``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_DMIN, _DMAX = -(2**23), 2**23 - 1  # 24-bit two's complement
_EEG_RANGE_UV = (-262144.0, 262143.0)  # BioSemi: 1/32 uV per bit


def _field(value, width: int) -> bytes:
    text = str(value).encode("ascii")
    assert len(text) <= width, (value, width)
    return text.ljust(width, b" ")


def _fmt(x: float) -> str:
    return f"{x:.8g}"[:8]


def write_bdf(path, signals_uv: dict[str, np.ndarray], status: np.ndarray, fs: int) -> Path:
    """Write a BDF file: data channels in µV (physical range ±262144 µV) then ``Status``.

    Parameters
    ----------
    signals_uv : dict name -> ndarray (n_times,)
        Channels in file order; n_times must be a multiple of ``fs`` (1 s data records).
    status : ndarray (n_times,), int
        Raw 24-bit Status values (trigger code in the low bits, anything above).
    """
    path = Path(path)
    names = list(signals_uv) + ["Status"]
    n_times = len(status)
    assert n_times % fs == 0
    n_rec, ns = n_times // fs, len(names)
    gain = (_DMAX - _DMIN) / (_EEG_RANGE_UV[1] - _EEG_RANGE_UV[0])
    digital = [np.round((np.asarray(x) - _EEG_RANGE_UV[0]) * gain + _DMIN) for x in signals_uv.values()]
    digital.append(np.asarray(status))
    digital = np.clip(np.stack(digital).astype(np.int64), _DMIN, _DMAX)  # (ns, n_times)
    head = b"\xffBIOSEMI" + _field("X X X X", 80) + _field("Startdate 01-JAN-2024 X X X", 80)
    head += _field("01.01.24", 8) + _field("10.00.00", 8) + _field(256 * (ns + 1), 8)
    head += _field("24BIT", 44) + _field(n_rec, 8) + _field(1, 8) + _field(ns, 4)
    pmin = [_fmt(_EEG_RANGE_UV[0])] * (ns - 1) + [str(_DMIN)]
    pmax = [_fmt(_EEG_RANGE_UV[1])] * (ns - 1) + [str(_DMAX)]
    columns = [([n for n in names], 16), (["Active Electrode"] * (ns - 1) + ["Triggers and Status"], 80),
               (["uV"] * (ns - 1) + ["Boolean"], 8), (pmin, 8), (pmax, 8), ([str(_DMIN)] * ns, 8),
               ([str(_DMAX)] * ns, 8), (["HP:DC; LP:104 Hz"] * ns, 80), ([str(fs)] * ns, 8), ([""] * ns, 32)]
    for values, width in columns:
        head += b"".join(_field(v, width) for v in values)
    assert len(head) == 256 * (ns + 1)
    records = digital.reshape(ns, n_rec, fs).transpose(1, 0, 2)  # (n_rec, ns, fs)
    as_u24 = (records & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(n_rec, ns, fs, 4)[..., :3]
    path.write_bytes(head + as_u24.tobytes())
    return path
