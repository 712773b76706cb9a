"""Drawing helpers shared by the figure sections: figures, legends, log axes that stay legible.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (no
pyplot, so no display and no global figure list), one colour and one marker
per cell throughout (:mod:`rnncap.report.styles`). Only the section modules
import this one, so reading results or fitting never loads matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from rnncap.report.results import is_finite_number
from rnncap.report.styles import DEPTH_STYLES, cell_index, cell_label, cell_style

DPI = 120


def new_figure(nrows: int, ncols: int, width: float = 4.6, height: float = 3.6):
    """A figure of ``nrows x ncols`` panels, each ``width x height`` inches; returns (figure, 2-D axes)."""
    fig = Figure(figsize=(width * ncols, height * nrows), dpi=DPI)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save_figure(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return str(path)


def cell_handles(cells) -> list:
    """Legend entries for the cells drawn, in the paper's order."""
    return [Line2D([], [], linestyle="-", label=cell_label(c), **cell_style(c))
            for c in sorted(set(cells), key=cell_index)]


def depth_handles(depths) -> list:
    """Line styles by depth, for figures that draw several depths in one panel (none if only one)."""
    depths = sorted(set(depths))
    return [] if len(depths) < 2 else [Line2D([], [], color="grey", linestyle=DEPTH_STYLES.get(d, "-"),
                                              label=f"depth {d}") for d in depths]


def add_legend(fig, handles) -> None:
    """One legend for the whole figure, to the right of the panels (``bbox_inches='tight'`` keeps it)."""
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=10)


def mark_empty(ax, text: str = "no feasible trials") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def positive_points(points):
    """The points a log-log axis can show."""
    return [(x, y) for x, y in points if x > 0 and y > 0]


def spans_decades(values) -> bool:
    """Do positive values span enough (a factor over 20) to need a log axis?"""
    values = [v for v in values if is_finite_number(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 20


def readable_log_axis(ax, which: str, values) -> None:
    """Make ``ax``'s ``which`` axis ("x" or "y") logarithmic with legible labels: no minor-tick labels, and
    under about two decades plain 1-2-5 numbers (0.2, 0.5, 1) instead of 2 × 10^-1 at every minor tick."""
    ax.set(**{f"{which}scale": "log"})
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_minor_formatter(NullFormatter())
    values = [v for v in values if is_finite_number(v) and v > 0]
    if values and max(values) / min(values) < 300:
        span = max(values) / min(values)
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if span > 4 else tuple(range(1, 10))))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def panel_grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    """Rows and columns for n panels, at most max_cols wide and as even as possible (4 -> 2 x 2)."""
    rows = math.ceil(max(n, 1) / max_cols)
    return rows, math.ceil(max(n, 1) / rows)


def hide_unused(axes, used: int) -> None:
    for ax in axes.flat[used:]:
        ax.set_visible(False)
