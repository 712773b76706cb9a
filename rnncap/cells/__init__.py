"""The six cells of the paper, by name.

    rnn      vanilla RNN, eq. (1)            irnn   RNN with identity start, ReLU
    ugrnn    update-gate RNN, eqs. (2)-(4)   gru    GRU, eqs. (5)-(8)
    lstm     LSTM, eqs. (9)-(14)             plusrnn (or +rnn)  +RNN, eqs. (15)-(20)
"""

from __future__ import annotations

from rnncap.cells.base import Cell, CellHParams
from rnncap.cells.gru import GRU
from rnncap.cells.lstm import LSTM
from rnncap.cells.plusrnn import PlusRNN
from rnncap.cells.rnn import IRNN, RNN
from rnncap.cells.ugrnn import UGRNN
from rnncap.errors import RnncapError

CELLS: dict[str, type[Cell]] = {cls.name: cls for cls in (RNN, IRNN, UGRNN, GRU, LSTM, PlusRNN)}
ALIASES = {"+rnn": "plusrnn", "intersection": "plusrnn"}


def canonical_cell_name(name: str) -> str:
    """``'+RNN'`` -> ``'plusrnn'``; raises a clear error for an unknown name."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in CELLS:
        raise RnncapError(f"unknown cell {name!r}: choose one of {', '.join(CELLS)} (or +rnn)")
    return key


def make_cell(name: str, hp: CellHParams | None = None) -> Cell:
    """A cell with the forward constants of ``hp`` (nonlinearity, ``b_fg``)."""
    hp = hp or CellHParams()
    cls = CELLS[canonical_cell_name(name)]
    nonlinearity = hp.nonlinearity or cls.default_nonlinearity
    if hp.nonlinearity is not None and hp.nonlinearity not in cls.nonlinearities:
        allowed = (f"only {', '.join(cls.nonlinearities)}" if cls.nonlinearities
                   else "none: its nonlinearities are fixed by the paper (ReLU on y, tanh on h)")
        raise RnncapError(f"{cls.title} does not take nonlinearity {hp.nonlinearity!r}; it allows {allowed}")
    if cls is PlusRNN:
        return PlusRNN(nonlinearity=nonlinearity, b_fg=hp.b_fg, b_fg_y=hp.b_fg_y)
    return cls(nonlinearity=nonlinearity, b_fg=hp.b_fg)


__all__ = ["CELLS", "Cell", "CellHParams", "GRU", "IRNN", "LSTM", "PlusRNN", "RNN", "UGRNN",
           "canonical_cell_name", "make_cell"]
