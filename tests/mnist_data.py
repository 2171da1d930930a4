"""Where the tests find the real MNIST idx files (../shared/data/mnist beside the repository, or
$GDSOLVER_MNIST_DIR), and the mark that skips a test with the reason when they are not there: a
user's clone has none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MNIST_DIR = Path(os.environ.get("GDSOLVER_MNIST_DIR", Path(__file__).resolve().parents[1].parent / "shared/data/mnist"))
needs_mnist = pytest.mark.skipif(not any(MNIST_DIR.glob("train-images*")),
                                 reason=f"real MNIST idx files not found at {MNIST_DIR} (set GDSOLVER_MNIST_DIR)")
