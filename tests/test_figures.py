"""The book's figure helpers: page-width panels, readable ticks on short log ranges."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from pcbp.book.figures import MAX_COLUMNS, WIDTH, figure, log_ticks  # noqa: E402


def test_figure_is_the_width_of_the_column_whatever_the_number_of_panels():
    for ncols in range(1, MAX_COLUMNS + 1):
        fig, _ = figure(ncols=ncols, nrows=2)
        assert fig.get_figwidth() == WIDTH
        plt.close(fig)


def test_more_panels_than_fit_side_by_side_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="stack more with nrows"):
        figure(ncols=MAX_COLUMNS + 1)


def test_log_ticks_label_several_ticks_on_a_range_under_a_decade():
    fig, ax = plt.subplots()
    ax.set_yscale("log")
    ax.set_ylim(0.8, 3.0)
    log_ticks(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if 0.8 <= t.get_position()[1] <= 3.0]
    assert len(labels) >= 4 and "1" in labels and "2" in labels, labels
    plt.close(fig)
