"""The schema of what gdsolver reads back: a .gdsm instance's meta (the formulation's own record:
task, mode, radius, margin, points, layer, network, tail, model, data ...), checked in one place
when the file is loaded, so that no command meets a field of the wrong type, a point index
outside the data, or a network that does not match the arrays it names.

Meta is free-form for keys gdsolver does not know (a user may add their own, even inf or NaN);
every key it knows is checked for its type and range, and the keys that refer to each other
are checked together: points and keep_points against data_points (no negatives, no repeats,
no overlap) and against T; the network against layer.index/count, the w and b blocks and the
data arrays (H, y, W<j>, b<j>) the forward-pass check reads; task against formulation; the
mode against the formulation and against the blocks its head needs.

Errors are one line: `<file>: meta field 'points[3]' is -1, expected an integer in [0, 199]`.
The same small validators check the solve-result JSON (compile/result.py) and run.json
(compile/replay.py)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gdsolver.errors import FormatError
from gdsolver.modeldef import ACTIVATIONS, TASKS

# heads the formulations write (gdsolver.formulate.sweep; tests/test_hostile_meta.py holds them equal)
CLASSIFICATION_MODES = ("paper", "compact", "ce", "count+ce")
REGRESSION_MODES = ("l1", "paper", "squared")
SMOOTH_MODES = ("squared", "ce", "count+ce")
COUNT_MODES = ("paper", "compact", "count+ce")  # classification heads with a c block (points counted)
_MAX_INT = 2**53  # beyond this a JSON integer is no count of anything in memory
HEX64 = re.compile(r"[0-9a-f]{64}")


class Bad(Exception):
    """A field failed its check: (field path, what was expected)."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        super().__init__(field)
        self.field, self.value, self.expected = field, value, expected


Check = Callable[[Any, str], None]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(shown: str, what: str, bad: Bad) -> FormatError:
    """The one-line error for a failed check: '<file>: <what> field '<f>' is <v>, expected <e>'."""
    text = f"{shown}: {what} field '{bad.field}' is {_show(bad.value)}, expected {bad.expected}"
    return FormatError(re.sub(r"[\x00-\x1f\x7f]", "?", text))


# ---------------------------------------------------------------- validators
def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(lo: int | None = 0, hi: int | None = _MAX_INT) -> Check:
    text = ("an integer" + (f" in [{lo}, {hi}]" if lo is not None and hi is not None and hi < _MAX_INT else
                            f" >= {lo}" if lo is not None else ""))

    def check(v: Any, name: str) -> None:
        if not is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Bad(name, v, text)
    return check


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Check:
    """A finite number (JSON may hold 1e999 = inf, NaN) within [lo, hi] (lo open when lo_open)."""
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"<= {hi:g}")
    text = "a finite number" + (" " + " and ".join(parts) if parts else "")

    def check(v: Any, name: str) -> None:
        if not is_number(v) or not math.isfinite(v) or (lo is not None and (v <= lo if lo_open else v < lo)) \
                or (hi is not None and v > hi):
            raise Bad(name, v, text)
    return check


def boolean(v: Any, name: str) -> None:
    if not isinstance(v, bool):
        raise Bad(name, v, "true or false")


def string(choices: tuple[str, ...] | None = None, pattern: re.Pattern | None = None,
           what: str | None = None) -> Check:
    text = what or (f"one of {list(choices)}" if choices else "a string")

    def check(v: Any, name: str) -> None:
        if not isinstance(v, str) or (choices is not None and v not in choices) \
                or (pattern is not None and not pattern.fullmatch(v)):
            raise Bad(name, v, text)
    return check


sha256 = string(pattern=HEX64, what="a sha256 hex digest")


def optional(check: Check) -> Check:
    """None or what `check` accepts."""
    def opt(v: Any, name: str) -> None:
        if v is not None:
            try:
                check(v, name)
            except Bad as bad:
                raise Bad(bad.field, bad.value, bad.expected + " or null") from None
    return opt


def any_of(*checks: Check, what: str) -> Check:
    def check(v: Any, name: str) -> None:
        for c in checks:
            try:
                c(v, name)
                return
            except Bad:
                continue
        raise Bad(name, v, what)
    return check


def json_any(v: Any, name: str) -> None:
    pass


