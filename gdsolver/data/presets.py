"""The paper preset: box half-widths (radius) and margin as the authors' released code used them.

These are facts about the original experiments, recorded so that a run can say "paper preset"
and mean exactly these numbers; gdsolver's own defaults are chosen elsewhere.

- ``PAPER_RADIUS[name]``: half-width r of the box |W - W0| <= r around the current final-layer
  weights, per data set. The authors used 0.05 (identity), 500 (affine), 5 (polynomial),
  50 (formula) for the regression equations and 0.05 for MNIST and CIFAR10. "fashion-mnist",
  "digits" and "digits-images" get the image value 0.05 by analogy (the authors did not run them).
  "diabetes" has no paper value and is deliberately absent.
- ``PAPER_MARGIN``: the margin the authors used for strict inequalities, 1e-4.

Both are read-only (a ``MappingProxyType``); copy with ``dict(PAPER_RADIUS)`` to modify.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gdsolver.errors import GdsolverError

PAPER_RADIUS: Mapping[str, float] = MappingProxyType({
    "identity": 0.05,
    "affine": 500.0,
    "polynomial": 5.0,
    "formula": 50.0,
    "mnist": 0.05,
    "cifar10": 0.05,
    "fashion-mnist": 0.05,   # by analogy with MNIST
    "digits": 0.05,          # by analogy with MNIST
    "digits-images": 0.05,   # by analogy with MNIST
})

PAPER_MARGIN: float = 1e-4


def paper_radius(name: str) -> float:
    """The paper preset's box half-width for data set `name`; GdsolverError if it has none."""
    try:
        return PAPER_RADIUS[name]
    except KeyError:
        raise GdsolverError(f"paper preset: no box radius for data set {name!r}; the paper's presets cover "
                            f"{sorted(PAPER_RADIUS)}") from None
