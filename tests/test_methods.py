"""The method table (gdsolver.train.methods): each record builds the trainer it names, with the
optimizer and schedule a GDSolver GD phase copies from it, and the lists the CLI and the
benchmarks read come from the same records."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from torch import nn  # noqa: E402

from gdsolver.errors import GdsolverError  # noqa: E402
from gdsolver.train.methods import (METHODS, TABLE, baseline_names, check_baselines, gd_baseline_names,  # noqa: E402
                                    gd_phase_options, make_trainer, method, method_options)

EXPECTED = {"gdsolver": ("GDSolver", "sgd", None), "gdsolver-no-sweeps": ("GDSolver", "sgd", None),
            "gdsolver-2loop": ("GDSolver", "sgd", None),
            "gdsolver-lbfgs": ("GDSolver", "lbfgs", None), "sgd": ("GDTrainer", "sgd", None),
            "sgd-lrs": ("GDTrainer", "sgd", "plateau"), "adam": ("GDTrainer", "adam", None),
            "adam-lrs": ("GDTrainer", "adam", "plateau"), "lbfgs": ("GDTrainer", "lbfgs", None),
            "bpgrad": ("BPGradTrainer", None, None), "lifted-bcd": ("LiftedBCDTrainer", None, None)}


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_record_builds_its_trainer(name: str) -> None:
    t = make_trainer(name, _net(), "classification", epochs=1, L=3.0)  # L: BPGrad's only; dropped for the others
    cls, optimizer, schedule = EXPECTED[name]
    assert type(t).__name__ == cls
    assert getattr(t, "optimizer", None) == optimizer and getattr(t, "lr_schedule", None) == schedule
    assert t.epochs == 1


def test_the_lists_come_from_the_records() -> None:
    assert [m.name for m in TABLE] == list(METHODS) and set(METHODS) == set(EXPECTED)
    assert baseline_names() == [n for n in EXPECTED if not n.startswith("gdsolver")]
    assert gd_baseline_names() == ["sgd", "sgd-lrs", "adam", "adam-lrs"]
    assert all(method(n).help == METHODS[n] and method_options(n) == method(n).options for n in METHODS)
    assert check_baselines(None) == baseline_names() and check_baselines(("adam",)) == ["adam"]
    with pytest.raises(GdsolverError, match="'gdsolver' is not a baseline"):
        check_baselines(["gdsolver"])
    with pytest.raises(GdsolverError, match="method: 'sgdd', expected one of"):
        make_trainer("sgdd", _net(), "classification")


@pytest.mark.parametrize("name", ["sgd", "sgd-lrs", "adam", "adam-lrs"])
def test_a_gd_phase_copies_the_baseline(name: str) -> None:
    """GDSolver with gd_phase_options(name) runs its GD phases as make_trainer(name) does."""
    base = make_trainer(name, _net(), "classification", lr=0.02)
    solver = make_trainer("gdsolver", _net(), "classification", **gd_phase_options(name, 0.02))
    assert (solver.optimizer, solver.lr_schedule, solver.lr) == (base.optimizer, base.lr_schedule, base.lr)
    with pytest.raises(GdsolverError, match="is not a GD baseline"):
        gd_phase_options("lbfgs")


def test_the_ablation_is_gdsolver_without_its_sweeps() -> None:
    t = make_trainer("gdsolver-no-sweeps", _net(), "classification", epochs=1)
    assert type(t).__name__ == "GDSolver" and t.skip_sweeps
    assert not make_trainer("gdsolver", _net(), "classification", epochs=1).skip_sweeps
    # the name fixes it: an option saying otherwise is not one the method takes
    assert make_trainer("gdsolver-no-sweeps", _net(), "classification", skip_sweeps=False).skip_sweeps
