"""`gdsolver train`: train one or more methods side by side on a data set, with a
progress bar over epochs and sweeps and a final comparison table."""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gdsolver.train.methods import method_names

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
            console.print(f"  {r.method} sweep {s['sweep']}{cand} (epoch {s['epoch']}, radius {s['radius']:g}"
                          f"{'' if s.get('layer_name') is None else ', layer ' + repr(s['layer_name'])}): "
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


# the command's own options (the settings records add theirs: _setting_options)
Dataset = Annotated[Optional[str], typer.Option(help="Built-in data set: digits, digits-images, diabetes, identity, "
                                                "affine, polynomial, formula, mnist, fashion-mnist, cifar10.")]
Data = Annotated[Optional[Path], typer.Option(help="A .npz with X, y (optional X_val, y_val, X_test, y_test).")]
Methods = Annotated[list[str], typer.Option("--method", "-m", help=f"Method; repeat to compare: "
                                            f"{', '.join(method_names())}.")]
TaskName = Annotated[Optional[str], typer.Option("--task", help="classification or regression (default: from the "
                                                 "data).")]
ModelKind = Annotated[str, typer.Option("--model", help="Network: auto, mlp, mlp2 (784-256-128-10 on MNIST; --hidden does not apply), conv, paper.")]
Hidden = Annotated[int, typer.Option(help="Hidden width of the mlp.")]
NTrain = Annotated[Optional[int], typer.Option(help="Use the first N training points.")]
DataDir = Annotated[Optional[Path], typer.Option(help="Directory of MNIST/Fashion-MNIST/CIFAR-10 files.")]
Dump = Annotated[Optional[Path], typer.Option(help="Write each method's run.json, sweeps/ and final model into "
                                              "DIR/<method>/ and a manifest naming them into DIR/run.json (DIR: "
                                              "new, empty or an earlier dump).")]
Csv = Annotated[Optional[Path], typer.Option(help="Write the summary table as CSV.")]
JsonOut = Annotated[Optional[Path], typer.Option("--json", help="Write summaries and histories as JSON.")]
TrainRay = Annotated[bool, typer.Option("--ray", rich_help_panel=RAY_PANEL,
                                   help="gdsolver: solve the portfolio's candidates as Ray tasks, in parallel, on a "
                                        "local Ray bound to 127.0.0.1 (or the cluster in RAY_ADDRESS). Needs the "
                                        "extra: pip install -c constraints.txt '.\\[ray]'.")]
TrainRayAddress = Annotated[Optional[str], typer.Option("--ray-address", metavar="HOST:PORT", rich_help_panel=RAY_PANEL,
                                                   help="Solve the candidates on the Ray cluster at this address "
                                                        "('auto': the cluster this machine joined). Implies --ray.")]


def _train(dataset: Dataset = None, data: Data = None, method: Methods = ["gdsolver"], task: TaskName = None,
           model: ModelKind = "auto", hidden: Hidden = 32, n_train: NTrain = None, data_dir: DataDir = None,
           dump: Dump = None, csv: Csv = None, json_out: JsonOut = None, ray: TrainRay = False,
           ray_address: TrainRayAddress = None, settings: Optional[dict[str, Any]] = None) -> None:
    """Train with GDSolver and/or the GD baselines from the same initial weights, then compare."""
    from gdsolver.modelfile.data import load_split_for, outputs_of
    from gdsolver.train.config import GD_DEFAULTS, GDConfig, field_names
    from gdsolver.train.methods import method as method_record
    from gdsolver.train.models import build_model

    from . import checks
    from .ray_opts import executor_for

    settings = dict(settings or {})
    gd = {k: settings.pop(k) for k in field_names(GDConfig) if k in settings}  # the GD phases' options
    seed, threads = gd.get("seed", GD_DEFAULTS.seed), gd.get("threads", GD_DEFAULTS.threads)
    ray_opts = _check_options(method, task, gd, settings, ray, ray_address,
                              outputs=(dataset, data, csv, json_out, dump))
    split = load_split_for(dataset, data, seed=seed, data_dir=data_dir, task=task, n_train=n_train)
    if any(method_record(m).sweeps for m in method):  # a head of the other task would make every sweep SKIPPED
        checks.mode_for_task(settings.get("mode"), split.task)
    net = build_model(model, tuple(split.train[0].shape[1:]), outputs_of(split), hidden=hidden, seed=seed,
                      dataset=dataset)
    console.print(f"{split.name}: {split.task}, {len(split.train[1])} train / {len(split.val[1])} val / "
                  f"{len(split.test[1])} test points; model {_model_text(net)}")
    opts = dict(gd, restarts=_restarts(gd.get("restarts")), seed=seed, threads=threads, **settings)
    # One Ray for every method (their trainers use the Ray this process started); closed at the end.
    opts.update(ray_opts)
    with executor_for(ray, ray_opts.get("ray_address")):
        results = _run_with_progress(method, net, split, dump, opts)
    console.print(table(f"{split.name}: {split.task}, seed {seed}", SUMMARY_COLUMNS, summary_rows(results)))
    print_sweeps(results)
    _write_tables(results, split, seed, opts, csv, json_out)
    if dump is not None:
        console.print(f"run written to {dump}/ ({_replay_hint(dump, results)})", markup=False, soft_wrap=True)


def _check_options(method: list[str], task: str | None, gd: dict[str, Any], settings: dict[str, Any], ray: bool,
                   ray_address: str | None, outputs: tuple) -> dict[str, Any]:
    """Every option checked before the data loads (outputs: _check_outputs' arguments); the
    trainers' Ray options (none without --ray)."""
    from gdsolver.train.methods import method_names, method_options
    from gdsolver.train.optim import OPTIMIZERS

    from . import checks

    for m in method:
        if m not in method_names():
            fail(f"--method {m!r}: expected one of {method_names()}")
    optimizer = gd.get("optimizer")
    if optimizer is not None and optimizer not in OPTIMIZERS:
        fail(f"--optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
    if optimizer is not None and "gdsolver" not in method:  # the baselines' optimizer is in their name
        fail(f"--optimizer {optimizer}: applies to -m gdsolver only (the other methods name their optimizer: "
             "sgd, adam-lrs, lbfgs, ...)")
    _check_outputs(*outputs)
    checks.threads("--threads", gd.get("threads"))  # 1000000 made torch's thread pool crash the process
    checks.number("--lr", gd.get("lr"), lo=0.0, lo_open=True)
    if task is not None:
        checks.mode_for_task(settings.get("mode"), task)
    ray_opts = {}
    if ray or ray_address is not None:
        import os

        ray_address = ray_address if ray_address is not None else (os.environ.get("RAY_ADDRESS") or None)
        ray_opts = dict(executor="ray", ray_address=ray_address)
    _check_settings(settings, ray_opts)  # the records check every setting before the data loads
    for m in method:  # a budget no method may silently ignore
        if gd.get("budget_s") is not None and "budget_s" not in method_options(m):
            fail(f"--budget: {m} has no time budget (the GD methods and gdsolver take one)")
    return ray_opts


def _run_with_progress(method: list[str], net, split, dump: Path | None, opts: dict[str, Any]) -> list:
    """run_methods with a bar per method on a terminal; elsewhere (`gdsolver train | cat`, a log
    file) a line per epoch and per sweep as they happen."""
    from gdsolver.train.progress import describe
    from gdsolver.train.runs import run_methods

    bar = console.is_terminal and err_console.is_terminal
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[status]}"), console=err_console, transient=False,
                  disable=not bar) as progress:
        bars: dict[str, Any] = {}
        done: dict[str, int] = {}
        epochs: dict[str, int] = {}

        def on_start(name: str, trainer) -> None:
            total = trainer.epochs + getattr(trainer, "max_sweeps", 0) * getattr(trainer, "portfolio", 1)
            bars[name], done[name], epochs[name] = progress.add_task(name, total=total, status=""), 0, trainer.epochs
            if bar:  # the bar moves inside an epoch and while a sweep solves
                trainer.on_progress = functools.partial(on_tick, name)
            else:
                console.print(f"{name}: training", markup=False, soft_wrap=True)

        def on_tick(name: str, event: dict[str, Any]) -> None:
            if event["event"] == "batch" and event.get("batches"):
                progress.update(bars[name], completed=done[name] + event["batch"] / event["batches"],
                                status=f"epoch {event['epoch']}: batch {event['batch']}/{event['batches']}")
            elif event["event"] == "solve":  # with HiGHS's MIP figures once its callbacks report them
                figures = "".join(f", {k} {event[k]:.4g}" for k in ("incumbent", "bound", "gap") if k in event)
                progress.update(bars[name], status=f"sweep {event['sweep']} ({event['layer']}): solving "
                                                   f"{event['elapsed_s']:.0f} s{figures}")

        def on_row(name: str, row: dict[str, Any]) -> None:
            done[name] += 1
            progress.update(bars[name], completed=done[name], status=_describe(row))
            if not bar:
                console.print(describe(name, row, epochs[name]), markup=False, soft_wrap=True)

        results = run_methods(method, net, split, dump_dir=dump, on_start=on_start, callback=on_row, **opts)
        for name in bars:  # early stopping leaves bars short of their budget
            progress.update(bars[name], completed=progress.tasks[bars[name]].total)
    return results


