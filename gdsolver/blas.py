"""Limiting numpy's BLAS threads around small matrix products.

On small matrices extra BLAS threads only add overhead, and on a busy machine OpenBLAS's
spinning threads make a 10 ms product take a second or more (measured on the 2-core
benchmark machine under load 5: 1-1.8 s instead of 0.01-0.03 s for the pair-conflict screen).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

# threadpoolctl finds the loaded BLAS libraries by reading the process's memory map: 2.5-5 ms a
# call, half of a digits polish's solve; the controller is kept and made again only when scipy
# (which loads a BLAS of its own) has been imported since
_controller: tuple[bool, Any] | None = None


def _blas_controller() -> Any | None:
    global _controller
    key = "scipy.linalg" in sys.modules
    if _controller is None or _controller[0] != key:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _controller = (key, ThreadpoolController())
    return _controller[1]


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Limit numpy's BLAS to `threads` threads inside the block when threadpoolctl is
    installed (it comes with scikit-learn); otherwise, or with None, change nothing."""
    ctl = None if threads is None else _blas_controller()
    if ctl is None:
        yield
        return
    with ctl.limit(limits=int(threads), user_api="blas"):
        yield
