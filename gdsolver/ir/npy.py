"""Reading untrusted .npy data with its size checked before anything is allocated.

`read_npy` parses the .npy header from a stream, checks dtype and shape against what the
caller expects and the byte count against a limit, and only then allocates the array and
reads exactly that many bytes (a stream that is longer or shorter is an error). Nothing is
ever unpickled. The limit on the decoded size of an instance or a solution is
MAX_ARRAY_BYTES: 1 GiB by default, or the environment variable GDSOLVER_MAX_ARRAY_BYTES.
"""

from __future__ import annotations

import math
import os
from typing import BinaryIO

import numpy as np

from gdsolver.errors import FormatError

_DEFAULT_MAX_ARRAY_BYTES = 1 << 30
_HEADER_LIMIT = 10_000  # numpy's own default cap on header text
_CHUNK = 1 << 24


def max_array_bytes() -> int:
    """Largest decoded size gdsolver reads for one instance's (or solution's) arrays."""
    raw = os.environ.get("GDSOLVER_MAX_ARRAY_BYTES")
    if raw is None:
        return _DEFAULT_MAX_ARRAY_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise FormatError(f"GDSOLVER_MAX_ARRAY_BYTES: expected a number of bytes, got {raw!r}") from None
    if value <= 0:
        raise FormatError(f"GDSOLVER_MAX_ARRAY_BYTES: must be > 0, got {value}")
    return value


def check_size(shown: str, nbytes: int, limit: int | None = None) -> None:
    limit = max_array_bytes() if limit is None else limit
    if nbytes > limit:
        raise FormatError(f"{shown}: declares {_fmt_bytes(nbytes)} of array data, more than the "
                          f"{_fmt_bytes(limit)} allowed (set GDSOLVER_MAX_ARRAY_BYTES to raise the limit)")


def _fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def read_npy_header(fh: BinaryIO, shown: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header bytes) of the .npy stream at its start."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=_HEADER_LIMIT)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=_HEADER_LIMIT)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except FormatError:
        raise
    except Exception as exc:  # untrusted bytes: magic, header text, dtype descriptor can all be wrong
        raise FormatError(f"{shown}: not a valid .npy array ({type(exc).__name__}: {exc})") from None
    header_len = fh.tell() if fh.seekable() else -1
    return tuple(int(s) for s in shape), bool(fortran), dtype, header_len


def read_npy(fh: BinaryIO, shown: str, *, dtype: str | np.dtype, shape: tuple[int, ...] | None = None,
             ndim: int = 1, limit: int | None = None, exact_end: bool = True) -> np.ndarray:
    """Read one array of the expected dtype (native byte order) and shape from an .npy stream.
    `shape` None accepts any shape with `ndim` dimensions (still limited in size)."""
    got_shape, fortran, got_dtype, _ = read_npy_header(fh, shown)
    want = np.dtype(dtype)
    if got_dtype.hasobject or got_dtype != want:
        raise FormatError(f"{shown}: array has dtype {got_dtype.str} ({got_dtype}), expected {want.str} ({want})")
    if shape is not None and got_shape != tuple(shape):
        raise FormatError(f"{shown}: array has shape {list(got_shape)}, expected {list(shape)}")
    if len(got_shape) != ndim:
        raise FormatError(f"{shown}: array has shape {list(got_shape)}, expected {ndim}-D")
    nbytes = math.prod(got_shape) * want.itemsize
    check_size(shown, nbytes, limit)
    out = np.empty(got_shape, dtype=want, order="F" if fortran else "C")
    view = memoryview(out.reshape(-1, order="A").view(np.uint8)) if nbytes else memoryview(b"")  # any dtype
    pos = 0
    try:
        while pos < nbytes:
            n = fh.readinto(view[pos:pos + _CHUNK])
            if not n:
                raise FormatError(f"{shown}: array data is truncated ({pos} of {nbytes} bytes)")
            pos += n
        if exact_end and fh.read(1):
            raise FormatError(f"{shown}: unexpected bytes after the array data")
    except FormatError:
        raise
    except Exception as exc:  # zlib / CRC errors surface here when the stream is a zip entry
        raise FormatError(f"{shown}: array data is corrupt ({type(exc).__name__}: {exc})") from None
    return out if out.flags.c_contiguous else np.ascontiguousarray(out).reshape(got_shape)  # keeps a 0-d array 0-d
