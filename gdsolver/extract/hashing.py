"""SHA-256 of files and models, recorded in an instance's meta to tie it to its source model."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

from gdsolver.errors import FormatError, GdsolverError

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (models can be large)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
    except OSError as exc:
        raise FormatError(f"cannot read '{path}' for hashing: {exc.strerror or exc}") from None
    return h.hexdigest()


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
    """SHA-256 over an .onnx file and, in name order, the external-data files it references."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    main = sha256_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return main  # not parseable: the bytes are all there is to hash
    locations = sorted({ExternalDataInfo(t).location for t in _onnx_tensors(model.graph) if uses_external_data(t)})
    if not locations:
        return main
    h = hashlib.sha256(main.encode())
    for loc in locations:
        h.update(f"|{loc}|{sha256_file(path.parent / loc)}".encode())
    return h.hexdigest()
