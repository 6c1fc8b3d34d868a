"""The book's figures: SVG, sized for the page's text column, glued so that a caption numbers them.

    from pcbp.book.figures import figure, publish, setup
    setup()                                   # once, in the chapter's first code cell
    fig, ax = figure()                        # one panel the width of the text column
    ...
    publish("zil-wave", fig)                  # glue it; the prose places it with {glue:figure}

and in the prose::

    ```{glue:figure} zil-wave
    :name: fig-zil-wave

    The caption: what is plotted, and what the reader should see in it.
    ```

Figures are drawn at the column's width (`WIDTH` inches), so their type is shown at its nominal
size rather than shrunk: a row holds at most two panels; more panels stack in rows.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

WIDTH = 7.0  # inches: the text column of the book's pages at desktop width
PANEL_HEIGHT = 3.0  # inches per row of panels
MAX_COLUMNS = 2  # panels side by side; more would shrink their type below legibility
STYLE = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.titlesize": 11,
    "svg.fonttype": "path",  # the same glyphs in every browser and in the PDF
    "figure.constrained_layout.use": True,
}


def setup() -> None:
    """SVG output and the book's type sizes, for every figure the chapter draws."""
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("svg")
    matplotlib.rcParams.update(STYLE)


def figure(ncols: int = 1, nrows: int = 1, height: float = PANEL_HEIGHT, **kwargs: object):
    """`plt.subplots` sized for the page: `ncols` ≤ 2 panels a row, each row `height` inches tall."""
    if not 1 <= ncols <= MAX_COLUMNS:
        raise ValueError(f"ncols={ncols}: at most {MAX_COLUMNS} panels fit side by side; stack more with nrows")
    return plt.subplots(nrows, ncols, figsize=(WIDTH, height * nrows), **kwargs)


def log_ticks(ax: matplotlib.axes.Axes, which: str = "y") -> None:
    """Label several ticks on a log axis that spans under two decades, where the default labels one or two."""
    lo, hi = getattr(ax, f"get_{which}lim")()
    decades = abs(np.log10(hi / lo))
    if decades >= 2:
        return
    axis = getattr(ax, f"{which}axis")
    axis.set_major_locator(LogLocator(subs=(1, 2, 5) if decades >= 1 else (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def publish(key: str, fig: matplotlib.figure.Figure) -> None:
    """Glue `fig` under `key` for a numbered `{glue:figure}`, and close it so it is not shown twice."""
    from myst_nb import glue

    glue(key, fig, display=False)
    plt.close(fig)
