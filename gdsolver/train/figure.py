"""A matplotlib Figure that shows itself in a notebook (imported by History.plot only: matplotlib
is optional and heavy)."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def png_bytes(fig: Figure) -> bytes:
    """The figure drawn to PNG by the Agg canvas: no pyplot, matplotlib's backend untouched."""
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


class ShownFigure(Figure):
    """A Figure that a notebook displays as a picture when it is a cell's value, without
    `%matplotlib inline` (a bare Figure shows as the text `<Figure size ...>` otherwise)."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)

