"""Reading user-supplied .npz array files safely (never unpickling)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gdsolver.errors import FormatError


def load_arrays(path: str | os.PathLike, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file; FormatError naming the file and the array
    for a missing file or array, a corrupt archive, or an object (pickled) array."""
    from gdsolver.paths import open_input

    path = Path(path)
    fh = open_input(path, ".npz file")
    try:
        magic = fh.read(6)
        if magic == b"\x93NUMPY":
            raise FormatError(f"{path}: expected an .npz archive of named arrays {list(required)}, got a single array")
        if magic[:4] != b"PK\x03\x04":  # np.load would try to unpickle anything that is not npy/npz
            raise FormatError(f"{path}: not an .npz archive (expected arrays {list(required)} saved with numpy.savez)")
        fh.seek(0)
        npz = np.load(fh, allow_pickle=False)
        with npz:
            missing = [k for k in required if k not in npz.files]
            if missing:
                raise FormatError(f"{path}: missing array(s) {missing}; it holds {sorted(npz.files)}, "
                                  f"expected {list(required)}")
            out = {}
            for k in (*required, *(o for o in optional if o in npz.files)):
                try:
                    out[k] = npz[k]
                except ValueError as exc:  # object arrays need pickle: refused
                    raise FormatError(f"{path}: array '{k}' cannot be read without unpickling ({exc})") from None
            return out
    except FormatError:
        raise
    except Exception as exc:  # untrusted bytes: zip and npy-header parsing can fail in many ways
        raise FormatError(f"{path}: not a readable .npz file ({exc})") from None
    finally:
        fh.close()


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