def array(item: Check, *, max_len: int | None = None, length: int | None = None) -> Check:
    def check(v: Any, name: str) -> None:
        if not isinstance(v, list):
            raise Bad(name, v, "a list" if length is None else f"a list of {length}")
        if (length is not None and len(v) != length) or (max_len is not None and len(v) > max_len):
            raise Bad(name, v, f"a list of {length if length is not None else f'at most {max_len}'} entries")
        for i, x in enumerate(v):
            item(x, f"{name}[{i}]")
    return check


def obj(fields: Mapping[str, Check] | None = None, *, required: tuple[str, ...] = ()) -> Check:
    """An object whose known keys pass their checks (unknown keys are free-form)."""
    fields = fields or {}

    def check(v: Any, name: str) -> None:
        if not isinstance(v, dict):
            raise Bad(name, v, "an object")
        for key in required:
            if key not in v:
                raise Bad(f"{name}.{key}" if name else key, None, "present")
        for key, c in fields.items():
            if key in v:
                c(v[key], f"{name}.{key}" if name else key)
    return check


def mapping(value: Check) -> Check:
    """An object of any keys whose values pass `value`."""
    def check(v: Any, name: str) -> None:
        if not isinstance(v, dict):
            raise Bad(name, v, "an object")
        for key, x in v.items():
            value(x, f"{name}.{key}" if name else key)
    return check


def check_doc(doc: Any, checker: Check, shown: str, what: str) -> None:
    """Run `checker` over `doc`; FormatError (one line) naming the file and field on failure."""
    try:
        checker(doc, "")
    except Bad as bad:
        raise fail(shown, what, bad) from None


# ---------------------------------------------------------------- .gdsm meta
_name = optional(string())
_LOCATION = obj({
    "affine_op": optional(string()), "affine_node": _name, "add_node": _name, "input_tensor": _name,
    "W_initializer": _name, "W_kind": _name, "b_initializer": _name, "b_kind": _name,
    "W_shape": optional(array(integer(0), max_len=8)), "b_shape": optional(array(integer(0), max_len=8)),
    "has_bias": boolean, "transA": integer(0, 1), "transB": integer(0, 1),
    "alpha": number(), "beta": number(), "activation_node": _name, "graph_input": _name, "graph_output": _name,
    "model_path": _name, "module": _name, "module_type": _name,
})
_LAYER = obj({"index": integer(0), "count": integer(1), "name": _name, "source": _name, "location": _LOCATION})
_NETWORK = array(obj({"name": _name, "shape": array(integer(1), length=2), "activation": string(ACTIVATIONS)},
                     required=("shape", "activation")))
_TAIL = obj({"softmax": _name, "softmax_node": _name, "softmax_axis": optional(integer(None)),
             "output": optional(any_of(string(), integer(None), what="an output name or index")),
             "score_tensor": _name, "graph_input": _name, "classes": optional(array(json_any))})
_MODEL = obj({"kind": string(), "file": string(), "sha256": sha256})
_DATA = obj({"kind": string(), "file": string(), "name": string(), "sha256": sha256, "X_sha256": sha256,
             "y_sha256": sha256})
_SOURCE = obj({"kind": string(), "file": string(), "sha256": any_of(sha256, obj(), what="a sha256 or an object")})
_POINTS = array(integer(0))
_count = integer(0)

META = obj({
    "formulation": string(TASKS), "task": string(TASKS),
    "mode": string(tuple(dict.fromkeys(CLASSIFICATION_MODES + REGRESSION_MODES))),
    "activation": string(ACTIVATIONS),
    "radius": number(0.0, lo_open=True), "margin": number(0.0), "box_bias": boolean,
    "T": _count, "N": _count, "M": _count, "data_points": integer(1), "seed": integer(0),
    "layer": _LAYER, "network": _NETWORK, "tail": _TAIL, "model": _MODEL, "data": _DATA, "source": _SOURCE,
    "points": _POINTS, "keep_points": _POINTS, "keep_correct": _POINTS,
    "relu": array(obj()), "relu_binaries": _count, "gdsolver_version": string(),
    "current_objective": number(), "current_correct": _count, "fixed_count": optional(_count),
    "current_l1": number(0.0), "current_mse": number(0.0), "current_sse": number(0.0), "current_ce": number(0.0),
    "anchors": _count, "stage": string(("count", "ce")), "count": _count, "round": _count,
    "trust_region": number(0.0, lo_open=True), "max_loss_clipped": _count,
    "run": obj({"id": string(), "file": string()}), "closest": obj(),
    "lowered_indicators": _count, "presolved_from_variables": _count,
})


