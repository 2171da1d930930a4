"""`gdsolver train` as a user runs it: the comparison table, --csv / --json / --dump outputs,
replaying the dumped sweeps, and one-line errors (exit 2) for bad data."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from clirun import assert_user_error, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run of two methods on digits (200 training points, 2 epochs)."""
    d = tmp_path_factory.mktemp("cli_train")
    p = run("train", "--dataset", "digits", "-m", "gdsolver", "-m", "sgd", "--epochs", "2", "--n-train", "200",
            "--hidden", "16", "--csv", "summary.csv", "--json", "summary.json", "--dump", "dump", cwd=d)
    return p, d


def test_train_prints_the_summary_table(trained):
    p, d = trained
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    out = p.stdout
    for needle in ("digits: classification, 200 train", "method", "sweeps (accepted)", "test acc", "gdsolver",
                   "sgd", "gdsolver sweep 1", "gdsolver replay dump"):
        assert needle in out, needle
    table_rows = [ln for ln in out.splitlines() if ln.startswith(("gdsolver ", "sgd ")) and "│" in ln]
    assert len(table_rows) == 2
    # stdout is not a terminal here: a line per epoch and per sweep as they happen, before the table
    lines = out.splitlines()
    first_table = lines.index(table_rows[0])
    assert [ln.split(":")[0] for ln in lines[:first_table] if ln.startswith("gdsolver epoch")] == \
        ["gdsolver epoch 1/2", "gdsolver epoch 2/2"]
    assert any(ln.startswith("gdsolver sweep 1 after epoch") for ln in lines[:first_table])
    assert [ln.split(":")[0] for ln in lines[:first_table] if ln.startswith("sgd epoch")] == \
        ["sgd epoch 1/2", "sgd epoch 2/2"]


def test_train_csv_and_json_outputs(trained):
    p, d = trained
    rows = list(csv.DictReader((d / "summary.csv").open()))
    assert [r["method"] for r in rows] == ["gdsolver", "sgd"]
    for r in rows:
        assert int(r["epochs"]) == 2
        assert 0.0 <= float(r["test_acc"]) <= 1.0 and float(r["train_loss"]) > 0
    assert int(rows[0]["sweeps"]) >= 1 and int(rows[1]["sweeps"]) == 0
    doc = json.loads((d / "summary.json").read_text())
    assert doc["dataset"] == "digits" and doc["seed"] == 0
    assert [r["method"] for r in doc["results"]] == ["gdsolver", "sgd"]
    for r, c in zip(doc["results"], rows):
        hist = r["history"]["rows"]
        assert sum(h["kind"] == "epoch" for h in hist) == r["epochs"] == int(c["epochs"])
        assert sum(h["kind"] == "sweep" for h in hist) == r["sweeps"] == int(c["sweeps"])
        assert r["test_acc"] == pytest.approx(float(c["test_acc"]))
    # both methods started from the same weights and data: their first epochs are identical
    g, s = (r["history"]["rows"][0] for r in doc["results"])
    assert g["train_loss"] == s["train_loss"] and g["val_loss"] == s["val_loss"]


def test_train_dump_has_one_directory_per_method_and_replays(trained):
    p, d = trained
    dump = d / "dump"
    assert sorted(x.name for x in dump.iterdir() if not x.name.startswith(".")) == ["gdsolver", "run.json", "sgd"]
    manifest = json.loads((dump / "run.json").read_text())
    assert manifest["format"] == "gdsolver-dump" and manifest["state"] == "complete"
    assert manifest["methods"] == ["gdsolver", "sgd"]
    for m in ("gdsolver", "sgd"):
        run_doc = json.loads((dump / m / "run.json").read_text())
        assert run_doc["method"] == m
        state = torch.load(dump / m / "model.state_dict.pt", weights_only=True)
        assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
        assert (dump / m / "model.onnx").is_file()
    assert "0001.gdsm" in {x.name for x in (dump / "gdsolver" / "sweeps").glob("*.gdsm")}
    assert not (dump / "sgd" / "sweeps").exists()
    r = run("replay", str(dump / "gdsolver"), cwd=d)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "replays match" in r.stdout and "differ" not in r.stdout



