"""The paper's figures and tables from a study store: :func:`write_report`.

``write_report(store, out_dir)`` reads every study whose spec carries
``tags = {"experiment": ..., "preset": ...}`` (what :mod:`rnncap.experiments`
writes), groups the studies by experiment, draws one PNG per figure of the
paper, and writes ``report.md`` beside them, with the figures embedded by
relative path and the tables next to the paper's numbers. Experiments with no
study in the store are listed as "not run".

Choices (ours; the paper does not say how it reduced its trials):

- **Best** is the best objective over a study's *feasible* trials (status
  ``done``): the most bits for the capacity task, the least error, loss or
  bpc otherwise. Where several studies share a point (same cell, depth and
  size), the best of them is plotted. Bits per parameter = best bits /
  ``spec["params"]``, the exact parameter count of the network trained.
- **Presets**: one preset per experiment, the largest present (full > quick >
  smoke, then any other tag), preferring one that has at least one feasible
  trial, so that a full run just started does not hide a finished quick one.
  ``presets`` restricts the choice (``presets="quick"`` reports quick runs
  even when a full run exists). The presets left out are named in the report.
- **The multiplier table** (Figure 1i) fits ``bits = slope * params`` per
  cell and depth. The default fit is least squares on log-log axes with the
  slope held at 1, that is the geometric mean of bits per parameter over the
  budgets, so that each budget counts once whatever its size; the other,
  least squares through the origin on linear axes (``method="origin"``), is
  dominated by the largest budget. ``multiplier[x][y] = slope_y / slope_x``:
  how many times more parameters cell ``x`` needs than cell ``y`` to store
  the same number of bits. Depths are tabled separately and, when there are
  several, also pooled (the +RNN never runs at depth 1, so only the pooled
  table compares it with the others when depth 1 is all there is).
- **Fraction infeasible** (Table 1) = infeasible / (feasible + infeasible)
  finished trials; ``failed`` trials (errors, not divergence) are left out of
  the fraction and counted beside it.

Files written (each only when its experiment is in the store):

================== =============== ================================================
file               paper           what it plots
================== =============== ================================================
capacity.png       Fig. 1a-h       best bits, bits per parameter vs parameters
capacity-table.png Fig. 1i         multiplier heatmaps (per depth, and pooled)
relu.png           Fig. 2a         bits per parameter, tuned vs ReLU only (bars)
unroll.png         Fig. 2b         bits per parameter vs unrolled steps
memory.png         Fig. 2c         recall error vs units, with max(0, 1 - n_h/n_in)
text8-params.png   Fig. 3a-c       held-out bpc vs parameters, unigram entropy
text8-units.png    Fig. 3d         the same against units per layer
rcf.png            Fig. 3          squared error vs parameters (log-log)
parens.png         Fig. 4          min (solid) and median (dashed) loss vs trial
arith.png          Fig. 4          the same on arithmetic
random-hp.png      Fig. 5          box plots of final losses, depths 1 and 8
report.md                          all of the above, with tables (Table 1 beside ours)
================== =============== ================================================

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (no
pyplot, so no display and no global figure list), one colour and one marker
per cell throughout (:data:`CELL_COLORS`, :data:`CELL_MARKERS`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from rnncap.cells import CELLS
from rnncap.experiments import EXPERIMENTS, PRESETS
from rnncap.tune.study import summarize

DPI = 120
CELL_ORDER = ("rnn", "irnn", "ugrnn", "gru", "lstm", "plusrnn")
CELL_COLORS = {"rnn": "tab:blue", "irnn": "tab:orange", "ugrnn": "tab:green",
               "gru": "tab:red", "lstm": "tab:purple", "plusrnn": "tab:brown"}
CELL_MARKERS = {"rnn": "o", "irnn": "v", "ugrnn": "s", "gru": "D", "lstm": "^", "plusrnn": "P"}
CELL_LABELS = {name: CELLS[name].title for name in CELL_ORDER}          # RNN, IRNN, ..., +RNN
DEPTH_STYLES = {1: "-", 2: "--", 4: ":", 8: "-."}

# the paper's numbers (PAPER.md, "Numbers to compare against")
PAPER_BITS_PER_PARAMETER = 5.0
PAPER_BITS_BAND = (3.0, 6.0)
PAPER_RELU_BITS_PER_PARAMETER = 3.5
PAPER_MEMORY_N_IN = 64
PAPER_TABLE1 = {                                # percent infeasible at depth 1 and depth 8 (None: not run)
    "gru": {1: 15.5, 8: 3.2}, "irnn": {1: 56.7, 8: 44.6}, "lstm": {1: 12.0, 8: 4.0},
    "rnn": {1: 21.5, 8: 18.7}, "ugrnn": {1: 20.2, 8: 11.5}, "plusrnn": {1: None, 8: 8.8},
}

WHAT_IT_SHOWS = {                               # what the paper found; our numbers follow each sentence
    "capacity": "The paper finds the bits stored by the best trial linear in the parameter count, at 3-6 "
                "(about 5) bits per parameter for every cell.",
    "capacity-table": "How many times more parameters cell x needs than cell y to store as many bits "
                      "(> 1: x stores less per parameter).",
    "relu": "The paper finds that holding RNN-like cells to ReLU costs capacity: about 3.5 bits per parameter, "
            "against about 5 when tanh is allowed.",
    "unroll": "The paper finds bits per parameter growing with the number of unrolled steps for a few steps, "
              "then saturating.",
    "memory": "The paper finds that every cell recalls its input iff n_h >= n_in, and below that follows "
              "max(0, 1 - n_h/n_in): about one real number per unit.",
    "text8": "Held-out bits per character against parameters; the paper finds the cells close at equal "
             "parameters (and far apart against units, Figure 3d).",
    "rcf": "Squared error on random continuous functions against parameters; the paper finds the cells close.",
    "parens": "Minimum (solid) and median (dashed) evaluation loss over the tuning iterations: how easily "
              "each cell trains on parallel parentheses counting.",
    "arith": "Minimum (solid) and median (dashed) evaluation loss over the tuning iterations on addition, "
             "the hardest task.",
    "random-hp": "Final losses of random hyperparameter sets (feasible trials) and the fraction of sets whose "
                 "training diverged, beside the paper's Table 1.",
}


# ------------------------------------------------------------------------------------------------
# reading the store

@dataclass(frozen=True)
class StudyResult:
    """One study, reduced to what the figures need."""

    name: str
    spec: dict
    best: float | None              # best objective over feasible trials
    best_metrics: dict
    feasible: tuple                 # objectives of the feasible trials, in trial order
    done: int
    infeasible: int
    failed: int
    running: int
    wall_time: float                # seconds, summed over the trials that report one
    curve: tuple = ()               # summarize()'s best and median so far, per trial

    @property
    def cell(self) -> str:
        return self.spec["cell"]

    @property
    def depth(self) -> int:
        return int(self.spec["depth"])

    @property
    def params(self) -> int:
        return int(self.spec["params"])

    @property
    def n_h(self) -> int:
        return int(self.spec["n_h"])

    @property
    def tags(self) -> dict:
        return self.spec.get("tags") or {}

    @property
    def maximise(self) -> bool:
        return self.spec.get("direction") == "max"

    @property
    def trials(self) -> int:
        return self.done + self.infeasible + self.failed + self.running


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(value)
    except TypeError:                                       # a string, a list: not a number
        return False


def load_study(store, name: str, spec: dict) -> StudyResult:
    rows = store.trials(name)
    feasible = [r for r in rows if r["status"] == "done" and _finite(r["objective"])]
    pick = max if spec.get("direction") == "max" else min
    best = pick(feasible, key=lambda r: r["objective"]) if feasible else None
    count = {s: sum(r["status"] == s for r in rows) for s in ("done", "infeasible", "failed", "running")}
    return StudyResult(
        name=name, spec=spec, best=None if best is None else float(best["objective"]),
        best_metrics={} if best is None else dict(best["metrics"]),
        feasible=tuple(float(r["objective"]) for r in feasible), **count,
        wall_time=float(sum(r["wall_time"] for r in rows if _finite(r["wall_time"]))),
        curve=tuple(summarize(store, name)["curve"]))


def _preset_rank(preset: str) -> int:
    return PRESETS.index(preset) if preset in PRESETS else -1


def choose_preset(available: dict[str, list[StudyResult]], presets=None) -> str | None:
    """The preset to report for one experiment: the largest allowed one, preferring one with feasible trials."""
    allowed = [p for p in available if presets is None or p in presets]
    if not allowed:
        return None
    return max(allowed, key=lambda p: (any(r.best is not None for r in available[p]), _preset_rank(p), p))


@dataclass
class Collected:
    chosen: dict = field(default_factory=dict)      # experiment -> (preset, [StudyResult])
    skipped: dict = field(default_factory=dict)     # experiment -> {preset: number of studies} not reported
    untagged: list = field(default_factory=list)    # studies without an experiment tag


def collect_results(store, presets=None) -> Collected:
    """Every tagged study of the store, grouped by experiment, one preset per experiment."""
    if isinstance(presets, str):
        presets = (presets,)
    grouped: dict[str, dict[str, list[StudyResult]]] = {}
    collected = Collected()
    for entry in store.studies():
        spec = entry["spec"]
        tags = spec.get("tags") or {}
        if not tags.get("experiment"):
            collected.untagged.append(entry["name"])
            continue
        preset = str(tags.get("preset") or "untagged")
        grouped.setdefault(tags["experiment"], {}).setdefault(preset, []).append(
            load_study(store, entry["name"], spec))
    for experiment, by_preset in grouped.items():
        preset = choose_preset(by_preset, presets)
        if preset is not None:
            collected.chosen[experiment] = (preset, by_preset[preset])
        left = {p: len(rs) for p, rs in by_preset.items() if p != preset}
        if left:
            collected.skipped[experiment] = left
    return collected


# ------------------------------------------------------------------------------------------------
# pure computations (tested on synthetic data)

def best_by(results, x_of, value_of=lambda r: r.best) -> dict[tuple[int, str], list[tuple[float, float]]]:
    """``{(depth, cell): [(x, best value), ...]}`` sorted by x; the best study where several share an x."""
    merged: dict[tuple[int, str], dict] = {}
    for r in results:
        value = value_of(r)
        x = x_of(r)
        if not _finite(value) or x is None:
            continue
        points = merged.setdefault((r.depth, r.cell), {})
        old = points.get(x)
        if old is None or (value > old if r.maximise else value < old):
            points[x] = value
    order = sorted(merged, key=lambda k: (k[0], _cell_index(k[1])))
    return {k: sorted(merged[k].items()) for k in order}


def capacity_slope(points, method: str = "loglog") -> float:
    """Bits per parameter of the line ``bits = slope * params`` fitted to ``[(params, bits), ...]``.

    ``loglog``: least squares of ``log bits = log slope + log params`` (slope 1 on log-log axes), i.e. the
    geometric mean of bits / params; points with no bits are left out. ``origin``: least squares through
    the origin on linear axes, ``sum(p b) / sum(p p)``.
    """
    points = [(float(p), float(b)) for p, b in points if _finite(p) and _finite(b) and p > 0]
    if method == "loglog":
        logs = [math.log(b) - math.log(p) for p, b in points if b > 0]
        return math.exp(statistics.fmean(logs)) if logs else math.nan
    if method == "origin":
        den = sum(p * p for p, _ in points)
        return sum(p * b for p, b in points) / den if den > 0 else math.nan
    raise ValueError(f"method must be 'loglog' or 'origin', got {method!r}")


def multiplier_table(points: dict, method: str = "loglog") -> dict[str, dict[str, float]]:
    """Figure 1i: ``table[x][y]`` = parameters cell x needs / parameters cell y needs, for equal capacity.

    ``points``: ``{cell: [(params, bits), ...]}``. With slopes ``s`` (bits per parameter) from
    :func:`capacity_slope`, ``table[x][y] = s[y] / s[x]``; NaN where a cell has no usable slope.
    """
    slopes = {cell: capacity_slope(pts, method) for cell, pts in points.items()}
    usable = {cell: s for cell, s in slopes.items() if _finite(s) and s > 0}
    return {x: {y: (usable[y] / usable[x] if x in usable and y in usable else math.nan) for y in slopes}
            for x in slopes}


def infeasible_fraction(infeasible: int, feasible: int) -> float:
    """Table 1: infeasible / (feasible + infeasible); NaN with no finished trial."""
    total = infeasible + feasible
    return infeasible / total if total else math.nan


def memory_reference(n_h, n_in: int):
    """The error of keeping the best n_h-dimensional subspace of an i.i.d. input: max(0, 1 - n_h/n_in)."""
    return numpy.maximum(0.0, 1.0 - numpy.asarray(n_h, dtype=float) / n_in)


# ------------------------------------------------------------------------------------------------
# drawing helpers

def _cell_index(cell: str) -> int:
    return CELL_ORDER.index(cell) if cell in CELL_ORDER else len(CELL_ORDER)


def _label(cell: str) -> str:
    return CELL_LABELS.get(cell, cell)


def _style(cell: str) -> dict:
    return {"color": CELL_COLORS.get(cell, "grey"), "marker": CELL_MARKERS.get(cell, "o")}


def _figure(nrows: int, ncols: int, width: float = 4.6, height: float = 3.6):
    fig = Figure(figsize=(width * ncols, height * nrows), dpi=DPI)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _cell_handles(cells) -> list:
    return [Line2D([], [], linestyle="-", label=_label(c), **_style(c)) for c in sorted(set(cells), key=_cell_index)]


def _depth_handles(depths) -> list:
    """Line styles by depth, for figures that draw several depths in one panel (none if only one)."""
    depths = sorted(set(depths))
    return [] if len(depths) < 2 else [Line2D([], [], color="grey", linestyle=DEPTH_STYLES.get(d, "-"),
                                              label=f"depth {d}") for d in depths]


def _legend(fig, handles) -> None:
    """One legend for the whole figure, to the right of the panels (``bbox_inches='tight'`` keeps it)."""
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=10)


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return str(path)


def _empty(ax, text: str = "no feasible trials") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def _positive(points):
    return [(x, y) for x, y in points if x > 0 and y > 0]


def _wide(values) -> bool:
    """Do positive values span enough to need a log axis?"""
    values = [v for v in values if _finite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 20


def _readable_log(ax, which: str, values) -> None:
    """Make ``ax``'s ``which`` axis ("x" or "y") logarithmic with legible labels: no minor-tick labels, and
    under about two decades plain 1-2-5 numbers (0.2, 0.5, 1) instead of 2 × 10^-1 at every minor tick."""
    ax.set(**{f"{which}scale": "log"})
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_minor_formatter(NullFormatter())
    values = [v for v in values if _finite(v) and v > 0]
    if values and max(values) / min(values) < 300:
        span = max(values) / min(values)
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if span > 4 else tuple(range(1, 10))))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _readable_log_y(ax, values) -> None:
    _readable_log(ax, "y", values)


def _depths(results) -> list[int]:
    return sorted({r.depth for r in results})


def _grid_of(n: int, max_cols: int = 4) -> tuple[int, int]:
    """Rows and columns for n panels, at most max_cols wide and as even as possible (4 -> 2 x 2)."""
    rows = math.ceil(max(n, 1) / max_cols)
    return rows, math.ceil(max(n, 1) / rows)


def _hide_unused(axes, used: int) -> None:
    for ax in axes.flat[used:]:
        ax.set_visible(False)


# ------------------------------------------------------------------------------------------------
# markdown helpers

def _num(value, spec: str = ".2f") -> str:
    return format(value, spec) if _finite(value) else "—"


def _percent(value) -> str:
    return f"{100 * value:.1f} %" if _finite(value) else "—"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _image(path: str, caption: str) -> str:
    return f"![{caption}]({Path(path).name})\n"


@dataclass
class Section:
    figures: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# the experiments

def _bits_per_parameter(r: StudyResult):
    return None if r.best is None else r.best / r.params


def _capacity_section(results, out: Path, preset: str) -> Section:
    section = Section()
    depths = _depths(results)
    bits = best_by(results, lambda r: r.params)
    bpp = best_by(results, lambda r: r.params, _bits_per_parameter)
    fig, axes = _figure(len(depths), 2, width=5.0, height=3.8)
    all_params = [p for pts in bits.values() for p, _ in pts]
    for row, depth in enumerate(depths):
        ax_bits, ax_bpp = axes[row]
        letters = "abcdefgh"[2 * row:2 * row + 2].ljust(2, "?")
        for (d, cell), pts in bits.items():
            pts = _positive(pts) if d == depth else []
            if pts:
                ax_bits.plot(*zip(*pts), linestyle="-", **_style(cell))
        for (d, cell), pts in bpp.items():
            if d == depth and pts:
                ax_bpp.plot(*zip(*pts), linestyle="-", **_style(cell))
        if all_params:
            span = numpy.geomspace(min(all_params) / 1.3, max(all_params) * 1.3, 50)
            ax_bits.plot(span, PAPER_BITS_PER_PARAMETER * span, color="black", linestyle=":", linewidth=1)
        for ax in (ax_bits, ax_bpp):                          # one parameter axis for every panel
            _readable_log(ax, "x", all_params)
            if all_params:
                ax.set_xlim(min(all_params) / 1.4, max(all_params) * 1.4)
        _readable_log(ax_bits, "y", [y for (d, _), pts in bits.items() if d == depth for _, y in pts]
                      + [PAPER_BITS_PER_PARAMETER * p for p in all_params])
        ax_bits.set(title=f"({letters[0]}) depth {depth}: bits stored", xlabel="parameters (log scale)",
                    ylabel="bits stored, best trial (bits)")
        ax_bpp.axhspan(*PAPER_BITS_BAND, color="grey", alpha=0.15, linewidth=0)
        ax_bpp.axhline(PAPER_BITS_PER_PARAMETER, color="black", linestyle="--", linewidth=1)
        ax_bpp.set_ylim(bottom=0)
        ax_bpp.set(title=f"({letters[1]}) depth {depth}: bits per parameter", xlabel="parameters (log scale)",
                   ylabel="bits per parameter (bits)")
        for ax in (ax_bits, ax_bpp):
            ax.grid(True, which="major", alpha=0.3)
            if not any(d == depth for d, _ in bits):
                _empty(ax)
    _legend(fig, _cell_handles(c for _, c in bits) + [
        Line2D([], [], color="black", linestyle="--", label=f"paper ~{PAPER_BITS_PER_PARAMETER:g} bits/param"),
        Patch(color="grey", alpha=0.15, label=f"paper range {PAPER_BITS_BAND[0]:g}-{PAPER_BITS_BAND[1]:g}"),
        Line2D([], [], color="black", linestyle=":", label=f"{PAPER_BITS_PER_PARAMETER:g} × parameters")])
    fig.suptitle(f"Figure 1a-h: capacity task ({preset})")
    section.figures.append(_save(fig, out / "capacity.png"))
    section.lines.append(_image(section.figures[-1], "Figure 1a-h: bits and bits per parameter vs parameters"))

    budget_bpp = best_by(results, lambda r: r.spec.get("budget") or r.params, _bits_per_parameter)
    section.tables["bits_per_parameter"] = {}
    for depth in depths:
        budgets = sorted({b for (d, _), pts in budget_bpp.items() if d == depth for b, _ in pts})
        rows, table = [], {}
        for (d, cell), pts in budget_bpp.items():
            if d != depth:
                continue
            values = dict(pts)
            fit = capacity_slope(bits.get((d, cell), []))
            table[cell] = {"by_budget": values, "fit": fit}
            rows.append([_label(cell)] + [_num(values.get(b)) for b in budgets] + [_num(fit)])
        section.tables["bits_per_parameter"][depth] = table
        section.lines.append(f"Bits per parameter (best trial / parameters), depth {depth}; columns are "
                             "parameter budgets, the last the fitted slope (geometric mean):\n")
        section.lines += _table(["cell"] + [f"≤{b}" for b in budgets] + ["fit"], rows)
    means = [v["fit"] for t in section.tables["bits_per_parameter"].values() for v in t.values() if _finite(v["fit"])]
    mean = statistics.fmean(means) if means else None
    section.lines.append(f"Mean fitted bits per parameter over cells and depths: **{_num(mean)}**; "
                         f"paper: {PAPER_BITS_BAND[0]:g}-{PAPER_BITS_BAND[1]:g}, about {PAPER_BITS_PER_PARAMETER:g} "
                         f"on average (IRNN about {PAPER_RELU_BITS_PER_PARAMETER:g}).\n")
    return section


def capacity_points(results) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{"depth 1": {cell: [(params, best bits)]}, ..., "all depths": ...}`` for :func:`multiplier_table`."""
    groups: dict[str, dict[str, list]] = {}
    for (depth, cell), pts in best_by(results, lambda r: r.params).items():
        groups.setdefault(f"depth {depth}", {})[cell] = list(pts)
    if len(groups) > 1:
        pooled: dict[str, list] = {}
        for (depth, cell), pts in best_by(results, lambda r: r.params).items():
            pooled.setdefault(cell, []).extend(pts)
        groups["all depths"] = {c: pooled[c] for c in sorted(pooled, key=_cell_index)}
    return groups


