"""Restricted reading of the pickles in DEAP's ``sNN.dat`` files: numpy arrays and nothing else.

Introduced in ``notebooks/01_data_preparation.ipynb`` (used by :mod:`kdlib.data.deap`).

Three layers, each bounding what a hostile or damaged file can cost:

1. :func:`scan` walks the opcodes without building anything (with :mod:`pickletools`' opcode
   table), skipping byte strings by seeking. A string that declares more bytes than the file
   has left, more than :data:`MAX_OPS` opcodes, memo indices beyond :data:`MAX_MEMO`, or
   containers nested deeper than :data:`MAX_DEPTH` are refused before any object exists (a
   deeply nested tuple used as a dict key would overflow the C stack while it is hashed).
2. :class:`SafeUnpickler` (the pure-Python unpickler) resolves only a few names, each to a
   *recipe*: numpy's array, dtype and scalar rebuilders become small Python records
   (:class:`ArraySpec`, :class:`DtypeSpec`, :class:`ScalarSpec`), so no numpy code runs while
   the pickle is read; a large byte string becomes a :class:`Span` (where it lies in the file).
   ``numpy.ndarray`` itself may only be named as the type ``_reconstruct`` rebuilds: calling it
   could declare a huge array over a few bytes (strides of 0).
3. :func:`materialize` turns the records into arrays only after checking that each declared
   shape and dtype match the bytes the file holds: no array is larger than the file.

Python-3 pickles of protocols 0-2 write bytes as ``_codecs.encode(text, 'latin1')``; that one
call is accepted (with exactly those argument types), and ``bytes()`` for an empty string.
"""

from __future__ import annotations

import math
import mmap
import os
import pickle
import pickletools
import re
import reprlib
import struct

import numpy as np

__all__ = ["MAX_OPS", "MAX_DEPTH", "MAX_MEMO", "Refused", "Span", "ArraySpec", "DtypeSpec", "ScalarSpec",
           "scan", "SafeUnpickler", "materialize", "has_spans", "short_repr"]

MAX_OPS = 10_000  #: opcodes in one pickle (a DEAP file has 70-110; colliding dict keys cost n^2)
MAX_DEPTH = 32  #: nesting of containers (a DEAP file: 4)
MAX_MEMO = 10_000  #: memo indices and stack height
LARGE = 1 << 16  #: a byte string at least this long (outside a frame) is recorded as a Span, not read
_MAX_DIMS = 32  #: numpy's limit on array dimensions
_DTYPE_CODE = re.compile(r"^[biuf]\d{1,2}$")  #: numeric dtype codes such as 'f8', 'i2', 'b1'


class Refused(pickle.UnpicklingError):
    """The pickle asks for something a DEAP file may not hold (the message says what)."""


# --- 1. the opcode scan -------------------------------------------------------------------------

_LENGTH_PREFIX = {pickletools.TAKEN_FROM_ARGUMENT1: "<B", pickletools.TAKEN_FROM_ARGUMENT4: "<i",
                  pickletools.TAKEN_FROM_ARGUMENT4U: "<I", pickletools.TAKEN_FROM_ARGUMENT8U: "<Q"}
_NEW_FROM_MARK = {"TUPLE", "LIST", "DICT", "FROZENSET", "INST", "OBJ"}  # a new container of the items
_INTO_FROM_MARK = {"APPENDS", "SETITEMS", "ADDITEMS"}  # the items go into the object below the mark
_INTO = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}  # the top items go into the object below them
_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET = {"GET", "BINGET", "LONG_BINGET"}
_MARK = None  # a mark on the simulated stack (other entries: the nesting depth of an object)


def _line(fh, end: int) -> bytes:
    line = fh.readline(max(0, end - fh.tell()))
    if not line.endswith(b"\n"):
        raise EOFError("pickle data was truncated (a text argument has no end of line)")
    return line


