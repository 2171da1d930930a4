"""MNIST / Fashion-MNIST idx files, read with numpy only (``np.frombuffer``).

An idx file is a big-endian header -- a 4-byte magic number (two zero bytes, the type code 0x08
for unsigned bytes, the number of dimensions) and one uint32 per dimension -- followed by the
data. Images: magic 0x00000803, dims (n, rows, cols); labels: magic 0x00000801, dims (n,).
Files may be gzipped (recognised by their first two bytes, whatever their name) or raw.

Every check failure is a FormatError naming the file and the field: the magic number, a header
truncated before its dimensions, data shorter or longer than the dimensions declare, corrupt
gzip data, image/label counts that differ, labels outside 0..9, image sizes other than 28x28.

File names looked for in a directory (``.gz`` or not; the dotted variant
``train-images.idx3-ubyte`` some mirrors use is accepted too)::

    train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

Where the directory is looked for: see ``gdsolver.data.locate``.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gdsolver.data.locate import ImageData, find_data_dir
from gdsolver.data.npz import check_data_size
from gdsolver.errors import FormatError, MissingFileError

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)

IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_CHUNK = 1 << 22


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115 - closed by the caller


def _read(f: BinaryIO, n: int) -> bytes:
    """Up to n bytes (fewer only at end of file), in bounded chunks: a header declaring absurd
    dimensions must not make us allocate them."""
    parts, got = [], 0
    while got < n:
        b = f.read(min(_CHUNK, n - got))
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def read_idx(path: str | os.PathLike, magic: int, what: str = "idx") -> np.ndarray:
    """The uint8 array stored in idx file `path`, whose magic number must be `magic`."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with _open(path) as f:
            head = _read(f, 4)
            if len(head) < 4:
                raise FormatError(f"{path}: truncated: {len(head)} bytes, too short for the idx magic number")
            found = int.from_bytes(head, "big")
            if found != magic:
                raise FormatError(f"{path}: bad magic number 0x{found:08x}, expected 0x{magic:08x} "
                                  f"({what} idx file)")
            ndim = magic & 0xFF
            raw_dims = _read(f, 4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise FormatError(f"{path}: truncated header: {ndim} dimensions declared, "
                                  f"{len(raw_dims) // 4} present")
            dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
            size = math.prod(dims)
            # the header's claim is checked before anything is allocated or inflated: a raw file
            # must hold exactly that many bytes, and no file may declare more than the limit
            if not gz:
                left = path.stat().st_size - 4 - 4 * ndim
                if left != size:
                    raise FormatError(f"{path}: {'truncated data' if left < size else 'file size does not match'}: "
                                      f"header dims {dims} declare {size} bytes, the file holds {left} after the "
                                      "header")
            check_data_size(str(path), size, f"{what} (header dims {dims})")
            data = np.empty(size, dtype=np.uint8)
            got = _read_into(f, data)
            extra = f.read(1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise FormatError(f"{path}: corrupt gzip data ({exc})") from None
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if got < size:
        raise FormatError(f"{path}: truncated data: header dims {dims} declare {size} bytes, "
                          f"file holds {got}")
    if extra:
        raise FormatError(f"{path}: file size does not match header dims {dims}: data continues after "
                          f"the {size} bytes they declare")
    return data.reshape(dims)


def _read_into(f: BinaryIO, out: np.ndarray) -> int:
    """Fill `out` (uint8) from f in bounded chunks; the number of bytes read (fewer at end of file)."""
    view = memoryview(out).cast("B") if out.size else memoryview(b"")
    got = 0
    while got < out.size:
        n = f.readinto(view[got:got + _CHUNK])
        if not n:
            break
        got += n
    return got


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Images (n, rows, cols) uint8 from an idx3 file."""
    return read_idx(path, IDX_IMAGES_MAGIC, "images")


def read_idx_labels(path: str | os.PathLike, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Labels (n,) uint8 from an idx1 file, checked to lie in 0..num_classes-1."""
    y = read_idx(path, IDX_LABELS_MAGIC, "labels")
    bad = np.flatnonzero(y >= num_classes)
    if len(bad):
        raise FormatError(f"{path}: label {int(y[bad[0]])} at index {int(bad[0])} out of range "
                          f"0..{num_classes - 1} ({len(bad)} such labels)")
    return y


def read_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike,
                  image_shape: tuple[int, int] | None = IMAGE_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 1, rows, cols) uint8, labels (n,) uint8), checked to have the same count and,
    unless image_shape is None, images of that size."""
    X = read_idx_images(images_path)
    y = read_idx_labels(labels_path)
    if image_shape is not None and X.shape[1:] != tuple(image_shape):
        raise FormatError(f"{images_path}: images are {X.shape[1]}x{X.shape[2]}, expected "
                          f"{image_shape[0]}x{image_shape[1]}")
    if len(X) != len(y):
        raise FormatError(f"{labels_path}: label count {len(y)} does not match the image count {len(X)} "
                          f"of {Path(images_path).name}")
    return X[:, None, :, :], y


def idx_file(directory: str | os.PathLike, base: str) -> Path | None:
    """The file for idx name `base` in `directory` (raw or .gz, dashed or dotted), or None."""
    d = Path(directory)
    dotted = base.replace("-idx", ".idx")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        if (d / name).is_file():
            return d / name
    return None


def load_idx_dir(directory: str | os.PathLike, image_shape: tuple[int, int] | None = IMAGE_SHAPE) -> ImageData:
    """The four idx files of an MNIST-format directory, read and checked."""
    d = Path(directory)
    paths = {}
    for key, base in IDX_FILES.items():
        p = idx_file(d, base)
        if p is None:
            raise MissingFileError(f"{d / base}: file not found (neither raw nor .gz); an MNIST-format directory "
                              f"holds {', '.join(IDX_FILES.values())}")
        paths[key] = p
    Xtr, ytr = read_idx_pair(paths["train_images"], paths["train_labels"], image_shape)
    Xte, yte = read_idx_pair(paths["test_images"], paths["test_labels"], image_shape)
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise FormatError(f"{paths['test_images']}: images are {Xte.shape[2]}x{Xte.shape[3]} but the training "
                          f"images are {Xtr.shape[2]}x{Xtr.shape[3]}")
    return ImageData(Xtr, ytr, Xte, yte, d)


def load_idx(name: str = "fashion-mnist", data_dir: str | os.PathLike | None = None,
             image_shape: tuple[int, int] | None = IMAGE_SHAPE) -> ImageData:
    """MNIST ("mnist") or Fashion-MNIST ("fashion-mnist") from the first directory of the search
    order (gdsolver.data.locate) that holds its training images."""
    d = find_data_dir(name, data_dir, lambda p: idx_file(p, IDX_FILES["train_images"]) is not None,
                      f"{IDX_FILES['train_images']}[.gz] and the other idx files")
    return load_idx_dir(d, image_shape)
