"""The regression benchmarks' common start: the paper's model Linear(3,2)-ReLU-Linear(2,2) and the
split of an equation, seeded, and the test split as tensors (the paper bench, its tuned cells and
the equal-time bench all start here, so their models and splits are the same for a seed)."""

from __future__ import annotations

from typing import Any


def regression_setup(equation: str, seed: int) -> tuple[Any, Any]:
    """(split, freshly initialised paper model) for `equation` and `seed`."""
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for

    return load_split_for(equation, None, seed=seed), build_model("paper", (3,), 2, seed=seed)


def regression_test_data(split):
    """The split's test part as float32 tensors (what the trainers evaluate)."""
    import torch

    from gdsolver.train.tensors import as_tensor_data

    return as_tensor_data(split.test, "regression", name="test", dtype=torch.float32)
