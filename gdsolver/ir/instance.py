"""MilpInstance: a flat, vectorised, solver-independent MILP.

    min/max  c.x + c0
    s.t.     row_lo <= A x <= row_hi
             lb <= x <= ub,  x_i integer where vtype_i != 0
             x[ind_var_k] == ind_val_k  =>  ind_lo_k <= ind_A_k x <= ind_hi_k

Variables are grouped in named blocks (name -> offset, shape); linear rows and
indicators in named groups (name -> offset, count) so that messages, `inspect`
and `unpack` can speak in the formulation's terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdsolver.errors import ArgTypeError, InstanceError
from gdsolver.ir.bounds import indicator_big_m
from gdsolver.ir.csr import Csr

CONTINUOUS, BINARY, INTEGER = 0, 1, 2
VTYPE_NAMES = {CONTINUOUS: "continuous", BINARY: "binary", INTEGER: "integer"}


@dataclass
class MilpInstance:
    blocks: dict[str, tuple[int, tuple[int, ...]]]
    lb: np.ndarray
    ub: np.ndarray
    vtype: np.ndarray
    A: Csr
    row_lo: np.ndarray
    row_hi: np.ndarray
    ind_var: np.ndarray
    ind_val: np.ndarray
    ind_A: Csr
    ind_lo: np.ndarray
    ind_hi: np.ndarray
    c: np.ndarray
    c0: float = 0.0
    sense: str = "min"
    start: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    row_groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    ind_groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    # context that is not part of the optimisation problem: what a forward pass needs to
    # re-check an answer (a sweep's inputs, targets, layer weights); float64 or int64 arrays
    data: dict[str, np.ndarray] = field(default_factory=dict)

    # ---- sizes -------------------------------------------------------------
    @property
    def num_vars(self) -> int:
        return len(self.lb)

    @property
    def num_rows(self) -> int:
        return self.A.nrows

    @property
    def num_indicators(self) -> int:
        return len(self.ind_var)

    @property
    def num_integer(self) -> int:
        return int(np.count_nonzero(self.vtype))

    @property
    def is_mip(self) -> bool:
        return self.num_integer > 0 or self.num_indicators > 0

    # ---- naming ------------------------------------------------------------
    def unpack(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Split a full solution vector into its named blocks, reshaped."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.num_vars,):
            raise InstanceError(f"x has shape {x.shape}, expected ({self.num_vars},)")
        return {name: x[off : off + math.prod(shape)].reshape(shape) for name, (off, shape) in self.blocks.items()}

    def var_label(self, i: int) -> str:
        """Human label of variable i, e.g. 'w[2, 5]'."""
        return _label(self.blocks, int(i), var=True)

    def row_label(self, i: int) -> str:
        return _label({k: (o, (n,)) for k, (o, n) in self.row_groups.items()}, int(i), var=False)

    def ind_label(self, i: int) -> str:
        return _label({k: (o, (n,)) for k, (o, n) in self.ind_groups.items()}, int(i), var=False)

    # ---- checks ------------------------------------------------------------
    def validate(self) -> None:
        """Structural consistency: shapes, dtypes, index ranges, NaN. Raises InstanceError (a ValueError)."""
        n = self.num_vars
        for name in ("ub", "vtype", "c"):
            if getattr(self, name).shape != (n,):
                raise InstanceError(f"field '{name}' has shape {getattr(self, name).shape}, expected ({n},)")
        if self.start is not None and self.start.shape != (n,):
            raise InstanceError(f"field 'start' has shape {self.start.shape}, expected ({n},)")
        for name, mat, nrows in (("A", self.A, len(self.row_lo)), ("ind_A", self.ind_A, len(self.ind_lo))):
            if mat.nrows != nrows:
                raise InstanceError(f"field '{name}' has {mat.nrows} rows but its bounds have {nrows}")
            if mat.ncols != n:
                raise InstanceError(f"field '{name}' has {mat.ncols} columns, expected {n}")
            if mat.indptr[0] != 0 or np.any(np.diff(mat.indptr) < 0) or mat.indptr[-1] != len(mat.indices):
                raise InstanceError(f"field '{name}.indptr' is not a valid CSR row pointer")
            if len(mat.indices) != len(mat.data):
                raise InstanceError(f"field '{name}' has {len(mat.indices)} indices but {len(mat.data)} values")
            if len(mat.indices) and (mat.indices.min() < 0 or mat.indices.max() >= n):
                raise InstanceError(f"field '{name}.indices' has a column outside [0, {n})")
            if not np.all(np.isfinite(mat.data)):
                raise InstanceError(f"field '{name}.data' contains NaN or inf")
        if not (len(self.row_hi) == len(self.row_lo)):
            raise InstanceError("fields 'row_lo' and 'row_hi' differ in length")
        k = len(self.ind_var)
        for name in ("ind_val", "ind_lo", "ind_hi"):
            if len(getattr(self, name)) != k:
                raise InstanceError(f"field '{name}' has length {len(getattr(self, name))}, expected {k}")
        if k and (self.ind_var.min() < 0 or self.ind_var.max() >= n):
            raise InstanceError(f"field 'ind_var' refers to a variable outside [0, {n})")
        if k and not np.all(self.vtype[self.ind_var] != CONTINUOUS):
            bad = int(self.ind_var[np.argmax(self.vtype[self.ind_var] == CONTINUOUS)])
            raise InstanceError(f"indicator variable {self.var_label(bad)} is continuous, expected binary")
        if k and (np.any(self.lb[self.ind_var] < 0) or np.any(self.ub[self.ind_var] > 1)):
            raise InstanceError("an indicator variable has bounds outside [0, 1]")
        if k and np.any(self.ind_val > 1):
            raise InstanceError("field 'ind_val' must hold 0 or 1")
        for name in ("lb", "ub", "row_lo", "row_hi", "ind_lo", "ind_hi", "c"):
            if np.any(np.isnan(getattr(self, name))):
                raise InstanceError(f"field '{name}' contains NaN")
        if not np.all(np.isfinite(self.c)) or not math.isfinite(self.c0):
            raise InstanceError("objective contains inf")
        for what, lo, hi, label in (("row", self.row_lo, self.row_hi, self.row_label),
                                    ("indicator", self.ind_lo, self.ind_hi, self.ind_label)):
            bad = (lo > hi) | (lo == np.inf) | (hi == -np.inf)
            if np.any(bad):
                i = int(np.argmax(bad))
                raise InstanceError(f"{what} {label(i)} has bounds [{lo[i]}, {hi[i]}]: no value satisfies them")
        if np.any(self.lb == np.inf) or np.any(self.ub == -np.inf):
            i = int(np.argmax((self.lb == np.inf) | (self.ub == -np.inf)))
            raise InstanceError(f"variable {self.var_label(i)} has bounds [{self.lb[i]}, {self.ub[i]}]: no value satisfies them")
        if np.any(self.lb > self.ub):
            i = int(np.argmax(self.lb > self.ub))
            raise InstanceError(f"variable {self.var_label(i)} has lb {self.lb[i]} > ub {self.ub[i]}")
        if not set(np.unique(self.vtype)).issubset(VTYPE_NAMES):
            raise InstanceError("field 'vtype' must hold 0 (continuous), 1 (binary) or 2 (integer)")
        if self.sense not in ("min", "max"):
            raise InstanceError(f"field 'sense' is {self.sense!r}, expected 'min' or 'max'")
        for name, (off, shape) in self.blocks.items():
            if off < 0 or any(d < 0 for d in shape):
                raise InstanceError(f"block {name!r} has offset {off} and shape {tuple(shape)}; expected "
                                 "non-negative numbers")
        for what, groups, total in (("row group", self.row_groups, self.num_rows),
                                    ("indicator group", self.ind_groups, self.num_indicators)):
            for name, (off, cnt) in groups.items():
                if off < 0 or cnt < 0 or off + cnt > total:
                    raise InstanceError(f"{what} {name!r} covers [{off}, {off + cnt}), outside [0, {total})")
        for name, arr in self.data.items():
            if not isinstance(arr, np.ndarray) or arr.dtype not in (np.float64, np.int64):
                raise InstanceError(f"data array '{name}' must be a float64 or int64 numpy array")
            if arr.dtype == np.float64 and not np.all(np.isfinite(arr)):
                raise InstanceError(f"data array '{name}' contains NaN or inf")
        spans = sorted((o, o + math.prod(s), k) for k, (o, s) in self.blocks.items())
        end = 0
        for start, stop, name in spans:  # blocks must tile [0, n) without gap or overlap
            if start != end:
                raise InstanceError(f"block {name!r} starts at {start}, expected {end} (blocks must tile the variables)")
            end = stop
        if end != n:
            raise InstanceError(f"blocks cover {end} variables, expected {n}")

    def objective_value(self, x: np.ndarray) -> float:
        return float(self.c @ np.asarray(x, dtype=np.float64) + self.c0)

    def summary(self) -> dict[str, Any]:
        """Counts, nnz, coefficient ranges and big-M ranges, for `gdsolver inspect`."""
        def rng(a: np.ndarray) -> list[float] | None:
            a = np.abs(a[np.isfinite(a) & (a != 0)])
            return [float(a.min()), float(a.max())] if len(a) else None

        big_m = indicator_big_m(self)
        finite_lb, finite_ub = np.isfinite(self.lb), np.isfinite(self.ub)
        return {
            "variables": self.num_vars,
            "continuous": int(np.count_nonzero(self.vtype == CONTINUOUS)),
            "binary": int(np.count_nonzero(self.vtype == BINARY)),
            "integer": int(np.count_nonzero(self.vtype == INTEGER)),
            "rows": self.num_rows,
            "indicators": self.num_indicators,
            "nnz": self.A.nnz,
            "indicator_nnz": self.ind_A.nnz,
            "sense": self.sense,
            "blocks": {k: {"offset": o, "shape": list(s)} for k, (o, s) in self.blocks.items()},
            "row_groups": {k: {"offset": o, "count": c} for k, (o, c) in self.row_groups.items()},
            "indicator_groups": {k: {"offset": o, "count": c} for k, (o, c) in self.ind_groups.items()},
            "coefficient_range": _merge(rng(self.A.data), rng(self.ind_A.data)),  # no copy of both
            "objective_range": rng(self.c),
            "bound_range": rng(np.concatenate([self.lb[finite_lb], self.ub[finite_ub]])),
            "rhs_range": rng(np.concatenate([self.row_lo, self.row_hi, self.ind_lo, self.ind_hi])),
            "unbounded_vars": int(np.count_nonzero(~(finite_lb & finite_ub))),
            "big_m_range": big_m["range"],
            "big_m_infinite": big_m["infinite"],
            "has_start": self.start is not None,
            "meta": self.meta,
        }


def _merge(*ranges: list[float] | None) -> list[float] | None:
    """The range covering the given [min, max] ranges (None: an empty one)."""
    got = [r for r in ranges if r is not None]
    return [min(r[0] for r in got), max(r[1] for r in got)] if got else None


def _label(groups: dict[str, tuple[int, tuple[int, ...]]], i: int, var: bool) -> str:
    for name, (off, shape) in groups.items():
        size = math.prod(shape)
        if off <= i < off + size:
            idx = np.unravel_index(i - off, shape)
            return f"{name}[{', '.join(str(int(j)) for j in idx)}]"
    return f"{'x' if var else 'row'}[{i}]"


class InstanceBuilder:
    """Assembles a MilpInstance from vectorised pieces: add variable blocks, then
    groups of rows and indicators as COO triplets (row-sorted triplets avoid a sort)."""

    def __init__(self) -> None:
        self._blocks: dict[str, tuple[int, tuple[int, ...]]] = {}
        self._lb: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self._vtype: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self._start: list[np.ndarray | None] = []
        self._n = 0
        self._bounds_cache: tuple[np.ndarray, np.ndarray] | None = None
        self._rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]] = []
        self._inds: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]] = []

    def add_block(
        self,
        name: str,
        shape: tuple[int, ...],
        lb: Any = -np.inf,
        ub: Any = np.inf,
        vtype: int = CONTINUOUS,
        cost: Any = 0.0,
        start: np.ndarray | None = None,
    ) -> np.ndarray:
        """Add a block of variables; returns their global indices with the block's shape."""
        if name in self._blocks:
            raise InstanceError(f"block {name!r} already exists")
        shape = tuple(int(s) for s in shape)
        size = math.prod(shape)
        self._blocks[name] = (self._n, shape)
        self._lb.append(np.broadcast_to(np.asarray(lb, np.float64), shape).ravel())
        self._ub.append(np.broadcast_to(np.asarray(ub, np.float64), shape).ravel())
        self._vtype.append(np.full(size, vtype, np.uint8))
        self._c.append(np.broadcast_to(np.asarray(cost, np.float64), shape).ravel())
        self._start.append(None if start is None else np.broadcast_to(np.asarray(start, np.float64), shape).ravel())
        idx = np.arange(self._n, self._n + size, dtype=np.int64).reshape(shape)
        self._n += size
        return idx

    def var_bounds(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Current (lb, ub) of the variables with global indices `idx` (any shape)."""
        if self._bounds_cache is None or len(self._bounds_cache[0]) != self._n:
            self._bounds_cache = (np.concatenate(self._lb) if self._lb else np.zeros(0),
                                  np.concatenate(self._ub) if self._ub else np.zeros(0))
        lb, ub = self._bounds_cache
        return lb[idx], ub[idx]

    def add_rows(self, name: str, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, nrows: int,
                 lo: Any, hi: Any) -> None:
        """Add `nrows` rows lo <= sum vals*x[cols] <= hi given as triplets (local row ids)."""
        lo = np.broadcast_to(np.asarray(lo, np.float64), (nrows,)).ravel()
        hi = np.broadcast_to(np.asarray(hi, np.float64), (nrows,)).ravel()
        self._rows.append((name, rows, cols, vals, nrows, lo, hi))

    def add_indicators(self, name: str, var: np.ndarray, val: Any, rows: np.ndarray, cols: np.ndarray,
                       vals: np.ndarray, lo: Any, hi: Any) -> None:
        """Add indicators x[var_k] == val_k => lo_k <= row_k . x <= hi_k (rows local, 0..len(var)-1)."""
        var = np.asarray(var, np.int64).ravel()
        k = len(var)
        val = np.broadcast_to(np.asarray(val, np.uint8), (k,)).ravel()
        lo = np.broadcast_to(np.asarray(lo, np.float64), (k,)).ravel()
        hi = np.broadcast_to(np.asarray(hi, np.float64), (k,)).ravel()
        self._inds.append((name, var, val, rows, cols, vals, k, lo, hi))

    def build(self, sense: str = "min", c0: float = 0.0, meta: dict[str, Any] | None = None) -> MilpInstance:
        n = self._n
        cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731

        row_groups, lo_parts, hi_parts, off = {}, [], [], 0
        for name, r, cidx, v, m, lo, hi in self._rows:
            row_groups[name] = (off, m)
            lo_parts.append(lo)
            hi_parts.append(hi)
            off += m
        ind_groups, ivar, ival, ilo, ihi, off = {}, [], [], [], [], 0
        for name, var, val, r, cidx, v, k, lo, hi in self._inds:
            ind_groups[name] = (off, k)
            ivar.append(var)
            ival.append(val)
            ilo.append(lo)
            ihi.append(hi)
            off += k
        start = None
        if any(s is not None for s in self._start):
            if any(s is None for s in self._start):
                missing = [k for k, s in zip(self._blocks, self._start) if s is None]
                raise InstanceError(f"MIP start given for some blocks but not for {missing}")
            start = cat(self._start, np.float64)
        inst = MilpInstance(
            blocks=dict(self._blocks),
            lb=cat(self._lb, np.float64), ub=cat(self._ub, np.float64), vtype=cat(self._vtype, np.uint8),
            A=Csr.stack_coo([(r, cidx, v, m) for _, r, cidx, v, m, _, _ in self._rows], n),
            row_lo=cat(lo_parts, np.float64), row_hi=cat(hi_parts, np.float64),
            ind_var=cat(ivar, np.int32), ind_val=cat(ival, np.uint8),
            ind_A=Csr.stack_coo([(r, cidx, v, k) for _, _, _, r, cidx, v, k, _, _ in self._inds], n),
            ind_lo=cat(ilo, np.float64), ind_hi=cat(ihi, np.float64),
            c=cat(self._c, np.float64), c0=float(c0), sense=sense, start=start,
            meta=dict(meta or {}), row_groups=row_groups, ind_groups=ind_groups,
        )
        return inst


def require_instance(value: Any, name: str = "inst") -> MilpInstance:
    """`value` if it is a MilpInstance, else ArgTypeError (a TypeError) naming what was given."""
    if not isinstance(value, MilpInstance):
        raise ArgTypeError(f"{name}: expected a MilpInstance (gdsolver.load(path) reads one from a .gdsm file), got "
                           f"{type(value).__name__} {repr(value)[:40]}")
    return value
