"""Which dense layers a `layers=` / `layer=` / `--layer` setting names: "final", "all", module
(or ONNX node) names, chain indices, or a list of those. One reading for the trainers,
gdsolver.sweep and `gdsolver compile`; numpy only (no torch)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

_WARNED: set[tuple[Any, ...]] = set()


def layer_indices(net, spec: Any, *, what: str = "layers") -> list[int]:
    """Chain indices of the layers `spec` names: "final", "all", a module name, an index, or a
    list of those; in the chain's order. An index counts the chain of dense layers a sweep can
    encode, which need not be the model's nn.Linear modules in order (a BatchNorm after the first
    Linear starts the chain at the second): each distinct index is explained once by a warning."""
    if spec in ("final", None):
        return [len(net) - 1]
    if spec == "all":
        return list(range(len(net)))
    items = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    ks = []
    for s in items:
        k = net.layer_index(s)
        bare = isinstance(s, (int, np.integer)) or (isinstance(s, str) and s.lstrip("-").isdigit()
                                                     and s not in net.names)
        key = (tuple(net.names), str(s))
        if bare and key not in _WARNED:
            _WARNED.add(key)
            start = f" (it starts at {net.names[0]!r}: {net.prefix['stop']})" if net.prefix.get("stop") else ""
            warnings.warn(f"{what}: index {s} is dense layer {net.names[k]!r}, number {k} of the chain of dense "
                          f"layers a sweep can encode, {net.names}{start}; pass the module (ONNX: node) name to say which",
                          UserWarning, stacklevel=3)
        ks.append(k)
    return sorted(set(ks))
