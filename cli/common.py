"""CLI plumbing: one-line errors with exit code 2, and rich output helpers."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from gdsolver.errors import GdsolverError

# rich wraps at 80 columns when not on a terminal; tables are wider than that
# (a closed stdout or stderr is None: refused by cli.checks.check_stdout, not a crash here)
console = Console(highlight=False, width=None if sys.stdout is not None and sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False,
                      width=None if sys.stderr is not None and sys.stderr.isatty() else 1000)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line on stderr and exit."""
    if sys.stderr is not None:  # a closed stderr: the exit code is all that can be said
        err_console.print(f"error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn user-caused errors into one stderr line and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GdsolverError as exc:
            fail(str(exc).replace("\n", " "))
        except (OSError, MemoryError) as exc:
            fail(f"{type(exc).__name__}: {exc}".replace("\n", " "))
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def fmt(v: Any, digits: int = 6) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.{digits}g}"
    return str(v)


def _table(title: str | None, columns: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


class FitTable:
    """A table that fits the width it is printed in (80 columns on a narrow terminal): when its
    columns do not fit side by side, they are printed as several tables, each starting with the
    first column (the row's name), rather than wrapped mid-word."""

    GAP = 3  # what rich puts between two columns without an edge (padding and the rule)

    def __init__(self, title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
        self.title, self.columns = title, list(columns)
        self.rows = [[fmt(v) for v in r] for r in rows]

    def groups(self, width: int) -> list[list[int]]:
        """Column indices of each table: as many as fit `width`, the first column in each."""
        w = [max([len(c)] + [len(r[i]) for r in self.rows]) for i, c in enumerate(self.columns)]
        groups: list[list[int]] = []
        cur = [0]
        used = w[0]
        for i in range(1, len(w)):
            if used + self.GAP + w[i] > width and len(cur) > 1:
                groups.append(cur)
                cur, used = [0], w[0]
            cur.append(i)
            used += self.GAP + w[i]
        groups.append(cur)
        return groups

    def __rich_console__(self, console: Console, options: Any):
        groups = self.groups(options.max_width)
        for n, g in enumerate(groups):
            title = self.title if n == 0 else None
            yield _table(title, [self.columns[i] for i in g], [[r[i] for i in g] for r in self.rows])


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> FitTable:
    return FitTable(title, columns, rows)


def isatty() -> bool:
    return sys.stderr.isatty()
