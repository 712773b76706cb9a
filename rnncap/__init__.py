"""rnncap: capacity and trainability of recurrent networks, from scratch in NumPy/CuPy.

Implements Collins, Sohl-Dickstein & Sussillo, *Capacity and Trainability in
Recurrent Neural Networks* (ICLR 2017): the six cells with hand-written
backpropagation through time, the paper's capacity measurements, its tasks and
its hyperparameter searches.

    >>> import numpy as np, rnncap
    >>> net = rnncap.Network("gru", depth=2, n_in=8, n_out=2, n_h=16, rng=np.random.default_rng(0))
    >>> out = net.forward(np.zeros((5, 4, 8))).out      # (T, B, n_out)
"""

__version__ = "0.1.0"

from rnncap.autodiff.gradcheck import gradcheck  # noqa: E402
from rnncap.autodiff.losses import MultiSoftmaxCrossEntropy, SoftmaxCrossEntropy, SquaredError  # noqa: E402
from rnncap.backend import get_xp, to_numpy  # noqa: E402
from rnncap.cells import CELLS, CellHParams, make_cell  # noqa: E402
from rnncap.errors import RnncapError  # noqa: E402
from rnncap.network import Network, count_params, units_for_budget  # noqa: E402

__all__ = [
    "CELLS", "CellHParams", "MultiSoftmaxCrossEntropy", "Network", "RnncapError", "SoftmaxCrossEntropy",
    "SquaredError", "count_params", "get_xp", "gradcheck", "make_cell", "to_numpy", "units_for_budget",
]
