"""A training run on disk (DESIGN.md "File format"):

    DIR/run.json               method, config, seeds, versions, history, final metrics; the run's
                               id and the sha256 of every sweep file it wrote
    DIR/sweeps/NNNN.gdsm       each sweep's instance (meta "run": the run id)
    DIR/sweeps/NNNN.result.json (+ its x .npy)  its solve result (run_id: the run id)
    DIR/sweeps/NNNN-closest.gdsm (+ result)    the closest-point LP after it (GDSolver closest=True)
    DIR/sweeps/NNNN-rK.gdsm (+ result)         round K of a smooth head's refinement
    DIR/sweeps/NNNN-cJ*.gdsm (+ results)       candidate J of a portfolio sweep (GDSolver portfolio=K)
    DIR/model.onnx             the final model (when it exports)
    DIR/model.state_dict.pt    the final weights; loads with torch.load(weights_only=True)
    DIR/.gdsolver-run.lock     held (flock) while a run writes the directory

One run writes a directory at a time: `DumpRun` takes the lock (a second run is refused
with one line; a lock left by a dead process is taken over), removes the previous run's
files, and replaces run.json with a "running" marker carrying the new run id, so a run
killed half-way never leaves an old run.json beside new sweeps. run.json is written last,
"complete", with the hashes. `gdsolver replay DIR` re-solves the sweeps without any
training code and first checks them against run.json (compile/replay.py `check_run`)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import json
import os
import platform
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from gdsolver._version import __version__, package_version
from gdsolver.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from gdsolver.compile.replay import DUMP_FORMAT, RUN_FILE, RUN_FORMAT, SWEEP_FILE, sweep_manifest
from gdsolver.errors import GdsolverError

RUN_VERSION = 2
LOCK_FILE = ".gdsolver-run.lock"
MODEL_FILES = ("model.onnx", "model.state_dict.pt")
_ACTIVE: dict[str, str] = {}  # resolved dump directory -> id of the run this process writes there


def sweep_paths(dump_dir: str | os.PathLike, k: int, suffix: str = "") -> tuple[Path, Path]:
    d = Path(dump_dir) / "sweeps"
    return d / f"{k:04d}{suffix}.gdsm", d / f"{k:04d}{suffix}.result.json"


def clear_sweeps(dump_dir: str | os.PathLike) -> None:
    """Remove the sweep files of an earlier run in the same directory (only files named as
    this module writes them), so that the directory never mixes two runs' sweeps."""
    d = Path(dump_dir) / "sweeps"
    if d.is_dir():
        for f in d.iterdir():
            if f.is_file() and SWEEP_FILE.match(f.name):
                f.unlink()


def write_sweep(dump_dir: str | os.PathLike, k: int, inst, res, suffix: str = "") -> None:
    """Save sweep k's instance and (when the solve ran) its result; suffix "-closest" for
    the closest-point LP that follows the MIP."""
    from gdsolver.compile.result import save_result
    from gdsolver.ir.gdsm import save

    inst_path, res_path = sweep_paths(dump_dir, k, suffix)
    inst_path.parent.mkdir(parents=True, exist_ok=True)
    run_id = current_run_id(dump_dir)
    if run_id:  # tie the files to run.json (a copy: the caller's instance keeps its meta)
        inst = dataclasses.replace(inst, meta={**inst.meta, "run": {"id": run_id, "file": inst_path.name}})
    save(inst, inst_path)
    if res is not None:
        res.instance_file = inst_path.name
        res.run_id = run_id
        save_result(res, res_path)


