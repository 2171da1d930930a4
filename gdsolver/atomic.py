"""Atomic file writes: write to a temporary file in the target's directory, fsync,
then rename over the target (and fsync the directory), so a crash or an error never
leaves a partial file. An I/O error (disk full, quota, read-only) is reported against
the target path, not the temporary file."""

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
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=directory)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    try:
        try:
            yield tmp
        except OSError as exc:
            raise _write_error(path, exc) from None
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
            os.replace(tmp, path)
            fsync_dir(directory)
        except OSError as exc:
            raise _write_error(path, exc) from None
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


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename in `directory` durable (best effort: not every platform can)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_error(path: Path, exc: OSError):
    from gdsolver.errors import GdsolverError

    return GdsolverError(f"{path}: cannot write ({exc.strerror or exc}); nothing was written there")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(path: str | os.PathLike) -> None:
    """A clear error for an output path that cannot be a file we write."""
    from gdsolver.paths import check_output

    check_output(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
