"""`gdsolver train`: train one or more methods side by side on a data set, with a
progress bar over epochs and sweeps and a final comparison table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gdsolver.compile.registry import DEFAULT_BACKEND, backend_help

from .apps import app
from .common import console, err_console, fail, table, user_errors
from .ray_opts import RAY_PANEL

SUMMARY_COLUMNS = ["method", "epochs", "sweeps (accepted)", "train loss", "val loss", "test loss", "test acc",
                   "GD time (s)", "solver time (s)", "wall (s)"]


def summary_rows(results) -> list[list[Any]]:
    rows = []
    for r in results:
        d = r.row()
        rows.append([d["method"], d["epochs"], f"{d['sweeps']} ({d['sweeps_accepted']})" if d["sweeps"] else "-",
                     d["train_loss"], d["val_loss"], d["test_loss"], d["test_acc"], round(d["gd_time_s"], 3),
                     round(d["solver_time_s"], 3) if d["sweeps"] else None, round(d["wall_s"], 3)])
    return rows


def print_sweeps(results) -> None:
    from gdsolver.train.portfolio import verdict

    for r in results:
        for s in r.history.sweeps:
            cand = f" candidate {s['candidate']}" if s.get("candidate") is not None else ""
            console.print(f"  {r.method} sweep {s['sweep']}{cand} (epoch {s['epoch']}, radius {s['radius']:g}): "
                          f"{s['status']}, {verdict(s)}: {s['reason']}",
                          markup=False, soft_wrap=True)


def _describe(row: dict[str, Any]) -> str:
    if row["kind"] == "sweep":
        from gdsolver.train.portfolio import verdict

        cand = f" candidate {row['candidate']}" if row.get("candidate") is not None else ""
        return f"sweep {row['sweep']}{cand}: {row['status']}, {verdict(row)}"
    acc = f", val acc {row['val_acc']:.3f}" if row.get("val_acc") is not None else ""
    loss = row["val_loss"] if row["val_loss"] is not None else row["train_loss"]
    return f"epoch {row['epoch']}: loss {loss:.4g}{acc}"


@app.command()
@user_errors
def train(
    dataset: Annotated[Optional[str], typer.Option(help="Built-in data set: digits, digits-images, diabetes, identity, "
                                                   "affine, polynomial, formula, mnist, fashion-mnist, cifar10.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="A .npz with X, y (optional X_val, y_val, X_test, y_test).")] = None,
    method: Annotated[list[str], typer.Option("--method", "-m", help="Method; repeat to compare: gdsolver, "
                                              "gdsolver-2loop, sgd, sgd-lrs, adam, adam-lrs, bpgrad, lifted-bcd.")] = ["gdsolver"],
    task: Annotated[Optional[str], typer.Option(help="classification or regression (default: from the data).")] = None,
    model: Annotated[str, typer.Option(help="Network: auto, mlp, conv, paper.")] = "auto",
    hidden: Annotated[int, typer.Option(help="Hidden width of the mlp.")] = 32,
    optimizer: Annotated[Optional[str], typer.Option(help="gdsolver: the GD phase's optimizer, sgd (default), adam "
                                                          "or lbfgs (gdsolver-lbfgs is lbfgs).")] = None,
    epochs: Annotated[int, typer.Option(help="GD epoch budget.")] = 20,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: sgd 0.05, adam 0.01, lbfgs "
                                                                "1).")] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(help="LR schedule for -lrs methods and gdsolver: step, "
                                                       "plateau, cosine.")] = None,
    batch_size: Annotated[int, typer.Option(help="Minibatch size.")] = 32,
    patience: Annotated[Optional[int], typer.Option(help="Early-stopping patience (gdsolver default 2; "
                                                    "baselines run all epochs unless set).")] = None,
    max_sweeps: Annotated[Optional[int], typer.Option(help="gdsolver: number of solver sweeps (default 2).")] = None,
    phase_epochs: Annotated[Optional[int], typer.Option(help="gdsolver: at most this many GD epochs before each "
                                                        "sweep.")] = None,
    radius: Annotated[Optional[float], typer.Option(help="Box half-width around the current weights "
                                                    "(default 0.05).")] = None,
    points: Annotated[Optional[int], typer.Option(help="Points per sweep (default: 32 misclassified; regression: "
                                                  "all when the sweep is an LP, else 50).")] = None,
    restarts: Annotated[Optional[int], typer.Option(help="Initialisations per method, the best on validation "
                                                    "kept (gdsolver: for its first GD phase).")] = None,
    mode: Annotated[Optional[str], typer.Option(help="gdsolver: sweep head (default: the loss being trained: squared "
                                                "error or cross-entropy); paper, compact, count+ce, l1.")] = None,
    layers: Annotated[Optional[str], typer.Option(help="gdsolver: dense layers to sweep: final (default), all, or "
                                                  "indices / module names separated by commas; each round visits "
                                                  "them from the input side.")] = None,
    search: Annotated[Optional[str], typer.Option(help="gdsolver: how a count head's MIP is searched: auto "
                                                  "(default: presolve + Benders for paper/compact heads on "
                                                  "HiGHS), mip, presolve, benders.")] = None,
    keep_correct: Annotated[Optional[int], typer.Option(help="Classification sweeps: this many currently correct "
                                                        "points must stay correct.")] = None,
    accept_on: Annotated[Optional[str], typer.Option(help="Accept a sweep if the validation 'loss' (default) or "
                                                     "'accuracy' (classification) does not worsen beyond "
                                                     "--val-tolerance.")] = None,
    val_tolerance: Annotated[Optional[float], typer.Option(help="Allowed worsening: relative for loss (default "
                                                           "0.01), absolute for accuracy.")] = None,
    backend: Annotated[str, typer.Option(help=backend_help())] = DEFAULT_BACKEND,
    time_limit: Annotated[float, typer.Option(help="Per-sweep solver time limit (s).")] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the split, the model and the training.")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads for torch and the solver (default 1: the small models "
                                         "trained here gain nothing from more, and on a busy machine 2 made "
                                         "L-BFGS 120x slower).")] = 1,
    n_train: Annotated[Optional[int], typer.Option(help="Use the first N training points.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Directory of MNIST/Fashion-MNIST/CIFAR-10 files.")] = None,
    dump: Annotated[Optional[Path], typer.Option(help="Write each method's run.json, sweeps/ and final model "
                                                 "into DIR/<method>/ and a manifest naming them into "
                                                 "DIR/run.json (DIR: new, empty or an earlier dump).")] = None,
    csv: Annotated[Optional[Path], typer.Option(help="Write the summary table as CSV.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write summaries and histories as JSON.")] = None,
    portfolio: Annotated[Optional[int], typer.Option(help="gdsolver: solve K candidate sweeps per sweep (radii r, "
                                                     "2r, r/2, ...; fresh point samples) and try them best "
                                                     "first (default 1).")] = None,
    ray: Annotated[bool, typer.Option("--ray", rich_help_panel=RAY_PANEL,
                                      help="gdsolver: solve the portfolio's candidates as Ray tasks, in "
                                           "parallel, on a local Ray bound to 127.0.0.1 (or the cluster in "
                                           "RAY_ADDRESS). Needs the extra: pip install -c constraints.txt "
                                           "'.\\[ray]'.")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", metavar="HOST:PORT",
                                                       rich_help_panel=RAY_PANEL,
                                                       help="Solve the candidates on the Ray cluster at this "
                                                            "address ('auto': the cluster this machine joined). "
                                                            "Implies --ray.")] = None,
) -> None:
    """Train with GDSolver and/or the GD baselines from the same initial weights, then compare."""
    from gdsolver.atomic import atomic_write_text
    from gdsolver.train.config import PortfolioConfig
    from gdsolver.train.methods import method_names
    from gdsolver.train.models import build_model
    from gdsolver.train.runs import load_split_for, outputs_of, run_methods

    from .ray_opts import executor_for

    for m in method:
        if m not in method_names():
            fail(f"--method {m!r}: expected one of {method_names()}")
    from gdsolver.train.trainer import OPTIMIZERS

    if optimizer is not None and optimizer not in OPTIMIZERS:
        fail(f"--optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
    if optimizer is not None and "gdsolver" not in method:  # the baselines' optimizer is in their name
        fail(f"--optimizer {optimizer}: applies to -m gdsolver only (the other methods name their optimizer: "
             "sgd, adam-lrs, lbfgs, ...)")
    _check_outputs(dataset, data, csv, json_out, dump)
    from . import checks

    checks.threads("--threads", threads)  # 1000000 made torch's thread pool crash the process
    checks.time_limit("--time-limit", time_limit)
    checks.number("--radius", radius, lo=0.0, lo_open=True)
    checks.number("--lr", lr, lo=0.0, lo_open=True)
    checks.number("--val-tolerance", val_tolerance, lo=0.0)
    if task is not None:
        checks.mode_for_task(mode, task)
    if ray or ray_address is not None:
        import os

        ray_address = ray_address if ray_address is not None else (os.environ.get("RAY_ADDRESS") or None)
    ray_opts = dict(executor="ray", ray_address=ray_address) if ray or ray_address is not None else {}
    PortfolioConfig(1 if portfolio is None else portfolio, **ray_opts)  # checked before the data loads
    split = load_split_for(dataset, data, seed=seed, data_dir=data_dir, task=task, n_train=n_train)
    if "gdsolver" in " ".join(method):  # a head of the other task would make every sweep SKIPPED
        checks.mode_for_task(mode, split.task)
    net = build_model(model, tuple(split.train[0].shape[1:]), outputs_of(split), hidden=hidden, seed=seed,
                      dataset=dataset)
    console.print(f"{split.name}: {split.task}, {len(split.train[1])} train / {len(split.val[1])} val / "
                  f"{len(split.test[1])} test points; model {_model_text(net)}")
    opts = dict(optimizer=optimizer, lr=lr, lr_schedule=lr_schedule, epochs=epochs, batch_size=batch_size, patience=patience,
                max_sweeps=max_sweeps, phase_epochs=phase_epochs, radius=radius, solver_points=points, layers=layers,
                restarts=restarts, mode=mode, search=search,
                keep_correct=keep_correct, accept_on=accept_on, val_tolerance=val_tolerance,
                backend=backend, time_limit=time_limit, seed=seed, threads=threads, portfolio=portfolio)
    # One Ray for every method (their trainers use the Ray this process started); closed at the end.
    opts.update(ray_opts)
    with executor_for(ray, ray_address), \
            Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     TextColumn("{task.fields[status]}"), console=err_console, transient=False,
                     disable=not err_console.is_terminal) as progress:
        bars: dict[str, Any] = {}

        def on_start(name: str, trainer) -> None:
            total = trainer.epochs + getattr(trainer, "max_sweeps", 0) * getattr(trainer, "portfolio", 1)
            bars[name] = progress.add_task(name, total=total, status="")

        def on_row(name: str, row: dict[str, Any]) -> None:
            progress.update(bars[name], advance=1, status=_describe(row))

        results = run_methods(method, net, split, dump_dir=dump, on_start=on_start, callback=on_row, **opts)
        for name in bars:  # early stopping leaves bars short of their budget
            progress.update(bars[name], completed=progress.tasks[bars[name]].total)
    console.print(table(f"{split.name}: {split.task}, seed {seed}", SUMMARY_COLUMNS, summary_rows(results)))
    print_sweeps(results)
    if csv is not None:
        import io
        import csv as csvmod

        buf = io.StringIO()
        w = csvmod.DictWriter(buf, fieldnames=list(results[0].row()), lineterminator="\n")
        w.writeheader()
        for r in results:
            w.writerow(r.row())
        atomic_write_text(csv, buf.getvalue())
    if json_out is not None:
        doc = {"dataset": split.name, "info": split.info, "seed": seed, "options": opts,
               "results": [{**r.row(), "history": r.history.to_json_dict()} for r in results]}
        atomic_write_text(json_out, json.dumps(doc, indent=1, default=str) + "\n")
    if dump is not None:
        console.print(f"run written to {dump}/ ({_replay_hint(dump, results)})", markup=False, soft_wrap=True)


def _replay_hint(dump: Path, results) -> str:
    """How to replay the dumped sweeps: `gdsolver replay DIR` takes a run directory or the
    root of several methods' runs."""
    dirs = [dump / r.method for r in results]
    with_sweeps = [d for d in dirs if any((d / "sweeps").glob("*.gdsm"))]
    if not with_sweeps:
        return "no solver sweeps to replay"
    return f"replay the sweeps with: gdsolver replay {dump}"


