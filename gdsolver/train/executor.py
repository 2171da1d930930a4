"""Run independent tasks in this process (`LocalExecutor`) or as Ray tasks (`RayExecutor`),
behind one interface.

A task is a picklable function and its arguments (`Task`). `executor.run(tasks, on_done=...)`
returns one `Outcome` per task, in task order: the value, or the error text when the task
failed, so one failing task never stops the others. `on_done(outcome)` is called in this
process as each task finishes (completion order), which is what progress bars listen to.
`executor.map(fn, items)` is `run` with one task per item.

Ray is imported only here, and only when a `RayExecutor` is made; nothing below train/
imports it. Without an address, a `RayExecutor` starts a local Ray bound to 127.0.0.1 (Ray
binds the machine's interface address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is set, and
reports usage statistics over the network unless RAY_USAGE_STATS_ENABLED=0): both variables
are set (unless the user set them) before Ray is imported. With an address it connects to
that cluster as a driver (`ray.init(address=...)`); the cluster must run the same gdsolver
and Ray versions, and every process must use the same auth mode (RAY_AUTH_MODE).

Retries: a task whose worker process dies (killed, out of memory, node lost) is re-run by Ray
up to `max_retries` times; exceptions raised by the task itself are not retried unless
`retry_exceptions` says so (the benchmark cells are deterministic, so a retry would fail the
same way)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gdsolver.errors import GdsolverError

RAY_EXTRA = "pip install -c constraints.txt '.[ray]'"


@dataclass(frozen=True)
class Task:
    """`fn(*args, **kwargs)`; fn must be importable by name (a module-level function) and
    the arguments picklable, so a Ray worker can run it."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    cpus: float = 1.0  # CPUs the task keeps busy (Ray schedules by it)


@dataclass
class Outcome:
    """What became of one task: `value` when it returned, else `error` (one line) and
    `detail` (the traceback text)."""

    index: int
    label: str
    value: Any = None
    error: str | None = None
    detail: str | None = None
    seconds: float = 0.0  # from submission to completion, as seen by this process

    @property
    def ok(self) -> bool:
        return self.error is None


OnDone = Callable[[Outcome], None]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class Executor:
    """The common interface; see the module docstring."""

    kind = "abstract"

    def run(self, tasks: Iterable[Task], on_done: OnDone | None = None) -> list[Outcome]:
        raise NotImplementedError

    def map(self, fn: Callable[..., Any], items: Iterable[Any], on_done: OnDone | None = None, *,
            labels: Sequence[str] | None = None, cpus: float = 1.0) -> list[Outcome]:
        """`fn(item)` for every item, as tasks."""
        items = list(items)
        names = list(labels) if labels is not None else [str(i) for i in range(len(items))]
        return self.run((Task(fn, (it,), label=lab, cpus=cpus) for it, lab in zip(items, names)), on_done)

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for benchmark records (kind, nodes, CPUs)."""
        return {"executor": self.kind}

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Runs the tasks one after another in this process."""

    kind = "local"

    def run(self, tasks: Iterable[Task], on_done: OnDone | None = None) -> list[Outcome]:
        out = []
        for i, t in enumerate(tasks):
            t0 = time.perf_counter()
            try:
                o = Outcome(i, t.label, value=t.fn(*t.args, **t.kwargs))
            except Exception as exc:  # noqa: BLE001 - a failed task is reported, the others go on
                o = Outcome(i, t.label, error=_one_line(exc), detail=traceback.format_exc())
            o.seconds = time.perf_counter() - t0
            out.append(o)
            if on_done is not None:
                on_done(o)
        return out


