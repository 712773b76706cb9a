"""How numbers leave rnncap: strict JSON, durations and memory sizes, one definition each.

The CLI's ``--json``, the report's JSON tables and the store's exports all go
through :func:`plain`, so NaN never reaches a JSON reader as the bare word
``NaN`` (which strict parsers refuse) and NumPy numbers become Python ones.
"""

from __future__ import annotations

import json
import math

import numpy


def plain(value):
    """``value`` as strict JSON takes it: string keys, lists for tuples, Python numbers, None for NaN/inf."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, numpy.ndarray):
        return plain(value.tolist())
    if isinstance(value, numpy.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def strict_json(value) -> str:
    """One line of strict JSON (see :func:`plain`)."""
    return json.dumps(plain(value), allow_nan=False)


def duration(seconds: float) -> str:
    """``42.0 s``, ``3.5 min`` or ``2.1 h``."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def byte_size(n: float) -> str:
    """``512 bytes``, ``1.5 GB``: decimal units, three significant digits."""
    if n < 1000:
        return f"{n:.0f} bytes"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
