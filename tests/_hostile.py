"""Hand-made pickles that a hostile or damaged ``sNN.dat`` may hold, opcode by opcode.

Python's pickler cannot produce most of these (a shape that does not match its bytes, an
ndarray over 8 bytes with strides of 0, a tuple nested a million times), so they are written
here from the opcodes :mod:`pickletools` documents. Each function returns the bytes of one
pickle (protocol 2, as DEAP's genuine files) whose top-level object is a dict.
"""

from __future__ import annotations

import struct

import numpy as np

from _py2pickle import _array as py2_array

PROTO2, STOP = b"\x80\x02", b"."
MARK, TUPLE, TUPLE1, TUPLE3, REDUCE, BUILD = b"(", b"t", b"\x85", b"\x87", b"R", b"b"
EMPTY_DICT, SETITEM, SETITEMS, NONE, FALSE, TRUE = b"}", b"s", b"u", b"N", b"\x89", b"\x88"


def op_int(i: int) -> bytes:
    """BININT for 32-bit values, LONG1 beyond (any size)."""
    if -(2**31) <= i < 2**31:
        return b"J" + struct.pack("<i", i)
    raw = i.to_bytes((i.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def op_bytes(b: bytes) -> bytes:
    """SHORT_BINBYTES / BINBYTES (Python-3 bytes)."""
    return b"C" + bytes([len(b)]) + b if len(b) < 256 else b"B" + struct.pack("<I", len(b)) + b


def op_text(s: str) -> bytes:
    """BINUNICODE."""
    raw = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_tuple(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def op_dtype(code: str = "f8") -> bytes:
    """``numpy.dtype(code, False, True)`` with a little-endian state, as numpy pickles it."""
    state = op_tuple(op_int(3), op_text("<"), NONE, NONE, NONE, op_int(-1), op_int(-1), op_int(0))
    return op_global("numpy", "dtype") + op_text(code) + FALSE + TRUE + TUPLE3 + REDUCE + state + BUILD


def op_reconstructed(shape, raw: bytes, code: str = "f8", first_shape=(0,)) -> bytes:
    """``_reconstruct(ndarray, first_shape, b'b')`` then BUILD with ``(1, shape, dtype, False, raw)``:
    the declared ``shape`` need not match ``len(raw)``."""
    head = op_global("numpy.core.multiarray", "_reconstruct") + op_tuple(
        op_global("numpy", "ndarray"), op_tuple(*map(op_int, first_shape)), op_bytes(b"b")) + REDUCE
    state = op_tuple(op_int(1), op_tuple(*map(op_int, shape)), op_dtype(code), FALSE, op_bytes(raw))
    return head + state + BUILD


def op_strided(shape, strides, buffer: bytes, offset: int = 0, code: str = "f8") -> bytes:
    """``numpy.ndarray(shape, dtype, buffer, offset, strides)`` called directly."""
    return op_global("numpy", "ndarray") + op_tuple(
        op_tuple(*map(op_int, shape)), op_dtype(code), op_bytes(buffer), op_int(offset),
        op_tuple(*map(op_int, strides))) + REDUCE


def op_frombuffer(shape, raw: bytes, code: str = "f8", order: str = "C") -> bytes:
    """``numpy._core.numeric._frombuffer(raw, dtype, shape, order)`` (what protocol 5 writes)."""
    return op_global("numpy._core.numeric", "_frombuffer") + op_tuple(
        op_bytes(raw), op_dtype(code), op_tuple(*map(op_int, shape)), op_text(order)) + REDUCE


def dict_pickle(**values: bytes) -> bytes:
    """A protocol-2 pickle of ``{key: value}`` whose values are opcode strings."""
    body = b"".join(op_text(k) + v for k, v in values.items())
    return PROTO2 + EMPTY_DICT + MARK + body + SETITEMS + STOP


def valid_labels(n_trials: int) -> bytes:
    return py2_array(np.full((n_trials, 4), 5.0))


def strided_bomb(n_trials: int = 2000) -> bytes:
    """A tiny file that declares ``n_trials`` DEAP trials over 8 bytes (strides of 0)."""
    return dict_pickle(data=op_strided((n_trials, 40, 8064), (0, 0, 0), b"\0" * 8),
                       labels=op_strided((n_trials, 4), (0, 0), struct.pack("<d", 5.0)))  # every rating 5


def nested_tuple_key(depth: int) -> bytes:
    """``{((...(0,)...),): 1}``: a dict key nested ``depth`` times (TUPLE1 on TUPLE1 ...)."""
    return PROTO2 + EMPTY_DICT + b"K\x00" + TUPLE1 * depth + b"K\x01" + SETITEM + STOP


def billion_laughs_yaml(levels: int = 9, width: int = 9) -> str:
    """A YAML document of a few hundred bytes whose aliases expand to ``width ** levels`` strings."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines + ["trials: trials.csv", f"recordings: *a{levels}", ""])
