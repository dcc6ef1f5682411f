"""Fuzzing the DEAP reader and the manifest parser with hypothesis (issue 13).

Every outcome must be a valid array set (or manifest), or one ``DeapFormatError`` (or
``ManifestError``) naming the file: never another exception, a crash, or memory beyond a small
multiple of the file's size. CI runs ``KDLIB_FUZZ_EXAMPLES`` examples per test (default 40);
``KDLIB_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_deap.py`` is the long run.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import struct
import tracemalloc

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _custom_set as cs
import _hostile as h
from _py2pickle import py2_pickle
from kdlib.data import custom, deap
from kdlib.data.custom import ManifestError
from kdlib.data.deap import DeapFormatError

pytestmark = pytest.mark.slow

FUZZ = settings(max_examples=int(os.environ.get("KDLIB_FUZZ_EXAMPLES", "40")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
MEMORY_FACTOR, MEMORY_SLACK = 4, 4 << 20  # allowed peak: 4 x the file size + 4 MiB (buffers, interpreter)


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)  # int8 samples: a valid DEAP layout in 645 kB
    return {"labels": rng.uniform(1, 9, (2, 4)), "data": rng.integers(-100, 100, (2, 40, 8064), dtype=np.int8)}


BASES = {"py2": py2_pickle(_arrays()), "p2": pickle.dumps(_arrays(), protocol=2),
         "p4": pickle.dumps(_arrays(), protocol=4), "p5": pickle.dumps(_arrays(), protocol=5)}


def check_outcome(path, blob: bytes) -> None:
    """Both readers: a valid array set, or one DeapFormatError naming ``path``; bounded memory."""
    path.write_bytes(blob)
    for reader in (deap.load_dat, deap.map_dat):
        tracemalloc.start()
        try:
            got = reader(path)
        except DeapFormatError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 1200, message
        else:
            assert got["data"].ndim == 3 and got["data"].shape[1:] == (deap.N_CHANNELS, deap.N_SAMPLES)
            assert got["labels"].shape == (len(got["data"]), 4) and np.isfinite(got["labels"]).all()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak <= MEMORY_FACTOR * len(blob) + MEMORY_SLACK, (reader.__name__, peak, len(blob))


def _position(n: int):
    head, tail = min(600, n - 1), max(0, n - 400)
    return st.one_of(st.integers(0, head), st.integers(tail, n - 1), st.integers(0, n - 1))


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), data=st.data())
def test_byte_flips_of_a_valid_file(tmp_path, base, data):
    blob = bytearray(BASES[base])
    for pos, value in data.draw(st.lists(st.tuples(_position(len(blob)), st.integers(0, 255)), min_size=1,
                                         max_size=6)):
        blob[pos] = value
    check_outcome(tmp_path / "s01.dat", bytes(blob))


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), data=st.data())
def test_truncations_of_a_valid_file(tmp_path, base, data):
    blob = BASES[base]
    check_outcome(tmp_path / "s01.dat", blob[: data.draw(_position(len(blob)))])


_dim = st.one_of(st.integers(0, 64), st.sampled_from([40, 8064, 2, 4]), st.integers(-3, 2**63 + 5))
_shape = st.lists(_dim, max_size=4)


@FUZZ
@given(kind=st.sampled_from(["reconstruct", "frombuffer", "strided"]), shape=_shape, first=_shape,
       strides=st.lists(st.integers(-16, 2**40), max_size=4), n_raw=st.integers(0, 300),
       code=st.sampled_from(["f8", "f4", "i1", "u2", "b1", "c16", "O8", "V8", "f3", "S5"]))
def test_random_declared_shapes_and_strides(tmp_path, kind, shape, first, strides, n_raw, code):
    raw = bytes(range(256)) * 2
    raw = raw[:n_raw]
    value = {"reconstruct": lambda: h.op_reconstructed(shape, raw, code, first_shape=first),
             "frombuffer": lambda: h.op_frombuffer(shape, raw, code),
             "strided": lambda: h.op_strided(shape, strides, raw, 0, code)}[kind]()
    check_outcome(tmp_path / "s01.dat", h.dict_pickle(data=value, labels=h.valid_labels(2)))


_WRAP = {"tuple1": lambda x: x + h.TUPLE1, "tuple": lambda x: h.MARK + x + h.TUPLE,
         "list": lambda x: h.MARK + x + b"l", "frozenset": lambda x: h.MARK + x + b"\x91",
         "dict_value": lambda x: h.EMPTY_DICT + b"K\x00" + x + h.SETITEM,
         "reduce_args": lambda x: h.op_global("numpy", "dtype") + h.MARK + x + h.TUPLE + h.REDUCE}


@FUZZ
@given(wraps=st.lists(st.sampled_from(sorted(_WRAP)), max_size=80), as_key=st.booleans(),
       repeat=st.integers(1, 40))
def test_nesting_depths(tmp_path, wraps, as_key, repeat):
    obj = b"K\x07"
    for name in wraps * repeat:
        obj = _WRAP[name](obj)
    body = obj + b"K\x01" if as_key else h.op_text("data") + obj
    check_outcome(tmp_path / "s01.dat", h.PROTO2 + h.EMPTY_DICT + body + h.SETITEM + h.STOP)


_GLOBALS = [("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
            ("builtins", "bytes"), ("__builtin__", "bytes"), ("os", "system"), ("builtins", "eval"),
            ("numpy", "frombuffer"), ("builtins", "getattr"), ("collections", "OrderedDict")]
_OPS = [op for op in pickletools.opcodes if op.name not in ("STOP",)]


@st.composite
def _opcode(draw):
    op = draw(st.sampled_from(_OPS))
    arg = op.arg
    if arg is None:
        return op.code.encode("latin-1")
    if arg.name in ("stringnl_noescape_pair",):
        module, name = draw(st.sampled_from(_GLOBALS))
        return op.code.encode("latin-1") + f"{module}\n{name}\n".encode()
    if arg.n == pickletools.UP_TO_NEWLINE:
        text = draw(st.sampled_from([b"0", b"1", b"00", b"-7", b"'ab'", b"12345678901234567890", b"x", b"1e400"]))
        return op.code.encode("latin-1") + text + b"\n"
    if arg.n >= 0:
        return op.code.encode("latin-1") + draw(st.binary(min_size=arg.n, max_size=arg.n))
    fmt = {pickletools.TAKEN_FROM_ARGUMENT1: "<B", pickletools.TAKEN_FROM_ARGUMENT4: "<i",
           pickletools.TAKEN_FROM_ARGUMENT4U: "<I", pickletools.TAKEN_FROM_ARGUMENT8U: "<Q"}[arg.n]
    limit = {"<B": 255, "<i": 2**31 - 1, "<I": 2**32 - 1, "<Q": 2**64 - 1}[fmt]
    declared = draw(st.one_of(st.integers(0, 24), st.integers(0, limit)))
    body = draw(st.binary(max_size=min(declared, 24)))
    return op.code.encode("latin-1") + struct.pack(fmt, declared) + body


@FUZZ
@given(proto=st.integers(0, 5), ops=st.lists(_opcode(), max_size=60), stop=st.booleans())
def test_random_opcode_mixes(tmp_path, proto, ops, stop):
    blob = (bytes([0x80, proto]) if proto >= 2 else b"") + b"".join(ops) + (h.STOP if stop else b"")
    check_outcome(tmp_path / "s01.dat", blob)


# --- manifests ----------------------------------------------------------------------------------

_RECORDINGS = [{"subject": "p01", "id": "run1", "file": "raw/p01.fif"}, {"subject": "p02", "file": "raw/p02.fif"}]
YAML_TEXT = yaml.safe_dump(cs.manifest_doc(_RECORDINGS), sort_keys=False)
TOML_TEXT = """name = "test set"
trials = "trials.csv"