def _capacity_table_section(results, out: Path, preset: str) -> Section:
    section = Section()
    tables = {name: multiplier_table(points) for name, points in capacity_points(results).items()}
    section.tables["multiplier"] = tables
    rows, cols = _grid_of(len(tables), 3)
    fig, axes = _figure(rows, cols, width=4.8, height=4.3)
    for ax, (name, table) in zip(axes.flat, tables.items()):
        cells = list(table)
        values = numpy.array([[table[x][y] for y in cells] for x in cells], dtype=float)     # (cells, cells)
        with numpy.errstate(divide="ignore", invalid="ignore"):
            logs = numpy.log2(values)
        limit = max(0.5, float(numpy.nanmax(numpy.abs(logs)))) if numpy.isfinite(logs).any() else 1.0
        image = ax.imshow(numpy.ma.masked_invalid(logs), cmap="RdBu_r", vmin=-limit, vmax=limit)
        for i in range(len(cells)):
            for j in range(len(cells)):
                dark = numpy.isfinite(logs[i, j]) and abs(logs[i, j]) > 0.6 * limit
                ax.text(j, i, _num(values[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(cells)), [_label(c) for c in cells], rotation=45, ha="right")
        ax.set_yticks(range(len(cells)), [_label(c) for c in cells])
        ax.set(title=name, xlabel="cell y", ylabel="cell x (needs this many times\nthe parameters of y)")
        bar = fig.colorbar(image, ax=ax, shrink=0.8, label="multiplier (log scale)")
        bar.ax.yaxis.set_major_formatter(lambda v, _: f"{2 ** v:.2g}")
    _hide_unused(axes, len(tables))
    fig.suptitle(f"Figure 1i: parameter multiplier for equal capacity ({preset})")
    section.figures.append(_save(fig, out / "capacity-table.png"))
    section.lines.append(_image(section.figures[-1], "Figure 1i: multiplier table"))
    for name, table in tables.items():
        cells = list(table)
        section.lines.append(f"Multiplier, {name} (row x, column y: parameters x needs / parameters y needs; "
                             "slope = geometric mean of bits per parameter):\n")
        section.lines += _table(["x \\ y"] + [_label(c) for c in cells],
                                [[_label(x)] + [_num(table[x][y]) for y in cells] for x in cells])
    section.lines.append("Paper: the ordering RNN > UGRNN > GRU > LSTM > +RNN in bits per parameter, with "
                         "factors close to 1 (all cells 3-6 bits per parameter); the IRNN is lowest.\n")
    return section


def _relu_section(results, out: Path, preset: str) -> Section:
    section = Section()
    values: dict[str, dict[str, float]] = {}              # cell -> variant ('all' or 'relu') -> bits/param
    for r in results:
        bpp, by_variant = _bits_per_parameter(r), values.setdefault(r.cell, {})
        variant = r.tags.get("variant", "all")
        if _finite(bpp) and bpp > by_variant.get(variant, -math.inf):
            by_variant[variant] = bpp
    cells = sorted(values, key=_cell_index)
    fig, axes = _figure(1, 1, width=6.5, height=4.0)
    ax = axes[0, 0]
    width = 0.38
    for i, cell in enumerate(cells):
        for offset, variant, hatch, alpha in ((-width / 2, "all", None, 0.9), (width / 2, "relu", "//", 0.45)):
            value = values[cell].get(variant)
            if value is None:
                continue
            ax.bar(i + offset, value, width, color=CELL_COLORS.get(cell, "grey"), alpha=alpha, hatch=hatch,
                   edgecolor="black", linewidth=0.6)
            ax.text(i + offset, value, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(PAPER_RELU_BITS_PER_PARAMETER, color="black", linestyle="--", linewidth=1)
    ax.axhline(PAPER_BITS_PER_PARAMETER, color="black", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(cells)), [_label(c) for c in cells])
    ax.set(ylabel="bits per parameter, best trial (bits)", xlabel="cell",
           title=f"Figure 2a: ReLU only vs tuned nonlinearity ({preset})")
    ax.set_ylim(0, max([PAPER_BITS_PER_PARAMETER] + [v for d in values.values() for v in d.values()]) * 1.15)
    if not cells:
        _empty(ax)
    _legend(fig, [Patch(facecolor="lightgrey", edgecolor="black", label="tuned (tanh or ReLU)"),
                  Patch(facecolor="white", edgecolor="black", hatch="//", label="ReLU only"),
                  Line2D([], [], color="black", linestyle="--",
                         label=f"paper ReLU-only ~{PAPER_RELU_BITS_PER_PARAMETER:g}"),
                  Line2D([], [], color="black", linestyle=":", label=f"paper tuned ~{PAPER_BITS_PER_PARAMETER:g}")])
    section.figures.append(_save(fig, out / "relu.png"))
    section.lines.append(_image(section.figures[-1], "Figure 2a: ReLU only vs tuned"))
    section.tables["bits_per_parameter"] = values
    section.lines += _table(["cell", "tuned (all)", "ReLU only", "paper tuned", "paper ReLU only"],
                            [[_label(c), _num(values[c].get("all")), _num(values[c].get("relu")),
                              f"~{PAPER_BITS_PER_PARAMETER:g}", f"~{PAPER_RELU_BITS_PER_PARAMETER:g}"] for c in cells])
    return section


def _unroll_section(results, out: Path, preset: str) -> Section:
    section = Section()
    curves = best_by(results, lambda r: r.tags.get("unroll", r.spec["task_options"].get("unroll")),
                     _bits_per_parameter)
    fig, axes = _figure(1, 1, width=6.0, height=4.0)
    ax = axes[0, 0]
    ax.axhspan(*PAPER_BITS_BAND, color="grey", alpha=0.15, linewidth=0)
    for (depth, cell), pts in curves.items():
        ax.plot(*zip(*pts), linestyle=DEPTH_STYLES.get(depth, "-"), **_style(cell))
    if not curves:
        _empty(ax)
    steps = sorted({x for pts in curves.values() for x, _ in pts})
    if steps:
        ax.set_xticks(steps)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set(xlabel="unrolled steps T (input at step 1, label at step T)", ylabel="bits per parameter (bits)",
           title=f"Figure 2b: capacity vs unrolled steps ({preset})")
    _legend(fig, _cell_handles(c for _, c in curves) + _depth_handles(d for d, _ in curves) + [
        Patch(color="grey", alpha=0.15, label=f"paper range {PAPER_BITS_BAND[0]:g}-{PAPER_BITS_BAND[1]:g}")])
    section.figures.append(_save(fig, out / "unroll.png"))
    section.lines.append(_image(section.figures[-1], "Figure 2b: bits per parameter vs unrolled steps"))
    section.tables["bits_per_parameter"] = {f"{cell} d{depth}": dict(pts) for (depth, cell), pts in curves.items()}
    section.lines += _table(["cell", "depth"] + [f"T={s}" for s in steps],
                            [[_label(c), d] + [_num(dict(pts).get(s)) for s in steps]
                             for (d, c), pts in curves.items()])
    return section


def _memory_n_in(r: StudyResult) -> int:
    return int(r.spec["task_options"].get("n_in", PAPER_MEMORY_N_IN))


def _memory_section(results, out: Path, preset: str) -> Section:
    section = Section()
    depths = _depths(results)
    curves = best_by(results, lambda r: r.n_h)
    n_ins = sorted({_memory_n_in(r) for r in results})
    rows, cols = _grid_of(len(depths), 3)
    fig, axes = _figure(rows, cols, width=4.8, height=3.8)
    top = max([n for pts in curves.values() for n, _ in pts] + n_ins) * 1.1
    for ax, depth in zip(axes.flat, depths):
        for n_in in n_ins:
            span = numpy.linspace(0, top, 200)
            ax.plot(span, memory_reference(span, n_in), color="black", linestyle="--", linewidth=1.2, zorder=5)
            ax.axvline(n_in, color="grey", linestyle=":", linewidth=1)
        for (d, cell), pts in curves.items():
            if d == depth:
                ax.plot(*zip(*pts), linestyle="-", **_style(cell), alpha=0.85)
        if not any(d == depth for d, _ in curves):
            _empty(ax)
        ax.set_xlim(0, top)
        ax.set_ylim(-0.03, max(1.05, max([y for (d, _), p in curves.items() if d == depth for _, y in p] + [0]) * 1.05))
        ax.grid(True, alpha=0.3)
        ax.set(xlabel="units per layer n_h", ylabel="normalised recall error ‖û−u‖²/‖u‖²",
               title=f"depth {depth}")
    _hide_unused(axes, len(depths))
    _legend(fig, _cell_handles(c for _, c in curves) + [
        Line2D([], [], color="black", linestyle="--", label="max(0, 1 − n_h/n_in)"),
        Line2D([], [], color="grey", linestyle=":", label="n_h = n_in (" + ", ".join(map(str, n_ins)) + ")")])
    fig.suptitle(f"Figure 2c: memory task ({preset})")
    section.figures.append(_save(fig, out / "memory.png"))
    section.lines.append(_image(section.figures[-1], "Figure 2c: recall error vs units"))
    units = sorted({n for pts in curves.values() for n, _ in pts})
    table_rows = [[_label(c), d] + [_num(dict(pts).get(n), ".3f") for n in units] for (d, c), pts in curves.items()]
    table_rows += [[f"reference (n_in = {n_in})", ""] + [_num(float(memory_reference(n, n_in)), ".3f") for n in units]
                   for n_in in n_ins]
    section.tables["error"] = {f"{cell} d{depth}": dict(pts) for (depth, cell), pts in curves.items()}
    section.tables["reference"] = {n_in: {n: float(memory_reference(n, n_in)) for n in units} for n_in in n_ins}
    section.lines.append("Best normalised recall error by units per layer (columns), against the reference:\n")
    section.lines += _table(["cell", "depth"] + [f"n_h={n}" for n in units], table_rows)
    section.lines.append(f"Paper: perfect recall iff n_h ≥ n_in (n_in = {PAPER_MEMORY_N_IN} there).\n")
    return section


def _by_params_figure(results, out: Path, name: str, title: str, ylabel: str, x_of, xlabel: str,
                      loglog: bool, reference=None) -> str:
    depths = _depths(results)
    curves = best_by(results, x_of)
    xs = [x for pts in curves.values() for x, _ in pts]
    rows, cols = _grid_of(len(depths), 3)
    fig, axes = _figure(rows, cols, width=4.6, height=3.7)
    for ax, depth in zip(axes.flat, depths):
        values = []
        for (d, cell), pts in curves.items():
            if d == depth:
                pts = _positive(pts) if loglog else pts
                values += [y for _, y in pts]
                if pts:
                    ax.plot(*zip(*pts), linestyle="-", **_style(cell))
        if reference is not None and _finite(reference.get(depth)):
            ax.axhline(reference[depth], color="black", linestyle="--", linewidth=1)
        _readable_log(ax, "x", xs)
        if xs:                                                  # one x range for every panel
            ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
        if loglog:
            _readable_log_y(ax, values)
        if not values:
            _empty(ax)
        ax.grid(True, which="major", alpha=0.3)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=f"depth {depth}")
    _hide_unused(axes, len(depths))
    handles = _cell_handles(c for _, c in curves)
    if reference:
        handles.append(Line2D([], [], color="black", linestyle="--", label="unigram entropy"))
    _legend(fig, handles)
    fig.suptitle(title)
    return _save(fig, out / f"{name}.png")


