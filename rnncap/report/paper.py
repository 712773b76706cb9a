"""The paper's numbers that the report draws beside ours (PAPER.md, "Numbers to compare against")."""

from __future__ import annotations

PAPER_BITS_PER_PARAMETER = 5.0                  # typical bits per parameter, every cell (Figure 1)
PAPER_BITS_BAND = (3.0, 6.0)                    # the range over cells and depths
PAPER_RELU_BITS_PER_PARAMETER = 3.5             # the IRNN, and RNN-like cells held to ReLU (Figure 2a)
PAPER_MEMORY_N_IN = 64                          # input size of the memory task (Figure 2c)
PAPER_TABLE1 = {                                # percent infeasible at depth 1 and depth 8 (None: not run)
    "gru": {1: 15.5, 8: 3.2}, "irnn": {1: 56.7, 8: 44.6}, "lstm": {1: 12.0, 8: 4.0},
    "rnn": {1: 21.5, 8: 18.7}, "ugrnn": {1: 20.2, 8: 11.5}, "plusrnn": {1: None, 8: 8.8},
}
