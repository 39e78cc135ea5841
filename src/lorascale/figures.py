"""The one way the package makes a figure: a matplotlib ``Figure`` on its own Agg canvas, saved to a file.

Every renderer draws on :func:`new_figure` and ends with :func:`save_figure`. Nothing here touches
matplotlib's process-wide state: no backend switch (a user's notebook keeps its inline backend) and
no global figure registry (so there is nothing to close and nothing leaks between calls). Only the
object API is used (``fig.subplots``, ``ax.plot``), which is why the renderers never need a display.

matplotlib loads on the first figure, so importing a module that renders stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["DPI", "new_figure", "save_figure", "colormap"]

DPI = 120
log = logging.getLogger(__name__)


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 4.4):
    """``(figure, axes)`` with ``axes`` always a 2-D ``(nrows, ncols)`` array; each panel is
    ``width`` × ``height`` inches. The layout is matplotlib's constrained layout (titles, legends and
    a suptitle are fitted without a separate ``tight_layout`` call)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save_figure(fig, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix), creating the parent folder; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi)
    log.debug("wrote %s", p)
    return p


def colormap(name: str):
    """A registered matplotlib colormap by name (``"viridis"``), mapping [0, 1] to RGBA."""
    from matplotlib import colormaps

    return colormaps[name]