def _objective_table(results, x_of, column: str, spec: str) -> tuple[dict, list[str]]:
    curves = best_by(results, x_of)
    params = best_by(results, x_of, lambda r: float(r.params))
    columns = sorted({x for pts in curves.values() for x, _ in pts})
    rows = [[_label(c), d] + [(_num(dict(pts).get(x), spec) + (f" ({int(dict(params[(d, c)])[x])} p)"
                                                               if x in dict(pts) else "")) for x in columns]
            for (d, c), pts in curves.items()]
    return ({f"{c} d{d}": dict(pts) for (d, c), pts in curves.items()},
            _table(["cell", "depth"] + [f"{column}{x}" for x in columns], rows))


def _text8_section(results, out: Path, preset: str) -> Section:
    section = Section()
    unigram = {}
    for depth in _depths(results):
        values = [r.best_metrics.get("unigram_bpc") for r in results if r.depth == depth]
        values = [v for v in values if _finite(v)]
        if values:
            unigram[depth] = statistics.median(values)
    section.figures.append(_by_params_figure(
        results, out, "text8-params", f"Figure 3a-c: text8, bits per character vs parameters ({preset})",
        "held-out bits per character (bpc)", lambda r: r.params, "parameters (log scale)", False, unigram))
    section.figures.append(_by_params_figure(
        results, out, "text8-units", f"Figure 3d: text8, bits per character vs units ({preset})",
        "held-out bits per character (bpc)", lambda r: r.n_h, "units per layer n_h (log scale)", False, unigram))
    section.lines.append(_image(section.figures[0], "Figure 3a-c: bpc vs parameters"))
    section.lines.append(_image(section.figures[1], "Figure 3d: bpc vs units"))
    section.tables["bpc"], lines = _objective_table(results, lambda r: r.spec.get("budget") or r.params, "≤", ".3f")
    section.tables["unigram_bpc"] = unigram
    section.lines.append("Best held-out bpc by parameter budget (actual parameter count in brackets):\n")
    section.lines += lines
    if unigram:
        section.lines.append("Unigram entropy of the training text (a model that ignores context): "
                             + ", ".join(f"depth {d}: {v:.3f} bpc" for d, v in unigram.items()) + ".\n")
    return section


