"""Certified repair of a model: `repair(model, fix=(X, y), keep=(X, None|y), ...)` for torch
modules and `repair_onnx(path, ..., out=...)` for ONNX files (what `gdsolver repair` runs).

Both: find the model's chain of dense layers (gdsolver.extract), compute the swept layer's
inputs at the fix and keep points with the model itself, search for the minimal change
(repairs.solve), and judge the repaired model by running it (repairs.certificate): torch in
float32 (the model as used) and float64; ONNX with onnxruntime on the written file and a
float64 forward pass of the weights read back from that file. The model changes (torch in
place, ONNX written) only when every point passes on every route, unless forced. An infeasible
repair comes with a conflict (repairs.conflict)."""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdsolver.errors import GdsolverError
from gdsolver.extract.inputs import as_samples
from gdsolver.formulate.repair import DEFAULT_MARGIN, NORMS, PATTERNS, change_norms
from gdsolver.formulate.sweep import check_labels
from gdsolver.repairs.certificate import (all_pass, array_sha256, certificate_path, proof_text, run_routes,
                                          write_certificate)
from gdsolver.repairs.conflict import Conflict, duplicate_conflict, find_conflict
from gdsolver.repairs.solve import RepairSolution, solve_repair
from gdsolver.compile.registry import DEFAULT_BACKEND

CONFLICT_TIME_S = 60.0  # the conflict search's own limit when the repair has none
MIN_CONFLICT_S = 0.05  # ... and the least it gets when the repair's limit is spent


@dataclass
class RepairReport:
    """status: "certified" (every point passes on every route; the model was changed),
    "not certified" (a repair was found but some point fails on some route: `checks` says which;
    the model was not changed unless forced), "infeasible" (`conflict` says why), "no repair"
    (the limit or the solver stopped first: `reason`)."""

    status: str
    layer: dict[str, Any]
    solution: RepairSolution
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    conflict: Conflict | None = None
    change: dict[str, float] = field(default_factory=dict)  # from the weights as written
    proof: str = ""
    written: str | None = None
    certificate: str | None = None
    model: Any = None  # torch: the repaired copy when not in place
    W: np.ndarray | None = None
    b: np.ndarray | None = None

    @property
    def certified(self) -> bool:
        return self.status == "certified"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "layer": self.layer, "proof": self.proof, "change": self.change,
                "checks": self.checks, "solver": self.solution.to_json(),
                "conflict": None if self.conflict is None else self.conflict.to_json(),
                "written": self.written, "certificate": self.certificate}

    def lines(self) -> list[str]:
        """The report as a few lines of text (what the CLI prints)."""
        s = self.solution
        la = self.layer
        out = [f"layer {la['index']} ({la['name']}, {la['shape'][0]}x{la['shape'][1]}), {s.norm} change, margin "
               f"{s.margin:g}, box |dW| <= {s.radius:.4g}: {self.status}"]
        if self.change:
            out.append(f"change: l1 {self.change['l1']:.6g}, linf {self.change['linf']:.6g}, "
                       f"{self.change['changed']} of {self.change['entries']} entries")
        if self.proof:
            out.append(f"proof: {self.proof} (solver {s.solver_status}, {s.keep_rounds} keep round(s), "
                       f"{s.keep_in_milp} keep points in the MILP, {s.binaries} ReLU binaries, {s.time_s:.2f} s)")
        for route, sets in self.checks.items():
            parts = [f"{name} {c['ok']}/{c['points']}" + (f" (failed: {c['failed'][:10]})" if c["failed_count"] else "")
                     for name, c in sets.items()]
            out.append(f"{route}: " + ", ".join(parts))
        if self.conflict is not None:
            c = self.conflict
            out.append(f"conflict: fix points {c.fix_points}" + (" (minimal)" if c.minimal else " (not proved minimal)"))
            out.append(f"suggestion: {c.suggestion}")
        elif s.reason:
            out.append(f"reason: {s.reason}")
        if self.written:
            out.append(f"wrote {self.written}" + (f" and {self.certificate}" if self.certificate else ""))
        return out