def test_the_printed_replay_command_works_on_the_dump_root(trained):
    """The hint after --dump names a command that runs: `gdsolver replay DIR` on the root of
    several methods replays every method's sweeps (issue 12: it used to fail)."""
    import re

    p, d = trained
    m = re.search(r"replay the sweeps with: (gdsolver replay \S+)\)", p.stdout)
    assert m, p.stdout
    args = m.group(1).split()[1:]
    assert args == ["replay", "dump"]
    r = run(*args, cwd=d)
    assert r.returncode == 0, (r.stdout, r.stderr)
    n = len(list((d / "dump" / "gdsolver" / "sweeps").glob("*.gdsm")))
    assert f"all {n} replays match" in r.stdout
    assert "gdsolver/sweeps/0001.gdsm" in r.stdout  # rows say which method's sweep they are


def test_dump_without_sweeps_says_so(tmp_path):
    p = run("train", "--dataset", "digits", "-m", "sgd", "--epochs", "1", "--n-train", "100", "--hidden", "8",
            "--dump", "only_sgd", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "no solver sweeps to replay" in p.stdout and "gdsolver replay" not in p.stdout

# ---------------------------------------------------------------------------- bad data
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path.name


BAD_NPZ = {  # through the CLI
    "negative label": (lambda rng: dict(X=rng.normal(size=(40, 4)), y=np.r_[-1, rng.integers(0, 3, 39)]),
                       ("'y'", "class labels", "-1")),
}
BAD_NPZ_SLOW = {  # the CLI runs are slow-marked; the same checks run in-process by default
    "mismatched lengths": (lambda rng: dict(X=rng.normal(size=(40, 4)), y=rng.integers(0, 3, 39)),
                           ("X has 40 rows but y has 39",)),
    "NaN in X": (lambda rng: dict(X=np.where(np.arange(40)[:, None] == 7, np.nan, rng.normal(size=(40, 4))),
                                  y=rng.integers(0, 3, 40)), ("'X'", "NaN")),
    "huge label": (lambda rng: dict(X=rng.normal(size=(40, 4)), y=np.r_[2**40, rng.integers(0, 3, 39)]),
                   ("'y'", "class labels")),
    "empty": (lambda rng: dict(X=np.zeros((0, 4)), y=np.zeros(0, np.int64)), ("0 rows",)),
    "val label beyond the classes": (lambda rng: dict(X=rng.normal(size=(40, 4)), y=rng.integers(0, 3, 40),
                                                      X_val=rng.normal(size=(5, 4)), y_val=np.array([0, 1, -2, 1, 2])),
                                     ("'y_val'", "class labels")),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_train_bad_data_is_one_error_line(case, tmp_path):
    make, needles = BAD_NPZ[case]
    name = _npz(tmp_path / "bad.npz", **make(np.random.default_rng(0)))
    p = run("train", "--data", name, "-m", "sgd", "--epochs", "1", cwd=tmp_path)
    assert_user_error(p, name, *needles)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_NPZ_SLOW))
def test_train_more_bad_data_is_one_error_line(case, tmp_path):
    make, needles = BAD_NPZ_SLOW[case]
    name = _npz(tmp_path / "bad.npz", **make(np.random.default_rng(0)))
    p = run("train", "--data", name, "-m", "sgd", "--epochs", "1", cwd=tmp_path)
    assert_user_error(p, name, *needles)