def import_ray():
    """The `ray` module, or a GdsolverError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise GdsolverError(f"--ray: Ray is not installed ({exc}); it is the optional extra "
                            f"gdsolver[ray]: {RAY_EXTRA}") from None
    return ray


def _call(fn: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any]) -> Any:
    """What a Ray worker runs for a Task."""
    return fn(*args, **kwargs)


# What a local Ray's processes may reach over HTTP: nothing but loopback. Ray 2.60 starts its
# dashboard process even with include_dashboard=False, with one module (UsageStatsHead) whose
# start asks the cloud metadata addresses (169.254.169.254, metadata.google.internal) which
# cloud it runs on, whatever RAY_USAGE_STATS_ENABLED says. Its `requests` calls honour the proxy
# variables: pointed at a closed loopback port, the probes fail at once and stay on the machine.
_NO_CLOUD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens
_LOOPBACK = "localhost,127.0.0.0/8,::1"
NO_CLOUD_PROBE_ENV = {"http_proxy": _NO_CLOUD_PROXY, "HTTP_PROXY": _NO_CLOUD_PROXY, "https_proxy": _NO_CLOUD_PROXY,
                      "HTTPS_PROXY": _NO_CLOUD_PROXY, "no_proxy": _LOOPBACK, "NO_PROXY": _LOOPBACK}


@contextlib.contextmanager
def no_cloud_probes() -> Iterator[None]:
    """The proxy variables set for the processes a local ray.init starts (they inherit the
    environment when they are spawned), then put back as they were for this process."""
    saved = {k: os.environ.get(k) for k in NO_CLOUD_PROBE_ENV}
    os.environ.update(NO_CLOUD_PROBE_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class RayExecutor(Executor):
    """Runs the tasks as Ray tasks: on a local Ray started here (`address=None`; `num_cpus`
    defaults to every core) or on the cluster at `address` ("HOST:PORT", or "auto": the
    cluster this machine joined / RAY_ADDRESS). If Ray is already initialised in this
    process, that connection is used as it is and left open on close()."""

    kind = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, max_retries: int = 3,
                 retry_exceptions: bool | Sequence[type[BaseException]] = False, max_pending: int | None = None,
                 temp_dir: str | None = None) -> None:
        if num_cpus is not None and address is not None:
            raise GdsolverError("num_cpus: only for a local Ray; a cluster's CPUs are set by `ray start`")
        if num_cpus is not None and num_cpus < 1:
            raise GdsolverError(f"num_cpus: must be >= 1, got {num_cpus}")
        if max_retries < 0:
            raise GdsolverError(f"max_retries: must be >= 0, got {max_retries}")
        if address is None:
            if "ray" not in sys.modules:  # read when Ray is imported (else see _init)
                os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind 127.0.0.1
                os.environ.setdefault("RAY_AUTH_MODE", "token")  # Ray's default for a local Ray, without its warning
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reports over the network
        ray = import_ray()  # first: "Ray is not installed" says more than an address check
        if address is not None:
            check_ray_address(address)
        self._ray = ray
        self.address = address
        self.max_retries = int(max_retries)
        self.retry_exceptions = retry_exceptions if isinstance(retry_exceptions, bool) else list(retry_exceptions)
        self._owned = False
        if not ray.is_initialized():
            self._init(address, num_cpus, temp_dir)
            self._owned = True
        self._remote = ray.remote(_call)
        cpus = self.cluster_cpus()
        self.max_pending = int(max_pending) if max_pending is not None else max(4, 4 * int(cpus))

    def _init(self, address: str | None, num_cpus: int | None, temp_dir: str | None) -> None:
        ray = self._ray
        kw: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING)
        try:
            if address is None:
                from ray._private import ray_constants

                if ray_constants.ENABLE_RAY_CLUSTER and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "1":
                    # Ray was imported before we could set the variable: without this a local
                    # Ray binds the machine's interface address instead of 127.0.0.1.
                    ray_constants.ENABLE_RAY_CLUSTER = False
                with no_cloud_probes():
                    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                             **({"_temp_dir": temp_dir} if temp_dir else {}), **kw)
            else:
                ray.init(address=address, **kw)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise GdsolverError(f"--ray: could not start or reach {where}: {_one_line(exc)}") from None

    def nodes(self) -> list[dict[str, Any]]:
        return [n for n in self._ray.nodes() if n.get("Alive")]

    def cluster_cpus(self) -> float:
        return float(self._ray.cluster_resources().get("CPU", 0.0))

    def describe(self) -> dict[str, Any]:
        nodes = self.nodes()
        return {"executor": "ray", "address": self.address or "local", "ray": self._ray.__version__,
                "nodes": len(nodes), "cpus": self.cluster_cpus(),
                "node_addresses": sorted({n.get("NodeManagerAddress", "") for n in nodes})}

    def _submit(self, t: Task):
        opts: dict[str, Any] = dict(num_cpus=t.cpus, max_retries=self.max_retries,
                                    retry_exceptions=self.retry_exceptions)
        if t.label:
            opts["name"] = t.label
        return self._remote.options(**opts).remote(t.fn, t.args, dict(t.kwargs))

    def _collect(self, index: int, label: str, ref, t0: float) -> Outcome:
        ray = self._ray
        try:
            o = Outcome(index, label, value=ray.get(ref))
        except ray.exceptions.RayTaskError as exc:  # the task raised
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            o = Outcome(index, label, error=_one_line(cause), detail=str(exc))
        except ray.exceptions.RayError as exc:  # its worker died (after the retries), node lost, ...
            what = _one_line(exc)
            if isinstance(exc, ray.exceptions.WorkerCrashedError):
                what = f"the worker running it died {self.max_retries + 1} times (Ray's max_retries " \
                       f"{self.max_retries}): {what}"
            o = Outcome(index, label, error=what, detail=str(exc))
        o.seconds = time.perf_counter() - t0
        return o

    def run(self, tasks: Iterable[Task], on_done: OnDone | None = None) -> list[Outcome]:
        """Submits at most `max_pending` tasks ahead of the finished ones (the task iterable is
        read lazily, so large arguments are made only shortly before they are needed)."""
        ray = self._ray
        it: Iterator[Task] = iter(tasks)
        pending: dict[Any, tuple[int, str, float]] = {}
        done: dict[int, Outcome] = {}
        count = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.max_pending:
                    t = next(it, None)
                    if t is None:
                        exhausted = True
                        break
                    pending[self._submit(t)] = (count, t.label, time.perf_counter())
                    count += 1
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index, label, t0 = pending.pop(ref)
                    o = self._collect(index, label, ref, t0)
                    done[index] = o
                    if on_done is not None:
                        on_done(o)
        except BaseException:
            for ref in pending:  # do not leave work running on the cluster
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort; the original error matters
                    pass
            raise
        return [done[i] for i in range(count)]

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False


RAY_CONNECT_TIMEOUT_S = 3.0  # a cluster address that does not answer within this is refused


def check_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """A Ray cluster address, checked before Ray is asked (it retries an unreachable address for
    minutes): "auto", or HOST:PORT (optionally ray://HOST:PORT) with a port 1..65535 where
    something accepts a TCP connection within `timeout` seconds. Only that host is contacted."""
    import socket

    if address == "auto":
        return
    text = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise GdsolverError(f"--ray-address {address!r}: expected HOST:PORT with a port 1..65535, or 'auto'")
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise GdsolverError(f"--ray-address {address}: nothing answers there within {timeout:g} s ({why}); "
                            "start the cluster (ray start --head) or check the address") from None


def make_executor(kind: str | Executor = "local", address: str | None = None, **kw: Any) -> Executor:
    """An executor by name, as options take it (`executor="local"|"ray"`); an Executor is
    returned as it is. `address` (a Ray cluster) implies "ray"; `kw` go to RayExecutor."""
    if isinstance(kind, Executor):
        return kind
    if kind == "local" and address is None:
        return LocalExecutor()
    if kind in ("ray", "local"):
        return RayExecutor(address, **kw)
    raise GdsolverError(f"executor: {kind!r}, expected 'local' or 'ray'")