def _rcf_section(results, out: Path, preset: str) -> Section:
    section = Section()
    section.figures.append(_by_params_figure(
        results, out, "rcf", f"Figure 3: random continuous functions, error vs parameters ({preset})",
        "mean squared error, best trial", lambda r: r.params, "parameters (log scale)", True))
    section.lines.append(_image(section.figures[0], "Figure 3: RCF loss vs parameters"))
    section.tables["loss"], lines = _objective_table(results, lambda r: r.spec.get("budget") or r.params, "≤", ".4f")
    section.lines.append("Best squared error by parameter budget (actual parameter count in brackets):\n")
    section.lines += lines
    return section


def _tuning_section(experiment: str, task_title: str):
    def section_for(results, out: Path, preset: str) -> Section:
        section = Section()
        depths = _depths(results)
        rows, cols = _grid_of(len(depths), 2)
        fig, axes = _figure(rows, cols, width=5.0, height=3.6)
        final, everything = {}, []
        for ax, depth in zip(axes.flat, depths):
            values = []
            for r in sorted((r for r in results if r.depth == depth), key=lambda r: _cell_index(r.cell)):
                points = [(c["trial"] + 1, c["best"], c["median"]) for c in r.curve if c["best"] is not None]
                if not points:
                    continue
                x, best, median = zip(*points)
                ax.plot(x, best, linestyle="-", color=CELL_COLORS.get(r.cell, "grey"), linewidth=1.6)
                ax.plot(x, median, linestyle="--", color=CELL_COLORS.get(r.cell, "grey"), linewidth=1.2)
                values += list(best) + list(median)
                final[(depth, r.cell)] = {"min": best[-1], "median": median[-1], "trials": r.trials,
                                          "accuracy": r.best_metrics.get("accuracy")}
            everything += values
            if not values:
                _empty(ax)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
            ax.set(xlabel="tuning iteration (trial)", ylabel="evaluation loss (cross-entropy, nats)",
                   title=f"depth {depth}")
        _hide_unused(axes, len(depths))
        if _wide(everything):                                   # one scale for every panel
            for ax in axes.flat[:len(depths)]:
                _readable_log_y(ax, everything)
        _legend(fig, _cell_handles(r.cell for r in results) + [
            Line2D([], [], color="black", linestyle="-", label="minimum so far"),
            Line2D([], [], color="black", linestyle="--", label="median so far")])
        fig.suptitle(f"Figure 4: {task_title}, loss vs tuning iteration ({preset})")
        section.figures.append(_save(fig, out / f"{experiment}.png"))
        section.lines.append(_image(section.figures[0], f"Figure 4: {task_title}"))
        section.tables["final"] = {f"{c} d{d}": v for (d, c), v in final.items()}
        section.lines.append("After the last trial: minimum and median evaluation loss, and the accuracy of the "
                             "best trial:\n")
        section.lines += _table(["cell", "depth", "trials", "min loss", "median loss", "accuracy (best trial)"],
                                [[_label(c), d, v["trials"], _num(v["min"], ".3f"), _num(v["median"], ".3f"),
                                  _num(v["accuracy"], ".3f")]
                                 for (d, c), v in sorted(final.items(),
                                                         key=lambda kv: (kv[0][0], _cell_index(kv[0][1])))])
        section.lines.append("Paper: RNN and IRNN train worst and slowest; at depth 8 only gated cells solve the "
                             "task; the GRU is most trainable at depth 1, the +RNN at depth 8.\n")
        return section
    return section_for


