"""The MNIST models the scripts here sweep, trained once by seeded minibatch Adam
(gdsolver.bench.repair_bench.adam_epochs: lr 1e-3, batch 128) and cached outside the repository.

- "mlp-784-256-128-10" (any "mlp-784-..." name): Flatten, Linear+ReLU per hidden size, Linear(., 10);
- "cnn": the issue's conv net, Unflatten to 1x28x28, Conv2d(1, 8, 5), ReLU, MaxPool 2,
  Conv2d(8, 16, 5), ReLU, MaxPool 2, Flatten, Linear(256, 64), ReLU, Linear(64, 10). It takes the
  flattened 784 inputs, as the MLP does, so that one Adam loop and one sweep code serve both.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gdsolver.bench.repair_bench import adam_epochs

MLP = "mlp-784-256-128-10"
CNN = "cnn"


def add_common_args(ap) -> None:
    """The options every MNIST script takes: where the idx files are, the model cache, the output."""
    ap.add_argument("--data", default="/work/shared/data/mnist")
    ap.add_argument("--cache", default="/tmp/gdsolver_mnist_cache")
    ap.add_argument("--out", required=True)


def build(arch: str) -> nn.Sequential:
    if arch == CNN:
        return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 64),
                             nn.ReLU(), nn.Linear(64, 10))
    if not arch.startswith("mlp-784-"):
        raise ValueError(f"arch: {arch!r}, expected {CNN!r} or 'mlp-784-<hidden sizes>-10'")
    sizes = [int(s) for s in arch.split("-")[1:]]
    mods: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(sizes[-2], sizes[-1]))


def trained(split, arch: str, epochs: int, seed: int, cache: Path) -> nn.Sequential:
    """`arch` after `epochs` epochs of Adam on split.train from torch seed `seed` (cached in `cache`
    as state dicts, loaded with weights_only)."""
    path = Path(cache) / f"mnist_{arch}_e{epochs}_s{seed}.pt"
    torch.manual_seed(seed)
    model = build(arch)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model
    adam_epochs(model, *split.train, epochs=epochs, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model
