"""One settings record: every field of GDSolver's settings records (train.config.SETTINGS) is a
GDSolver keyword with the record's default, an option of its methods, and (when it has a CLI
type) an option of `gdsolver train` with its help, passed through to the trainer; a field added
to a record appears in all of them with nothing else written."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
from torch import nn

from gdsolver.train import GDSolver
from gdsolver.train import config as cfg
from gdsolver.train.methods import method_options

from clirun import run

FIELDS = [(cls, f) for cls in cfg.SETTINGS for f in dataclasses.fields(cls)]
GD_FIELDS = [f for f in dataclasses.fields(cfg.GDConfig)]


@pytest.fixture(scope="module")
def train_help(tmp_path_factory) -> str:
    p = run("train", "--help", cwd=tmp_path_factory.mktemp("help"))
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("cls,f", FIELDS, ids=[f"{c.__name__}.{f.name}" for c, f in FIELDS])
def test_every_setting_reaches_the_api_and_the_cli(cls, f, train_help):
    key = cfg.keyword(f.name)
    param = inspect.signature(GDSolver).parameters[key]
    assert param.default == f.default and param.kind is inspect.Parameter.KEYWORD_ONLY
    assert key in method_options("gdsolver")
    if f.metadata.get("cli_type") is not None:
        flag = "--" + {"solver_points": "points"}.get(key, key).replace("_", "-")
        line = next((ln for ln in train_help.splitlines() if flag in ln.split()), None)
        assert line is not None, flag
        assert " ".join(cfg.help_text(f).split()[:2]) in " ".join(train_help.replace("│", " ").split())


@pytest.mark.parametrize("f", GD_FIELDS, ids=[f.name for f in GD_FIELDS])
def test_every_gd_option_has_one_default(f, train_help):
    """The GD phases' options: the trainers' keywords default to the record's value (GDSolver's
    patience excepted: its plateau test), every GD method takes them, the CLI lists them."""
    from gdsolver.train.hybrid import PLATEAU_PATIENCE
    from gdsolver.train.trainer import GDTrainer

    assert inspect.signature(GDTrainer).parameters[f.name].default == f.default
    want = PLATEAU_PATIENCE if f.name == "patience" else f.default
    assert inspect.signature(GDSolver).parameters[f.name].default == want
    assert f.name in method_options("gdsolver")
    flag = "--" + {"budget_s": "budget"}.get(f.name, f.name).replace("_", "-")
    assert any(flag in ln.split() for ln in train_help.splitlines()), flag


def test_settings_are_validated_by_their_record():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="unexpected keyword argument 'radiuss'"):
        GDSolver(model, radiuss=0.1)
    with pytest.raises(ValueError, match="round_tol"):
        GDSolver(model, round_tol=-1.0)
    g = GDSolver(model, "regression", radius=0.3, solver_points=7, max_sweeps=0, convex="cuts")
    assert (g.sweep_config.radius, g.sweep_config.points, g.max_sweeps, g.sweep_config.convex) == (0.3, 7, 0, "cuts")
    assert g.config()["convex"] == "cuts" and g.config()["solver_points"] == 7


def test_a_new_setting_is_one_line(monkeypatch):
    """A record with one more field: the trainer's signature, its validation and the CLI's options
    grow by that field, from the record alone."""
    import importlib

    from gdsolver.train.hybrid import _settings_signature

    train_cmd = importlib.import_module("gdsolver.cli.train_cmd")

    @dataclasses.dataclass(frozen=True)
    class Extra:
        shiny: float = cfg.setting(0.5, "A brand-new setting.", float)

    monkeypatch.setattr(cfg, "SETTINGS", (*cfg.SETTINGS, Extra))
    sig = _settings_signature(GDSolver.__init__)
    assert sig.parameters["shiny"].default == 0.5
    assert cfg.split_settings({"shiny": 1.0})[Extra] == {"shiny": 1.0}
    opts = {p.name: p for p in train_cmd._setting_options()}
    assert "shiny" in opts and "A brand-new setting." in opts["shiny"].annotation.__metadata__[0].help


def test_train_passes_the_options_to_the_trainer(tmp_path):
    p = run("train", "--dataset", "polynomial", "-m", "gdsolver", "--epochs", "1", "--max-sweeps", "1",
            "--round-tol", "0.25", "--convex", "cuts", "--no-refit", "--points", "20", "--dump", "d", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    run_json = next(tmp_path.glob("d/**/run.json"), None)
    docs = [json.loads(f.read_text()) for f in (tmp_path / "d").rglob("run.json")]
    config = next(d["config"] for d in docs if "config" in d)
    assert run_json is not None
    assert (config["round_tol"], config["convex"], config["refit"], config["solver_points"], config["max_sweeps"]) \
        == (0.25, "cuts", False, 20, 1)


def test_train_refuses_a_bad_setting_up_front(tmp_path):
    p = run("train", "--dataset", "polynomial", "--radius", "-1", cwd=tmp_path)
    assert p.returncode == 2 and "--radius" in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = run("train", "--dataset", "polynomial", "--convex", "magic", cwd=tmp_path)
    assert p.returncode == 2 and "--convex" in p.stderr, p.stderr


def test_accept_rule_watches_the_whole_training_set():
    """A sweep that improves its sampled points and validation but raises the loss on every
    training point is restored (train_tolerance); with None the rule does not look."""
    import numpy as np

    from gdsolver.pipeline import SweepOutcome
    from gdsolver.train.sweep import decide_sweep

    class Inst:
        def unpack(self, x):
            return {"w": x[:2], "b": x[2:]}

    calls = []
    job = type("Job", (), {"instance": Inst()})()
    out = SweepOutcome("OPTIMAL", np.zeros(3), 1.0, "", 0.1, True, instance=Inst())

    def decide(accept):
        return decide_sweep(job, out, write=lambda w, b: "saved", restore=calls.append, points_loss=lambda: 1.0,
                            watched=lambda: (0.5, {"train_loss": 2.2}), watched_before=0.6, accept=accept,
                            loss_before=3.0, train_before=2.0)

    d = decide(cfg.AcceptConfig())
    assert not d.accepted and "training loss on every point would rise 2 -> 2.2" in d.reason and calls == ["saved"]
    assert decide(cfg.AcceptConfig(train_tolerance=0.2)).accepted
    assert decide(cfg.AcceptConfig(train_tolerance=None)).accepted