def dump_kind(d: Path) -> str | None:
    """What gdsolver dump `d` is: RUN_FORMAT (one training run), DUMP_FORMAT (the root of
    `gdsolver train --dump`: one folder per method), "" (empty, or only a lock left by a run
    killed before it wrote anything); None when it is not a gdsolver dump."""
    entries = {e.name for e in d.iterdir()}
    if not entries - {LOCK_FILE}:
        return ""
    if RUN_FILE not in entries:
        return None
    from gdsolver.paths import read_input

    try:
        doc = json.loads(read_input(d / RUN_FILE, "run.json", max_bytes=1 << 28))
    except (GdsolverError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    return fmt if fmt in (RUN_FORMAT, DUMP_FORMAT) else None


def _foreign(d: Path) -> str:
    """The file a run would overwrite in `d` (or, when none would be, the first entry that shows
    `d` is not a dump): the words naming it."""
    ours = [RUN_FILE, *MODEL_FILES, "sweeps"]
    for name in ours:
        if (d / name).exists():
            what = "is not a gdsolver run file" if name == RUN_FILE else "is not from a gdsolver run"
            return f"{d / name} would be overwritten ({what})"
    first = sorted(e.name for e in d.iterdir())[0]
    return f"it holds {first}"


def make_dump_dir(d: Path, want: tuple[str, ...]) -> None:
    """Create dump directory `d`, or accept it when it is empty or a dump of a kind in `want`;
    anything else (a user's directory, a file) is refused naming what would be overwritten,
    before anything is written."""
    check_dump_dir(d, want)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GdsolverError(f"{d}: cannot create the dump directory ({exc.strerror or exc})") from None


def check_dump_dir(d: str | os.PathLike, want: tuple[str, ...] = (DUMP_FORMAT, RUN_FORMAT)) -> None:
    """make_dump_dir's refusals, without creating anything (for a check before the work)."""
    d = Path(d)
    if d.exists() and not d.is_dir():
        raise GdsolverError(f"{d}: exists and is not a directory; choose another dump directory")
    if d.is_dir():
        try:
            kind = dump_kind(d)
        except OSError as exc:
            raise GdsolverError(f"{d}: cannot read the dump directory ({exc.strerror or exc})") from None
        if kind is None:
            raise GdsolverError(f"{d}: exists and is not a gdsolver dump directory; {_foreign(d)}; choose a new "
                                "or empty directory")
        if kind and kind not in want:
            what = ("the root of a dump of several methods (one folder per method)" if kind == DUMP_FORMAT
                    else "one training run's dump")
            raise GdsolverError(f"{d / RUN_FILE}: would be overwritten: {d} is {what}; choose another directory")
        if not os.access(d, os.W_OK | os.X_OK):
            raise GdsolverError(f"{d}: the dump directory is not writable")
        return
    parent = next((p for p in d.absolute().parents if p.exists()), None)
    if parent is not None and (not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK)):
        raise GdsolverError(f"{d}: cannot create the dump directory ({parent} is not a writable directory)")


