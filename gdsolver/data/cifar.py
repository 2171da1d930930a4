"""CIFAR-10, binary version only (``cifar-10-binary.tar.gz``, extracting to ``cifar-10-batches-bin``).

Files: ``data_batch_1.bin`` .. ``data_batch_5.bin`` (training, in that order) and
``test_batch.bin``. Each is a sequence of 3073-byte records: one label byte (0..9) and 3072 pixel
bytes, the 32x32 red plane, then green, then blue, each row-major -- so a record's pixels reshape
directly to (3, 32, 32).

The python version (``data_batch_1`` without extension, pickled) is never read: unpickling
runs arbitrary code. A directory holding only that version gives an error asking for the binary
version. Checks: every file present, size a non-zero multiple of 3073 bytes, labels in 0..9
(a pickle renamed to .bin fails here, and is named as such).

Where the directory is looked for: see ``gdsolver.data.locate``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gdsolver.data.locate import ImageData, find_data_dir
from gdsolver.errors import FormatError, MissingFileError

RECORD_BYTES = 1 + 3 * 32 * 32
NUM_CLASSES = 10
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
_PICKLE_NAMES = ("data_batch_1", "test_batch")


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 3, 32, 32) uint8, labels (n,) uint8) of one CIFAR-10 binary batch file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:1] == b"\x80" and raw[-1:] == b".":
        raise FormatError(f"{path}: looks like a python pickle, not the CIFAR-10 binary version; gdsolver never "
                          "unpickles: use the binary version (cifar-10-binary.tar.gz, cifar-10-batches-bin)")
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise FormatError(f"{path}: file size {len(raw)} is not a non-zero multiple of the record size "
                          f"{RECORD_BYTES} (1 label byte + 3072 pixel bytes): truncated or not a CIFAR-10 binary batch")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    y = rec[:, 0].copy()
    bad = np.flatnonzero(y >= NUM_CLASSES)
    if len(bad):
        raise FormatError(f"{path}: label {int(y[bad[0]])} of record {int(bad[0])} out of range 0..{NUM_CLASSES - 1} "
                          f"({len(bad)} such records)")
    return rec[:, 1:].reshape(-1, 3, 32, 32), y


def _holds(d: Path) -> bool:
    return (d / TRAIN_FILES[0]).is_file() or any((d / n).is_file() for n in _PICKLE_NAMES)


def load_cifar10_dir(directory: str | os.PathLike) -> ImageData:
    """The five training batches (concatenated in order) and the test batch of a directory."""
    d = Path(directory)
    if not (d / TRAIN_FILES[0]).is_file() and any((d / n).is_file() for n in _PICKLE_NAMES):
        raise FormatError(f"{d}: holds only the python (pickle) version of CIFAR-10 (data_batch_1, no .bin); "
                          "gdsolver never unpickles: download and extract the binary version "
                          "(cifar-10-binary.tar.gz, directory cifar-10-batches-bin)")
    missing = [n for n in (*TRAIN_FILES, TEST_FILE) if not (d / n).is_file()]
    if missing:
        raise MissingFileError(f"{d / missing[0]}: file not found; a CIFAR-10 binary directory holds "
                          f"{', '.join((*TRAIN_FILES, TEST_FILE))}")
    parts = [read_cifar_batch(d / n) for n in TRAIN_FILES]
    Xte, yte = read_cifar_batch(d / TEST_FILE)
    return ImageData(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), Xte, yte, d)


def load_cifar10(data_dir: str | os.PathLike | None = None) -> ImageData:
    """CIFAR-10 from the first directory of the search order (gdsolver.data.locate) holding it."""
    d = find_data_dir("cifar10", data_dir, _holds, f"{', '.join(TRAIN_FILES)}, {TEST_FILE}")
    return load_cifar10_dir(d)
