"""Machine facts recorded with every benchmark result."""

from __future__ import annotations

import datetime
import os
import platform

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
