"""Checks on the paths gdsolver reads and writes, made before anything is opened or computed.

Reading: a path, given by the user or named inside a file, is resolved (symlinks followed),
must exist and be a regular file (never /dev/zero, a FIFO, a socket or a directory, which
would hang or read forever), may be required to lie inside a directory (an ONNX model's
external data) and to be no larger than a limit. `open_input` opens without blocking and
checks the open descriptor itself, so the file checked is the file read.

Writing: an output path may not be a directory, its directory must exist and be writable, and
it may not be one of the same command's inputs (`check_output`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from gdsolver.errors import FormatError, GdsolverError, MissingFileError

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket"}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _check_stat(shown: str, st: os.stat_result, what: str, max_bytes: int | None) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(f"{shown}: is {_kind(st.st_mode)}, expected a regular {what}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FormatError(f"{shown}: {what} is {st.st_size} bytes, more than the {max_bytes} allowed")


def resolve_input(path: str | os.PathLike, what: str = "file", *, within: str | os.PathLike | None = None,
                  max_bytes: int | None = None, shown: str | None = None) -> Path:
    """The resolved path of an existing regular file; FormatError (one line) otherwise.
    `within`: the resolved file must lie inside this directory (after resolving it too)."""
    shown = shown if shown is not None else os.fspath(path)
    try:
        real = Path(path).resolve(strict=True)
    except FileNotFoundError:
        raise MissingFileError(f"{shown}: file not found") from None
    except (OSError, RuntimeError) as exc:  # symlink loop, permission, name too long
        raise FormatError(f"{shown}: cannot resolve path ({getattr(exc, 'strerror', None) or exc})") from None
    if within is not None:
        root = Path(within).resolve()
        if real != root and root not in real.parents:
            raise FormatError(f"{shown}: resolves to {real}, outside {root}; refusing to read it")
    try:
        st = real.stat()
    except OSError as exc:
        raise FormatError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    _check_stat(shown, st, what, max_bytes)
    return real


def open_input(path: str | os.PathLike, what: str = "file", *, within: str | os.PathLike | None = None,
               max_bytes: int | None = None, shown: str | None = None) -> BinaryIO:
    """resolve_input, then open for reading without blocking (a FIFO would block in open())
    and re-check the opened descriptor (the file may have been swapped in between)."""
    shown = shown if shown is not None else os.fspath(path)
    real = resolve_input(path, what, within=within, max_bytes=max_bytes, shown=shown)
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise FormatError(f"{shown}: cannot open ({exc.strerror or exc})") from None
    try:
        _check_stat(shown, os.fstat(fd), what, max_bytes)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input(path: str | os.PathLike, what: str = "file", *, max_bytes: int,
               within: str | os.PathLike | None = None, shown: str | None = None) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (read stops there even if it grew)."""
    with open_input(path, what, within=within, max_bytes=max_bytes, shown=shown) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FormatError(f"{shown or os.fspath(path)}: {what} is more than the {max_bytes} bytes allowed")
    return data


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when a and b name the same file (existing: same inode; else same resolved path)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        pass
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop is no file we could write to
        return os.path.abspath(a) == os.path.abspath(b)


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                 what: str = "output", suffixes: tuple[str, ...] | None = None) -> Path:
    """An output path that can be written and is none of `inputs`; GdsolverError otherwise.
    Call it before the work starts."""
    raw = os.fspath(path)
    p = Path(path)
    if raw.endswith(("/", os.sep)) or p.is_dir():
        raise GdsolverError(f"{raw}: is a directory, expected an {what} file path")
    if suffixes is not None and not raw.lower().endswith(suffixes):
        raise GdsolverError(f"{raw}: {what} must end with {' or '.join(suffixes)}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise GdsolverError(f"{raw}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):  # a read-only directory or file system: found now, not after the work
        raise GdsolverError(f"{raw}: directory {parent} is not writable; nothing can be written there")
    if p.exists() and not p.is_file():
        raise GdsolverError(f"{raw}: exists and is {_kind(p.stat().st_mode)}, expected a regular {what} file")
    for src in inputs:
        if src is not None and same_file(p, src):
            raise GdsolverError(f"{raw}: is also an input of this command ({os.fspath(src)}); refusing to "
                                f"overwrite it, choose another {what} path")
    return p