def _argument(op, fh, end: int):
    """Read a small argument (returned) or skip a byte string by seeking (returns None)."""
    arg = op.arg
    if arg is None:
        return None
    if arg.name == "stringnl_noescape_pair":
        return _line(fh, end), _line(fh, end)
    if arg.n == pickletools.UP_TO_NEWLINE:
        return _line(fh, end)
    if arg.n >= 0:
        data = fh.read(arg.n)
        if len(data) != arg.n:
            raise EOFError("pickle data was truncated")
        return int.from_bytes(data, "little") if arg.name.startswith("uint") else data
    fmt = _LENGTH_PREFIX[arg.n]
    prefix = fh.read(struct.calcsize(fmt))
    if len(prefix) != struct.calcsize(fmt):
        raise EOFError("pickle data was truncated")
    (n,) = struct.unpack(fmt, prefix)
    left = end - fh.tell()
    if n < 0 or n > left:
        raise EOFError(f"a {op.name} declares {n} bytes but the file has {left} left (truncated or corrupt)")
    fh.seek(n, os.SEEK_CUR)
    return None


def _pop(stack: list, k: int) -> list:
    if k > len(stack) or _MARK in stack[len(stack) - k:]:
        raise pickle.UnpicklingError("malformed pickle (stack underflow)")
    items = stack[len(stack) - k:]
    del stack[len(stack) - k:]
    return items


def _pop_mark(stack: list) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise pickle.UnpicklingError("malformed pickle (no mark on the stack)")


def _push(stack: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Refused(f"containers nested deeper than {MAX_DEPTH} levels (a DEAP file holds 4)")
    if len(stack) >= MAX_MEMO:
        raise Refused(f"more than {MAX_MEMO} objects on the pickle stack")
    stack.append(depth)


def _memo_index(op, arg) -> int:
    index = int(arg) if isinstance(arg, bytes) else arg
    if not 0 <= index < MAX_MEMO:
        raise Refused(f"memo index {index} (at most {MAX_MEMO} allowed)")
    return index


def _step(op, arg, stack: list, memo: dict) -> None:
    """The effect of one opcode on the nesting depths of the simulated stack."""
    name = op.name
    if name == "MARK":
        stack.append(_MARK)
    elif name in _NEW_FROM_MARK:
        _push(stack, 1 + max(_pop_mark(stack), default=0))
    elif name in _INTO_FROM_MARK or name in _INTO:
        items = _pop_mark(stack) if name in _INTO_FROM_MARK else _pop(stack, _INTO[name])
        _push(stack, max(_pop(stack, 1)[0], 1 + max(items, default=0)))
    elif name == "POP_MARK":
        _pop_mark(stack)
    elif name in _TUPLES:
        _push(stack, 1 + max(_pop(stack, _TUPLES[name])))
    elif name in _PUT or name == "MEMOIZE":
        if not stack or stack[-1] is _MARK:
            raise pickle.UnpicklingError("malformed pickle (memoizing an empty stack)")
        index = len(memo) if name == "MEMOIZE" else _memo_index(op, arg)
        if index >= MAX_MEMO:
            raise Refused(f"more than {MAX_MEMO} memo entries")
        memo[index] = stack[-1]
    elif name in _GET:
        index = _memo_index(op, arg)
        if index not in memo:
            raise pickle.UnpicklingError(f"malformed pickle (memo entry {index} is missing)")
        _push(stack, memo[index])
    elif name in ("PERSID", "BINPERSID"):
        raise Refused("persistent ids are not allowed")
    else:  # everything else pops a fixed number of items and pushes results that may hold them
        popped = _pop(stack, len(op.stack_before))
        for _ in op.stack_after:
            _push(stack, max(popped, default=0))


def scan(fh, size: int) -> None:
    """Walk the pickle in ``fh`` (from its current position) without building any object.

    Parameters
    ----------
    fh : binary file
        Seekable; left at the end of the pickle.
    size : int
        The file's size: no argument may reach beyond it.

    Raises
    ------
    Refused
        Too many opcodes, memo entries or stack items, nesting deeper than :data:`MAX_DEPTH`,
        persistent ids.
    EOFError, pickle.UnpicklingError
        A truncated or malformed pickle (unknown opcode, stack underflow, missing memo entry).
    """
    stack: list = []
    memo: dict = {}
    for _ in range(MAX_OPS):
        code = fh.read(1)
        if not code:
            raise EOFError("pickle data was truncated (no STOP opcode)")
        op = pickletools.code2op.get(code.decode("latin-1"))
        if op is None:
            raise pickle.UnpicklingError(f"invalid pickle opcode {code!r} at byte {fh.tell() - 1}")
        arg = _argument(op, fh, size)
        if op.name == "FRAME" and arg > size - fh.tell():
            raise EOFError(f"a FRAME declares {arg} bytes but the file has {size - fh.tell()} left")
        _step(op, arg, stack, memo)
        if op.name == "STOP":
            return
    raise Refused(f"more than {MAX_OPS} pickle opcodes (a DEAP file has about 100)")


# --- 2. the unpickler and its recipes ----------------------------------------------------------

class Span:
    """Where a large byte string lies in the file (``offset``, ``length``): read later."""

    __slots__ = ("offset", "length")

    def __init__(self, offset: int, length: int):
        self.offset, self.length = offset, length


class DtypeSpec:
    """``numpy.dtype(code)`` with the byte order its state names (see :func:`materialize`)."""

    __slots__ = ("code", "endian")

    def __init__(self, code: str):
        self.code, self.endian = code, "="

    def __setstate__(self, state):  # (3, endian, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
                and state[1] in ("<", ">", "|", "=") and state[2:5] == (None, None, None)):
            raise Refused(f"a dtype state other than a plain numeric type's: {_short(state)}")
        self.endian = state[1]


