"""The record of a training run: one row per GD epoch and one per solver sweep.

Every trainer (GD baselines, GDSolver, BPGrad, lifted BCD) writes the same columns,
so runs of different methods can be put side by side in one table."""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

from gdsolver.atomic import atomic_write_text

# Column order of to_frame() / to_csv(). Rows leave unused columns as None.
COLUMNS = (
    "kind",            # "epoch" or "sweep"
    "phase",           # GD phase (GDSolver: phase k ends with sweep k); 1-based
    "epoch",           # GD epochs completed so far (global, 1-based for epoch rows)
    "sweep",           # sweep number (1-based) for sweep rows
    "candidate",       # portfolio sweeps: the candidate's number within its sweep (0-based; None without)
    "layer",           # index of the swept dense layer in the network's chain (sweep rows)
    "layer_name",      # its torch module path / ONNX node name
    "units",           # a block sweep: the swept layer's units that were free (None: every unit)
    "lr",              # learning rate used in the epoch (or BPGrad's last step size)
    "train_loss", "train_acc", "val_loss", "val_acc",
    "gd_time_s",       # wall time of this epoch's GD steps
    "partial",         # under budget_s, a last epoch cut at the budget's end: the share of its batches that ran
    "solver_time_s",   # wall time of the solve (sweep rows)
    "build_time_s",    # feature extraction + formulation (sweep rows)
    "status",          # solver status, or SKIPPED / ERROR
    "objective",       # solver objective (sweep rows)
    "sweep_loss_before", "sweep_loss_after",  # the solver's loss on its points, by forward pass
    "gain",            # portfolio: relative improvement of that loss by the answer (float64 forward pass of
                       # the instance's network), the order candidates are tried in
    "accepted",        # True / False for sweep rows
    "reason",          # why accepted or rejected
    "radius",          # box half-width used by the sweep
    "points",          # number of data points in the instance
    "n_vars", "n_cons", "n_binary",
    "objective_value", # trainer-specific objective (lifted BCD)
    "restart",         # which initialisation the row belongs to (restarts > 1; 0 = the model's own)
    "elapsed_s",       # wall time since fit() started
)