# ------------------------------------------------------------------ shared steps
def _points(fix: Any, keep: Any) -> tuple[np.ndarray, Any, np.ndarray | None, Any]:
    """(X_fix, y_fix, X_keep, y_keep) from fix=(X, y) and keep=None | X | (X, None | y)."""
    if not isinstance(fix, (tuple, list)) or len(fix) != 2:
        raise GdsolverError("fix: expected a pair (X, y) of inputs and the labels they must get")
    X_fix = as_samples(fix[0], what="fix X")
    y_fix = fix[1]
    if keep is None:
        return X_fix, y_fix, None, None
    X_keep, y_keep = (keep[0], keep[1]) if isinstance(keep, (tuple, list)) else (keep, None)
    X_keep = as_samples(X_keep, what="keep X")
    if X_keep.shape[1:] != X_fix.shape[1:]:
        raise GdsolverError(f"keep X: samples of shape {X_keep.shape[1:]}, but fix X has {X_fix.shape[1:]}")
    return X_fix, y_fix, X_keep, y_keep


def _check_options(norm: str, patterns: str, margin: float, radius: float | None, time_limit: float | None,
                   keep_margin: float | None = None) -> None:
    if norm not in NORMS:
        raise GdsolverError(f"norm: {norm!r}, expected one of {list(NORMS)}")
    if patterns not in PATTERNS:
        raise GdsolverError(f"patterns: {patterns!r}, expected one of {list(PATTERNS)}")
    for name, v, none_ok in (("margin", margin, False), ("radius", radius, True), ("time_limit", time_limit, True),
                             ("keep_margin", keep_margin, True)):
        if v is None and none_ok:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not np.isfinite(v) or v <= 0:
            raise GdsolverError(f"{name}: must be a finite number > 0, got {v!r}")


def _search(net, k: int, X_fix, y_fix, X_keep, y_keep, predict, *, norm, margin, radius, patterns, time_limit,
            backend, threads, keep_margin=None) -> tuple[RepairSolution, Conflict | None, np.ndarray, np.ndarray | None]:
    """The repair search on a network; returns (solution, conflict, fix labels, keep labels);
    for a regression target (lo, hi) the labels are the interval ends as (lo, hi) (F, M) arrays."""
    M = net.layers[-1].M
    if is_interval(y_fix):
        return _interval_search(net, k, X_fix, y_fix, X_keep, y_keep, norm=norm, margin=margin, radius=radius,
                                patterns=patterns, time_limit=time_limit, backend=backend, threads=threads)
    y_fix = check_labels(y_fix, M, len(X_fix), name="fix y")
    H_fix = net.features(X_fix, k)
    if X_keep is not None:
        y_keep = predict(X_keep) if y_keep is None else check_labels(y_keep, M, len(X_keep), name="keep y")
        H_keep = net.features(X_keep, k)
    else:
        H_keep, y_keep = np.zeros((0, net.layers[k].N)), np.zeros(0, np.int64)
    t0 = time.perf_counter()
    sol = solve_repair(net.layers, k, H_fix, y_fix, H_keep, y_keep, norm=norm, margin=margin, radius=radius,
                       time_limit=time_limit, backend=backend, threads=threads, patterns=patterns,
                       keep_margin=keep_margin)
    conflict = None
    if sol.status == "infeasible":
        held = sol.instance.meta["keep_points"] if sol.instance is not None else 0
        # the keep points the infeasible MILP held: the lazy search adds the ones the answers broke
        kept = _kept_in_milp(sol, H_keep, y_keep, held)
        # only what the repair's limit leaves (a floor of 1 s ran 2 s past a 2 s limit)
        left = CONFLICT_TIME_S if time_limit is None else max(MIN_CONFLICT_S, time_limit - (time.perf_counter() - t0))
        conflict = find_conflict(net.layers, k, H_fix, y_fix, kept[0], kept[1], norm=norm, margin=margin,
                                 radius=sol.radius, patterns=patterns, backend=backend, time_limit=left,
                                 keep_margin=keep_margin)
    elif sol.status == "no repair":
        conflict = duplicate_conflict(H_fix, y_fix, H_keep, y_keep)
    return sol, conflict, y_fix, (y_keep if X_keep is not None else None)


