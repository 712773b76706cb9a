"""Checkpoints of a study's populations in flight, so that a killed driver loses minutes, not whole trials.

A study's trials are recorded in the store only when they finish; a driver
killed an hour into a population of 20 000-step trials would otherwise run
them again from step 0. With local workers (this process or ``--workers``
processes), every population sent out keeps a checkpoint
(:func:`rnncap.population.train_population`) at most ``seconds`` old, in a
folder beside the store::

    <store>.checkpoints/<study>/<id>.json      the population's trial keys, in order (its manifest)
    <store>.checkpoints/<study>/<id>-<g>.npz   the checkpoint of its g-th group that trains together

Both go once the population's outcomes are in the store. A resumed driver
finds the trials its predecessor left running (:func:`rnncap.tune.study.run_study`);
every manifest whose trials are all among them is sent out again first, as
the same population, and its worker resumes from the checkpoint. Anything
else in the folder is left over from a population that can no longer resume
and is removed. On a Dask cluster the workers may not share the folder, so a
killed driver's populations start again from step 0 there.

``RNNCAP_CHECKPOINT_SECONDS`` sets how often (default 60 s; each write costs a
few milliseconds).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path

from rnncap.errors import RnncapError

CHECKPOINT_SECONDS = 60.0


def checkpoint_seconds() -> float:
    """How often a population in flight writes its checkpoint: ``RNNCAP_CHECKPOINT_SECONDS``, or 60."""
    text = os.environ.get("RNNCAP_CHECKPOINT_SECONDS")
    if text is None:
        return CHECKPOINT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise RnncapError(f"RNNCAP_CHECKPOINT_SECONDS must be a number of seconds >= 0, got {text!r}")
    return value


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class InFlight:
    """The checkpoint folder of study ``name`` in the store at ``store_path`` (see the module docstring)."""

    def __init__(self, store_path: Path, name: str):
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
        self.folder = Path(f"{store_path}.checkpoints") / f"{readable}-{_digest(name, 8)}"
        self.seconds = checkpoint_seconds()

    def _id(self, keys: list[str]) -> str:
        return _digest(",".join(keys), 16)

    def resumable(self, running: set[str]) -> list[list[str]]:
        """The populations that can resume: the manifests whose trial keys are all in ``running`` (in the
        order they were sent). Everything else in the folder is removed."""
        if not self.folder.is_dir():
            return []
        found = []
        for manifest in sorted(self.folder.glob("*.json")):
            try:
                keys = json.loads(manifest.read_text())["keys"]
                whole = isinstance(keys, list) and manifest.stem == self._id(keys) and set(keys) <= running
            except (OSError, ValueError, KeyError, TypeError):
                whole = False
            if whole and not any(set(keys) & set(other) for other in found):
                found.append(keys)
            else:
                self._remove(manifest.stem)
        ids = {self._id(keys) for keys in found}
        for path in self.folder.iterdir():                      # checkpoints whose manifest is gone
            if path.name.split("-")[0].split(".")[0] not in ids:
                path.unlink(missing_ok=True)
        return found

    def begin(self, keys: list[str]) -> tuple[str, float] | None:
        """Record a population about to be sent out; what its worker needs: (checkpoint prefix, seconds).

        None when the manifest cannot be written, and the population runs
        without checkpoints: a driver paused (or slow) long enough to lose its
        lease finds its folder emptied and removed by the driver that took the
        study over, and must go on to the store, which tells it that it has
        lost the study, rather than fail here.
        """
        population = self._id(keys)
        manifest = self.folder / f"{population}.json"
        tmp = manifest.with_name(f".{manifest.name}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"keys": keys}))
            os.replace(tmp, manifest)
        except OSError:
            return None
        return str(self.folder / population), self.seconds

    def end(self, keys: list[str]) -> None:
        """A population's outcomes are in the store: its manifest and checkpoints go."""
        self._remove(self._id(keys))

    def _remove(self, population: str) -> None:
        for path in self.folder.glob(f"{population}*"):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove the folder (and the store's checkpoint folder) once nothing is left in them."""
        for folder in (self.folder, self.folder.parent):
            try:
                folder.rmdir()
            except OSError:
                return