def _write_tables(results, split, seed: int, opts: dict[str, Any], csv: Path | None, json_out: Path | None) -> None:
    """--csv: the summary rows; --json: the summaries with each method's history (atomic writes)."""
    from gdsolver.atomic import atomic_write_text

    if csv is not None:
        import csv as csvmod
        import io

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


def _restarts(value: str | None) -> int | str | None:
    """--restarts: a count, or 'fill' (with --budget)."""
    if value is None or value == "fill":
        return value
    try:
        return int(value)
    except ValueError:
        fail(f"--restarts {value!r}: expected a count (1, 2, ...) or 'fill'")


GD_PANEL = "GD phases (every GD method; gdsolver.train.config.GDConfig)"
SETTINGS_PANEL = "GDSolver settings (the records of gdsolver.train.config; unset: the record's default)"
#: a setting's option name where it differs from its trainer keyword
CLI_NAMES = {"solver_points": "points", "budget_s": "budget"}


def _setting_options() -> list[inspect.Parameter]:
    """One option per field of the settings records that has a CLI type: name, type, help and
    default all from the record, so a new setting is one line there."""
    from gdsolver.train.config import SETTINGS, GDConfig, help_text, keyword

    params = []
    for cls in (GDConfig, *SETTINGS):
        panel = GD_PANEL if cls is GDConfig else SETTINGS_PANEL
        for f in fields(cls):
            kind = f.metadata.get("cli_type")
            if kind is None:
                continue
            key = keyword(f.name)
            flag = CLI_NAMES.get(key, key).replace("_", "-")
            decls = [f"--{flag}/--no-{flag}"] if kind is bool else [f"--{flag}"]
            shown = f.default if not isinstance(f.default, str) else repr(f.default)
            opt = typer.Option(*decls, help=f"{help_text(f)} (default: {shown})", rich_help_panel=panel,
                               show_default=False)
            params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=Annotated[Optional[kind], opt]))
    return params


