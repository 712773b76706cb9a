"""Memory: what a run needs, estimated before anything is allocated, and what the machine has.

A run that cannot fit should be refused in one line, not end in a
``MemoryError`` minutes later. The estimate adds up, for each of the
``population`` networks trained together:

- the parameters, their gradients and the optimiser's state (Adam keeps
  two more arrays of each): 5 numbers per parameter;
- the activations kept for backpropagation through time: per step, per
  sequence and per layer, about ``3 * gates + states + 1`` numbers per unit
  (the input projection, the gate values and the states each step caches);
  for the larger of the training batch and one evaluation pass;
- the inputs and outputs of those sequences, with their gradients;
- the task's data: a fixed dataset or evaluation set, built in float64 and
  copied to float32 (12 bytes a number), and a corpus
  (:class:`Footprint`, which each task config's ``footprint()`` gives).

It is an estimate, meant to catch the runs that are out by orders of
magnitude: a budget of 10^12 parameters, a billion samples. Against the peak
resident memory of ``rnncap train`` (NumPy; an LSTM of 64 or 128 units on the
capacity, memory, parens and rcf tasks, 1.6 to 4.1 GB) it came out between
0.9 and 1.8 times the measured peak.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from rnncap.errors import RnncapError
from rnncap.formatting import byte_size

TRAIN_BYTES = 4                 # float32
DATA_BYTES = 12                 # a number built in float64, then copied to float32
COPIES_PER_PARAMETER = 5        # the parameter, its gradient, two optimiser moments, one update


class Footprint(NamedTuple):
    """The sizes of a task that decide its memory, from its config alone (nothing allocated)."""

    steps: int                  # T
    batch: int                  # sequences in a training step
    evaluated: int              # sequences in one evaluation pass
    held: int                   # sequences kept in memory as the dataset or the evaluation set
    n_in: int
    n_out: int
    extra_bytes: int = 0        # a corpus, a function's features, a one-hot table


def network_bytes(cell, depth: int, n_in: int, n_out: int, n_h: int, *, steps: int, batch: int,
                  number_bytes: int = TRAIN_BYTES) -> int:
    """One network's parameters (with gradients and optimiser state) and its activations kept for BPTT."""
    from rnncap.cells import make_cell
    from rnncap.network import count_params

    cell = make_cell(cell) if isinstance(cell, str) else cell
    per_unit = 3 * cell.gates + len(cell.state_names) + 1
    parameters = COPIES_PER_PARAMETER * count_params(cell, depth, n_in, n_out, n_h)
    activations = steps * batch * (depth * n_h * per_unit + 3 * (n_in + n_out))
    return (parameters + activations) * number_bytes


def task_bytes(footprint: Footprint) -> int:
    """The task's data: the sequences it holds and what else it keeps (a corpus, say)."""
    f = footprint
    return f.held * f.steps * (f.n_in + f.n_out + 2) * DATA_BYTES + f.extra_bytes


def run_bytes(footprint: Footprint, cell, depth: int, n_h: int, population: int = 1) -> int:
    """A population of ``population`` networks training on the task of ``footprint``."""
    f = footprint
    one = network_bytes(cell, depth, f.n_in, f.n_out, n_h, steps=f.steps, batch=max(f.batch, f.evaluated))
    return population * (one + task_bytes(f))


def available_bytes() -> int | None:
    """Memory the machine can give a new process now: MemAvailable, else free pages, else None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024                      # reported in KiB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def check_fits(needed: int, what: str, fix: str) -> None:
    """Refuse, in one line, work that needs more memory than the machine has available now."""
    available = available_bytes()
    if available is not None and needed > available:
        raise RnncapError(f"{what} needs about {byte_size(needed)} of memory and this machine has "
                          f"{byte_size(available)} available; {fix}")
