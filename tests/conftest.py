"""Shared test set-up: Hypothesis profiles and the NumPy/CuPy ``xp`` fixture.

Hypothesis profiles (choose with ``HYPOTHESIS_PROFILE``): ``dev`` (default),
``ci`` (chosen automatically when ``CI`` is set: derandomised, so a CI run is
reproducible) and ``thorough`` (ten times the examples; run it before a
release, with ``-m "slow or not slow"``). Each property test states its own
example count through :func:`examples`, scaled by the profile.
"""

from __future__ import annotations

import os

import numpy
import pytest
from hypothesis import HealthCheck, settings

from rnncap.backend import gpu_unavailable_reason

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("dev", **_COMMON)
settings.register_profile("ci", derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)
_SCALE = 10 if PROFILE == "thorough" else 1


def examples(n: int) -> int:
    """The number of Hypothesis examples for a test that runs ``n`` by default."""
    return n * _SCALE


def _cupy_or_skip():
    reason = gpu_unavailable_reason()
    if reason is not None:
        pytest.skip(f"CuPy backend unavailable: {reason}")
    from rnncap.backend import get_xp

    return get_xp("gpu")


@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    """The array module: every test that takes it runs on NumPy and on CuPy."""
    if request.param == "numpy":
        return numpy
    return _cupy_or_skip()


@pytest.fixture
def cupy():
    """CuPy, for tests that compare the GPU with NumPy; skipped without a GPU."""
    return _cupy_or_skip()
