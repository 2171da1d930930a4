"""The .gdsm file: one MilpInstance per file.

A zip (deflate) holding one `.npy` entry per array and a `meta.json` entry with the
format name and version, the gdsolver version, the structure (blocks, groups,
sense, c0), the user meta, and the sha256, dtype and shape of every array.
Reading never unpickles (`allow_pickle=False`), checks format, version, dtypes,
shapes and hashes, and turns anything unexpected into a one-line FormatError.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver._version import __version__
from gdsolver.atomic import atomic_write
from gdsolver.errors import FormatError
from gdsolver.ir.csr import Csr
from gdsolver.ir.instance import MilpInstance

FORMAT_NAME = "gdsolver-milp"
# 2: optional `data/NAME` arrays (MilpInstance.data: a sweep's network data); 1 still reads
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DATA_PREFIX = "data/"
DATA_DTYPES = ("float64", "int64")

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
    inst.validate()
    path = Path(path)
    arrays = {**_arrays_of(inst), **_data_arrays(inst)}
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
    """meta.json of a .gdsm file, checked for format and version (arrays not read)."""
    path = Path(path)
    with _open_zip(path) as zf:
        return _read_doc(path, zf)


def load(path: str | os.PathLike) -> MilpInstance:
    """Read a .gdsm file; any defect raises FormatError naming the file and field."""
    path = Path(path)
    with _open_zip(path) as zf:
        doc = _read_doc(path, zf)
        arrays: dict[str, np.ndarray] = {}
        if not isinstance(doc["arrays"], dict):
            raise FormatError(f"{path}: meta.json field 'arrays' is not an object")
        data: dict[str, np.ndarray] = {}
        for name, info in doc["arrays"].items():
            is_data = isinstance(name, str) and name.startswith(DATA_PREFIX) and doc["format_version"] >= 2 \
                and len(name) > len(DATA_PREFIX)
            if name not in _ARRAYS and not is_data:
                raise FormatError(f"{path}: unknown array '{name}' in meta.json")
            expected = (info.get("dtype") if isinstance(info, dict) and info.get("dtype") in DATA_DTYPES
                        else DATA_DTYPES[0]) if is_data else _ARRAYS[name]
            try:
                raw = zf.read(f"{name}.npy")
                arr = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
            except KeyError:
                raise FormatError(f"{path}: array '{name}' is listed in meta.json but missing") from None
            except Exception as exc:  # untrusted bytes: zip, zlib, npy-header parsing can fail in many ways
                raise FormatError(f"{path}: array '{name}' is corrupt ({type(exc).__name__}: {exc})") from None
            if not isinstance(info, dict):
                raise FormatError(f"{path}: meta.json field 'arrays.{name}' is not an object")
            if str(arr.dtype) != expected or list(arr.shape) != list(info.get("shape", [])):
                raise FormatError(f"{path}: array '{name}' has dtype {arr.dtype} shape {list(arr.shape)}, "
                                  f"expected {expected} {info.get('shape')}")
            if array_sha256(arr) != info.get("sha256"):
                raise FormatError(f"{path}: array '{name}' fails its sha256 check (file corrupted)")
            if is_data:
                data[name[len(DATA_PREFIX):]] = arr
            else:
                arrays[name] = arr
    missing = [k for k in _ARRAYS if k != "start" and k not in arrays]
    if missing:
        raise FormatError(f"{path}: missing arrays {missing}")
    try:
        n = int(doc["num_vars"])
        if not isinstance(doc.get("meta", {}), dict):
            raise ValueError("field 'meta' is not an object")
        inst = MilpInstance(
            blocks={k: (int(o), tuple(int(s) for s in sh)) for k, o, sh in doc["blocks"]},
            lb=arrays["lb"], ub=arrays["ub"], vtype=arrays["vtype"],
            A=Csr(arrays["A_indptr"], arrays["A_indices"], arrays["A_data"], n),
            row_lo=arrays["row_lo"], row_hi=arrays["row_hi"],
            ind_var=arrays["ind_var"], ind_val=arrays["ind_val"],
            ind_A=Csr(arrays["ind_A_indptr"], arrays["ind_A_indices"], arrays["ind_A_data"], n),
            ind_lo=arrays["ind_lo"], ind_hi=arrays["ind_hi"],
            c=arrays["c"], c0=float(doc["c0"]), sense=str(doc["sense"]), start=arrays.get("start"),
            meta=doc.get("meta") or {},
            row_groups={k: (int(o), int(c)) for k, o, c in doc.get("row_groups", [])},
            ind_groups={k: (int(o), int(c)) for k, o, c in doc.get("ind_groups", [])},
            data=data,
        )
        inst.validate()
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise FormatError(f"{path}: inconsistent instance: {exc}") from None
    # the arrays matched their recorded hashes above, so those hashes stand for them
    hashes = {k: info["sha256"] for k, info in doc["arrays"].items() if not k.startswith(DATA_PREFIX)}
    if doc.get("fingerprint") and doc["fingerprint"] != _fingerprint(_structure(inst), hashes):
        raise FormatError(f"{path}: structure does not match its recorded fingerprint (file edited or corrupted)")
    return inst


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise FormatError(f"{path}: file not found")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, expected a .gdsm file")
    try:
        return zipfile.ZipFile(path, "r")
    except Exception as exc:  # BadZipFile, NotImplementedError (compression), OSError, ...
        raise FormatError(f"{path}: not a .gdsm file (truncated or not a zip archive: {exc})") from None


def _read_doc(path: Path, zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        doc = json.loads(zf.read("meta.json"))
    except KeyError:
        raise FormatError(f"{path}: not a .gdsm file (no meta.json entry)") from None
    except Exception as exc:  # corrupt entry: CRC, zlib, encryption flag, unknown compression, bad JSON
        raise FormatError(f"{path}: meta.json is corrupt ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise FormatError(f"{path}: field 'format' is {doc.get('format') if isinstance(doc, dict) else None!r}, "
                          f"expected {FORMAT_NAME!r}")
    version = doc.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(f"{path}: field 'format_version' is {version!r}, this gdsolver reads versions "
                          f"{list(READABLE_VERSIONS)}")
    for key in ("num_vars", "sense", "c0", "blocks", "arrays"):
        if key not in doc:
            raise FormatError(f"{path}: meta.json lacks field '{key}'")
    return doc