@pytest.mark.parametrize("case", sorted(BAD_NPZ_SLOW))
def test_bad_npz_is_refused_before_any_model_is_built(case, tmp_path):
    """The same checks in-process (what the CLI calls first): no network of 2**40 outputs."""
    from gdsolver.errors import GdsolverError
    from gdsolver.modelfile.data import load_split_for

    make, needles = BAD_NPZ_SLOW[case]
    _npz(tmp_path / "bad.npz", **make(np.random.default_rng(0)))
    with pytest.raises(GdsolverError) as ei:
        load_split_for(None, tmp_path / "bad.npz")
    for n in needles:
        assert n in str(ei.value)


def test_train_diverging_lr_is_one_error_line(tmp_path):
    rng = np.random.default_rng(0)
    name = _npz(tmp_path / "ok.npz", X=rng.normal(size=(200, 4)), y=rng.integers(0, 3, 200))
    p = run("train", "--data", name, "-m", "sgd", "--epochs", "2", "--lr", "1e30", cwd=tmp_path)
    assert_user_error(p, "training diverged", "lower the learning rate")


@pytest.mark.slow
def test_train_bad_options(tmp_path):
    p = run("train", "--dataset", "digits", "-m", "newton", cwd=tmp_path)
    assert_user_error(p, "--method 'newton'")


@pytest.mark.slow
def test_train_float_labels_as_classification(tmp_path):
    rng = np.random.default_rng(0)
    name = _npz(tmp_path / "f.npz", X=rng.normal(size=(40, 4)), y=rng.integers(0, 3, 40) + 0.5)
    p = run("train", "--data", name, "--task", "classification", "-m", "sgd", "--epochs", "1", cwd=tmp_path)
    assert_user_error(p, "integers")
    p = run("train", "--dataset", "digits", "--data", "x.npz", cwd=tmp_path)
    assert_user_error(p, "exactly one")


def test_run_methods_refuses_a_method_twice(tmp_path):
    from gdsolver.errors import GdsolverError
    from gdsolver.modelfile.data import load_split_for
    from gdsolver.train.runs import run_methods

    rng = np.random.default_rng(0)
    _npz(tmp_path / "ok.npz", X=rng.normal(size=(40, 4)), y=rng.integers(0, 3, 40))
    split = load_split_for(None, tmp_path / "ok.npz")
    with pytest.raises(GdsolverError, match="sgd given more than once"):
        run_methods(["sgd", "gdsolver", "sgd"], torch.nn.Linear(4, 3), split, dump_dir=tmp_path / "d", epochs=1)
    assert not (tmp_path / "d").exists()


def test_gdsolver_gd_phase_optimizer_reaches_the_trainer(tmp_path):
    """`-m gdsolver --optimizer adam` (and method_opts in the API) run the GD phase with Adam: run.json
    says so and the training losses equal GDSolver(optimizer="adam") built by hand. Before the fix
    make_trainer dropped the option and the GD phase silently ran SGD."""
    from gdsolver.train.hybrid import GDSolver
    from gdsolver.train.models import build_model
    from gdsolver.modelfile.data import load_split_for
    from gdsolver.train.runs import run_methods

    p = run("train", "--dataset", "digits", "-m", "gdsolver", "--optimizer", "adam", "--lr", "0.01", "--epochs", "2",
            "--n-train", "100", "--hidden", "8", "--max-sweeps", "0", "--dump", "d", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "d" / "gdsolver" / "run.json").read_text())
    assert doc["config"]["optimizer"] == "adam", doc["config"]
    split = load_split_for("digits", None, seed=0, n_train=100)
    net = build_model("mlp", (64,), 10, hidden=8, seed=0)
    res = run_methods(["gdsolver"], net, split, epochs=2, lr=0.01, max_sweeps=0,
                      method_opts={"gdsolver": {"optimizer": "adam"}})
    g = GDSolver(build_model("mlp", (64,), 10, hidden=8, seed=0), "classification", optimizer="adam", lr=0.01,
                 epochs=2, max_sweeps=0)
    g.fit(split.train, split.val)
    assert res[0].trainer.optimizer == "adam"
    assert [r["train_loss"] for r in res[0].history.epochs] == [r["train_loss"] for r in g.history.epochs]
    bad = run("train", "--dataset", "digits", "-m", "gdsolver", "--optimizer", "rmsprop", cwd=tmp_path)
    assert_user_error(bad, "--optimizer 'rmsprop'")
    bad = run("train", "--dataset", "digits", "-m", "adam-lrs", "--optimizer", "sgd", cwd=tmp_path)
    assert_user_error(bad, "applies to -m gdsolver only")


