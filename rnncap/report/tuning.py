"""Trainability: loss against tuning iteration on the hard tasks (Figure 4), and random hyperparameters on
parentheses (Figure 5 and Table 1).

**Fraction infeasible** (Table 1) is :func:`rnncap.tune.study.infeasible_fraction` of the counts
:func:`rnncap.tune.study.summarize` gives: infeasible / (done + infeasible); ``failed`` trials (errors,
not divergence) count on neither side and are counted beside it.

Files: ``parens.png``, ``arith.png``, ``random-hp.png``.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from rnncap.cells import CELLS
from rnncap.report.drawing import (add_legend, cell_handles, hide_unused, mark_empty, new_figure, panel_grid,
                                   readable_log_axis, save_figure, spans_decades)
from rnncap.report.markdown import Section, markdown_image, markdown_table, number, percent
from rnncap.report.paper import PAPER_TABLE1
from rnncap.report.results import depths_of
from rnncap.report.styles import cell_color, cell_index, cell_label
from rnncap.tune.study import infeasible_fraction


def parens_section(results, out: Path, preset: str) -> Section:
    return tuning_curves_section(results, out, preset, "parens", "parentheses")


def arith_section(results, out: Path, preset: str) -> Section:
    return tuning_curves_section(results, out, preset, "arith", "arithmetic")


def tuning_curves_section(results, out: Path, preset: str, experiment: str, task_title: str) -> Section:
    """Figure 4: per depth, each cell's minimum (solid) and median (dashed) loss so far, by trial."""
    section = Section()
    depths = depths_of(results)
    rows, cols = panel_grid(len(depths), 2)
    fig, axes = new_figure(rows, cols, width=5.0, height=3.6)
    final, everything = {}, []
    for ax, depth in zip(axes.flat, depths):
        values = []
        for r in sorted((r for r in results if r.depth == depth), key=lambda r: cell_index(r.cell)):
            points = [(c["trial"] + 1, c["best"], c["median"]) for c in r.curve if c["best"] is not None]
            if not points:
                continue
            x, best, median = zip(*points)
            ax.plot(x, best, linestyle="-", color=cell_color(r.cell), linewidth=1.6)
            ax.plot(x, median, linestyle="--", color=cell_color(r.cell), linewidth=1.2)
            values += list(best) + list(median)
            final[(depth, r.cell)] = {"min": best[-1], "median": median[-1], "trials": r.trials,
                                      "accuracy": r.best_metrics.get("accuracy")}
        everything += values
        if not values:
            mark_empty(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.set(xlabel="tuning iteration (trial)", ylabel="evaluation loss (cross-entropy, nats)",
               title=f"depth {depth}")
    hide_unused(axes, len(depths))
    if spans_decades(everything):                               # one scale for every panel
        for ax in axes.flat[:len(depths)]:
            readable_log_axis(ax, "y", everything)
    add_legend(fig, cell_handles(r.cell for r in results) + [
        Line2D([], [], color="black", linestyle="-", label="minimum so far"),
        Line2D([], [], color="black", linestyle="--", label="median so far")])
    fig.suptitle(f"Figure 4: {task_title}, loss vs tuning iteration ({preset})")
    section.figures.append(save_figure(fig, out / f"{experiment}.png"))
    section.lines.append(markdown_image(section.figures[0], f"Figure 4: {task_title}"))
    section.tables["final"] = {f"{c} d{d}": v for (d, c), v in final.items()}
    section.lines.append("After the last trial: minimum and median evaluation loss, and the accuracy of the "
                         "best trial:\n")
    section.lines += markdown_table(
        ["cell", "depth", "trials", "min loss", "median loss", "accuracy (best trial)"],
        [[cell_label(c), d, v["trials"], number(v["min"], ".3f"), number(v["median"], ".3f"),
          number(v["accuracy"], ".3f")]
         for (d, c), v in sorted(final.items(), key=lambda kv: (kv[0][0], cell_index(kv[0][1])))])
    section.lines.append("Paper: RNN and IRNN train worst and slowest; at depth 8 only gated cells solve the "
                         "task; the GRU is most trainable at depth 1, the +RNN at depth 8.\n")
    return section


def random_hp_section(results, out: Path, preset: str) -> Section:
    """Figure 5's box plots of final losses, and Table 1's fraction infeasible beside the paper's."""
    section = Section()
    depths = sorted(set(depths_of(results)) | {1, 8})
    counts: dict[tuple[int, str], dict] = {}
    for r in results:
        c = counts.setdefault((r.depth, r.cell), {"feasible": 0, "infeasible": 0, "failed": 0, "losses": []})
        c["feasible"] += r.done
        c["infeasible"] += r.infeasible
        c["failed"] += r.failed
        c["losses"] += list(r.feasible)
    fractions = {cell: {d: infeasible_fraction(counts[(d, cell)]["infeasible"], counts[(d, cell)]["feasible"])
                        for d in depths if (d, cell) in counts}
                 for cell in sorted({c for _, c in counts}, key=cell_index)}
    present = depths_of(results)
    fig, axes = new_figure(1, max(1, len(present)), width=5.2, height=4.0)
    for ax, depth in zip(axes.flat, present):
        _draw_loss_boxes(ax, depth, counts, fractions)
    fig.suptitle(f"Figure 5: random hyperparameters on parentheses ({preset})")
    section.figures.append(save_figure(fig, out / "random-hp.png"))
    section.lines.append(markdown_image(section.figures[0], "Figure 5: final losses of random hyperparameter sets"))
    section.tables["infeasible_fraction"] = fractions
    section.tables["counts"] = {f"{c} d{d}": {k: v for k, v in n.items() if k != "losses"}
                                for (d, c), n in counts.items()}
    header, rows = ["cell"], []
    for d in depths:
        header += [f"depth {d}: ours", f"depth {d}: paper"]
    for cell in sorted(set(fractions) | set(PAPER_TABLE1), key=cell_index):
        row = [cell_label(cell)]
        for d in depths:
            c = counts.get((d, cell))
            excluded = cell in CELLS and CELLS[cell].min_depth > d                 # the +RNN at depth 1
            ours = (("excluded" if excluded else "—") if c is None else
                    f"{percent(fractions[cell][d])} ({c['infeasible']} of {c['infeasible'] + c['feasible']})"
                    + (f", {c['failed']} failed" if c["failed"] else ""))
            paper = PAPER_TABLE1.get(cell, {}).get(d)
            row += [ours, "excluded" if cell in PAPER_TABLE1 and paper is None and d in (1, 8)
                    else (f"{paper:.1f} %" if paper is not None else "—")]
        rows.append(row)
    section.lines.append("Fraction of random hyperparameter sets whose training diverged (infeasible / finished, "
                         "failed trials excluded), beside the paper's Table 1:\n")
    section.lines += markdown_table(header, rows)
    return section


def _draw_loss_boxes(ax, depth: int, counts: dict, fractions: dict) -> None:
    """One box per cell at ``depth``, labelled with its fraction infeasible."""
    cells = sorted((c for d, c in counts if d == depth), key=cell_index)
    data = [counts[(depth, c)]["losses"] for c in cells]
    filled = [(i, c, d) for i, (c, d) in enumerate(zip(cells, data)) if d]
    losses = [v for _, _, d in filled for v in d]
    if filled:
        boxes = ax.boxplot([d for _, _, d in filled], positions=[i for i, _, _ in filled], widths=0.6,
                           patch_artist=True, medianprops={"color": "black"})
        for patch, (_, cell, _) in zip(boxes["boxes"], filled):
            patch.set(facecolor=cell_color(cell), alpha=0.6)
        if spans_decades(losses):
            readable_log_axis(ax, "y", losses)
    else:
        mark_empty(ax)
    ax.set_xticks(range(len(cells)), [f"{cell_label(c)}\n{percent(fractions[c][depth])}\ninfeasible"
                                      for c in cells], fontsize=8)
    ax.set_xlim(-0.6, len(cells) - 0.4)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set(ylabel="final evaluation loss (cross-entropy, nats)", title=f"depth {depth}")
