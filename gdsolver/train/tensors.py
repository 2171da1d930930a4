"""Training data as tensors: (X, y) arrays/tensors or a DataLoader, checked once.

A sweep needs the whole training set (features of every point), so a DataLoader is
read through once and its batches concatenated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gdsolver.errors import GdsolverError
from gdsolver.extract.inputs import as_samples
from gdsolver.modeldef import TASKS


@dataclass
class TensorData:
    X: torch.Tensor
    y: torch.Tensor
    name: str

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def y_numpy(self) -> np.ndarray:
        return self.y.numpy()


def check_task(task: str) -> str:
    if task not in TASKS:
        raise GdsolverError(f"task: {task!r}, expected one of {list(TASKS)}")
    return task


def _from_loader(loader: Any, name: str) -> tuple[Any, Any]:
    xs, ys = [], []
    for i, batch in enumerate(loader):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise GdsolverError(f"{name}: DataLoader batch {i} is not an (x, y) pair")
        xs.append(torch.as_tensor(batch[0]).detach().cpu())
        ys.append(torch.as_tensor(batch[1]).detach().cpu())
    if not xs:
        raise GdsolverError(f"{name}: the DataLoader yields no batches (empty data)")
    return torch.cat(xs), torch.cat(ys)


def as_tensor_data(data: Any, task: str, *, name: str, dtype: torch.dtype = torch.float32) -> TensorData:
    """(X, y) pair or DataLoader -> TensorData; y int64 labels (classification) or float targets."""
    if data is None:
        raise GdsolverError(f"{name}: no data given")
    if isinstance(data, torch.utils.data.DataLoader):
        X, y = _from_loader(data, name)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
    else:
        raise GdsolverError(f"{name}: expected an (X, y) pair of arrays/tensors or a DataLoader, "
                            f"got {type(data).__name__}")
    X = as_samples(X, what=f"{name} X")
    y = as_samples(y, what=f"{name} y")
    if len(X) != len(y):
        raise GdsolverError(f"{name}: X has {len(X)} samples but y has {len(y)}")
    Xt = torch.as_tensor(np.ascontiguousarray(X)).to(dtype) if np.issubdtype(X.dtype, np.floating) or \
        X.dtype.kind in "iub" else None
    if Xt is None:
        raise GdsolverError(f"{name} X: dtype {X.dtype} is not numeric")
    if task == "classification":
        if y.ndim != 1:
            raise GdsolverError(f"{name} y: class labels must be 1-D, got shape {y.shape}")
        if y.dtype.kind == "f":
            if not np.all(y == np.round(y)):
                raise GdsolverError(f"{name} y: class labels must be integers, got non-integer values")
        elif y.dtype.kind not in "iub":
            raise GdsolverError(f"{name} y: class labels must be integers, got dtype {y.dtype}")
        yt = torch.as_tensor(y.astype(np.int64))
    else:
        yt = torch.as_tensor(np.ascontiguousarray(y, dtype=np.float64)).to(dtype)
    return TensorData(Xt, yt, name)


def check_targets(data: TensorData, task: str, n_outputs: int) -> None:
    """Labels in 0..M-1 (classification) or targets shaped like the outputs (regression)."""
    if task == "classification":
        lo, hi = int(data.y.min()), int(data.y.max())
        if lo < 0 or hi >= n_outputs:
            raise GdsolverError(f"{data.name} y: labels must be in 0..{n_outputs - 1} (the model has {n_outputs} "
                                f"outputs), got range {lo}..{hi}")
    else:
        shape = tuple(data.y.shape[1:])
        if shape not in ((n_outputs,), ()) or (shape == () and n_outputs != 1):
            raise GdsolverError(f"{data.name} y: targets of shape {tuple(data.y.shape)} do not match the model's "
                                f"{n_outputs} outputs; expected ({len(data)}, {n_outputs})")
