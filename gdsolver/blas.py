"""Limiting numpy's BLAS threads around small matrix products.

On small matrices extra BLAS threads only add overhead, and on a busy machine OpenBLAS's
spinning threads make a 10 ms product take a second or more (measured on the 2-core
benchmark machine under load 5: 1-1.8 s instead of 0.01-0.03 s for the pair-conflict screen).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Limit numpy's BLAS to `threads` threads inside the block when threadpoolctl is
    installed (it comes with scikit-learn); otherwise, or with None, change nothing."""
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=int(threads), user_api="blas"):
        yield
