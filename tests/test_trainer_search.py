"""The trainer's sweeps go through the pipeline and gdsolver.compile.search: every search gives the same
sweep optimum on the same instance, and a bad search name is refused before training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gdsolver.errors import GdsolverError
from gdsolver.extract import network_from_torch
from gdsolver.ir.verify import verify
from gdsolver.train import GDSolver
from gdsolver.pipeline import SolveSettings, solve_sweep
from gdsolver.train.sweep import prepare_sweep


@pytest.fixture(scope="module")
def job():
    from gdsolver.data.datasets import load_split

    sp = load_split("digits", seed=0)
    X, y = sp.train[0][:300].astype(np.float32), sp.train[1][:300]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(30):  # a few full-batch steps: some points right, some wrong
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.as_tensor(X)), torch.as_tensor(y)).backward()
        opt.step()
    net = network_from_torch(model, X[:2])
    return prepare_sweep(net, X, y, task="classification", layer=-1, radius=0.05, points=24, mode="paper",
                         seed=0)


def test_every_search_reaches_the_same_sweep_optimum(job):
    outs = {s: solve_sweep(job.instance, SolveSettings(search=s, time_limit=60, closest=False)) for s in ("mip", "presolve", "benders", "auto")}
    for s, o in outs.items():
        assert o.usable and o.status == "OPTIMAL", (s, o.status, o.reason)
        assert verify(job.instance, o.x).ok, s  # an answer of the original instance, whatever searched it
    # "auto" on a paper head (the maximum-feasible-subsystem shape) with HiGHS is the Benders search
    assert outs["auto"].files[0][2].options["search"] == "benders"
    assert outs["mip"].files[0][2].options.get("search") in (None, "mip")
    objs = {s: o.objective for s, o in outs.items()}
    assert max(objs.values()) - min(objs.values()) < 1e-6, objs
    # the count is real: a float64 forward pass of the answer fixes that many of the points
    from gdsolver.formulate import check_claims

    assert all(check_claims(job.instance, o.x).ok for o in outs.values())


def test_bad_search_is_refused_before_training():
    with pytest.raises(GdsolverError, match="search"):
        GDSolver(nn.Sequential(nn.Linear(2, 2)), "classification", search="exhaustive")
