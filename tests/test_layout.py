"""The package's layout, read from its source with `ast`: every module sits in a layer, imports
go down the layers only (ir < data < compile < extract, formulate < pipeline < train <
modelfile < bench < cli), no two modules import each other through any chain, and files and
functions stay readable in size. Imports inside functions and under TYPE_CHECKING count: they
are dependencies all the same.

The allow-lists say why each exception exists; an entry that is no longer needed fails the
test, so the lists only shrink."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import gdsolver
import gdsolver.cli

# layer -> the top-level names under gdsolver (subpackages or modules) that form it, lowest first.
# A module may import its own layer and the layers before it.
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"errors", "atomic", "blas", "paths", "_version", "modeldef"}),  # no gdsolver imports but these
    ("ir", {"ir"}),
    ("data", {"data"}),  # data sets; reads .npy through ir's safe reader
    ("compile", {"compile"}),
    ("model", {"extract", "formulate"}),
    ("pipeline", {"pipeline"}),
    ("train", {"train", "repairs"}),  # users of the pipeline: trainers, model repairs
    ("modelfile", {"modelfile"}),  # compile/apply/evaluate a model file with the trainer's defaults
    ("bench", {"bench"}),
    ("cli", {"cli"}),
]
# the root package re-exports the short forms (gdsolver.solve, gdsolver.GDSolver) of every layer
FACADES = {"gdsolver"}

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
# path (relative to the repository) -> why it may stay longer than MAX_FILE_LINES
LONG_FILES: dict[str, str] = {
}
# "path:function" -> why it may stay longer than MAX_FUNCTION_LINES
LONG_FUNCTIONS: dict[str, str] = {
}
# module-name cycles that are known and being broken -> why
CYCLES: dict[frozenset[str], str] = {
}

REPO = Path(gdsolver.__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def package_modules(roots: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> file, for each package name -> its directory (cli/ is installed
    as gdsolver.cli from another directory, so each root is given)."""
    out: dict[str, Path] = {}
    for pkg, root in roots.items():
        for path in sorted(root.rglob("*.py")):
            parts = [*pkg.split("."), *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules `name` imports, anywhere in the file. `from P import n` counts as
    importing P.n when that is a module, else P."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                found.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod)
    # `import a.b.c` also names a.b.c's parents, but only the module itself is the dependency
    return {m for m in found if m in known and m != name}


def import_graph(roots: dict[str, Path]) -> tuple[dict[str, set[str]], dict[str, Path]]:
    mods = package_modules(roots)
    return {n: imports_of(n, p, set(mods)) for n, p in mods.items()}, mods


def layer_of(module: str, layers: list[tuple[str, set[str]]], top: str = "gdsolver") -> int | None:
    """Index of the layer `module` is in (None: in none of them)."""
    parts = module.split(".")
    if parts[0] != top or len(parts) < 2:
        return None
    for i, (_, names) in enumerate(layers):
        if parts[1] in names:
            return i
    return None


def upward_imports(graph: dict[str, set[str]], layers, facades=()) -> list[str]:
    bad = []
    for a, targets in sorted(graph.items()):
        if a in facades:
            continue
        la = layer_of(a, layers)
        for b in sorted(targets):
            lb = layer_of(b, layers)
            if la is not None and lb is not None and lb > la:
                bad.append(f"{a} ({layers[la][0]}) imports {b} ({layers[lb][0]})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def rel(path: Path) -> str:
    return path.resolve().relative_to(REPO).as_posix()


@pytest.fixture(scope="module")
def graph():
    roots = {"gdsolver": Path(gdsolver.__file__).resolve().parent,
             "gdsolver.cli": Path(gdsolver.cli.__file__).resolve().parent}
    return import_graph(roots)


def test_every_module_is_in_a_layer(graph) -> None:
    g, _ = graph
    unplaced = sorted(m for m in g if m not in FACADES and layer_of(m, LAYERS) is None)
    assert not unplaced, f"add these to a layer in tests/test_layout.py LAYERS: {unplaced}"


def test_no_import_from_a_lower_layer_to_a_higher_one(graph) -> None:
    bad = upward_imports(graph[0], LAYERS, FACADES)
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_circle(graph) -> None:
    found = cycles(graph[0])
    new = [sorted(c) for c in found if c not in CYCLES]
    assert not new, f"import circles: {new}"
    gone = [sorted(c) for c in CYCLES if c not in found]
    assert not gone, f"broken circles still in the allow-list (remove them from CYCLES): {gone}"


def test_file_sizes(graph) -> None:
    _, mods = graph
    sizes = {rel(p): len(p.read_text(encoding="utf-8").splitlines()) for p in mods.values()}
    long = {p: n for p, n in sizes.items() if n > MAX_FILE_LINES and p not in LONG_FILES}
    assert not long, f"files over {MAX_FILE_LINES} lines (split them, or say why in LONG_FILES): {long}"
    fixed = sorted(p for p in LONG_FILES if sizes.get(p, 0) <= MAX_FILE_LINES)
    assert not fixed, f"no longer over {MAX_FILE_LINES} lines (remove from LONG_FILES): {fixed}"


def test_every_package_is_installed(graph) -> None:
    """pyproject.toml lists the packages a wheel holds (package-dir maps cli/ to gdsolver.cli):
    a package left out works in the editable install and is missing from a real one."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {m for m, p in graph[1].items() if p.name == "__init__.py"}
    assert packages == listed, f"in the tree, not in pyproject.toml: {sorted(packages - listed)}; " \
                               f"listed, not in the tree: {sorted(listed - packages)}"


def long_functions(path: Path, most: int) -> dict[str, int]:
    out = {}
    for node in ast.walk(parse(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > most:
                out[node.name] = n
    return out


def test_function_sizes(graph) -> None:
    _, mods = graph
    found = {f"{rel(p)}:{name}": n for p in mods.values() for name, n in long_functions(p, MAX_FUNCTION_LINES).items()}
    long = {k: n for k, n in found.items() if k not in LONG_FUNCTIONS}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them, or say why in LONG_FUNCTIONS): {long}"
    fixed = sorted(k for k in LONG_FUNCTIONS if k not in found)
    assert not fixed, f"no longer over {MAX_FUNCTION_LINES} lines (remove from LONG_FUNCTIONS): {fixed}"


def test_the_checks_find_what_they_look_for(tmp_path) -> None:
    """The scanner on a small made-up package: an upward import, a circle through a function-level
    import, a relative import and an unplaced module are all found."""
    pkg = tmp_path / "gdsolver"
    for sub in ("ir", "train", "odd"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "ir" / "a.py").write_text("def f():\n    from gdsolver.train import t\n")  # upward, and a circle
    (pkg / "ir" / "b.py").write_text("from . import a\n")
    (pkg / "train" / "t.py").write_text("from ..ir.a import f\nimport gdsolver.ir.b\n")
    (pkg / "odd" / "x.py").write_text("import numpy\n")
    g, _ = import_graph({"gdsolver": pkg})
    assert g["gdsolver.ir.a"] == {"gdsolver.train.t"}
    assert g["gdsolver.ir.b"] == {"gdsolver.ir.a"}
    assert g["gdsolver.train.t"] == {"gdsolver.ir.a", "gdsolver.ir.b"}
    layers = [("ir", {"ir"}), ("train", {"train"})]
    assert upward_imports(g, layers) == ["gdsolver.ir.a (ir) imports gdsolver.train.t (train)"]
    assert cycles(g) == [frozenset({"gdsolver.ir.a", "gdsolver.ir.b", "gdsolver.train.t"})]  # a -> t -> b -> a
    assert layer_of("gdsolver.odd.x", layers) is None
    (pkg / "ir" / "long.py").write_text("def f():\n" + "    x = 1\n" * 90)
    assert long_functions(pkg / "ir" / "long.py", 80) == {"f": 91}
