"""The tasks, by name: each a config dataclass and a task class built from it."""

from __future__ import annotations

from dataclasses import fields

import numpy

from rnncap.errors import RnncapError
from rnncap.tasks.base import Batch, Task
from rnncap.tasks.arith import ArithConfig, ArithTask
from rnncap.tasks.capacity import CapacityConfig, CapacityTask
from rnncap.tasks.memory import MemoryConfig, MemoryTask
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


def task_config(name: str, **options):
    """The config of task ``name`` from keyword options; unknown options are an error."""
    if name not in TASKS:
        raise RnncapError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    config_cls = TASKS[name][1]
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RnncapError(f"the {name} task has no option {', '.join(unknown)} (it has: {', '.join(sorted(known))})")
    return config_cls(**options)


def make_task(name: str, options: dict | None = None, xp=numpy, dtype=None) -> Task:
    """Task ``name`` built from a dict of its config's fields."""
    task_cls = TASKS[name][0] if name in TASKS else None
    config = task_config(name, **(options or {}))
    return task_cls(config, xp=xp) if dtype is None else task_cls(config, xp=xp, dtype=dtype)


__all__ = ["Batch", "TASKS", "Task", "make_task", "task_config"]
