"""Atomic training checkpoints: everything needed to resume a run bit for bit.

One ``.npz`` file holds the parameters (``param.*``), the optimiser state
(``opt.*``), the state carried between truncated-BPTT windows (``carry.*``)
and a JSON record (``meta``): the step, the elapsed time, the run's identity
(network, task and training config) and one record per *member*: its
generator state, its first loss (for divergence detection), the best
evaluation so far and its loss history. A single network is a run of one
member; a population (:mod:`rnncap.population`) has K, with their arrays
stacked on a leading axis, and each member's record also says whether it
is still training (``status``, ``reason``, ``steps``, ``loss``). A
checkpoint is written to a temporary file in the same folder, flushed to
disk and renamed over the old one, so a run killed at any moment leaves
either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy

from rnncap.backend import array_module, to_numpy
from rnncap.errors import RnncapError

FORMAT = 3                 # 3: one record per member (a population); 2 had one network's fields at the top
_NUMBER = (int, float)
_OR_NONE = (type(None),)
ARRAY_NAME = re.compile(r"param\..+|opt\..+|carry\.\d+\.\d+")
META_TYPES = {"identity": dict, "step": int, "elapsed": _NUMBER, "members": list}   # what a readable record holds
MEMBER_TYPES = {"first_loss": _NUMBER + _OR_NONE, "best": (dict,) + _OR_NONE, "history": list, "rng": dict}
MEMBER_OPTIONAL = {"status": str, "reason": (str,) + _OR_NONE, "steps": int, "loss": _NUMBER + _OR_NONE}


class Member(NamedTuple):
    """One member's record: what :func:`save` was given for it, the history as (step, loss) tuples."""
    first_loss: float | None
    best: dict | None
    history: list
    rng_state: dict
    status: str = "done"
    reason: str | None = None
    steps: int = 0
    loss: float | None = None


class Saved(NamedTuple):
    step: int
    elapsed: float
    members: list              # of Member, one per network (one for a single network)
    arrays: dict


def run_identity(net, task, config) -> dict:
    """What must not change between a run and its resumption."""
    return {
        "network": {"cell": net.cell.name, "depth": net.depth, "n_in": net.n_in, "n_out": net.n_out,
                    "n_h": net.n_h, "hp": asdict(net.hp), "dtype": str(net.dtype)},
        "task": task.describe(),
        "train": asdict(config),
    }


def member_record(rng, first_loss, best, history, **state) -> dict:
    """What :func:`save` keeps of one member: its generator, first loss, best evaluation, loss history and
    (for a population's member) ``status``, ``reason``, ``steps`` and ``loss``."""
    return {"rng": rng.bit_generator.state, "first_loss": first_loss, "best": best, "history": history, **state}


def save(path, identity: dict, *, step: int, params: dict, opt_state: dict, members: list[dict], carried,
         elapsed: float) -> None:
    """Write a checkpoint atomically; ``members`` holds one :func:`member_record` per network."""
    path = Path(path)
    arrays = {f"param.{k}": to_numpy(v) for k, v in params.items()}
    arrays.update({f"opt.{k}": to_numpy(v) for k, v in opt_state.items()})
    for k, layer in enumerate(carried or []):
        for i, s in enumerate(layer):
            arrays[f"carry.{k}.{i}"] = to_numpy(s)
    meta = {"format": FORMAT, "identity": identity, "step": step, "elapsed": elapsed, "members": members}
    arrays["meta"] = numpy.array(json.dumps(meta))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        numpy.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)                                                     # atomic on POSIX


