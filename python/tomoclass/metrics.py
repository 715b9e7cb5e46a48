"""Agreement between two labelings of the same particles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomoclass.errors import TomoclassError


def adjusted_rand_index(truth: Sequence, labels: Sequence) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985): 1 for identical partitions (whatever
    the label names), about 0 for random ones."""
    a, b = _codes(truth, "truth"), _codes(labels, "labels")
    if len(a) != len(b):
        raise TomoclassError(f"labels: one per particle of truth ({len(a)}) needed, got {len(b)}")
    from scipy.special import comb

    table = np.zeros((a.max() + 1, b.max() + 1), np.int64)
    np.add.at(table, (a, b), 1)
    pairs = comb(table, 2).sum()
    rows, cols = comb(table.sum(1), 2).sum(), comb(table.sum(0), 2).sum()
    expected = rows * cols / comb(len(a), 2) if len(a) > 1 else 0.0
    best = (rows + cols) / 2
    if best == expected:
        return 1.0
    return float((pairs - expected) / (best - expected))


def _codes(labels: Sequence, name: str) -> np.ndarray:
    """``labels`` (one per particle, at least one) as codes ``0..k−1``; an error naming
    ``name`` for anything but a non-empty flat sequence."""
    array = np.asarray(labels)
    if array.ndim != 1 or len(array) == 0:
        raise TomoclassError(f"{name}: one label per particle needed, got shape {array.shape}")
    return np.unique(array, return_inverse=True)[1]
