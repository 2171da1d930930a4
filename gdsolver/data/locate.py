"""Where image data set files are looked for, and what the readers return.

Search order for a data set's directory:

1. an explicit ``data_dir`` (the ``--data-dir`` option): only there, nothing else is tried;
2. otherwise the directory named by the environment variable ``GDSOLVER_DATA``;
3. then the location of the Debian package, for Fashion-MNIST only:
   ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``, which
   installs the four gzipped idx files there).

Within each of those base directories the files are looked for in the directory itself and then
in the conventional subdirectories listed in ``SUBDIRS`` (e.g. ``$GDSOLVER_DATA/fashion-mnist``,
``$GDSOLVER_DATA/cifar-10-batches-bin``), so one ``GDSOLVER_DATA`` root can hold every data set.
The first directory that holds the data set's first file wins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gdsolver.errors import FormatError

ENV_VAR = "GDSOLVER_DATA"

SUBDIRS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist", "MNIST", "MNIST/raw"),
    "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST", "FashionMNIST/raw"),
    # the pickle directory is listed last only so that a pickle-only install gets a clear error
    "cifar10": ("cifar-10-batches-bin", "cifar10", "cifar-10", "cifar-10-batches-py"),
}

# Distribution packages that install a data set (module-level so that tests can redirect them).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
SYSTEM_HINTS: dict[str, str] = {
    "fashion-mnist": "apt-get install dataset-fashion-mnist",
}


class ImageData(NamedTuple):
    """A data set's training and test files as read: uint8 images (n, C, H, W), uint8 labels (n,)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: Path


def candidate_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for data set `name`, in order (see the module docstring)."""
    subdirs = SUBDIRS.get(name, ())
    if data_dir is not None:
        bases = [Path(data_dir)]
    else:
        env = os.environ.get(ENV_VAR, "").strip()
        bases = [Path(env)] if env else []
    out = [d for base in bases for d in (base, *(base / s for s in subdirs))]
    if data_dir is None:
        out.extend(SYSTEM_DIRS.get(name, ()))
    return out


def find_data_dir(name: str, data_dir: str | os.PathLike | None, holds: Callable[[Path], bool],
                  expected: str) -> Path:
    """The first candidate directory for which `holds(dir)` is true, else a FormatError saying where
    it looked, what it expected (`expected`, e.g. a file name) and how to provide the files."""
    dirs = candidate_dirs(name, data_dir)
    for d in dirs:
        if d.is_dir() and holds(d):
            return d
    where = ", ".join(str(d) for d in dirs) if dirs else "nowhere"
    how = "pass data_dir / --data-dir DIR"
    if data_dir is None:
        how += f" or set {ENV_VAR}=DIR"
    if name in SYSTEM_HINTS:
        how += f" or run `{SYSTEM_HINTS[name]}`"
    env_note = "" if data_dir is not None or os.environ.get(ENV_VAR, "").strip() else f" ({ENV_VAR} is not set)"
    raise FormatError(f"{name}: data files not found (expected {expected}); looked in: {where}{env_note}; {how}")
