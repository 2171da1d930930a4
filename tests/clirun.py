"""Running the CLI as a user would, and checking its one-line errors.

`run` calls the CLI in this process: the same `app(argv)` the installed `gdsolver` script
calls, in `cwd`, with file descriptors 1 and 2 (and sys.stdout/sys.stderr on them) sent to
temporary files, so that what native libraries print (onnxruntime's log, a solver's lines)
is captured with the rest, as from a subprocess; under Python's default warning filters (a
warning shows on stderr as it would for a user); an uncaught exception becomes the traceback
on stderr and exit code 1, as Python gives it. Starting a new Python costs seconds per call
(torch, onnx), so this is what the CLI tests use.

`run_subprocess` starts the installed script in a new Python, for the few tests that check
the real process: the console script itself, signals, stdout closed or not a terminal, the
interpreter's own exit, a fresh interpreter state."""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 300  # seconds: a hung command fails its test instead of the suite
GDSOLVER = Path(sys.executable).with_name("gdsolver")  # the installed console script


@dataclass
class Ran:
    """What subprocess.CompletedProcess gives a test: args, returncode, stdout, stderr."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


class _Hung(BaseException):
    """Raised by the timeout alarm; a BaseException so that no `except Exception` in the
    command can swallow it (TimeoutError is an OSError, which the CLI turns into exit 2)."""


# Python's warning filters when started without -W or PYTHONWARNINGS (pytest installs its own
# during a test and records warnings instead of printing them).
_DEFAULT_FILTERS = [("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, ""),
                    ("ignore", PendingDeprecationWarning, ""), ("ignore", ImportWarning, ""),
                    ("ignore", ResourceWarning, "")]


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python's own display of a warning, on the (captured) sys.stderr."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _exit_code(exc: SystemExit, stderr) -> int:
    """The exit status Python gives `sys.exit(code)`: None is 0, an int is itself, anything
    else is printed on stderr and gives 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=stderr)
    return 1


_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def _fds_to_files():
    """fd 1 and 2 into two temporary files for the block, with sys.stdout and sys.stderr
    (line-buffered, like a Python's own) writing to them; yields a function returning
    (stdout, stderr) as text once the block's output is flushed. Restores everything after."""
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    streams = sys.stdout, sys.stderr
    for s in streams:
        s.flush()
    _libc.fflush(None)
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(files[0].fileno(), 1)
        os.dup2(files[1].fileno(), 2)
        sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), encoding="utf-8", line_buffering=True)
        sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), encoding="utf-8", errors="backslashreplace",
                                      line_buffering=True)

        def read() -> tuple[str, str]:
            sys.stdout.flush()
            sys.stderr.flush()
            _libc.fflush(None)  # what C code printed into its stdio buffers
            out = []
            for f in files:
                f.seek(0)
                out.append(f.read().decode("utf-8", "replace"))
            return out[0], out[1]

        yield read
    finally:
        for s in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                s.flush()
        _libc.fflush(None)
        sys.stdout, sys.stderr = streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        for f in files:
            f.close()


@contextlib.contextmanager
def _environment(env: dict[str, str | None] | None):
    old = {k: os.environ.get(k) for k in env or {}}
    try:
        for k, v in (env or {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _alarm(seconds: float):
    """_Hung raised in the main thread after `seconds` (nothing off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def hung(*_):
        raise _Hung
    old_handler = signal.signal(signal.SIGALRM, hung)
    old_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, *old_timer)
        signal.signal(signal.SIGALRM, old_handler)


def run(*args: str, cwd: Path, timeout: float = TIMEOUT, env: dict[str, str | None] | None = None) -> Ran:
    """`gdsolver ARGS...` run in this process from directory `cwd`. env: variables to set
    (None: unset) for the call only."""
    from gdsolver.cli.main import app

    argv = [str(a) for a in args]
    old_cwd = os.getcwd()
    try:
        with _environment(env), _alarm(timeout), _fds_to_files() as read:
            os.chdir(cwd)
            with warnings.catch_warnings():
                warnings.resetwarnings()
                for action, category, module in reversed(_DEFAULT_FILTERS):
                    warnings.filterwarnings(action, category=category, module=module)
                warnings.showwarning = _print_warning
                try:
                    app(argv, prog_name="gdsolver")
                    code = 0  # the app always exits; returning counts as 0
                except SystemExit as exc:
                    code = _exit_code(exc, sys.stderr)
                except _Hung:
                    out, err = read()
                    raise subprocess.TimeoutExpired(["gdsolver", *argv], timeout, out, err) from None
                except KeyboardInterrupt:  # what Python does when Ctrl-C escapes: traceback, killed by SIGINT
                    traceback.print_exc(file=sys.stderr)
                    code = -signal.SIGINT
                except Exception:  # noqa: BLE001 - an uncaught error: the traceback, exit 1
                    traceback.print_exc(file=sys.stderr)
                    code = 1
            stdout, stderr = read()
    finally:
        os.chdir(old_cwd)
    return Ran(["gdsolver", *argv], code, stdout, stderr)


def run_subprocess(*args: str, cwd: Path, timeout: float = TIMEOUT, **kw) -> subprocess.CompletedProcess:
    """`gdsolver ARGS...` as a new process through the installed console script."""
    return subprocess.run([str(GDSOLVER), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)


def assert_user_error(p, *needles: str) -> None:
    """Exit code 2, exactly one 'error: ...' line on stderr containing every needle, no traceback."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