def _check_settings(settings: dict[str, Any], ray_opts: dict[str, Any]) -> None:
    """Build the records from the options given, so that a bad value is refused before any work,
    with the option's name."""
    from gdsolver.errors import GdsolverError
    from gdsolver.train.config import GDConfig, PortfolioConfig, field_names, split_settings

    parts = split_settings({k: v for k, v in settings.items() if k not in field_names(GDConfig)}, "gdsolver train")
    parts[PortfolioConfig].update(ray_opts)
    for cls, values in parts.items():
        try:
            cls(**values)
        except (GdsolverError, TypeError, ValueError) as exc:
            text = str(exc)
            name = text.split(":", 1)[0]
            flag = CLI_NAMES.get(name, name).replace("_", "-")
            fail(f"--{flag}:{text.split(':', 1)[1]}" if name in settings or name in CLI_NAMES else text)


def _with_setting_options(func):
    """The `train` command: `func`'s options plus the generated setting options, whose values
    reach `func` as one dict (`settings`, unset ones left out)."""
    import typing

    hints = typing.get_type_hints(func, include_extras=True)
    own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(func).parameters.values()
           if p.name != "settings"]
    generated = _setting_options()
    names = {p.name for p in generated}

    @functools.wraps(func)
    def command(**kw: Any) -> None:
        settings = {k: kw.pop(k) for k in list(kw) if k in names and kw[k] is not None}
        for k in names:
            kw.pop(k, None)
        func(**kw, settings=settings)

    del command.__wrapped__  # typer reads the signature set here, not func's
    command.__signature__ = inspect.Signature(own + generated)
    command.__annotations__ = {p.name: p.annotation for p in own + generated}
    return command


train = app.command("train")(user_errors(_with_setting_options(_train)))


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
