"""How each cell looks in every figure and table: its order, label, colour and marker; line style by depth.

Plain data, no matplotlib, so that the tables and :func:`rnncap.report.capacity_headline` can sort and
label cells without loading a plotting library.
"""

from __future__ import annotations

from rnncap.cells import CELLS

CELL_ORDER = ("rnn", "irnn", "ugrnn", "gru", "lstm", "plusrnn")
CELL_COLORS = {"rnn": "tab:blue", "irnn": "tab:orange", "ugrnn": "tab:green",
               "gru": "tab:red", "lstm": "tab:purple", "plusrnn": "tab:brown"}
CELL_MARKERS = {"rnn": "o", "irnn": "v", "ugrnn": "s", "gru": "D", "lstm": "^", "plusrnn": "P"}
CELL_LABELS = {name: CELLS[name].title for name in CELL_ORDER}          # RNN, IRNN, ..., +RNN
DEPTH_STYLES = {1: "-", 2: "--", 4: ":", 8: "-."}


def cell_index(cell: str) -> int:
    """Where ``cell`` sorts: the paper's order, unknown names last."""
    return CELL_ORDER.index(cell) if cell in CELL_ORDER else len(CELL_ORDER)


def cell_label(cell: str) -> str:
    return CELL_LABELS.get(cell, cell)


def cell_color(cell: str) -> str:
    return CELL_COLORS.get(cell, "grey")


def cell_style(cell: str) -> dict:
    """Keyword arguments for ``ax.plot``: the cell's colour and marker."""
    return {"color": cell_color(cell), "marker": CELL_MARKERS.get(cell, "o")}