def clear_run_dir(d: Path) -> None:
    """Remove what a run wrote into `d` (only files named as this module writes them); `d` itself
    goes when nothing else is left in it."""
    clear_sweeps(d)
    with contextlib.suppress(OSError):
        (d / "sweeps").rmdir()
    for name in (*MODEL_FILES, RUN_FILE, LOCK_FILE):
        (d / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        d.rmdir()


class DumpRoot:
    """The root of `gdsolver train --dump DIR` (run_methods): one folder per method, each a run
    directory (DumpRun), and DIR/run.json, the manifest naming the methods of the latest
    invocation, which `gdsolver replay DIR` follows. The root is locked while the methods train;
    method folders of an earlier invocation that this one does not train are removed, and so is
    a run dumped at the root itself by an older gdsolver, so the root never holds two runs."""

    def __init__(self, root: str | os.PathLike, methods: list[str]) -> None:
        self.dir = Path(root)
        self.methods = list(methods)
        self.lock = DumpRun(self.dir)  # the same lock file and takeover rules as a run directory

    def __enter__(self) -> "DumpRoot":
        make_dump_dir(self.dir, (DUMP_FORMAT, RUN_FORMAT))
        legacy = dump_kind(self.dir) == RUN_FORMAT
        self.lock._lock()
        try:
            old = self._old_methods()
            if legacy:  # an older gdsolver's single-method run at the root
                clear_sweeps(self.dir)
                with contextlib.suppress(OSError):
                    (self.dir / "sweeps").rmdir()
                for name in MODEL_FILES:
                    (self.dir / name).unlink(missing_ok=True)
            for m in old:
                sub = self.dir / m
                if m not in self.methods and sub.is_dir() and not sub.is_symlink() and dump_kind(sub) == RUN_FORMAT:
                    clear_run_dir(sub)
            self._write("running")
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if exc is None:
                self._write("complete")
            else:
                with contextlib.suppress(Exception):
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    self._write("failed", error=f"{type(exc).__name__}: {first}")
        finally:
            self.lock.release()

    def method_dir(self, method: str) -> Path:
        return self.dir / method

    def _old_methods(self) -> list[str]:
        """Method folders the root's previous manifest names (and, for a root written before
        manifests, every folder holding a gdsolver run)."""
        from gdsolver.compile.replay import read_manifest

        doc = read_manifest(self.dir) if (self.dir / RUN_FILE).exists() else None
        if doc is not None:
            return [m for m in doc.get("methods", []) if isinstance(m, str)]
        return [e.name for e in self.dir.iterdir() if e.is_dir()]

    def _write(self, state: str, **extra: Any) -> None:
        doc = {"format": DUMP_FORMAT, "format_version": 1, "run_id": self.lock.run_id, "state": state,
               "started": self.lock.started, "methods": self.methods, **extra}
        atomic_write_text(self.dir / RUN_FILE, json.dumps(doc, indent=1, default=str) + "\n")


def _versions() -> dict[str, str]:
    out = {"gdsolver": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    return out | {p: package_version(p) for p in ("torch", "numpy", "highspy", "gurobipy", "onnx")}


def save_state_dict(model: torch.nn.Module, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str | os.PathLike) -> str | None:
    """Export with the TorchScript exporter (one self-contained file); returns an error text
    instead of raising, because a model that trains need not export."""
    import warnings

    from gdsolver.extract.torch_frontend import eval_mode

    try:
        with eval_mode(model), warnings.catch_warnings(), atomic_path(path) as tmp:
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


def write_run(trainer, run: "DumpRun | None" = None) -> Path:
    """run.json plus the final model, for a finished fit(); written last, with the run id
    and the sha256 of every sweep file, so replay can tell the run's files from others."""
    d = Path(trainer.dump_dir)
    d.mkdir(parents=True, exist_ok=True)
    save_state_dict(trainer.model, d / "model.state_dict.pt")
    onnx_error = export_onnx(trainer.model, trainer.train_data.X[:1], d / "model.onnx")
    if onnx_error is not None:  # no earlier run's model.onnx beside this run's run.json
        (d / "model.onnx").unlink(missing_ok=True)
    doc: dict[str, Any] = {
        "format": RUN_FORMAT,
        "format_version": RUN_VERSION,
        "run_id": run.run_id if run is not None else current_run_id(d),
        "state": "complete",
        "started": run.started if run is not None else None,
        "took_over": run.took_over if run is not None else None,
        "sweep_files": sweep_manifest(d / "sweeps"),
        "method": trainer.method,
        "task": trainer.task,
        "config": trainer.config(),
        "seed": trainer.seed,
        "versions": _versions(),
        "data": {"train_points": len(trainer.train_data),
                 "val_points": len(trainer.val_data) if trainer.val_data is not None else 0},
        "model_files": {"state_dict": "model.state_dict.pt", "onnx": None if onnx_error else "model.onnx"},
        "onnx_export_error": onnx_error,
        "summary": trainer.history.summary(),
        "history": trainer.history.to_json_dict(),
    }
    path = d / RUN_FILE
    atomic_write_text(path, json.dumps(doc, indent=1, allow_nan=False, default=str) + "\n")
    return path


def current_run_id(dump_dir: str | os.PathLike) -> str:
    """Id of the run writing `dump_dir`: this process's, else the lock holder's (a helper
    process writing for the run that holds the lock); "" when no run holds it."""
    d = Path(dump_dir).resolve()
    if str(d) in _ACTIVE:
        return _ACTIVE[str(d)]
    from gdsolver.paths import read_input

    try:
        doc = json.loads(read_input(d / LOCK_FILE, "lock file", max_bytes=4096) or b"{}")
    except (GdsolverError, ValueError):
        return ""
    return str(doc.get("run_id") or "") if isinstance(doc, dict) else ""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class DumpRun:
    """The lock and identity of one run writing a dump directory (use `dump_run`)."""

    def __init__(self, dump_dir: str | os.PathLike) -> None:
        self.dir = Path(dump_dir)
        self.run_id = uuid.uuid4().hex
        self.started = _now()
        self.took_over: dict[str, Any] | None = None  # the dead run whose lock this one took
        self._fd: int | None = None

    # ---- the lock ---------------------------------------------------------------
    def acquire(self) -> None:
        make_dump_dir(self.dir, (RUN_FORMAT,))
        self._lock()

    def _lock(self) -> None:
        lock = self.dir / LOCK_FILE
        for _ in range(10):  # retry when the lock file was replaced between open and lock
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                holder = self._read_holder(fd)
                if not self._try_lock(fd, holder):
                    raise GdsolverError(
                        f"{self.dir}: another training run is writing this dump directory (pid {holder.get('pid')} "
                        f"on {holder.get('host')}, run {str(holder.get('run_id'))[:12]}, since {holder.get('started')}); "
                        "wait for it to finish or choose another --dump directory")
                if os.fstat(fd).st_ino != os.stat(lock).st_ino:
                    os.close(fd)
                    continue
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
            self._fd = fd
            if holder.get("run_id"):  # a lock file we could take: its run died without releasing it
                self.took_over = {k: holder.get(k) for k in ("run_id", "pid", "host", "started")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"run_id": self.run_id, "pid": os.getpid(), "host": socket.gethostname(),
                                      "started": self.started}).encode(), 0)
            os.fsync(fd)
            _ACTIVE[str(self.dir.resolve())] = self.run_id
            return
        raise GdsolverError(f"{self.dir}: could not take the dump directory's lock (it keeps changing)")

    @staticmethod
    def _read_holder(fd: int) -> dict[str, Any]:
        try:
            doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    @staticmethod
    def _try_lock(fd: int, holder: dict[str, Any]) -> bool:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): the recorded pid decides
            return not (holder.get("host") == socket.gethostname() and _pid_alive(holder.get("pid"))
                        and holder.get("pid") != os.getpid())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        _ACTIVE.pop(str(self.dir.resolve()), None)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # an empty lock file: nothing was left half-done
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    # ---- the run's files --------------------------------------------------------
    def begin(self) -> None:
        """Remove the previous run's sweeps and model files and mark run.json as this run, running."""
        clear_sweeps(self.dir)
        for name in MODEL_FILES:
            (self.dir / name).unlink(missing_ok=True)
        self._marker("running")

    def fail(self, exc: BaseException) -> None:
        """Best effort: record that this run ended with an error (its sweeps are incomplete)."""
        with contextlib.suppress(Exception):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self._marker("failed", error=f"{type(exc).__name__}: {first}")

    def _marker(self, state: str, **extra: Any) -> None:
        doc = {"format": RUN_FORMAT, "format_version": RUN_VERSION, "run_id": self.run_id, "state": state,
               "started": self.started, "took_over": self.took_over, **extra}
        atomic_write_text(self.dir / RUN_FILE, json.dumps(doc, indent=1, default=str) + "\n")


@contextlib.contextmanager
def dump_run(dump_dir: str | os.PathLike | None) -> Iterator[DumpRun | None]:
    """Lock `dump_dir` for one run (None: no dump, nothing to lock). On an exception the
    run.json marker says "failed"; the lock is always released."""
    if dump_dir is None:
        yield None
        return
    run = DumpRun(dump_dir)
    run.acquire()
    try:
        run.begin()
        yield run
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        run.release()
