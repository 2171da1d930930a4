"""SHA-256 of files and models, recorded in an instance's meta to tie it to its source model."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

from gdsolver.errors import FormatError, GdsolverError
from gdsolver.paths import open_input, resolve_input

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike, *, within: str | os.PathLike | None = None) -> str:
    """Hex SHA-256 of a regular file's bytes, read in 1 MiB chunks (models can be large);
    FormatError for anything else (a device or FIFO would be read forever)."""
    h = hashlib.sha256()
    try:
        with open_input(path, "file", within=within) as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
    except OSError as exc:
        raise FormatError(f"cannot read '{path}' for hashing: {exc.strerror or exc}") from None
    return h.hexdigest()


def check_external_data(path: str | os.PathLike) -> dict[str, Path]:
    """{location: resolved file} of every external-data file an .onnx file names, each checked
    before anything reads it: a relative location, resolving (symlinks followed) to a regular
    file inside the model's directory, long enough for the offset and length it declares.
    FormatError otherwise, naming the model, the tensor and the location."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    path = resolve_input(path, "ONNX model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not parseable: it names no external data; the loader reports it
        return {}
    root = path.parent
    out: dict[str, Path] = {}
    for t in _onnx_tensors(model.graph):
        if not uses_external_data(t):
            continue
        try:
            info = ExternalDataInfo(t)
        except Exception as exc:  # noqa: BLE001 - malformed key/value entries
            raise FormatError(f"{path}: tensor '{t.name}' has malformed external-data fields ({exc})") from None
        loc = info.location
        if not isinstance(loc, str) or not loc or "\x00" in loc or os.path.isabs(loc):
            raise FormatError(f"{path}: tensor '{t.name}' names external data {loc!r}; expected a file path "
                              "relative to the model's directory")
        real = resolve_input(root / loc, "ONNX external data file", within=root,
                             shown=f"{path}: external data '{loc}' of tensor '{t.name}'")
        offset, length = int(info.offset or 0), info.length
        size = real.stat().st_size
        if offset < 0 or offset > size or (length is not None and (length < 0 or offset + int(length) > size)):
            raise FormatError(f"{path}: tensor '{t.name}' reads bytes {offset}..{offset + int(length or 0)} of "
                              f"'{loc}', which has {size}")
        out[loc] = real
    return out


def model_sha256(model: Any) -> str:
    """Hex SHA-256 of a model's contents.

    - path (str/PathLike): the file's bytes (same as sha256_file); for an .onnx file, also
      the external-data files it references (torch's dynamo exporter puts weights there,
      so hashing the .onnx file alone would miss a weight change);
    - onnx.ModelProto: its deterministic serialisation;
    - torch.nn.Module: its state_dict (names, dtypes, shapes and raw bytes, in order), so
      the hash changes exactly when a parameter or buffer changes.
    Duck-typed: torch is never imported here, onnx only to read an .onnx file's header.
    """
    if isinstance(model, (str, os.PathLike)):
        if os.fspath(model).lower().endswith(".onnx"):
            return _onnx_file_sha256(Path(model))
        return sha256_file(model)
    if hasattr(model, "SerializeToString") and hasattr(model, "graph"):
        return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
    if hasattr(model, "state_dict") and callable(model.state_dict):
        import torch  # only reached for torch modules, so torch is already loaded

        h = hashlib.sha256()
        for name, t in model.state_dict().items():
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            flat = t.detach().to("cpu").contiguous().reshape(-1)
            # uint8 view: raw bytes for every dtype, including bfloat16 which numpy lacks.
            h.update(flat.view(torch.uint8).numpy().tobytes())
        return h.hexdigest()
    raise GdsolverError(f"cannot hash a model of type {type(model).__name__}; expected a path, onnx.ModelProto or torch.nn.Module")


def _onnx_tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of a graph: initializers and tensor attributes, subgraphs included."""
    import onnx

    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t
            elif a.type == onnx.AttributeProto.TENSORS:
                yield from a.tensors
            elif a.type == onnx.AttributeProto.GRAPH:
                yield from _onnx_tensors(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _onnx_tensors(g)


def _onnx_file_sha256(path: Path) -> str:
    """SHA-256 over an .onnx file and, in name order, the external-data files it references
    (checked by check_external_data before any is read)."""
    main = sha256_file(path)
    files = check_external_data(path)
    if not files:
        return main
    h = hashlib.sha256(main.encode())
    for loc in sorted(files):
        h.update(f"|{loc}|{sha256_file(files[loc])}".encode())
    return h.hexdigest()
