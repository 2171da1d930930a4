"""Progress from Python (issue 12): `verbose=` prints what the history records, and
`History.plot()` draws the history's own numbers with every sweep marked."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from torch import nn

from gdsolver.errors import GdsolverError
from gdsolver.train import GDSolver, GDTrainer, History
from gdsolver.train.bpgrad import BPGradTrainer
from gdsolver.train.lifted_bcd import LiftedBCDTrainer


def blobs(n=160, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(k, d))
    y = rng.integers(0, k, n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))


@pytest.fixture(scope="module")
def sweep_run():
    """A GDSolver run printed with verbose=1: 2 epochs, then sweeps (stuck GD)."""
    X, y = blobs()
    trainer = GDSolver(mlp(), epochs=2, phase_epochs=1, max_sweeps=2, lr=1e-6, patience=None, time_limit=20)
    trainer.verbose = 1  # GDSolver's constructor takes it once hybrid.py passes it on
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        hist = trainer.fit((X[:120], y[:120]), (X[120:], y[120:]))
    finally:
        sys.stdout = saved
    return hist, out.getvalue()


def test_verbose_prints_one_line_per_history_row(sweep_run):
    hist, text = sweep_run
    lines = text.splitlines()
    assert len(lines) == len(hist.rows) and len(hist.sweeps) == 2
    for line, row in zip(lines, hist.rows):
        if row["kind"] == "epoch":
            assert line.startswith(f"gdsolver epoch {row['epoch']}/2: ")
        else:
            verdict = "accepted" if row["accepted"] else "rejected"
            assert line.startswith(f"gdsolver sweep {row['sweep']} after epoch {row['epoch']}, "
                                   f"radius {row['radius']:g}, layer {row['layer_name']!r}: {row['status']}, "
                                   f"{verdict}: {row['reason']}")
        # the figures printed are the history's
        assert f"train loss {row['train_loss']:.4g} acc {row['train_acc']:.3f}" in line
        assert f"val loss {row['val_loss']:.4g} acc {row['val_acc']:.3f}" in line


@pytest.mark.parametrize("make", [
    lambda m, v: GDTrainer(m, epochs=3, verbose=v),
    lambda m, v: BPGradTrainer(m, epochs=3, verbose=v),
    lambda m, v: LiftedBCDTrainer(m, epochs=3, verbose=v),
])
def test_verbose_levels(make, capsys):
    X, y = blobs()
    hist = make(mlp(), 0).fit((X, y))
    assert capsys.readouterr().out == ""
    for level in (True, 1, 2):  # 2 prints lines when stdout is not a terminal (here: captured)
        hist = make(mlp(), level).fit((X, y))
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == len(hist.rows) == 3
        assert all(f"epoch {r['epoch']}/3: train loss {r['train_loss']:.4g}" in ln for ln, r in zip(lines, hist.rows))


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_verbose_2_draws_a_bar_in_place_on_a_terminal(monkeypatch):
    X, y = blobs()
    out = Tty()
    monkeypatch.setattr(sys, "stdout", out)
    hist = GDTrainer(mlp(), epochs=4, verbose=2).fit((X, y))
    text = out.getvalue()
    assert text.count("\r") >= 4 and text.endswith("\n") and text.count("\n") == 1  # one line, redrawn
    last = text.rstrip("\n").split("\r")[-1]
    assert "[" + "#" * 24 + "] 4/4" in last
    assert f"epoch 4: loss {hist.rows[-1]['train_loss']:.4g} acc {hist.rows[-1]['train_acc']:.3f}" in last


def test_verbose_2_keeps_a_line_per_sweep_on_a_terminal(monkeypatch):
    X, y = blobs()
    out = Tty()
    monkeypatch.setattr(sys, "stdout", out)
    t = GDSolver(mlp(), epochs=2, phase_epochs=1, max_sweeps=2, lr=1e-6, patience=None, time_limit=20)
    t.verbose = 2
    hist = t.fit((X, y))
    kept = [seg for seg in out.getvalue().split("\r") if seg.endswith("\n") and "sweep" in seg and "after" in seg]
    assert len(kept) == len(hist.sweeps) == 2


@pytest.mark.parametrize("bad", [3, -1, "yes", 1.5, None])
def test_bad_verbose(bad):
    with pytest.raises(GdsolverError, match="verbose"):
        GDTrainer(mlp(), verbose=bad)


# ---------------------------------------------------------------------------- History.plot
def handmade_history(acc=True):
    h = History("gdsolver")
    losses = [1.0, 0.8, 0.7, 0.5, 0.45, 0.45, 0.4]
    rows = [("epoch", 1, None), ("epoch", 2, None), ("sweep", 2, True), ("epoch", 3, None),
            ("sweep", 3, True), ("sweep", 3, False), ("epoch", 4, None)]
    for (kind, ep, ok), loss in zip(rows, losses):
        h.add(kind, epoch=ep, sweep=1 if kind == "sweep" else None, accepted=ok, train_loss=loss,
              val_loss=loss + 0.1, train_acc=1 - loss / 2 if acc else None, val_acc=0.9 - loss / 2 if acc else None)
    return h


def test_plot_draws_the_history_and_marks_the_sweeps(tmp_path):
    pytest.importorskip("matplotlib")
    h = handmade_history()
    path = tmp_path / "history.png"
    fig = h.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss_ax, acc_ax = fig.axes
    by_label = {ln.get_label(): ln for ln in loss_ax.get_lines()}
    np.testing.assert_array_equal(by_label["train loss"].get_ydata(), [r["train_loss"] for r in h.rows])
    np.testing.assert_array_equal(by_label["validation loss"].get_ydata(), [r["val_loss"] for r in h.rows])
    xs = by_label["train loss"].get_xdata()
    assert list(xs) == sorted(xs) and xs[0] == 1 and xs[-1] == 4  # sweeps sit between their epochs
    acc = {ln.get_label(): ln for ln in acc_ax.get_lines()}
    np.testing.assert_array_equal(acc["train accuracy"].get_ydata(), [r["train_acc"] for r in h.rows])
    # one vertical line per sweep and axis: two accepted (green), one rejected (red)
    for ax in (loss_ax, acc_ax):
        marks = [ln for ln in ax.get_lines() if ln.get_label().startswith("_")]
        colours = sorted(ln.get_color() for ln in marks)
        assert colours == ["tab:green", "tab:green", "tab:red"]
    legend = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert "sweep accepted" in legend and "sweep rejected" in legend


def test_plot_into_given_axes_and_regression(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    h = handmade_history()
    assert h.plot(ax=ax) is fig
    assert len(fig.axes) == 2  # accuracy on a twin axis
    reg = handmade_history(acc=False)
    f2 = reg.plot()
    assert len(f2.axes) == 1 and f2.axes[0].get_ylabel() == "loss"
