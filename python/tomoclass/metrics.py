"""Agreement between two labelings of the same particles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import comb

from tomoclass.errors import TomoclassError


def adjusted_rand_index(truth: Sequence, labels: Sequence) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985): 1 for identical partitions (whatever
    the label names), about 0 for random ones."""
    a = np.unique(np.asarray(truth), return_inverse=True)[1]
    b = np.unique(np.asarray(labels), return_inverse=True)[1]
    if len(a) != len(b):
        raise TomoclassError(f"{len(a)} true labels but {len(b)} assigned ones")
    table = np.zeros((a.max() + 1, b.max() + 1), np.int64)
    np.add.at(table, (a, b), 1)
    pairs = comb(table, 2).sum()
    rows, cols = comb(table.sum(1), 2).sum(), comb(table.sum(0), 2).sum()
    expected = rows * cols / comb(len(a), 2) if len(a) > 1 else 0.0
    best = (rows + cols) / 2
    if best == expected:
        return 1.0
    return float((pairs - expected) / (best - expected))