[[recordings]]
subject = "p01"
id = "run1"
file = "raw/p01.fif"

[[recordings]]
subject = "p02"
file = "raw/p02.fif"

[channels]
eeg = ["Fz", "Cz", "Pz"]
rename = {"EEG 000" = "Fz"}

[channels.eog]
hEOG = ["LO1", "LO2"]
vEOG = "VEOG"

[preprocessing]
fs = 128.0
eeg_band = [1.0, 40.0]
eeg_reference = "average"

[ratings]
min = 1
max = 9
"""
_YAML_NOISE = list("&*[]{}:,!|>-#'\"%@`?\n\t ") + ["&a", "*a", "<<: *a", "!!str", "!!binary", "0x", ".inf", "~",
                                                     "\xe9", "\ud7ff", "\x00"]
_TOML_NOISE = list("[]{}=,.\"'#\n ") + ["[[", "]]", "nan", "inf", "1979-05-27", "0x", "\\u", "\"\"\"", "\x00"]


def check_manifest(path, text: str | bytes) -> None:
    """Parsing and validating: a manifest with problems listed, never another exception."""
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    manifest, problems = custom.check_manifest_file(path)
    assert manifest is not None or problems
    for problem in problems:
        assert problem.kind in custom.PROBLEM_KINDS and isinstance(problem.where, str) and problem.where
    try:
        custom.load_manifest(path)
    except ManifestError as exc:
        assert exc.summary().startswith(str(path)) and "\n" not in exc.summary()


def _mutated(text: str, noise: list[str]):
    @st.composite
    def draw(draw_):
        out = text
        for _ in range(draw_(st.integers(1, 6))):
            pos = draw_(st.integers(0, len(out)))
            action = draw_(st.sampled_from(["insert", "delete", "repeat", "truncate"]))
            if action == "insert":
                out = out[:pos] + draw_(st.sampled_from(noise)) + out[pos:]
            elif action == "delete":
                out = out[:pos] + out[pos + draw_(st.integers(1, 20)):]
            elif action == "repeat":
                out = out[:pos] + out[pos:pos + 30] * draw_(st.integers(2, 50)) + out[pos:]
            else:
                out = out[:pos]
        return out
    return draw()


@FUZZ
@given(text=_mutated(YAML_TEXT, _YAML_NOISE))
def test_mutated_yaml_manifests(tmp_path, text):
    check_manifest(tmp_path / "manifest.yaml", text)


@FUZZ
@given(text=_mutated(TOML_TEXT, _TOML_NOISE))
def test_mutated_toml_manifests(tmp_path, text):
    check_manifest(tmp_path / "manifest.toml", text)


_JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=8),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                    max_size=4), max_leaves=20)
_PLACES = [("trials",), ("recordings",), ("recordings", 0), ("recordings", 0, "subject"), ("recordings", 0, "file"),
           ("channels",), ("channels", "eeg"), ("channels", "eog"), ("channels", "eog", "hEOG"),
           ("channels", "rename"), ("preprocessing",), ("preprocessing", "fs"), ("preprocessing", "eeg_band"),
           ("preprocessing", "eeg_reference"), ("preprocessing", "trial_duration_s"), ("ratings",),
           ("ratings", "min"), ("name",), ("extra",)]


def _put(doc, place: tuple, value) -> None:
    """``doc[place[0]]...[place[-1]] = value`` where that path still exists (earlier changes may
    have replaced a part of it by something else)."""
    target = doc
    for key in place[:-1]:
        if isinstance(target, dict) and key in target:
            target = target[key]
        elif isinstance(target, list) and isinstance(key, int) and key < len(target):
            target = target[key]
        else:
            return
    if isinstance(target, dict) or (isinstance(target, list) and isinstance(place[-1], int)
                                    and place[-1] < len(target)):
        target[place[-1]] = value


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(_PLACES), _JSONISH), min_size=1, max_size=4))
def test_wrong_types_anywhere_in_a_manifest(tmp_path, changes):
    doc = cs.manifest_doc([dict(r) for r in _RECORDINGS])
    for place, value in changes:
        _put(doc, place, value)
    check_manifest(tmp_path / "manifest.yaml", yaml.safe_dump(doc, allow_unicode=True))
