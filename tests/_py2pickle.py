"""Write pickles exactly as Python 2's cPickle (protocol 2) wrote DEAP's ``sNN.dat`` files.

Python 3 cannot produce such a file with ``pickle.dump`` (it writes bytes through
``_codecs.encode`` and names ``numpy._core``), so the opcodes are emitted by hand: Python-2
``str`` objects (SHORT_BINSTRING / BINSTRING), ``numpy.core.multiarray._reconstruct`` and the
numpy-1 dtype state. This is what the genuine DEAP files contain.
"""

from __future__ import annotations

import struct

import numpy as np


def _str(s: bytes) -> bytes:
    if len(s) < 256:
        return b"U" + bytes([len(s)]) + s  # SHORT_BINSTRING
    return b"T" + struct.pack("<I", len(s)) + s  # BINSTRING


def _int(i: int) -> bytes:
    if 0 <= i < 256:
        return b"K" + bytes([i])  # BININT1
    return b"J" + struct.pack("<i", i)  # BININT


def _array(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    kind = a.dtype.str[1:].encode()  # e.g. b"f8"
    out = b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
    out += _int(0) + b"\x85" + _str(b"b") + b"\x87R"  # _reconstruct(ndarray, (0,), 'b')
    out += b"(" + _int(1) + b"(" + b"".join(_int(n) for n in a.shape) + b"t"  # version, shape
    out += b"cnumpy\ndtype\n" + _str(kind) + _int(0) + _int(1) + b"\x87R"  # dtype('f8', 0, 1)
    out += b"(" + _int(3) + _str(b"<") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + _int(0) + b"tb"  # dtype state
    out += b"\x89" + _str(a.tobytes()) + b"tb"  # fortran=False, raw data; BUILD
    return out


def py2_pickle(d: dict[str, np.ndarray]) -> bytes:
    """Bytes of ``cPickle.dumps(d, 2)`` as Python 2.7 with numpy 1.x produced them."""
    body = b"".join(_str(k.encode()) + _array(v) for k, v in d.items())
    return b"\x80\x02}(" + body + b"u."