def check_meta(shown: str, meta: Any, *, blocks: Mapping[str, tuple[int, tuple[int, ...]]],
               data: Mapping[str, np.ndarray]) -> None:
    """Types, ranges and cross-references of a loaded instance's meta (module docstring);
    FormatError naming `shown` (the file) and the field."""
    check_doc(meta, META, shown, "meta")
    try:
        _cross(meta, blocks, data)
    except Bad as bad:
        raise fail(shown, "meta", bad) from None


def _cross(meta: dict[str, Any], blocks: Mapping[str, tuple[int, tuple[int, ...]]],
           data: Mapping[str, np.ndarray]) -> None:
    task, form = meta.get("task"), meta.get("formulation")
    if task is not None and form is not None and task != form:
        raise Bad("task", task, f"the formulation {form!r}")
    form = form or task
    mode = meta.get("mode")
    if mode is not None and form is not None:
        modes = CLASSIFICATION_MODES if form == "classification" else REGRESSION_MODES
        if mode not in modes:
            raise Bad("mode", mode, f"a {form} mode, one of {list(modes)}")
        if form == "classification" and mode in COUNT_MODES and "c" not in blocks:
            raise Bad("mode", mode, "a head whose blocks the instance has (a counting head needs block 'c')")
    if meta.get("stage") is not None and mode != "count+ce":
        raise Bad("stage", meta["stage"], "no stage (only mode 'count+ce' has stages)")
    T = meta.get("T")
    n_data = meta.get("data_points")
    seen: dict[int, str] = {}
    for key in ("points", "keep_points"):
        pts = meta.get(key)
        if pts is None:
            continue
        for i, p in enumerate(pts):
            if n_data is not None and p >= n_data:
                raise Bad(f"{key}[{i}]", p, f"a point index in [0, {n_data - 1}] (data_points is {n_data})")
            if p in seen:
                raise Bad(f"{key}[{i}]", p, f"a point not already listed (it is in {seen[p]})")
            seen[p] = key
    if T is not None and "points" in meta and len(meta["points"]) + len(meta.get("keep_points") or []) != T:
        raise Bad("points", meta["points"], f"T = {T} point indices with keep_points "
                                            f"(got {len(meta['points']) + len(meta.get('keep_points') or [])})")
    for i, p in enumerate(meta.get("keep_correct") or []):
        if T is not None and p >= T:
            raise Bad(f"keep_correct[{i}]", p, f"an index into the instance's T = {T} points")
    layer, net = meta.get("layer"), meta.get("network")
    if isinstance(layer, dict) and is_int(layer.get("index")) and is_int(layer.get("count")):
        if layer["index"] >= layer["count"]:
            raise Bad("layer.index", layer["index"], f"an index below layer.count = {layer['count']}")
        if net is not None and len(net) != layer["count"] - layer["index"]:
            raise Bad("network", f"{len(net)} layers", f"layer.count - layer.index = "
                                                      f"{layer['count'] - layer['index']} layers")
    if net is not None:
        _cross_network(meta, net, blocks, data, T)
    if mode in SMOOTH_MODES:  # refined in rounds: rebuilt from these (gdsolver.formulate.refine)
        for key in ("formulation", "radius", "margin", "network"):
            if key not in meta:
                raise Bad(key, None, f"present (mode {mode!r} is refined from it)")
        for key in ("H", "y"):
            if key not in data:
                raise Bad("mode", mode, f"a head without refinement rounds, or the data array {key!r} they need")


def _block_units(units: Any, M0: int) -> int:
    """The rows of the swept blocks: every unit, or the distinct units a block sweep lists."""
    if units is None:
        return M0
    if not isinstance(units, list) or not units or not all(is_int(u) and 0 <= u < M0 for u in units) \
            or len(set(units)) != len(units):
        raise Bad("units", units if len(str(units)) < 60 else f"{str(units)[:60]}...",
                  f"a non-empty list of distinct unit indices in 0..{M0 - 1} (network[0].shape)")
    return len(units)


