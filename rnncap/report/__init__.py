"""The paper's figures and tables from a study store: :func:`write_report`; its headline: :func:`capacity_headline`.

``write_report(store, out_dir)`` reads every study whose spec carries
``tags = {"experiment": ..., "preset": ...}`` (what :mod:`rnncap.experiments`
writes), groups the studies by experiment, draws one PNG per figure of the
paper, and writes ``report.md`` beside them, with the figures embedded by
relative path and the tables next to the paper's numbers. Experiments with no
study in the store are named once, on one line, as not run.

By job:

=============== ===============================================================
module          what it holds
=============== ===============================================================
results         reading the store: StudyResult, collect_results, choose_preset
fits            best per line, bits per parameter, the Figure 1i multipliers
headline        capacity_headline: the capacity result for a terminal
paper           the paper's numbers drawn beside ours
styles          each cell's order, label, colour and marker (no matplotlib)
drawing         matplotlib helpers: figures, legends, legible log axes
markdown        numbers as text, tables, embedded images; Section
capacity        Figures 1a-h, 1i, 2a, 2b (capacity task)
memory          Figure 2c
tasks           Figure 3: text8 and random continuous functions
tuning          Figures 4 and 5, Table 1: parentheses, arithmetic, random hyperparameters
write           write_report: report.md in the registry's order
=============== ===============================================================

Only the figure modules (and ``drawing``) import matplotlib, and
:func:`write_report` imports them when it draws; importing this package does not.
"""

from rnncap.report.fits import best_by, bits_per_parameter, capacity_points, capacity_slope, multiplier_table
from rnncap.report.headline import capacity_headline
from rnncap.report.paper import (PAPER_BITS_BAND, PAPER_BITS_PER_PARAMETER, PAPER_MEMORY_N_IN,
                                 PAPER_RELU_BITS_PER_PARAMETER, PAPER_TABLE1)
from rnncap.report.results import StudyResult, choose_preset, collect_results, load_study
from rnncap.report.styles import CELL_COLORS, CELL_LABELS, CELL_MARKERS, CELL_ORDER
from rnncap.report.write import write_report

__all__ = [
    "CELL_COLORS", "CELL_LABELS", "CELL_MARKERS", "CELL_ORDER", "PAPER_BITS_BAND", "PAPER_BITS_PER_PARAMETER",
    "PAPER_MEMORY_N_IN", "PAPER_RELU_BITS_PER_PARAMETER", "PAPER_TABLE1", "StudyResult", "best_by",
    "bits_per_parameter", "capacity_headline", "capacity_points", "capacity_slope", "choose_preset",
    "collect_results", "load_study", "multiplier_table", "write_report",
]
