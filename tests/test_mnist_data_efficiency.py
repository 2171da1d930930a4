"""bench data-efficiency on the real MNIST files (the paper's MNIST experiment). Needs the idx
files at ../shared/data/mnist (or $GDSOLVER_MNIST_DIR): a user's clone has none, so the test
skips with the reason."""

from __future__ import annotations

import math

import pytest

from gdsolver.bench.data_efficiency_bench import DataEfficiencyConfig, run_data_efficiency_bench

from mnist_data import MNIST_DIR, needs_mnist


@pytest.mark.slow
@needs_mnist
def test_mnist_data_efficiency_cell(tmp_path):
    """One cell (MLP, n = 300, 2 epochs): every method's row, and the 2-loop GDSolver's accuracy
    equal to the same run by hand, evaluated on the files' own test set."""
    from gdsolver.bench.data_efficiency_bench import NO_SWEEP, TWO_LOOP
    from gdsolver.modelfile.data import load_split_for
    from gdsolver.train.methods import make_trainer
    from gdsolver.train.models import build_model

    cfg = DataEfficiencyConfig(dataset="mnist", models=("mlp",), n_values=(300,), epochs=(2,), seeds=(0,),
                               methods=("sgd",), threads=1, time_limit=10.0, data_dir=str(MNIST_DIR))
    doc = run_data_efficiency_bench(cfg, tmp_path, tag="de", command=["test"], plots=False)
    rows = {r["method"]: r for r in doc["rows"]}
    assert set(rows) == {"sgd", NO_SWEEP, TWO_LOOP}
    for r in rows.values():
        assert not r.get("error") and 0.0 <= r["test_acc"] <= 1.0 and math.isfinite(r["test_loss"])
    split = load_split_for("mnist", None, data_dir=str(MNIST_DIR), seed=0, n_train=300)
    assert len(split.test[0]) == 10000  # the files' own test set
    tr = make_trainer(TWO_LOOP, build_model("mlp", tuple(split.train[0].shape[1:]), 10, seed=0), "classification",
                      epochs=2, batch_size=32, seed=0, threads=1, time_limit=10.0)
    tr.fit(split.train, split.val)
    assert rows[TWO_LOOP]["test_acc"] == pytest.approx(tr.evaluate(split.test)["acc"], abs=1e-12)