def _cross_lp_bounds(net: list, data: Mapping[str, np.ndarray], rows: int) -> None:
    """The tightened pre-activation bounds a sweep may carry (formulate.tighten.bounds_data):
    lp_lo<j> / lp_hi<j> in pairs, for a layer j >= 2 of the network, each (T, M of layer j),
    lo <= hi."""
    for key in sorted(k for k in data if k.startswith(("lp_lo", "lp_hi"))):
        j = key[5:]
        if not j.isdigit() or not 2 <= int(j) < len(net):
            raise Bad(f"data.{key}", key, f"lp_lo<j> / lp_hi<j> for a layer j of the network from 2 to {len(net) - 1}")
        pair = ("lp_hi" if key.startswith("lp_lo") else "lp_lo") + j
        if pair not in data:
            raise Bad(f"data.{key}", "without " + pair, f"the pair {key} and {pair}")
        want = (rows, net[int(j)]["shape"][0])
        if data[key].shape != want:
            raise Bad(f"data.{key}", list(data[key].shape), f"shape {list(want)} (points x units of layer {j})")
        if key.startswith("lp_lo") and np.any(data[key] > data[pair]):
            raise Bad(f"data.{key}", "above " + pair, f"lower bounds <= the upper bounds of {pair}")


def _cross_network(meta: dict[str, Any], net: list, blocks: Mapping[str, tuple[int, tuple[int, ...]]],
                   data: Mapping[str, np.ndarray], T: int | None) -> None:
    for j in range(1, len(net)):
        if net[j]["shape"][1] != net[j - 1]["shape"][0]:
            raise Bad(f"network[{j}].shape", net[j]["shape"], f"[M, {net[j - 1]['shape'][0]}] (the outputs of "
                                                              f"network[{j - 1}])")
    if not net:
        raise Bad("network", net, "at least one layer (the swept one)")
    M0, N0 = net[0]["shape"]
    B = _block_units(meta.get("units"), M0)  # a block sweep: the w, b blocks hold its units only
    for name, want in (("w", (B, N0)), ("b", (B,))):
        if name in blocks and tuple(blocks[name][1]) != want:
            raise Bad("network[0].shape", net[0]["shape"], f"the shape of block {name!r} "
                                                           f"{list(blocks[name][1])}")
    for key, want in (("N", N0), ("M", M0)):
        if is_int(meta.get(key)) and meta[key] != want:
            raise Bad(key, meta[key], f"{want} (network[0].shape)")
    if "H" not in data:
        return
    H = data["H"]
    rows = H.shape[0] if H.ndim == 2 else None
    if H.ndim != 2 or H.shape[1] != N0:
        raise Bad("network[0].shape", net[0]["shape"], f"a layer taking the data array H {list(H.shape)}")
    if T is not None and rows != T:
        raise Bad("T", T, f"the rows of the data array H ({rows})")
    for j, la in enumerate(net):
        for arr, want in ((f"W{j}", tuple(la["shape"])), (f"b{j}", (la["shape"][0],))):
            if arr not in data or data[arr].shape != want:
                got = list(data[arr].shape) if arr in data else "missing"
                raise Bad(f"network[{j}].shape", la["shape"], f"the shape of data array {arr!r} ({got})")
    _cross_lp_bounds(net, data, rows)
    y = data.get("y")
    M_out = net[-1]["shape"][0]
    if y is not None and (y.shape[0] != rows or y.ndim > 2 or (y.ndim == 2 and y.shape[1] != M_out)):
        raise Bad("network", f"{len(net)} layers", f"a network whose outputs fit the data array y {list(y.shape)}")
    form = meta.get("formulation") or meta.get("task")
    if y is not None and form == "classification":
        if y.ndim != 1 or (len(y) and (y.min() < 0 or y.max() >= M_out)):
            raise Bad("formulation", form, f"a formulation fitting the data array y {list(y.shape)} "
                                           f"({M_out} classes: labels 0..{M_out - 1})")
    if y is not None and form == "regression" and y.size != rows * M_out:
        raise Bad("formulation", form, f"a formulation fitting the data array y {list(y.shape)} "
                                       f"(regression: {rows} x {M_out} targets)")
