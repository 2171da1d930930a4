"""A torch DataLoader given as training data, used as given.

GD epochs iterate the loader itself, so its batch size, sampler, shuffling, drop_last and
transforms are what training sees (an epoch is one pass of the loader). The sweeps and the
evaluations need every point at once: they read the loader through once when `fit` starts
(gdsolver.train.tensors). A loader that cannot be used so is refused with one line."""

from __future__ import annotations

from typing import Any

import torch

from gdsolver.errors import GdsolverError


def check_loader(data: Any, name: str) -> torch.utils.data.DataLoader | None:
    """`data` when it is a DataLoader GD can iterate epoch after epoch, None when it is not a
    DataLoader; a loader that would yield nothing or never end is refused."""
    if not isinstance(data, torch.utils.data.DataLoader):
        return None
    if isinstance(data.dataset, torch.utils.data.IterableDataset):
        try:
            len(data.dataset)
        except TypeError:
            raise GdsolverError(f"{name}: a DataLoader over an IterableDataset without __len__ cannot be used: the "
                                "sweeps read the training data through once and need it to end; give the dataset "
                                "a __len__, or pass (X, y) tensors") from None
    if data.batch_size is None and data.batch_sampler is None:
        raise GdsolverError(f"{name}: a DataLoader with batch_size=None yields single samples, not batches; give it "
                            "a batch_size (or pass (X, y) tensors)")
    return data


def loader_batch(xb: Any, yb: Any, like: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of the user's loader as the trainer's tensors: the dtype and target shape of
    the data read through at the start (`like`, a TensorData)."""
    xb = torch.as_tensor(xb).detach().cpu().to(like.X.dtype)
    yb = torch.as_tensor(yb).detach().cpu().to(like.y.dtype)
    if like.y.dim() == 2 and yb.dim() == 1:  # (T,) targets of a 1-output regression model
        yb = yb[:, None]
    return xb, yb