def _random_hp_section(results, out: Path, preset: str) -> Section:
    section = Section()
    depths = sorted(set(_depths(results)) | {1, 8})
    counts: dict[tuple[int, str], dict] = {}
    for r in results:
        c = counts.setdefault((r.depth, r.cell), {"feasible": 0, "infeasible": 0, "failed": 0, "losses": []})
        c["feasible"] += r.done
        c["infeasible"] += r.infeasible
        c["failed"] += r.failed
        c["losses"] += list(r.feasible)
    fractions = {cell: {d: infeasible_fraction(counts[(d, cell)]["infeasible"], counts[(d, cell)]["feasible"])
                        for d in depths if (d, cell) in counts}
                 for cell in sorted({c for _, c in counts}, key=_cell_index)}
    present = _depths(results)
    fig, axes = _figure(1, max(1, len(present)), width=5.2, height=4.0)
    for ax, depth in zip(axes.flat, present):
        cells = sorted((c for d, c in counts if d == depth), key=_cell_index)
        data = [counts[(depth, c)]["losses"] for c in cells]
        filled = [(i, c, d) for i, (c, d) in enumerate(zip(cells, data)) if d]
        losses = [v for _, _, d in filled for v in d]
        if filled:
            boxes = ax.boxplot([d for _, _, d in filled], positions=[i for i, _, _ in filled], widths=0.6,
                               patch_artist=True, medianprops={"color": "black"})
            for patch, (_, cell, _) in zip(boxes["boxes"], filled):
                patch.set(facecolor=CELL_COLORS.get(cell, "grey"), alpha=0.6)
            if _wide(losses):
                _readable_log_y(ax, losses)
        else:
            _empty(ax)
        ax.set_xticks(range(len(cells)), [f"{_label(c)}\n{_percent(fractions[c][depth])}\ninfeasible" for c in cells],
                      fontsize=8)
        ax.set_xlim(-0.6, len(cells) - 0.4)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set(ylabel="final evaluation loss (cross-entropy, nats)", title=f"depth {depth}")
    fig.suptitle(f"Figure 5: random hyperparameters on parentheses ({preset})")
    section.figures.append(_save(fig, out / "random-hp.png"))
    section.lines.append(_image(section.figures[0], "Figure 5: final losses of random hyperparameter sets"))
    section.tables["infeasible_fraction"] = fractions
    section.tables["counts"] = {f"{c} d{d}": {k: v for k, v in n.items() if k != "losses"}
                                for (d, c), n in counts.items()}
    header, rows = ["cell"], []
    for d in depths:
        header += [f"depth {d}: ours", f"depth {d}: paper"]
    for cell in sorted(set(fractions) | set(PAPER_TABLE1), key=_cell_index):
        row = [_label(cell)]
        for d in depths:
            c = counts.get((d, cell))
            excluded = cell in CELLS and CELLS[cell].min_depth > d                 # the +RNN at depth 1
            ours = (("excluded" if excluded else "—") if c is None else
                    f"{_percent(fractions[cell][d])} ({c['infeasible']} of {c['infeasible'] + c['feasible']})"
                    + (f", {c['failed']} failed" if c["failed"] else ""))
            paper = PAPER_TABLE1.get(cell, {}).get(d)
            row += [ours, "excluded" if cell in PAPER_TABLE1 and paper is None and d in (1, 8)
                    else (f"{paper:.1f} %" if paper is not None else "—")]
        rows.append(row)
    section.lines.append("Fraction of random hyperparameter sets whose training diverged (infeasible / finished, "
                         "failed trials excluded), beside the paper's Table 1:\n")
    section.lines += _table(header, rows)
    return section


