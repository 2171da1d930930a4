"""Machine facts recorded with every benchmark result."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any

from gdsolver._version import package_version


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": package_version("numpy"),
        "highspy": package_version("highspy"),
        "gurobipy": package_version("gurobipy"),
        "gdsolver": package_version("gdsolver"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def machine_line(m: dict[str, Any], *packages: str, platform: bool = False) -> str:
    """The line a bench report starts its conditions with, from a machine_info() record:
    'Machine: <cpu> (<cores> cores)[, <platform>], <package> <version>, ...; <date>'."""
    parts = [f"{m['cpu']} ({m['cores']} cores)", *([m["platform"]] if platform else []),
             *(f"{'Python' if p == 'python' else p} {m[p]}" for p in packages)]
    return "Machine: " + ", ".join(parts) + f"; {m['date']}"


def git_state() -> dict[str, Any] | None:
    """The commit a run's code came from and the files under gdsolver/ that differed from it
    (the trainers change under a running bench on a shared tree); None outside a git checkout."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gdsolver"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"head": head or None, "modified": sorted(x[3:] for x in dirty if x.strip())} if head else None


def uptime() -> str | None:
    """`uptime`'s line (load and users at a glance), None where there is no such command."""
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