class ArraySpec:
    """An ndarray to be: shape, :class:`DtypeSpec`, memory order and its bytes (or a :class:`Span`)."""

    __slots__ = ("shape", "dtype", "fortran", "raw")

    def __init__(self, shape=(0,), dtype=None, fortran=False, raw=b""):
        self.shape, self.dtype, self.fortran, self.raw = shape, dtype, fortran, raw

    def __setstate__(self, state):  # ndarray's: (version, shape, dtype, fortran, raw) or without version
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise Refused(f"an array state other than numpy's: {_short(state)}")
        self.shape, self.dtype, self.fortran, self.raw = state[-4:]


class ScalarSpec:
    """``numpy.core.multiarray.scalar(dtype, raw)``: one numeric value."""

    __slots__ = ("dtype", "raw")

    def __init__(self, dtype, raw):
        self.dtype, self.raw = dtype, raw


class _NdarrayType:
    """What the name ``numpy.ndarray`` resolves to: a marker for ``_reconstruct``, not callable."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        raise Refused("numpy.ndarray(...) called directly (it could declare an array far larger than "
                      "the bytes behind it); a DEAP file rebuilds arrays with numpy's _reconstruct only")


NDARRAY = _NdarrayType()


def _reconstruct(cls, shape, typecode):
    """``numpy.core.multiarray._reconstruct``: an empty array, filled by BUILD (``__setstate__``)."""
    if cls is not NDARRAY:
        raise Refused(f"_reconstruct of {_short(cls)}: only numpy.ndarray may be rebuilt")
    return ArraySpec()


def _frombuffer(buf, dtype, shape, order):
    """``numpy.core.numeric._frombuffer`` (pickle protocol 5)."""
    return ArraySpec(shape, dtype, order == "F", buf)


def _dtype(code, align=False, copy=True):
    """``numpy.dtype(code, align, copy)`` for a plain numeric code such as ``'f8'``."""
    if not isinstance(code, str) or not _DTYPE_CODE.match(code):
        raise Refused(f"numpy.dtype({_short(code)}): only plain numeric types (e.g. 'f8') are allowed")
    return DtypeSpec(code)


def _scalar(dtype, raw):
    return ScalarSpec(dtype, raw)


def _latin1_encode(obj, encoding=None):
    """``_codecs.encode(text, 'latin1')``: how Python 3 writes bytes at pickle protocols 0-2."""
    if type(obj) is not str or encoding not in ("latin1", "latin-1"):
        raise Refused(f"_codecs.encode({_short(obj)}, {_short(encoding)}): only (str, 'latin1') is allowed")
    return obj.encode("latin-1")


def _empty_bytes(*args):
    """``bytes()``: how Python 3 writes ``b''`` at pickle protocols 0-2."""
    if args:
        raise Refused(f"bytes{_short(args)}: only bytes() without arguments is allowed")
    return b""


def _recipes() -> dict[tuple[str, str], object]:
    """The only names a DEAP pickle may use, both numpy spellings (``numpy.core``: Python 2 and
    numpy 1; ``numpy._core``: numpy 2), each mapped to its recipe."""
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): NDARRAY, ("numpy", "dtype"): _dtype,
                                              ("_codecs", "encode"): _latin1_encode,
                                              ("builtins", "bytes"): _empty_bytes,
                                              ("__builtin__", "bytes"): _empty_bytes}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = _scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    return allowed


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxtuple, _REPR.maxstring, _REPR.maxother = 3, 4, 40, 40


def short_repr(obj) -> str:
    """``repr`` for messages: bounded in depth, width and length, whatever the object."""
    return _REPR.repr(obj)


_short = short_repr


class SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcodes can be overridden
    """Unpickler that resolves only :func:`_recipes` and records large byte strings as Spans.

    Run :func:`scan` over the same bytes first: it bounds nesting, opcodes and memo.
    """

    _allowed = _recipes()
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file):
        super().__init__(file, encoding="latin1")
        self._fh = file

    def find_class(self, module: str, name: str):
        """What a pickle's global refers to, if it is one of the few names a DEAP file may use
        (numpy's array reconstruction and the bytes it needs), as a bounded recipe.

        Parameters
        ----------
        module, name : str
            The global the pickle names (``module.name``).

        Raises
        ------
        Refused
            Anything else: nothing the pickle names is imported or run.
        """
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise Refused(f"the pickle references {module}.{name}, but a DEAP file may only "
                          "contain numpy arrays (nothing was executed)") from None

    def persistent_load(self, pid):
        raise Refused("persistent ids are not allowed")

    def _bytes(self, n: int, decode=None):
        frame = self._unframer.current_frame  # protocol 4 writes large strings between frames
        if n < LARGE or (frame is not None and frame.tell() < len(frame.getbuffer())):
            data = self.read(n)
            if len(data) != n:
                raise EOFError("pickle data was truncated")
            self.append(decode(data) if decode else data)
            return
        offset = self._fh.tell()
        self._fh.seek(n, os.SEEK_CUR)
        self.append(Span(offset, n))

    def _load_sized(fmt, decode=None):  # noqa: N805 -- builds the opcode handlers below
        size = struct.calcsize(fmt)

        def load(self):
            (n,) = struct.unpack(fmt, self.read(size))
            if n < 0:
                raise pickle.UnpicklingError("negative byte count")
            self._bytes(n, decode(self) if decode else None)
        return load

    def _load_build(self):
        """BUILD only fills the records above (never sets attributes of anything else)."""
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, (ArraySpec, DtypeSpec)):
            raise Refused(f"BUILD (setting the state) of a {type(inst).__name__}")
        inst.__setstate__(state)

    dispatch[pickle.BINBYTES[0]] = _load_sized("<I")
    dispatch[pickle.BINBYTES8[0]] = _load_sized("<Q")
    dispatch[pickle.BYTEARRAY8[0]] = _load_sized("<Q")
    dispatch[pickle.BINSTRING[0]] = _load_sized("<i", lambda self: self._decode_string)  # Python-2 str
    dispatch[pickle.BUILD[0]] = _load_build
    del _load_sized, _load_build


# --- 3. records -> arrays ----------------------------------------------------------------------

def _np_dtype(spec) -> np.dtype:
    if not isinstance(spec, DtypeSpec):
        raise pickle.UnpicklingError(f"an array whose dtype is a {type(spec).__name__}")
    try:
        dtype = np.dtype(spec.code)
    except TypeError:
        raise pickle.UnpicklingError(f"unknown dtype {spec.code!r}") from None
    return dtype.newbyteorder(spec.endian) if spec.endian in "<>" and dtype.itemsize > 1 else dtype


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_DIMS
            and all(type(d) is int and d >= 0 for d in shape)):
        raise pickle.UnpicklingError(f"an array shape must be up to {_MAX_DIMS} non-negative integers, "
                                     f"got {_short(shape)}")
    return shape


def _read_span(fh, span: Span, n_bytes: int) -> np.ndarray:
    """The span's bytes, read straight into a new uint8 array (no intermediate copy)."""
    out = np.empty(n_bytes, np.uint8)
    view, got = memoryview(out), 0
    fh.seek(span.offset)
    while got < n_bytes:
        n = fh.readinto(view[got:])
        if not n:
            raise EOFError("pickle data was truncated")
        got += n
    return out


def _array(spec: ArraySpec, fh, size: int, mm: mmap.mmap | None) -> np.ndarray:
    shape, dtype, raw = _shape(spec.shape), _np_dtype(spec.dtype), spec.raw
    if not isinstance(spec.fortran, (bool, int)):
        raise pickle.UnpicklingError(f"an array's memory order flag is a {type(spec.fortran).__name__}")
    order = "F" if spec.fortran else "C"
    n_bytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    have = raw.length if isinstance(raw, Span) else len(raw) if isinstance(raw, (bytes, bytearray, str)) else None
    if have is None:
        raise pickle.UnpicklingError(f"an array's data is a {type(raw).__name__}, not bytes")
    if have != n_bytes:
        raise pickle.UnpicklingError(f"{have} bytes for an array of shape {shape} and type {dtype}")
    if isinstance(raw, Span):
        if raw.offset + raw.length > size:
            raise EOFError(f"an array ends at byte {raw.offset + raw.length} of {size}")
        if mm is not None:
            return np.ndarray(shape, dtype, buffer=mm, offset=raw.offset, order=order)
        return _read_span(fh, raw, n_bytes).view(dtype).reshape(shape, order=order)
    if isinstance(raw, str):  # a Python-2 str, decoded as latin-1 (what numpy itself does)
        raw = raw.encode("latin-1")
    return np.frombuffer(raw, dtype).reshape(shape, order=order).copy(order=order)


def _scalar_value(spec: ScalarSpec):
    dtype = _np_dtype(spec.dtype)
    raw = spec.raw.encode("latin-1") if isinstance(spec.raw, str) else spec.raw
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != dtype.itemsize:
        raise pickle.UnpicklingError(f"a {dtype} scalar needs {dtype.itemsize} bytes")
    return np.frombuffer(raw, dtype)[0]


def materialize(obj, fh, size: int, mm: mmap.mmap | None = None):
    """The values of a top-level dict of records, as numpy arrays and scalars.

    Parameters
    ----------
    obj : object
        What :class:`SafeUnpickler` returned; anything but a dict is returned unchanged.
    fh : binary file
        The open file (spans are read from it when ``mm`` is None).
    size : int
        The file's size.
    mm : mmap.mmap, optional
        The mapped file: span-backed arrays become read-only views of it.

    Raises
    ------
    pickle.UnpicklingError, EOFError
        A declared shape, dtype or byte count that does not match the bytes the file holds.
    """
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        if isinstance(value, ArraySpec):
            value = _array(value, fh, size, mm)
        elif isinstance(value, ScalarSpec):
            value = _scalar_value(value)
        out[key] = value
    return out


def has_spans(obj) -> bool:
    """True when a top-level dict holds an array whose bytes are a :class:`Span`."""
    return isinstance(obj, dict) and any(isinstance(v, ArraySpec) and isinstance(v.raw, Span)
                                         for v in obj.values())