def load(path) -> tuple[dict, Saved]:
    path = Path(path)
    try:
        with numpy.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
        _check_types(meta, META_TYPES)
        members = [_read_member(record) for record in meta["members"]]
        if not members:
            raise ValueError("no member records")
        strange = sorted(name for name in arrays if not ARRAY_NAME.fullmatch(name))
        if strange:
            raise KeyError(f"unknown arrays {', '.join(strange)}")
        saved = Saved(meta["step"], meta["elapsed"], members, arrays)
    except Exception as err:  # any damage: truncated zip, bad JSON, missing keys
        raise RnncapError(f"cannot read checkpoint {path} ({type(err).__name__}: {err}); "
                          "it is damaged or not an rnncap checkpoint: remove it to start over") from None
    return meta["identity"], saved


def _check_types(record, types: dict, optional: dict | None = None) -> None:
    if not isinstance(record, dict):
        raise TypeError(f"a record is {record!r}")
    present = {k: v for k, v in (optional or {}).items() if k in record}
    for name, kinds in [*types.items(), *present.items()]:
        if isinstance(record[name], bool) or not isinstance(record[name], kinds):
            raise TypeError(f"{name} is {record[name]!r}")


def _read_member(record) -> Member:
    _check_types(record, MEMBER_TYPES, MEMBER_OPTIONAL)
    if not all(isinstance(h, list) and len(h) == 2 and all(isinstance(v, _NUMBER) for v in h)
               for h in record["history"]):
        raise TypeError("history is not a list of (step, loss) pairs")
    state = {k: record[k] for k in MEMBER_OPTIONAL if k in record}
    return Member(record["first_loss"], record["best"], [tuple(h) for h in record["history"]], record["rng"],
                  **state)


def load_if_resuming(path, resume: bool, identity: dict) -> Saved | None:
    """The checkpoint to resume from, None to start afresh, or a clear error."""
    path = Path(path)
    if not path.exists():
        return None
    if not resume:
        raise RnncapError(f"checkpoint {path} exists: pass --resume to continue that run, or remove the file")
    saved_identity, saved = load(path)
    if saved_identity != json.loads(json.dumps(identity)):
        differs = [k for k in identity if saved_identity.get(k) != json.loads(json.dumps(identity[k]))]
        raise RnncapError(f"checkpoint {path} belongs to a different run ({', '.join(differs)} differ); "
                          "use the same options, or another --checkpoint path")
    return saved


def restore(saved: Saved, params: dict, opt_state: dict, rngs: list) -> None:
    """Copy the saved arrays into the live ones (same shapes), and each member's generator state."""
    damaged = "the checkpoint is damaged or not this run's: remove it to start over"
    for prefix, live in (("param.", params), ("opt.", opt_state)):
        for k, v in live.items():
            stored = saved.arrays.get(prefix + k)
            if stored is None:
                raise RnncapError(f"checkpoint array {prefix + k} is missing; {damaged}")
            if stored.shape != tuple(v.shape) or stored.dtype.kind not in "fiu":
                raise RnncapError(f"checkpoint array {prefix + k} is {stored.dtype} {stored.shape}, expected "
                                  f"numbers of shape {tuple(v.shape)}; {damaged}")
            v[...] = array_module(v).asarray(stored)
    if len(saved.members) != len(rngs):
        raise RnncapError(f"the checkpoint holds {len(saved.members)} members, this run {len(rngs)}; {damaged}")
    try:
        for rng, record in zip(rngs, saved.members):
            rng.bit_generator.state = record.rng_state
    except (KeyError, TypeError, ValueError) as err:
        raise RnncapError(f"checkpoint generator state is unreadable ({type(err).__name__}: {err}); {damaged}") from None


def carried_state(saved: Saved, xp) -> list | None:
    layers = sorted({int(k.split(".")[1]) for k in saved.arrays if k.startswith("carry.")})
    if not layers:
        return None
    try:
        return [tuple(xp.asarray(saved.arrays[f"carry.{k}.{i}"])
                      for i in range(sum(1 for n in saved.arrays if n.startswith(f"carry.{k}."))))
                for k in layers]
    except KeyError as err:
        raise RnncapError(f"checkpoint array {err} is missing; the checkpoint is damaged: remove it to start over") \
            from None
