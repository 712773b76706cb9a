"""Task options, typed by the config dataclass they set: parsed from ``KEY=VALUE`` text, checked as values.

Each field's annotation says what it takes: ``int`` a whole number, ``bool``
``true`` or ``false``, ``str`` any text, ``tuple`` a list of numbers (JSON
``[0.9,0.05,0.05]`` or ``0.9,0.05,0.05``), and ``X | None`` also ``none``.
A ``seed`` is a whole number >= 0 (NumPy's generators take no other). The
config's own ``__post_init__`` then checks the ranges. Values that come from
Python or from a stored study are held to the same types, so a study spec
with ``n_samples=2.5`` is refused as ``-o n_samples=2.5`` is.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from dataclasses import fields

from rnncap.errors import RnncapError

_WHOLE = re.compile(r"[+-]?\d+")
_NONE_WORDS = ("none", "null")
_UNPARSED = object()
_WHAT = {int: "a whole number", float: "a finite number", bool: "true or false", str: "text",
         tuple: "a list of numbers such as 0.9,0.05,0.05"}


def field_types(config_cls) -> dict[str, tuple[type, bool]]:
    """``{field: (type, may be None)}`` from the config's annotations (``int | None`` -> ``(int, True)``)."""
    hints = typing.get_type_hints(config_cls)
    result = {}
    for f in fields(config_cls):
        hint = hints[f.name]
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) or \
            typing.get_origin(hint) is typing.Union else (hint,)
        kinds = [typing.get_origin(m) or m for m in members if m is not type(None)]
        result[f.name] = (kinds[0], len(kinds) < len(members))
    return result


def _allowed(task: str, key: str, kind: type, optional: bool) -> str:
    return f"the {task} task's {key} takes {_WHAT[kind]}" + (" or none" if optional else "")


def parse_option_value(task: str, config_cls, key: str, raw: str):
    """The value of ``-o key=raw`` for task ``task``, as the config field's type; a clear error otherwise."""
    kind, optional = field_types(config_cls)[key]
    text = raw.strip()
    if optional and text.lower() in _NONE_WORDS:
        return None
    value = _UNPARSED
    if kind is int and _WHOLE.fullmatch(text):
        value = int(text)
    elif kind is float:
        try:
            value = float(text)
        except ValueError:
            pass
    elif kind is bool and text.lower() in ("true", "false"):
        value = text.lower() == "true"
    elif kind is str:
        value = raw
    elif kind is tuple:
        try:
            value = json.loads(text if text.startswith("[") else f"[{text}]")
        except json.JSONDecodeError:
            pass
    if value is _UNPARSED:
        raise RnncapError(f"-o {key}={raw}: {_allowed(task, key, kind, optional)}, not {raw!r}")
    return check_option_value(task, config_cls, key, value, shown=f"-o {key}={raw}")



def check_option_value(task: str, config_cls, key: str, value, shown: str | None = None):
    """``value`` if it has the type the config field ``key`` takes (and a seed is >= 0), else a clear error."""
    kind, optional = field_types(config_cls)[key]
    shown = shown or f"task option {key}={value!r}"

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if value is None:
        ok = optional
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = number(value)
    elif kind is tuple:
        ok = isinstance(value, (list, tuple)) and all(number(v) for v in value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise RnncapError(f"{shown}: {_allowed(task, key, kind, optional)}")
    if key == "seed" and value is not None and value < 0:
        raise RnncapError(f"{shown}: a seed is a whole number >= 0")
    return value