class History:
    """Rows of a run, in order. `history.epochs` / `history.sweeps` filter by kind."""

    def __init__(self, method: str = "") -> None:
        self.method = method
        self.rows: list[dict[str, Any]] = []
        self.chosen_restart: int | None = None  # with restarts: the initialisation that was kept
        self.decisions: list[dict[str, Any]] = []  # under a time budget: each move chosen and why

    def is_kept(self, r: dict[str, Any]) -> bool:
        """A row of the run that was kept (rows of discarded restarts only count for time)."""
        return self.chosen_restart is None or r.get("restart") in (None, self.chosen_restart)

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise ValueError(f"History.add: unknown columns {sorted(unknown)}")
        row = {c: None for c in COLUMNS}
        row.update(fields, kind=kind)
        self.rows.append(row)
        return row

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["kind"] == "epoch"]

    @property
    def sweeps(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["kind"] == "sweep"]

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {c: None for c in COLUMNS}

    def to_frame(self):
        """A pandas DataFrame with one row per epoch/sweep (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("History.to_frame needs pandas: pip install pandas (or use to_csv / rows)") from None
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The rows as CSV text; also written (atomically) to `path` when given."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text

    def summary(self) -> dict[str, Any]:
        """Final losses/accuracies, epochs, sweeps (accepted), and GD vs solver wall time."""
        ep, sw = [r for r in self.epochs if self.is_kept(r)], self.sweeps
        evaluated = [r for r in self.rows if r["train_loss"] is not None and self.is_kept(r)]
        last = evaluated[-1] if evaluated else {c: None for c in COLUMNS}
        out = {
            "method": self.method,
            "epochs": len(ep),
            "sweeps": len({r["sweep"] for r in sw}),  # a portfolio sweep has a row per candidate
            "sweeps_accepted": sum(1 for r in sw if r["accepted"]),
            "train_loss": last["train_loss"], "train_acc": last["train_acc"],
            "val_loss": last["val_loss"], "val_acc": last["val_acc"],
            "gd_time_s": float(sum(r["gd_time_s"] or 0.0 for r in self.rows)),
            "solver_time_s": float(sum((r["solver_time_s"] or 0.0) + (r["build_time_s"] or 0.0) for r in sw)),
            "radii": [r["radius"] for r in sw],  # per row (every candidate's)
        }
        if self.chosen_restart is not None:
            out["restarts"] = 1 + max(r.get("restart") or 0 for r in self.rows)
            out["chosen_restart"] = self.chosen_restart
        return out

    def to_json_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:  # JSON has no NaN/inf
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {"method": self.method, "columns": list(COLUMNS), "chosen_restart": self.chosen_restart,
                "rows": [{k: clean(v) for k, v in r.items()} for r in self.rows],
                "decisions": [{k: clean(v) for k, v in d.items()} for d in self.decisions]}

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> "History":
        h = cls(d.get("method", ""))
        h.chosen_restart = d.get("chosen_restart")
        h.decisions = list(d.get("decisions") or [])
        for r in d.get("rows", []):
            row = {c: r.get(c) for c in COLUMNS}
            h.rows.append(row)
        return h

    def plot(self, path: str | os.PathLike | None = None, ax: Any = None):
        """Loss (and accuracy, for classification) per epoch, training and validation, with
        every sweep marked: a green line where one was accepted, a red dotted one where it was
        rejected. `ax`: one matplotlib Axes (accuracy then goes on a twin axis) or a pair
        (loss, accuracy) to draw into; default a new figure. `path`: also save the figure
        there (the format from the suffix). Returns the matplotlib Figure, which a notebook
        displays. Needs matplotlib (imported here, not with gdsolver)."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ImportError("History.plot needs matplotlib: .venv/bin/pip install -c constraints.txt "
                              "matplotlib") from None
        xs = _plot_positions(self.rows)
        rows = [(x, r) for x, r in zip(xs, self.rows) if r["train_loss"] is not None]
        has_acc = any(r["train_acc"] is not None for _, r in rows)
        twin = False
        if ax is None:
            # a bare Figure (not pyplot): no global state, no second copy shown in a notebook; one
            # that shows itself as a PNG when it is a cell's value, whatever matplotlib's backend
            from gdsolver.train.figure import ShownFigure

            fig = ShownFigure(figsize=(10 if has_acc else 6, 4), layout="constrained")
            axes = list(fig.subplots(1, 2)) if has_acc else [fig.subplots(1, 1)]
        else:
            axes = list(ax) if isinstance(ax, (list, tuple)) or getattr(ax, "ndim", 0) else [ax]
            if has_acc and len(axes) == 1:
                axes.append(axes[0].twinx())
                twin = True
            fig = axes[0].figure
        series = [("loss", "train_loss", "val_loss")] + ([("accuracy", "train_acc", "val_acc")] if has_acc else [])
        for a, (label, tr, va), color in zip(axes, series, ("tab:blue", "tab:orange")):
            for key, style, name in ((tr, "-", "train"), (va, "--", "validation")):
                pts = [(x, r[key]) for x, r in rows if r[key] is not None]
                if pts:
                    a.plot(*zip(*pts), style, marker=".", label=f"{name} {label}", color=color if twin else None)
            a.set_xlabel("epoch")
            a.set_ylabel(label)
        for x, r in zip(xs, self.rows):
            if r["kind"] == "sweep":
                ok = bool(r["accepted"])
                for a in axes[:1] if twin else axes:
                    a.axvline(x, color="tab:green" if ok else "tab:red", linestyle="-" if ok else ":", alpha=0.7,
                              linewidth=1.2)
        from matplotlib.lines import Line2D

        kinds = {bool(r["accepted"]) for r in self.sweeps}
        marks = ([Line2D([], [], color="tab:green", label="sweep accepted")] if True in kinds else []) + \
                ([Line2D([], [], color="tab:red", linestyle=":", label="sweep rejected")] if False in kinds else [])
        handles, labels = axes[0].get_legend_handles_labels()
        axes[0].legend(handles + marks, labels + [m.get_label() for m in marks], fontsize="small")
        if has_acc and len(axes) > 1:
            axes[1].legend(fontsize="small", loc="center right" if twin else "best")
        axes[0].set_title(self.method or "training")
        if path is not None:
            from gdsolver.atomic import atomic_path

            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=os.path.splitext(os.fspath(path))[1].lstrip(".") or None)
        return fig

    def _repr_png_(self) -> bytes | None:
        """The plot as PNG bytes: what a notebook shows when the history is a cell's value
        (IPython asks for it; matplotlib's backend is not touched). None without rows or
        matplotlib: the text repr is shown instead."""
        if not any(r["train_loss"] is not None for r in self.rows):
            return None
        try:
            fig = self.plot()
        except ImportError:
            return None
        from gdsolver.train.figure import png_bytes

        return png_bytes(fig)

    def __repr__(self) -> str:
        s = self.summary()
        return (f"History({self.method!r}: {s['epochs']} epochs, {s['sweeps']} sweeps "
                f"({s['sweeps_accepted']} accepted), train_loss={s['train_loss']}, val_loss={s['val_loss']})")


def _plot_positions(rows: list[dict[str, Any]]) -> list[float]:
    """x of each row: an epoch row at its epoch number; the sweeps that follow epoch e
    spread over (e, e + 1), so a sweep's jump shows between the epochs around it."""
    xs: list[float] = []
    i = 0
    while i < len(rows):
        if rows[i]["kind"] != "sweep":
            xs.append(float(rows[i]["epoch"] or 0))
            i += 1
            continue
        j = i
        while j < len(rows) and rows[j]["kind"] == "sweep":
            j += 1
        e = float(rows[i]["epoch"] or 0)
        xs.extend(e + (k + 1) / (j - i + 1) for k in range(j - i))
        i = j
    return xs

