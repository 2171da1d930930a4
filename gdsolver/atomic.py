"""Atomic file writes: write to a temporary file in the target's directory, fsync,
then rename over the target, so a crash or an error never leaves a partial file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """For writers that take a file name (solver model writers): yields a temporary
    path in the target's directory, renamed over `path` when the block succeeds."""
    path = Path(path)
    check_output_path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """An open file whose contents replace `path` only once the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(path: str | os.PathLike) -> None:
    """A clear error for an output path that cannot be a file we write."""
    from gdsolver.errors import GdsolverError

    raw = os.fspath(path)
    path = Path(path)
    if raw.endswith(("/", os.sep)) or path.is_dir():
        raise GdsolverError(f"{raw}: is a directory, expected an output file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise GdsolverError(f"{raw}: directory {parent} does not exist")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