def test_options_given_for_one_method_must_be_its_own(tmp_path):
    """method_opts names options for one method: one it does not take is an error naming it (a
    shared option set, like the CLI's, still reaches only the methods that take each option)."""
    from gdsolver.errors import GdsolverError
    from gdsolver.train.methods import make_trainer, method_options
    from gdsolver.modelfile.data import load_split_for
    from gdsolver.train.runs import run_methods

    rng = np.random.default_rng(0)
    _npz(tmp_path / "ok.npz", X=rng.normal(size=(40, 4)), y=rng.integers(0, 3, 40))
    split = load_split_for(None, tmp_path / "ok.npz")
    with pytest.raises(GdsolverError, match=r"method_opts\['adam-lrs'\]: 'optimizer' is not an option of adam-lrs"):
        run_methods(["adam-lrs"], torch.nn.Linear(4, 3), split, epochs=1,
                    method_opts={"adam-lrs": {"optimizer": "sgd"}})
    with pytest.raises(GdsolverError, match=r"'radius' is not an option of sgd"):
        run_methods(["sgd"], torch.nn.Linear(4, 3), split, epochs=1, method_opts={"sgd": {"radius": 1.0}})
    # shared options: each method takes what it knows
    t = make_trainer("sgd", torch.nn.Linear(4, 3), "classification", lr=0.1, radius=1.0, optimizer="adam")
    assert t.optimizer == "sgd" and t.lr == 0.1
    assert "optimizer" in method_options("gdsolver") and "lr" not in method_options("gdsolver-2loop")
    assert make_trainer("adam-lrs", torch.nn.Linear(4, 3), "classification").lr_schedule == "plateau"
    assert make_trainer("adam", torch.nn.Linear(4, 3), "classification", lr_schedule="step").lr_schedule is None


def test_every_trainer_option_reaches_its_method():
    """method_options lists every constructor option of the trainer a method builds, except what
    the method's name fixes: an option missing there would be dropped without a word."""
    import inspect

    from gdsolver.train.bpgrad import BPGradTrainer
    from gdsolver.train.hybrid import GDSolver
    from gdsolver.train.lifted_bcd import LiftedBCDTrainer
    from gdsolver.train.methods import METHODS, method_options
    from gdsolver.train.trainer import GDTrainer

    fixed = {"optimizer"}  # sgd, adam-lrs, lbfgs, gdsolver-lbfgs: the name says which
    builds = {"sgd": GDTrainer, "sgd-lrs": GDTrainer, "adam": GDTrainer, "adam-lrs": GDTrainer, "lbfgs": GDTrainer,
              "gdsolver": GDSolver, "gdsolver-no-sweeps": GDSolver, "gdsolver-lbfgs": GDSolver, "bpgrad": BPGradTrainer,
              "lifted-bcd": LiftedBCDTrainer}
    by_name = {"sgd": {"lr_schedule"}, "adam": {"lr_schedule"}, "lbfgs": {"lr_schedule"},
               "gdsolver-lbfgs": {"phase_lrs"},  # no schedule without -lrs; L-BFGS keeps lr 1
               "gdsolver-no-sweeps": {"skip_sweeps"}}  # the name says it
    for method, cls in builds.items():
        params = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "task"}
        takes = set(method_options(method))
        assert takes <= params, (method, takes - params)
        assert params - takes <= fixed | by_name.get(method, set()), (method, params - takes)
    assert set(builds) | {"gdsolver-2loop"} == set(METHODS)