def is_interval(target: Any) -> bool:
    """A regression target: a pair (lo, hi) of interval ends, not a label array."""
    return isinstance(target, tuple) and len(target) == 2


def _interval_search(net, k: int, X_fix, y_fix, X_keep, y_keep, *, norm, margin, radius, patterns, time_limit,
                     backend, threads) -> tuple[RepairSolution, None, tuple, tuple | None]:
    from gdsolver.formulate.repair import check_interval
    from gdsolver.repairs.solve import solve_interval_repair

    M = net.layers[-1].M
    F = len(X_fix)
    lo_f, hi_f = check_interval("fix lo", y_fix[0], F, M), check_interval("fix hi", y_fix[1], F, M)
    H_fix = net.features(X_fix, k)
    if X_keep is not None:
        if not is_interval(y_keep):
            raise GdsolverError("keep: a regression repair's keep points need intervals, keep=(X, (lo, hi))")
        K = len(X_keep)
        lo_k, hi_k = check_interval("keep lo", y_keep[0], K, M), check_interval("keep hi", y_keep[1], K, M)
        H_keep = net.features(X_keep, k)
    else:
        H_keep, lo_k, hi_k = np.zeros((0, net.layers[k].N)), np.zeros((0, M)), np.zeros((0, M))
    sol = solve_interval_repair(net.layers, k, H_fix, lo_f, hi_f, H_keep, lo_k, hi_k, norm=norm, margin=margin,
                                radius=radius, time_limit=time_limit, backend=backend, threads=threads,
                                patterns=patterns)
    return sol, None, (lo_f, hi_f), ((lo_k, hi_k) if X_keep is not None else None)


def _kept_in_milp(sol: RepairSolution, H_keep: np.ndarray, y_keep: np.ndarray, held: int):
    inst = sol.instance
    if inst is None or held == 0:
        return H_keep[:0], y_keep[:0]
    F = int(inst.meta["fix_points"])
    return inst.data["H"][F:], inst.data["y"][F:]


def _layer_info(net, k: int) -> dict[str, Any]:
    la = net.layers[k]
    return {"index": k, "name": la.name, "shape": [la.M, la.N], "count": len(net)}


