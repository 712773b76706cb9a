"""Writing report.md: numbers as text, tables, embedded figures, and the Section each experiment returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rnncap.report.results import is_finite_number


@dataclass
class Section:
    """What an experiment's section function returns: PNGs written, numbers for JSON, lines of markdown."""

    figures: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)


def number(value, spec: str = ".2f") -> str:
    """``value`` formatted by ``spec``, or an em dash where there is no number."""
    return format(value, spec) if is_finite_number(value) else "—"


def percent(fraction) -> str:
    return f"{100 * fraction:.1f} %" if is_finite_number(fraction) else "—"


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def markdown_image(path: str, caption: str) -> str:
    """An image line that refers to the PNG by its name, so report.md and its figures move together."""
    return f"![{caption}]({Path(path).name})\n"