def _check_outputs(dataset: str | None, data: Path | None, csv: Path | None, json_out: Path | None,
                   dump: Path | None) -> None:
    """Before any training: the outputs can be written and none of them is an input."""
    from gdsolver.paths import check_output, same_file

    inputs = [data, Path(dataset) if dataset and dataset.endswith(".npz") else None]
    if csv is not None:
        check_output(csv, inputs=inputs, what="--csv")
    if json_out is not None:
        check_output(json_out, inputs=[*inputs, csv], what="--json")
    if dump is not None:
        if dump.exists() and not dump.is_dir():
            fail(f"{dump}: --dump must be a directory, and this is a file")
        from gdsolver.train.dump import check_dump_dir

        check_dump_dir(dump)  # new, empty or an earlier dump: a user's directory is refused before training
        for out in (csv, json_out):
            if out is not None and dump.is_dir() and (out.resolve().parent == dump.resolve()
                                                       and out.name in ("run.json", "model.onnx")):
                fail(f"{out}: is a file the run writes into --dump {dump}")
        for src in inputs:
            if src is not None and same_file(dump, src):
                fail(f"{dump}: --dump is also the input {src}")


def _model_text(net) -> str:
    return " -> ".join(type(m).__name__ + (f"({m.in_features}, {m.out_features})" if hasattr(m, "in_features") else "")
                       for m in net.children()) or type(net).__name__