# ------------------------------------------------------------------ torch
def repair(model: Any, fix: Any, keep: Any = None, *, layer: int | str = -1, norm: str = "l1",
           margin: float = DEFAULT_MARGIN, radius: float | None = None, patterns: str = "all",
           time_limit: float | None = None, backend: str = DEFAULT_BACKEND, threads: int | None = None, output: Any = None,
           inplace: bool = True, force: bool = False, keep_margin: float | None = None,
           certificate: str | os.PathLike | None = None) -> RepairReport:
    """Repair one dense layer of a torch model with the smallest change (l1 or linf) that makes
    every fix point (X, y) classified as y by `margin` and every keep point keep its prediction
    (keep=X or (X, None)) or its given label (keep=(X, y)); the layers after it are encoded
    exactly. The repaired model is run in float32 and float64 on every point; the model is
    changed in place (or a repaired copy is in `report.model` with inplace=False) only when all
    pass, or with force=True. keep_margin: the gap each keep point keeps (or its current gap
    when smaller; default `margin`). `keep` may be a large pool: its points enter the LP only
    when a forward pass finds them broken. certificate: a path where the certificate JSON is
    written (atomically) when the model is changed: the hashes of the model's parameters before
    and after, of the data and of the new weights, and the counts per route. See docs/repair.md."""
    import torch

    from gdsolver.extract.torch_frontend import (_call, _to_tensor, apply_to_torch, eval_mode, network_from_torch,
                                                 select_output)

    if not isinstance(model, torch.nn.Module):
        raise GdsolverError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    _check_options(norm, patterns, margin, radius, time_limit, keep_margin)
    X_fix, y_fix, X_keep, y_keep = _points(fix, keep)
    model_hash = torch_sha256(model)
    net = network_from_torch(model, X_fix, output=output)
    k = net.layer_index(layer)

    def predictor(m: Any) -> Any:
        def outputs(X: np.ndarray) -> np.ndarray:
            with eval_mode(m), torch.no_grad():
                parts = [select_output(_call(m, _to_tensor(X[i:i + 1024], m)), output).detach().cpu().numpy()
                         for i in range(0, len(X), 1024)]
            return np.concatenate(parts).reshape(len(X), -1)
        return outputs

    current = predictor(model)
    sol, conflict, y_fix, y_keep = _search(net, k, X_fix, y_fix, X_keep, y_keep, lambda X: current(X).argmax(1),
                                           norm=norm,
                                           margin=margin, radius=radius, patterns=patterns, time_limit=time_limit,
                                           backend=backend, threads=threads, keep_margin=keep_margin)
    report = RepairReport(_status(sol), _layer_info(net, k), sol, conflict=conflict)
    if sol.W is None:
        return report
    name = net.layers[k].name
    repaired = copy.deepcopy(model)
    apply_to_torch(repaired, sol.W, sol.b, layer=name)
    lin = repaired.get_submodule(name)
    W_as = lin.weight.detach().to("cpu", torch.float64).numpy()
    b_as = lin.bias.detach().to("cpu", torch.float64).numpy() if lin.bias is not None else np.zeros(len(W_as))
    double = copy.deepcopy(repaired).double()
    report.checks = run_routes({f"torch {lin.weight.dtype}".replace("torch.", ""): predictor(repaired),
                                "torch float64": predictor(double)}, X_fix, y_fix, X_keep, y_keep)
    report.change = change_norms(W_as - net.layers[k].W, b_as - net.layers[k].b)
    report.W, report.b = W_as, b_as
    report.proof = proof_text(sol.minimal, sol.global_minimal, norm, sol.radius, sol.pinned, sol.bound)
    report.status = "certified" if all_pass(report.checks) else "not certified"
    if report.certified or force:
        if inplace:
            apply_to_torch(model, sol.W, sol.b, layer=name)
            report.model = model
        else:
            report.model = repaired
        if certificate is not None:
            doc = _certificate_doc(report, norm=norm, margin=margin, keep_margin=keep_margin, patterns=patterns,
                                   backend=backend)
            doc.update(model={"sha256": model_hash, "hash": "torch parameters and buffers"},
                       repaired={"sha256": torch_sha256(repaired), "hash": "torch parameters and buffers"},
                       data=_data_hashes(X_fix, y_fix, X_keep, y_keep, None), result_sha256=array_sha256(W_as, b_as))
            write_certificate(certificate, doc)
            report.certificate = str(certificate)
    return report


