"""The README and the docs show code that runs: every snippet marked as an example is run here.

A fenced block preceded by `<!-- example: examples/NAME -->` is the core of that example script:
its lines appear in the script, in order (the script may add a docstring, a temporary working
directory and prints), and the script is run. A block preceded by `<!-- example -->` is run as
it stands (python or bash) in an empty temporary directory; `<!-- example (slow) -->` marks one
that takes more than a few seconds, run by `make test-slow`. Every example must finish, write
nothing outside its temporary directory, and print what the text says it prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MARK = re.compile(r"^<!-- example( \(slow\))?(?:: (\S+))? -->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")


def marked_blocks(path: Path) -> list[tuple[str | None, str, str, int, bool]]:
    """(example file or None, language, code, line number, slow) of every marked block in `path`."""
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = MARK.match(line)
        if not m:
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        assert fence, f"{path.name}:{i + 1}: an example mark must be followed by a code fence"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        out.append((m.group(2), fence.group(1), "\n".join(lines[i + 2:end]) + "\n", i + 1, bool(m.group(1))))
    return out


def run(cmd: list[str], tmp_path: Path, timeout: float = 600) -> tuple[subprocess.CompletedProcess, Path]:
    """Run `cmd` in an empty directory, TMPDIR inside tmp_path, the venv's bin first on PATH."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "COLUMNS": "200",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("GDSOLVER_VERBOSE", None)
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, (cmd, p.returncode, p.stdout[-4000:], p.stderr[-4000:])
    return p, cwd


def command(path: Path) -> list[str]:
    return ["bash", str(path)] if path.suffix == ".sh" else [sys.executable, str(path)]


# ---------------------------------------------------------------------------- the README itself
def test_readme_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert lines[:5] == [
        "# gdsolver",
        "",
        "```bash",
        "make demo   # sets up .venv (first time only); trains with GDSolver beside Adam and L-BFGS, compares, replays",
        "make test   # sets up .venv (first time only) and runs the test suite",
    ]
    assert "make test-slow" in README.read_text()


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 200


def test_readme_snippets_are_the_examples():
    """Each README snippet is the core of its example script, line for line and in order, and
    every script in examples/ is shown."""
    shown = set()
    for target, _, code, lineno, _ in marked_blocks(README):
        assert target, f"README.md:{lineno}: a README example names its script"
        script = ROOT / target
        assert script.is_file(), target
        shown.add(script.name)
        have = [ln.rstrip() for ln in script.read_text().splitlines()]
        at = 0
        for ln in (ln.rstrip() for ln in code.splitlines()):
            if not ln.strip():
                continue
            assert ln in have[at:], f"README.md:{lineno}: {ln!r} is not in {target} (in this order)"
            at = have.index(ln, at) + 1
    assert shown == {p.name for p in (ROOT / "examples").iterdir() if p.suffix in (".py", ".sh")}


def test_links_resolve():
    """Relative links in the README and docs/ name files that exist."""
    for page in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            assert path.exists(), f"{page.name}: link to {target} ({path}) does not exist"


# ---------------------------------------------------------------------------- the examples
def test_example_train_digits(tmp_path):
    p, cwd = run(command(ROOT / "examples/train_digits.py"), tmp_path)
    assert not any(cwd.iterdir())
    assert re.search(r"^sweep: accepted - ", p.stdout, re.M), p.stdout
    adam = float(re.search(r"^adam     test: \{'loss': ([0-9.e-]+)", p.stdout, re.M).group(1))
    hybrid = float(re.search(r"^gdsolver test: \{'loss': ([0-9.e-]+)", p.stdout, re.M).group(1))
    assert hybrid < adam, p.stdout  # what the README says: the sweep lowers the test loss after 4 epochs


@pytest.mark.slow  # several fresh Pythons with torch: 33 s of CPU (its README snippet is checked by default)
def test_example_cli_sweep(tmp_path):
    p, cwd = run(command(ROOT / "examples/cli_sweep.sh"), tmp_path)
    assert not any(cwd.iterdir())
    assert re.search(r"wrote\s+.\s+improved\.onnx", p.stdout), p.stdout
    # the last table (evaluate): accuracy of model.onnx, then of improved.onnx
    before, after = map(float, re.findall(r"^accuracy\s+\S\s+([0-9.]+)\s+\S\s+([0-9.]+)", p.stdout, re.M)[-1])
    assert after > before, p.stdout


def test_example_ir_from_numpy(tmp_path):
    p, cwd = run(command(ROOT / "examples/ir_from_numpy.py"), tmp_path)
    assert not any(cwd.iterdir())
    out = p.stdout
    assert re.search(r"^OPTIMAL points correct: \d+\.0 of 32$", out, re.M), out
    assert re.search(r"^verify: ok ", out, re.M), out
    assert re.search(r"^search: benders OPTIMAL \d+\.0$", out, re.M), out
    solved = re.search(r"points correct: (\d+)", out).group(1)
    assert re.search(rf"^search: benders OPTIMAL {solved}\.0$", out, re.M), out  # the pipeline, the same optimum
    assert re.search(r"^closest point: moved \S+ \(L1\) instead of \S+$", out, re.M), out


# ---------------------------------------------------------------------------- docs/ snippets
DOC_BLOCKS = [pytest.param(page, lang, code, lineno, id=f"{page.name}:{lineno}",
                           marks=[pytest.mark.slow] if slow else [])
              for page in DOCS for target, lang, code, lineno, slow in marked_blocks(page) if target is None]


def test_docs_have_examples():
    assert len(DOC_BLOCKS) >= 3


@pytest.mark.parametrize("page,lang,code,lineno", DOC_BLOCKS)
def test_docs_snippet_runs(page, lang, code, lineno, tmp_path):
    assert lang in ("python", "bash"), f"{page.name}:{lineno}: cannot run a {lang!r} block"
    script = tmp_path / ("snippet.py" if lang == "python" else "snippet.sh")
    script.write_text(code if lang == "python" else "set -euo pipefail\n" + code)
    p, _ = run(command(script), tmp_path)
    assert "Traceback" not in p.stderr, p.stderr
