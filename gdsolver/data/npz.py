"""Reading user-supplied .npz array files safely: never unpickling, and never inflating more than
was checked. Every member's declared size (the zip's uncompressed size and the .npy header's
shape and dtype) is read and checked against the limit before any array data is decompressed;
each array is then read into one buffer of exactly that size, and a member whose data is longer
or shorter than its header says is an error. The limit is max_data_bytes(): 4 GiB by default,
or the environment variable GDSOLVER_MAX_DATA_BYTES."""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from gdsolver.errors import FormatError
from gdsolver.ir.npy import _fmt_bytes, read_npy, read_npy_header

_DEFAULT_MAX_DATA_BYTES = 4 << 30
_NPY_HEADER_MAX = 1 << 16  # numpy's own cap on a header's text is 10 000 bytes


def max_data_bytes() -> int:
    """Largest total decoded size gdsolver reads from one data file (.npz, idx)."""
    raw = os.environ.get("GDSOLVER_MAX_DATA_BYTES")
    if raw is None:
        return _DEFAULT_MAX_DATA_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise FormatError(f"GDSOLVER_MAX_DATA_BYTES: expected a number of bytes, got {raw!r}") from None
    if value <= 0:
        raise FormatError(f"GDSOLVER_MAX_DATA_BYTES: must be > 0, got {value}")
    return value


def check_data_size(shown: str, nbytes: int, what: str = "array data") -> None:
    limit = max_data_bytes()
    if nbytes > limit:
        raise FormatError(f"{shown}: declares {_fmt_bytes(nbytes)} of {what}, more than the {_fmt_bytes(limit)} "
                          "allowed (set GDSOLVER_MAX_DATA_BYTES to raise the limit)")


def npz_headers(path: str | os.PathLike, names: tuple[str, ...] | None = None
                ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} of the members of an .npz file (all, or `names` that exist),
    from the .npy headers alone: nothing but the headers is decompressed."""
    from gdsolver.paths import open_input

    path = Path(path)
    with open_input(path, ".npz file") as fh:
        zf = _open_npz(path, fh, names or ())
        with zf:
            members = _members(zf)
            return {k: _header(path, zf, members[k])[:2] for k in (names or tuple(members)) if k in members}


def _open_npz(path: Path, fh, required: tuple[str, ...]) -> zipfile.ZipFile:
    magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise FormatError(f"{path}: expected an .npz archive of named arrays {list(required)}, got a single array")
    if magic[:4] != b"PK\x03\x04":  # np.load would try to unpickle anything that is not npy/npz
        raise FormatError(f"{path}: not an .npz archive (expected arrays {list(required)} saved with numpy.savez)")
    fh.seek(0)
    try:
        return zipfile.ZipFile(fh, "r")
    except Exception as exc:  # BadZipFile, an unknown compression, a truncated directory ...
        raise FormatError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None


def _members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Array name -> its zip member (numpy.savez names them NAME.npy)."""
    return {info.filename[:-4]: info for info in zf.infolist() if info.filename.endswith(".npy")}


def _header(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data bytes) of one member, checked against the zip's declared size."""
    name = info.filename[:-4]
    shown = f"{path}: array '{name}'"
    try:
        with zf.open(info) as f:
            shape, _, dtype, _ = read_npy_header(f, shown)
    except FormatError:
        raise
    except Exception as exc:  # CRC, zlib, encryption flag, a bad local header
        raise FormatError(f"{shown} is corrupt ({type(exc).__name__}: {exc})") from None
    if dtype.hasobject:
        raise FormatError(f"{shown} cannot be read without unpickling (dtype {dtype}); save plain numeric arrays")
    nbytes = math.prod(shape) * dtype.itemsize
    if not nbytes <= info.file_size <= nbytes + _NPY_HEADER_MAX:
        raise FormatError(f"{shown} is stored as {info.file_size} bytes, but its header declares shape "
                          f"{list(shape)} of {dtype} ({nbytes} bytes plus a header)")
    return shape, dtype, nbytes


def load_arrays(path: str | os.PathLike, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file; FormatError naming the file and the array for a missing
    file or array, a corrupt archive, an object (pickled) array, or declared sizes beyond the
    limit (module docstring) -- checked for every wanted array before any is read."""
    from gdsolver.paths import open_input

    path = Path(path)
    with open_input(path, ".npz file") as fh:
        zf = _open_npz(path, fh, required)
        with zf:
            members = _members(zf)
            missing = [k for k in required if k not in members]
            if missing:
                raise FormatError(f"{path}: missing array(s) {missing}; it holds {sorted(members)}, "
                                  f"expected {list(required)}")
            wanted = [*required, *(o for o in optional if o in members)]
            heads = {k: _header(path, zf, members[k]) for k in wanted}
            check_data_size(str(path), sum(h[2] for h in heads.values()))
            out = {}
            for k in wanted:
                shape, dtype, nbytes = heads[k]
                shown = f"{path}: array '{k}'"
                try:
                    with zf.open(members[k]) as f:
                        out[k] = read_npy(f, shown, dtype=dtype, shape=shape, ndim=len(shape), limit=nbytes)
                except FormatError:
                    raise
                except Exception as exc:  # zip-level defects surface while reading
                    raise FormatError(f"{shown} is corrupt ({type(exc).__name__}: {exc})") from None
            return out


def load_real_arrays(path: str | os.PathLike, required: tuple[str, ...],
                     optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """load_arrays, plus: every array holds finite real numbers (ints, bools or floats)."""
    arrs = load_arrays(path, required, optional)
    for key, arr in arrs.items():
        if arr.dtype.kind not in "fiub":
            raise FormatError(f"{path}: array '{key}' has dtype {arr.dtype}, expected real numbers")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise FormatError(f"{path}: array '{key}' contains NaN or inf")
    return arrs