def torch_sha256(model: Any) -> str:
    """sha256 over a torch model's state (names, dtypes, shapes and bytes of its parameters and
    buffers, in state_dict order): what a certificate names the model by."""
    import hashlib

    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{name}:{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _certificate_doc(report: RepairReport, *, norm: str, margin: float, keep_margin: float | None, patterns: str,
                     backend: str) -> dict[str, Any]:
    """The certificate's fields that do not depend on the model's format."""
    sol = report.solution
    return {
        "certified": report.certified, "status": report.status, "layer": report.layer, "norm": norm,
        "margin": margin, "keep_margin": margin if keep_margin is None else keep_margin, "radius": sol.radius,
        "patterns": patterns, "change": report.change,
        "proof": {"text": report.proof, "minimal": sol.minimal, "global_minimal": sol.global_minimal,
                  "solver_status": sol.solver_status, "objective": sol.objective, "bound": sol.bound,
                  "backend": backend, "time_s": sol.time_s, "keep_rounds": sol.keep_rounds,
                  "keep_in_milp": sol.keep_in_milp, "keep_rows": sol.keep_rows, "keep_pool": sol.keep_pool,
                  "relu_binaries": sol.binaries},
        "checks": report.checks}


def _status(sol: RepairSolution) -> str:
    return {"repaired": "not certified"}.get(sol.status, sol.status)


# ------------------------------------------------------------------ ONNX
def repair_onnx(model_path: str | os.PathLike, fix: Any, keep: Any = None, *, out: str | os.PathLike,
                layer: int | str = -1, norm: str = "l1", margin: float = DEFAULT_MARGIN, radius: float | None = None,
                patterns: str = "all", time_limit: float | None = None, backend: str = DEFAULT_BACKEND,
                threads: int | None = None, force: bool = False,
                data_files: dict[str, str | os.PathLike] | None = None,
                keep_margin: float | None = None) -> RepairReport:
    """repair() for an ONNX file: the repaired model is written to `out` (atomically) with its
    certificate beside it (repairs.certificate.certificate_path) only when every point passes on
    both routes (onnxruntime on the written file; float64 with the weights read back from it),
    or with force=True. data_files: the files fix / keep came from, hashed into the certificate."""
    from gdsolver.atomic import atomic_path
    from gdsolver.extract import apply_to_onnx, model_sha256, network_from_onnx, onnx_forward
    from gdsolver.extract.hashing import sha256_file
    from gdsolver.modeldef import forward_chain

    _check_options(norm, patterns, margin, radius, time_limit, keep_margin)
    model_path, out = Path(model_path), Path(out)
    X_fix, y_fix, X_keep, y_keep = _points(fix, keep)
    net = network_from_onnx(model_path, X_fix)
    k = net.layer_index(layer)

    def predict_with(path: Path):
        return lambda X: onnx_forward(path, X).reshape(len(X), -1)

    sol, conflict, y_fix, y_keep = _search(net, k, X_fix, y_fix, X_keep, y_keep,
                                           lambda X: predict_with(model_path)(X).argmax(axis=1),
                                           norm=norm, margin=margin, radius=radius, patterns=patterns,
                                           time_limit=time_limit, backend=backend, threads=threads,
                                           keep_margin=keep_margin)
    report = RepairReport(_status(sol), _layer_info(net, k), sol, conflict=conflict)
    if sol.W is None:
        return report
    cert = certificate_path(out)
    try:
        with atomic_path(out, suffix=".onnx") as tmp:
            tmp = Path(tmp)
            apply_to_onnx(model_path, sol.W, sol.b, tmp, layer=net.layers[k])
            back = network_from_onnx(tmp, X_fix)  # the weights as written, read from the file

            def float64(X: np.ndarray) -> np.ndarray:
                return forward_chain(back.layers, back.features(X, k), start=k)

            report.checks = run_routes({"onnxruntime": predict_with(tmp), "float64": float64}, X_fix, y_fix, X_keep,
                                       y_keep)
            Wn, bn = back.layers[k].W, back.layers[k].b
            report.change = change_norms(Wn - net.layers[k].W, bn - net.layers[k].b)
            report.W, report.b = Wn, bn
            report.proof = proof_text(sol.minimal, sol.global_minimal, norm, sol.radius, sol.pinned, sol.bound)
            report.status = "certified" if all_pass(report.checks) else "not certified"
            if not (report.certified or force):
                raise _NotWritten
            doc = {
                **_certificate_doc(report, norm=norm, margin=margin, keep_margin=keep_margin, patterns=patterns,
                                   backend=backend),
                "model": {"file": model_path.name, "sha256": model_sha256(model_path)},
                "repaired": {"file": out.name, "sha256": sha256_file(tmp)},
                "data": _data_hashes(X_fix, y_fix, X_keep, y_keep, data_files),
                "result_sha256": array_sha256(Wn, bn),
            }
    except _NotWritten:
        return report
    # after the model's rename: a certificate never stands beside a model it does not describe
    write_certificate(cert, doc)
    report.written, report.certificate = str(out), str(cert)
    return report


class _NotWritten(Exception):
    """Leaves atomic_path without the rename (its temporary file is removed)."""


def _data_hashes(X_fix, y_fix, X_keep, y_keep, files) -> dict[str, Any]:
    from gdsolver.extract.hashing import sha256_file

    out: dict[str, Any] = {"fix": {"points": int(len(X_fix)), "arrays_sha256": array_sha256(X_fix, y_fix)}}
    if X_keep is not None:
        out["keep"] = {"points": int(len(X_keep)), "arrays_sha256": array_sha256(X_keep, y_keep)}
    for key, path in (files or {}).items():
        if path is not None and key in out:
            out[key].update(file=Path(path).name, sha256=sha256_file(path))
    return out
