"""Training: the GDSolver orchestrator (Algorithm 1), the GD baselines and the other
trainers of the same family, all with `fit(train, val) -> History`.

torch is imported on first use of a trainer, so `import gdsolver.train` stays cheap."""

from __future__ import annotations

import importlib
from typing import Any

from gdsolver.train.history import History

# public name -> submodule that defines it (loaded on first access)
_LAZY = {
    "Trainer": "trainer",
    "GDTrainer": "trainer",
    "clone_model": "trainer",
    "GDSolver": "hybrid",
}

__all__ = ["History", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
