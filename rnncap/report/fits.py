"""The numbers behind the figures: best values per line, bits per parameter, and Figure 1i's multipliers.

Choices (ours; the paper does not say how it reduced its trials):

- **Best** is the best objective over a study's *feasible* trials (status
  ``done``): the most bits for the capacity task, the least error, loss or
  bpc otherwise. Where several studies share a point (same cell, depth and
  size), the best of them is plotted. Bits per parameter = best bits /
  ``spec["params"]``, the exact parameter count of the network trained.
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
"""

from __future__ import annotations

import math
import statistics

from rnncap.report.results import StudyResult, is_finite_number
from rnncap.report.styles import cell_index


def bits_per_parameter(r: StudyResult) -> float | None:
    """The best trial's bits over the network's exact parameter count (capacity studies)."""
    return None if r.best is None else r.best / r.params


def best_by(results, x_of, value_of=lambda r: r.best) -> dict[tuple[int, str], list[tuple[float, float]]]:
    """``{(depth, cell): [(x, best value), ...]}`` sorted by x; the best study where several share an x."""
    merged: dict[tuple[int, str], dict] = {}
    for r in results:
        value = value_of(r)
        x = x_of(r)
        if not is_finite_number(value) or x is None:
            continue
        points = merged.setdefault((r.depth, r.cell), {})
        old = points.get(x)
        if old is None or (value > old if r.maximise else value < old):
            points[x] = value
    order = sorted(merged, key=lambda k: (k[0], cell_index(k[1])))
    return {k: sorted(merged[k].items()) for k in order}


def capacity_slope(points, method: str = "loglog") -> float:
    """Bits per parameter of the line ``bits = slope * params`` fitted to ``[(params, bits), ...]``.

    ``loglog``: least squares of ``log bits = log slope + log params`` (slope 1 on log-log axes), i.e. the
    geometric mean of bits / params; points with no bits are left out. ``origin``: least squares through
    the origin on linear axes, ``sum(p b) / sum(p p)``.
    """
    points = [(float(p), float(b)) for p, b in points if is_finite_number(p) and is_finite_number(b) and p > 0]
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
    usable = {cell: s for cell, s in slopes.items() if is_finite_number(s) and s > 0}
    return {x: {y: (usable[y] / usable[x] if x in usable and y in usable else math.nan) for y in slopes}
            for x in slopes}


def capacity_points(results) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{"depth 1": {cell: [(params, best bits)]}, ..., "all depths": ...}`` for :func:`multiplier_table`."""
    groups: dict[str, dict[str, list]] = {}
    for (depth, cell), pts in best_by(results, lambda r: r.params).items():
        groups.setdefault(f"depth {depth}", {})[cell] = list(pts)
    if len(groups) > 1:
        pooled: dict[str, list] = {}
        for (depth, cell), pts in best_by(results, lambda r: r.params).items():
            pooled.setdefault(cell, []).extend(pts)
        groups["all depths"] = {c: pooled[c] for c in sorted(pooled, key=cell_index)}
    return groups
