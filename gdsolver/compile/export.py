"""Export an instance to MPS or LP for other solvers.

HiGHS writes both formats; indicators are lowered to big-M rows first. With
keep_indicators=True an LP file is written by gurobipy instead, keeping the
indicators as LP-format indicator constraints (writing needs no licence size)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from gdsolver.atomic import atomic_path, check_output_path
from gdsolver.errors import GdsolverError
from gdsolver.ir.instance import MilpInstance

EXPORT_FORMATS = (".mps", ".lp")


def variable_names(inst: MilpInstance) -> list[str]:
    """'w_2_5'-style names (MPS/LP-safe) for every variable, vectorised per block."""
    parts = []
    for name, (_, shape) in inst.blocks.items():
        size = math.prod(shape)
        s = np.full(size, name, dtype=object)
        for d in np.indices(shape).reshape(len(shape), -1):
            s = s + "_" + d.astype(str).astype(object)
        parts.append(s)
    return list(np.concatenate(parts)) if parts else []


def row_names(groups: dict[str, tuple[int, int]], total: int) -> list[str]:
    out = np.empty(total, dtype=object)
    out[:] = "r_" + np.arange(total).astype(str).astype(object)
    for name, (off, count) in groups.items():
        out[off : off + count] = name + "_" + np.arange(count).astype(str).astype(object)
    return list(out)


def export_model(inst: MilpInstance, path: str | os.PathLike, *, keep_indicators: bool = False) -> Path:
    """Write `inst` to `path` (.mps or .lp, chosen by suffix). Atomic."""
    check_output_path(path)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise GdsolverError(f"{path}: unknown export format {suffix!r}, expected one of {list(EXPORT_FORMATS)}")
    if keep_indicators and suffix != ".lp":
        raise GdsolverError(f"{path}: MPS has no indicator constraints; keep_indicators needs an .lp target")
    with atomic_path(path, suffix=suffix) as tmp:  # writers pick the format from the suffix
        if keep_indicators:
            _write_gurobi(inst, tmp, path)
        else:
            _write_highs(inst, tmp, path)
        check_complete(tmp, path)  # only a whole file is renamed over `path`
    return path


#: the last line of a complete file of each format (HiGHS and Gurobi both end them so)
_LAST_LINE = {".mps": b"ENDATA", ".lp": b"END"}


def check_complete(tmp: str, path: Path) -> None:
    """The solver libraries write through C stdio and may not report a failed write (a full disk,
    a quota): the file on disk must be flushed to stable storage and end with its format's last
    line, else nothing replaces `path` and the error names `path`."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
            size = os.fstat(fd).st_size
            tail = os.pread(fd, 64, max(0, size - 64))
        finally:
            os.close(fd)
    except OSError as exc:
        raise GdsolverError(f"{path}: cannot write ({exc.strerror or exc}); nothing was written there") from None
    want = _LAST_LINE[path.suffix.lower()]
    if not tail.rstrip().upper().endswith(want):
        raise GdsolverError(f"{path}: cannot write (the writer stopped after {size} bytes: disk full or a file size "
                            f"limit?); nothing was written there")


def _write_highs(inst: MilpInstance, tmp: str, path: Path) -> None:
    from gdsolver.compile.highs import build_highs

    h, low = build_highs(inst)
    lp = h.getLp()
    lp.col_names_ = variable_names(low)
    lp.row_names_ = row_names(low.row_groups, low.num_rows)
    h.passModel(lp)
    status = h.writeModel(tmp)
    if str(status) != "HighsStatus.kOk":
        raise GdsolverError(f"{path}: cannot write (HiGHS's writer returned {status}); nothing was written there")


def _write_gurobi(inst: MilpInstance, tmp: str, path: Path) -> None:
    from gdsolver.compile.gurobi import build_gurobi, quiet_env

    gp = __import__("gurobipy")
    env = quiet_env()
    try:
        m, x = build_gurobi(inst, env)
        names = variable_names(inst)
        m.setAttr("VarName", m.getVars(), names)
        m.update()
        try:
            m.write(tmp)
        except gp.GurobiError as exc:  # names the temporary file: say which file could not be written
            why = " ".join(str(exc).replace(f"'{tmp}'", "").replace(tmp, "").split()) or type(exc).__name__
            raise GdsolverError(f"{path}: cannot write (Gurobi: {why}); nothing was written there") from None
    finally:
        env.dispose()
