"""Atomic training checkpoints: everything needed to resume a run bit for bit.

One ``.npz`` file holds the parameters (``param.*``), the optimiser state
(``opt.*``), the state carried between truncated-BPTT windows (``carry.*``)
and a JSON record (``meta``): the step, the generator state, the first loss
(for divergence detection), the best evaluation so far, the loss history, the
elapsed time, and the run's identity (network, task and training config). A
checkpoint is written to a temporary file in the same folder, flushed to disk
and renamed over the old one, so a run killed at any moment leaves either the
old checkpoint or the new one, never half of one.
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

FORMAT = 2                 # 2: the optimiser state is one flat vector per kind (m, v), not one array per parameter
_NUMBER = (int, float)
ARRAY_NAME = re.compile(r"param\..+|opt\..+|carry\.\d+\.\d+")
META_TYPES = {"identity": dict, "step": int, "first_loss": _NUMBER + (type(None),), "best": (dict, type(None)),
              "history": list, "elapsed": _NUMBER, "rng": dict}       # what a readable checkpoint's record holds


class Saved(NamedTuple):
    step: int
    first_loss: float | None
    best: dict | None
    history: list
    elapsed: float
    rng_state: dict
    arrays: dict


def run_identity(net, task, config) -> dict:
    """What must not change between a run and its resumption."""
    return {
        "network": {"cell": net.cell.name, "depth": net.depth, "n_in": net.n_in, "n_out": net.n_out,
                    "n_h": net.n_h, "hp": asdict(net.hp), "dtype": str(net.dtype)},
        "task": task.describe(),
        "train": asdict(config),
    }


def save(path, identity: dict, *, step: int, params: dict, opt_state: dict, rng, first_loss, best, history,
         carried, elapsed: float) -> None:
    path = Path(path)
    arrays = {f"param.{k}": to_numpy(v) for k, v in params.items()}
    arrays.update({f"opt.{k}": to_numpy(v) for k, v in opt_state.items()})
    for k, layer in enumerate(carried or []):
        for i, s in enumerate(layer):
            arrays[f"carry.{k}.{i}"] = to_numpy(s)
    meta = {"format": FORMAT, "identity": identity, "step": step, "first_loss": first_loss, "best": best,
            "history": history, "elapsed": elapsed, "rng": rng.bit_generator.state}
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
        for name, kinds in META_TYPES.items():
            if isinstance(meta[name], bool) or not isinstance(meta[name], kinds):
                raise TypeError(f"{name} is {meta[name]!r}")
        if not all(isinstance(h, list) and len(h) == 2 and all(isinstance(v, _NUMBER) for v in h)
                   for h in meta["history"]):
            raise TypeError("history is not a list of (step, loss) pairs")
        strange = sorted(name for name in arrays if not ARRAY_NAME.fullmatch(name))
        if strange:
            raise KeyError(f"unknown arrays {', '.join(strange)}")
        saved = Saved(meta["step"], meta["first_loss"], meta["best"], [tuple(h) for h in meta["history"]],
                      meta["elapsed"], meta["rng"], arrays)
    except Exception as err:  # any damage: truncated zip, bad JSON, missing keys
        raise RnncapError(f"cannot read checkpoint {path} ({type(err).__name__}: {err}); "
                          "it is damaged or not an rnncap checkpoint: remove it to start over") from None
    return meta["identity"], saved


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


def restore(saved: Saved, params: dict, opt_state: dict, rng) -> None:
    """Copy the saved arrays into the live ones (same shapes), and the generator state."""
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
    try:
        rng.bit_generator.state = saved.rng_state
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
