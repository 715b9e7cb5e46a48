"""The per-particle table of a classification, ``scores.csv``: one row per particle in list
order with its file (as the list beside the table names it), its class, its score against
every class average (``score_0`` …) and its margin, the best minus the second-best score.
Small margins mark particles that sit between classes."""

from __future__ import annotations

import csv
import os

import numpy as np

from tomoclass.errors import TomoclassError
from tomoclass.io.files import atomic_output

SCORES = "scores.csv"
"""The table's name in a classification folder (``select --min-margin`` looks for it)."""


def margins(scores: np.ndarray) -> np.ndarray:
    """Best minus second-best score of every row of ``scores`` ``(N, classes)``."""
    if scores.shape[1] < 2:
        return np.zeros(len(scores))
    top = np.sort(scores, axis=1)
    return top[:, -1] - top[:, -2]


def write_scores(path: str | os.PathLike, names: list[str], labels, scores: np.ndarray) -> None:
    """Write the table for particles ``names`` with classes ``labels`` and ``scores``
    ``(N, classes)``, atomically."""
    k = scores.shape[1]
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        table = csv.writer(handle, lineterminator="\n")  # quotes names that need it
        table.writerow(["particle", "class", *(f"score_{c}" for c in range(k)), "margin"])
        for name, label, row, gap in zip(names, labels, scores, margins(scores), strict=True):
            table.writerow([name, label, *(f"{v:.6g}" for v in row), f"{gap:.6g}"])


def read_margins(path: str | os.PathLike, names: list[str]) -> np.ndarray:
    """The margins of the table at ``path``, checked to list the particles ``names`` in the
    same order."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise TomoclassError(f"{path}: cannot read the scores table ({exc.strerror})") from None
    if rows and not {"particle", "margin"} <= set(rows[0]):
        raise TomoclassError(f"{path}: not a scores table (no particle and margin columns)")
    listed = [row["particle"] for row in rows]
    if listed != names:
        raise TomoclassError(
            f"{path}: lists other particles than the list ({len(listed)} rows for "
            f"{len(names)} particles, or another order)"
        )
    try:
        return np.array([float(row["margin"]) for row in rows])
    except ValueError:
        raise TomoclassError(f"{path}: a margin is not a number") from None
