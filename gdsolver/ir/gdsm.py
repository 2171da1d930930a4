"""The .gdsm file: one MilpInstance per file.

A zip (deflate) holding one `.npy` entry per array and a `meta.json` entry with the
format name and version, the gdsolver version, the structure (blocks, groups,
sense, c0), the user meta, and the sha256, dtype and shape of every array.
Reading never unpickles, reads only regular files, checks format, version, field types,
declared sizes (before decompressing anything), dtypes, shapes and hashes, and turns
anything unexpected into a one-line FormatError.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver._version import __version__
from gdsolver.atomic import atomic_write
from gdsolver.errors import FormatError
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import MilpInstance, require_instance
from gdsolver.ir.npy import check_size, read_npy
from gdsolver.ir.schema import check_meta
from gdsolver.paths import open_input

FORMAT_NAME = "gdsolver-milp"
# 2: optional `data/NAME` arrays (MilpInstance.data: a sweep's network data); 1 still reads
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DATA_PREFIX = "data/"
DATA_DTYPES = ("float64", "int64")
_MAX_DATA_NDIM = 8
_MAX_INDEX = 2**31 - 1  # indices are int32
_HEX64 = re.compile(r"[0-9a-f]{64}")

# array name -> dtype it must have on disk
_ARRAYS: dict[str, str] = {
    "lb": "float64", "ub": "float64", "vtype": "uint8", "c": "float64",
    "A_indptr": "int64", "A_indices": "int32", "A_data": "float64",
    "row_lo": "float64", "row_hi": "float64",
    "ind_var": "int32", "ind_val": "uint8",
    "ind_A_indptr": "int64", "ind_A_indices": "int32", "ind_A_data": "float64",
    "ind_lo": "float64", "ind_hi": "float64",
    "start": "float64",  # optional
}


def _arrays_of(inst: MilpInstance) -> dict[str, np.ndarray]:
    arrays = {
        "lb": inst.lb, "ub": inst.ub, "vtype": inst.vtype, "c": inst.c,
        "A_indptr": inst.A.indptr, "A_indices": inst.A.indices, "A_data": inst.A.data,
        "row_lo": inst.row_lo, "row_hi": inst.row_hi,
        "ind_var": inst.ind_var, "ind_val": inst.ind_val,
        "ind_A_indptr": inst.ind_A.indptr, "ind_A_indices": inst.ind_A.indices, "ind_A_data": inst.ind_A.data,
        "ind_lo": inst.ind_lo, "ind_hi": inst.ind_hi,
    }
    if inst.start is not None:
        arrays["start"] = inst.start
    return {k: np.ascontiguousarray(v, dtype=_ARRAYS[k]) for k, v in arrays.items()}


def _data_arrays(inst: MilpInstance) -> dict[str, np.ndarray]:
    return {DATA_PREFIX + k: np.ascontiguousarray(v) for k, v in inst.data.items()}


def array_sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()


def _structure(inst: MilpInstance) -> dict[str, Any]:
    return {
        "num_vars": inst.num_vars,
        "sense": inst.sense,
        "c0": inst.c0,
        "blocks": [[k, o, list(s)] for k, (o, s) in inst.blocks.items()],
        "row_groups": [[k, o, c] for k, (o, c) in inst.row_groups.items()],
        "ind_groups": [[k, o, c] for k, (o, c) in inst.ind_groups.items()],
    }


def fingerprint(inst: MilpInstance) -> str:
    """sha256 identifying the optimisation problem (structure and all arrays except
    the MIP start; meta excluded) so a result can be matched to its instance."""
    return _fingerprint(_structure(inst), {k: array_sha256(v) for k, v in _arrays_of(inst).items()})


def _fingerprint(structure: dict[str, Any], hashes: dict[str, str]) -> str:
    doc = {"structure": structure, "arrays": {k: h for k, h in sorted(hashes.items()) if k != "start"}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def save(inst: MilpInstance, path: str | os.PathLike) -> Path:
    """Write `inst` to `path` (.gdsm) atomically. Returns the path."""
    require_instance(inst)
    inst.validate()
    path = Path(path)
    arrays = {**_arrays_of(inst), **_data_arrays(inst)}
    # a file load() would refuse is not written (GDSOLVER_MAX_ARRAY_BYTES raises both limits)
    check_size(f"{path}: the instance", sum(a.nbytes for a in arrays.values()))
    try:
        json.dumps(inst.meta)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{path}: instance meta is not JSON-serialisable: {exc}") from None
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "gdsolver_version": __version__,
        **_structure(inst),
        "fingerprint": fingerprint(inst),
        "meta": inst.meta,
        "arrays": {k: {"sha256": array_sha256(v), "dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()},
    }
    with atomic_write(path) as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("meta.json", json.dumps(doc, indent=1, allow_nan=True))
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            zf.writestr(f"{name}.npy", buf.getvalue())
    return path


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """meta.json of a .gdsm file, checked for format, version and field types (arrays not read)."""
    path = Path(path)
    with _open_zip(path) as zf:
        return _read_doc(path, zf)


def load(path: str | os.PathLike) -> MilpInstance:
    """Read a .gdsm file; any defect raises FormatError naming the file and field.

    Sizes are checked before anything is decompressed: every array's shape declared in
    meta.json must agree with the structure (num_vars, rows, indicators), their total must be
    within the limit (ir.npy.max_array_bytes), each zip entry must have exactly the size its
    .npy header and shape imply, and reading stops there."""
    path = Path(path)
    with _open_zip(path) as zf:
        doc = _read_doc(path, zf)
        shapes = _declared_shapes(path, doc)
        dtypes = {k: _ARRAYS.get(k) or doc["arrays"][k]["dtype"] for k in shapes}
        check_size(str(path), sum(math.prod(s) * np.dtype(dtypes[k]).itemsize for k, s in shapes.items()))
        arrays: dict[str, np.ndarray] = {}
        data: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            info = doc["arrays"][name]
            shown = f"{path}: array '{name}'"
            try:
                entry = zf.getinfo(f"{name}.npy")
            except KeyError:
                raise FormatError(f"{path}: array '{name}' is listed in meta.json but missing") from None
            nbytes = math.prod(shape) * np.dtype(dtypes[name]).itemsize
            if not nbytes <= entry.file_size <= nbytes + _NPY_HEADER_MAX:
                raise FormatError(f"{shown} is stored as {entry.file_size} bytes, but shape {list(shape)} of "
                                  f"{dtypes[name]} needs {nbytes} plus a header")
            try:
                with zf.open(entry) as fh:
                    arr = read_npy(fh, shown, dtype=dtypes[name], shape=shape, ndim=len(shape))
            except FormatError:
                raise
            except Exception as exc:  # zip-level defects: CRC, zlib, encryption flag, bad local header
                raise FormatError(f"{shown} is corrupt ({type(exc).__name__}: {exc})") from None
            if array_sha256(arr) != info["sha256"]:
                raise FormatError(f"{path}: array '{name}' fails its sha256 check (file corrupted)")
            if name.startswith(DATA_PREFIX):
                data[name[len(DATA_PREFIX):]] = arr
            else:
                arrays[name] = arr
    try:
        n = doc["num_vars"]
        inst = MilpInstance(
            blocks={k: (o, tuple(sh)) for k, o, sh in doc["blocks"]},
            lb=arrays["lb"], ub=arrays["ub"], vtype=arrays["vtype"],
            A=Csr(arrays["A_indptr"], arrays["A_indices"], arrays["A_data"], n),
            row_lo=arrays["row_lo"], row_hi=arrays["row_hi"],
            ind_var=arrays["ind_var"], ind_val=arrays["ind_val"],
            ind_A=Csr(arrays["ind_A_indptr"], arrays["ind_A_indices"], arrays["ind_A_data"], n),
            ind_lo=arrays["ind_lo"], ind_hi=arrays["ind_hi"],
            c=arrays["c"], c0=float(doc["c0"]), sense=doc["sense"], start=arrays.get("start"),
            meta=doc.get("meta") or {},
            row_groups={k: (o, c) for k, o, c in doc.get("row_groups", [])},
            ind_groups={k: (o, c) for k, o, c in doc.get("ind_groups", [])},
            data=data,
        )
        inst.validate()
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise FormatError(f"{path}: inconsistent instance: {exc}") from None
    # the arrays matched their recorded hashes above, so those hashes stand for them
    hashes = {k: info["sha256"] for k, info in doc["arrays"].items() if not k.startswith(DATA_PREFIX)}
    if doc["fingerprint"] != _fingerprint(_structure(inst), hashes):
        raise FormatError(f"{path}: structure does not match its recorded fingerprint (file edited or corrupted)")
    # the meta is not covered by the fingerprint: its known fields are checked here, once for every reader
    check_meta(str(path), inst.meta, blocks=inst.blocks, data=inst.data)
    return inst


_NPY_HEADER_MAX = 4096  # write_array pads headers to 64-byte multiples; ours are ~128 bytes
_META_MAX = 64 << 20  # meta.json holds structure and user meta, never arrays


@contextlib.contextmanager
def _open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    with open_input(path, ".gdsm file") as fh:
        try:
            zf = zipfile.ZipFile(fh, "r")
        except Exception as exc:  # BadZipFile, NotImplementedError (compression), OSError, ...
            raise FormatError(f"{path}: not a .gdsm file (truncated or not a zip archive: {exc})") from None
        with zf:
            yield zf


def _read_doc(path: Path, zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        entry = zf.getinfo("meta.json")
    except KeyError:
        raise FormatError(f"{path}: not a .gdsm file (no meta.json entry)") from None
    if entry.file_size > _META_MAX:
        raise FormatError(f"{path}: meta.json is {entry.file_size} bytes, more than the {_META_MAX} allowed")
    try:
        with zf.open(entry) as fh:
            raw = fh.read(_META_MAX + 1)
        doc = json.loads(raw)
    except Exception as exc:  # corrupt entry: CRC, zlib, encryption flag, unknown compression, bad JSON
        raise FormatError(f"{path}: meta.json is corrupt ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise FormatError(f"{path}: field 'format' is {doc.get('format') if isinstance(doc, dict) else None!r}, "
                          f"expected {FORMAT_NAME!r}")
    version = doc.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(f"{path}: field 'format_version' is {version!r}, this gdsolver reads versions "
                          f"{list(READABLE_VERSIONS)}")
    for key in ("num_vars", "sense", "c0", "blocks", "arrays", "fingerprint"):
        if key not in doc:
            raise FormatError(f"{path}: meta.json lacks field '{key}'")
    _check_doc(path, doc)
    return doc


def _is_int(v: Any, low: int = 0, high: int = _MAX_INDEX) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _check_doc(path: Path, doc: dict[str, Any]) -> None:
    """Types and ranges of meta.json's structural fields (JSON may hold anything, e.g. 1e999)."""
    def bad(field: str, expected: str) -> FormatError:
        value = repr(doc.get(field))
        return FormatError(f"{path}: meta.json field '{field}' is {value[:80]}, expected {expected}")

    if not _is_int(doc["num_vars"]):
        raise bad("num_vars", f"an integer in [0, {_MAX_INDEX}]")
    if doc["sense"] not in ("min", "max"):
        raise bad("sense", "'min' or 'max'")
    c0 = doc["c0"]
    if isinstance(c0, bool) or not isinstance(c0, (int, float)) or not math.isfinite(c0):
        raise bad("c0", "a finite number")
    if not isinstance(doc["fingerprint"], str) or not _HEX64.fullmatch(doc["fingerprint"]):
        raise bad("fingerprint", "a sha256 hex digest")
    if not isinstance(doc.get("meta", {}), dict):
        raise bad("meta", "an object")
    blocks = doc["blocks"]
    if not isinstance(blocks, list) or not all(
            isinstance(b, list) and len(b) == 3 and isinstance(b[0], str) and _is_int(b[1])
            and isinstance(b[2], list) and all(_is_int(d) for d in b[2]) for b in blocks):
        raise bad("blocks", "a list of [name, offset >= 0, [dimensions >= 0]]")
    for key in ("row_groups", "ind_groups"):
        groups = doc.get(key, [])
        if not isinstance(groups, list) or not all(
                isinstance(g, list) and len(g) == 3 and isinstance(g[0], str) and _is_int(g[1]) and _is_int(g[2])
                for g in groups):
            raise bad(key, "a list of [name, offset >= 0, count >= 0]")
    arrays = doc["arrays"]
    if not isinstance(arrays, dict):
        raise bad("arrays", "an object")
    for name, info in arrays.items():
        if isinstance(name, str) and name.startswith(DATA_PREFIX) and len(name) > len(DATA_PREFIX) \
                and doc["format_version"] >= 2:
            if not (isinstance(info, dict) and isinstance(info.get("sha256"), str) and info.get("dtype") in DATA_DTYPES
                    and isinstance(info.get("shape"), list) and len(info["shape"]) <= _MAX_DATA_NDIM
                    and all(_is_int(d) for d in info["shape"])):
                raise FormatError(f"{path}: meta.json field 'arrays.{name}' is not "
                                  f"{{sha256, dtype: one of {list(DATA_DTYPES)}, shape: [dimensions >= 0]}}")
            continue
        if name not in _ARRAYS:
            raise FormatError(f"{path}: unknown array '{name}' in meta.json")
        if not (isinstance(info, dict) and isinstance(info.get("sha256"), str) and info.get("dtype") == _ARRAYS[name]
                and isinstance(info.get("shape"), list) and len(info["shape"]) == 1 and _is_int(info["shape"][0])):
            raise FormatError(f"{path}: meta.json field 'arrays.{name}' is not "
                              f"{{sha256, dtype: {_ARRAYS[name]!r}, shape: [length]}}")
    missing = [k for k in _ARRAYS if k != "start" and k not in arrays]
    if missing:
        raise FormatError(f"{path}: missing arrays {missing}")


def _declared_shapes(path: Path, doc: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every array's shape from meta.json, checked against the structure before any is read:
    n variables, m rows, k indicators; CSR arrays of m+1 / k+1 pointers (their nnz is
    checked against the pointers once those are read, by validate())."""
    shapes = {k: tuple(info["shape"]) for k, info in doc["arrays"].items()}
    n = doc["num_vars"]
    m, k = shapes["row_lo"][0], shapes["ind_var"][0]
    expect = {"lb": n, "ub": n, "vtype": n, "c": n, "start": n, "row_hi": m, "A_indptr": m + 1,
              "ind_val": k, "ind_lo": k, "ind_hi": k, "ind_A_indptr": k + 1,
              "A_data": shapes["A_indices"][0], "ind_A_data": shapes["ind_A_indices"][0]}
    for name, length in expect.items():
        if name in shapes and shapes[name] != (length,):
            raise FormatError(f"{path}: array '{name}' is declared with shape {list(shapes[name])}, "
                              f"expected [{length}] (num_vars {n}, {m} rows, {k} indicators)")
    return shapes
