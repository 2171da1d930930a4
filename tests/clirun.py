"""Running the installed CLI as a user would, and checking its one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gdsolver.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def assert_user_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit code 2, exactly one 'error: ...' line on stderr containing every needle, no traceback."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