SECTIONS = {
    "capacity": _capacity_section,
    "capacity-table": _capacity_table_section,
    "relu": _relu_section,
    "unroll": _unroll_section,
    "memory": _memory_section,
    "text8": _text8_section,
    "rcf": _rcf_section,
    "parens": _tuning_section("parens", "parentheses"),
    "arith": _tuning_section("arith", "arithmetic"),
    "random-hp": _random_hp_section,
}
SOURCE = {"capacity-table": "capacity"}          # experiments drawn from another experiment's studies


# ------------------------------------------------------------------------------------------------
# the report

def write_report(store, out_dir, presets=None) -> dict:
    """Draw every figure the store has data for into ``out_dir``, and write ``out_dir/report.md``.

    ``presets``: a preset name or a list of them that may be reported (default: any); per experiment the
    largest is reported (see the module docstring). Returns a JSON-ready dict: ``report`` (the markdown's
    path), ``figures`` (every PNG written, in report order), ``figures_by_experiment``, ``tables`` (per
    experiment, the numbers of its markdown tables; NaN as None), ``experiments`` (per experiment reported:
    preset, studies, trial counts, summed trial wall time in seconds), ``presets`` and ``not_run``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    collected = collect_results(store, presets)
    result = {"report": str(out / "report.md"), "figures": [], "figures_by_experiment": {}, "tables": {},
              "experiments": {}, "presets": {}, "not_run": []}
    overview, body = [], []
    for name, experiment in EXPERIMENTS.items():
        source = SOURCE.get(name, name)
        if source not in collected.chosen:
            result["not_run"].append(name)
            overview.append([name, experiment.figure, "—", 0, 0, "—", "not run"])
            body += [f"## {name} (Figure {experiment.figure})\n", "Not run: no study of this experiment in the store"
                     + (f" for preset(s) {', '.join(_as_tuple(presets))}" if presets else "") + ".\n"]
            continue
        preset, results = collected.chosen[source]
        section = SECTIONS[name](results, out, preset)
        trials = sum(r.trials for r in results)
        wall = sum(r.wall_time for r in results)
        done, infeasible = sum(r.done for r in results), sum(r.infeasible for r in results)
        failed, running = sum(r.failed for r in results), sum(r.running for r in results)
        result["figures"] += section.figures
        result["figures_by_experiment"][name] = section.figures
        result["tables"][name] = _jsonable(section.tables)
        result["presets"][name] = preset
        result["experiments"][name] = {"preset": preset, "studies": len(results), "trials": trials, "done": done,
                                       "infeasible": infeasible, "failed": failed, "running": running,
                                       "wall_time": wall}
        overview.append([name, experiment.figure, preset, len(results), trials, _duration(wall), "reported"])
        body += [f"## {name} (Figure {experiment.figure})\n", WHAT_IT_SHOWS.get(name, experiment.summary) + "\n",
                 f"Preset `{preset}`" + (f" (studies of `{source}`)" if source != name else "")
                 + f": {len(results)} studies, {trials} trials ({done} feasible, {infeasible} infeasible, "
                 f"{failed} failed, {running} running), total trial wall time {_duration(wall)}.\n"]
        body += section.lines
    header = ["# rnncap report\n", f"Store: `{store.path}`.\n",
              "Figures reproduce Collins, Sohl-Dickstein & Sussillo (ICLR 2017); \"best\" is the best objective "
              "over a study's feasible trials. One preset is reported per experiment: the largest present "
              "(full > quick > smoke) that has feasible trials"
              + (f", among {', '.join(_as_tuple(presets))}" if presets else "") + ".\n"]
    header += _table(["experiment", "figure", "preset", "studies", "trials", "wall time", "status"], overview)
    if collected.skipped:
        header.append("Also in the store, not reported: " + "; ".join(
            f"{e}: " + ", ".join(f"{p} ({n} studies)" for p, n in left.items())
            for e, left in collected.skipped.items()) + ".\n")
    if collected.untagged:
        header.append(f"Studies without an experiment tag (not reported): {len(collected.untagged)}.\n")
    if result["not_run"]:
        header.append("Not run: " + ", ".join(result["not_run"]) + ".\n")
    Path(result["report"]).write_text("\n".join(header + body), encoding="utf-8")
    return result


def _jsonable(value):
    """Tables as JSON takes them: string keys, lists for tuples, None for NaN, floats for NumPy numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, numpy.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _as_tuple(presets) -> tuple:
    return (presets,) if isinstance(presets, str) else tuple(presets or ())
