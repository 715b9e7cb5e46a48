"""Shared fixtures: small, seeded volumes with structure in every direction."""

from __future__ import annotations

import numpy as np
import pytest


def asymmetric_phantom(n: int) -> np.ndarray:
    """A smooth, chiral blob set off-centre: no rotation maps it onto itself."""
    c = n // 2
    z, y, x = np.indices((n, n, n), dtype=np.float64) - c
    body = np.exp(-((x - 1) ** 2 / 18 + y**2 / 8 + (z + 1) ** 2 / 12))
    arm = 0.7 * np.exp(-((x - 4) ** 2 + (y - 3) ** 2 + (z - 2) ** 2) / 4)
    knob = 0.4 * np.exp(-((x + 2) ** 2 + (y + 4) ** 2 + (z - 3) ** 2) / 3)
    return (body + arm + knob).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)


@pytest.fixture
def phantom() -> np.ndarray:
    return asymmetric_phantom(24)
