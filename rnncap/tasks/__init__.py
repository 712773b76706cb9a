"""The tasks, by name: each a config dataclass and a task class built from it."""

from __future__ import annotations

from dataclasses import fields

import numpy

from rnncap.errors import RnncapError
from rnncap.tasks.base import Batch, Task
from rnncap.tasks.arith import ArithConfig, ArithTask
from rnncap.tasks.capacity import CapacityConfig, CapacityTask
from rnncap.tasks.memory import MemoryConfig, MemoryTask
from rnncap.tasks.options import check_option_value, parse_option_value
from rnncap.tasks.parens import ParensConfig, ParensTask
from rnncap.tasks.rcf import RCFConfig, RCFTask
from rnncap.tasks.text8 import Text8Config, Text8Task

TASKS: dict[str, tuple[type, type]] = {
    "capacity": (CapacityTask, CapacityConfig),
    "memory": (MemoryTask, MemoryConfig),
    "rcf": (RCFTask, RCFConfig),
    "text8": (Text8Task, Text8Config),
    "parens": (ParensTask, ParensConfig),
    "arith": (ArithTask, ArithConfig),
}


def _config_class(name: str, keys) -> type:
    """Task ``name``'s config class, once every key in ``keys`` is known to be one of its fields."""
    if name not in TASKS:
        raise RnncapError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    config_cls = TASKS[name][1]
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(keys) - known)
    if unknown:
        raise RnncapError(f"the {name} task has no option {', '.join(unknown)} (it has: {', '.join(sorted(known))})")
    return config_cls


def task_config(name: str, **options):
    """The config of task ``name`` from keyword options; unknown options and wrong types are an error."""
    config_cls = _config_class(name, options)
    for key, value in options.items():
        check_option_value(name, config_cls, key, value)
    return config_cls(**options)


def parse_task_options(name: str, items: list[str]) -> dict:
    """``-o`` options as given, ``["n_samples=3000", "unroll=5"]``, as typed values: ``{"n_samples": 3000, ...}``.

    Keys may use ``-`` for ``_``; each value is parsed as its config field's
    type (:mod:`rnncap.tasks.options`) and the whole config is built once, so
    that a value out of range is refused here, before any work.
    """
    raw = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RnncapError(f"-o takes KEY=VALUE, got {item!r}; see `rnncap tasks` for each task's options")
        raw[key.strip().replace("-", "_")] = value
    config_cls = _config_class(name, raw)
    parsed = {key: parse_option_value(name, config_cls, key, value) for key, value in raw.items()}
    task_config(name, **parsed)
    return parsed


def make_task(name: str, options: dict | None = None, xp=numpy, dtype=None) -> Task:
    """Task ``name`` built from a dict of its config's fields."""
    task_cls = TASKS[name][0] if name in TASKS else None
    config = task_config(name, **(options or {}))
    return task_cls(config, xp=xp) if dtype is None else task_cls(config, xp=xp, dtype=dtype)


__all__ = ["Batch", "TASKS", "Task", "make_task", "parse_task_options", "task_config"]
