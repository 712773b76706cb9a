"""Array backends: NumPy (the reference) and CuPy (optional, for NVIDIA GPUs).

This is the only module that imports CuPy. Everything else asks an array which
module it belongs to (``array_module(x)``) and calls that module, so one
function serves both backends, as in Chainer.

The device is chosen by ``--device cpu|gpu`` on the command line or by the
``RNNCAP_DEVICE`` environment variable; the default is ``cpu``. Asking for the
GPU where CuPy or a CUDA device is missing raises :class:`BackendError`, never
a silent fallback to the CPU.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

import numpy

from rnncap.errors import RnncapError

DEVICES = ("cpu", "gpu")
TRAIN_DTYPE = numpy.float32  # training runs in float32
CHECK_DTYPE = numpy.float64  # gradient checks run in float64


class BackendError(RnncapError):
    """The requested device cannot be used on this machine."""


def _import_cupy() -> ModuleType | None:
    try:
        import cupy
    except Exception:  # ImportError, or a CuPy wheel that cannot load its CUDA libraries
        return None
    return cupy


def gpu_unavailable_reason() -> str | None:
    """Why the GPU backend cannot run here, or None when it can."""
    cupy = _import_cupy()
    if cupy is None:
        return (
            "CuPy is not installed: pip install 'rnncap[cuda12]' or 'rnncap[cuda13]' "
            "(match your CUDA version), or use --device cpu"
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # driver missing or broken
        return f"CuPy cannot reach a CUDA device ({type(err).__name__}: {err}); use --device cpu"
    if count == 0:
        return "no CUDA device is visible to CuPy; use --device cpu"
    return None


def resolve_device(device: str | None = None) -> str:
    """The device to use: the argument, else $RNNCAP_DEVICE, else ``cpu``."""
    device = (device or os.environ.get("RNNCAP_DEVICE") or "cpu").strip().lower()
    if device not in DEVICES:
        raise BackendError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    return device


def get_xp(device: str | None = None) -> ModuleType:
    """The array module for a device: ``numpy`` for cpu, ``cupy`` for gpu."""
    device = resolve_device(device)
    if device == "cpu":
        return numpy
    reason = gpu_unavailable_reason()
    if reason is not None:
        raise BackendError(f"--device gpu: {reason}")
    return _import_cupy()


def array_module(*arrays) -> ModuleType:
    """The module (numpy or cupy) that the given arrays belong to."""
    # Never import CuPy just to ask about a NumPy array: importing it is slow,
    # and a CuPy array can only exist if something already imported it.
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        return cupy.get_array_module(*arrays)
    return numpy


def to_numpy(x):
    """A NumPy copy (or view) of an array from either backend."""
    if isinstance(x, numpy.ndarray) or numpy.isscalar(x):
        return numpy.asarray(x)
    return x.get()


def to_device(x, xp: ModuleType, dtype=None):
    """Move a NumPy array to the module ``xp``, optionally casting it."""
    return xp.asarray(x, dtype=dtype)


def synchronize(xp: ModuleType) -> None:
    """Wait for queued GPU work (no-op on NumPy); use before reading a clock."""
    if xp is not numpy:
        xp.cuda.Device().synchronize()
