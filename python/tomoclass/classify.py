"""The default classification: correlations, nuisance removed, CPCA, then MCO-AC from CPCA's
labels with seeded restarts; the best assignment by total score wins.

Each stage covers the others' failures (measured in ``benches/bench_classify.py``): CPCA sees
the whole correlation matrix at once but clusters on eigenvectors that mix structure with
what the sampling predicts (:mod:`tomoclass.nuisance` takes that out first); MCO scores each
particle against class averages, the classifier the leave-one-out limit is defined with, but
from a random start it can collapse at low SNR; short annealing from CPCA's labels lets
particles leave a wrong start. Every restart draws its k-means seeds and annealing stream from
``seed + r``, so a result depends on the seed only (not on threads or MPI ranks), and the
agreement between restarts (mean pairwise ARI) tells how stable the classes are.

Features are computed once and shared by all stages; CPCA is
:func:`tomoclass.cpca.corrected_cpca` (a landmark block beyond 4000 particles).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tomoclass.cpca import CPCAResult, corrected_cpca, kmeans
from tomoclass.errors import TomoclassError
from tomoclass.features import MEMORY_BUDGET, Particles, Preprocessing, as_preprocessing
from tomoclass.io.scores import margins
from tomoclass.mco import ac_rounds, class_scores, doubts
from tomoclass.metrics import adjusted_rand_index
from tomoclass.nuisance import NuisanceFit
from tomoclass.parallel import Serial

RESTARTS = 4
"""Seeded restarts of the refinement (the first starts from CPCA's own labels)."""

START_TEMPERATURE = 1.0
"""Annealing of each restart: T = 1 times the spread of the scores, dropping by 0.2 per
round (5 rounds of one EXMX iteration each), then EXMX to convergence."""
ANNEALING_STEP = 0.2


@dataclass
class Restart:
    """One refinement: its ``seed``, final ``labels``, ``total_score`` (Σ of every particle's
    score against its own class), class ``sizes`` and the ARI of its start with CPCA's."""

    seed: int
    labels: np.ndarray
    total_score: float
    sizes: list[int]
    start_agreement: float


@dataclass
class Classification:
    """The result of :func:`classify`: ``labels`` (0..nclass−1), ``scores`` ``(N, nclass)``
    of every particle against every class average of ``labels``, ``margin`` (best − second
    score per particle), every restart, their ``stability`` (mean pairwise ARI; 1 with one
    restart), CPCA's result and the nuisance fit. ``warnings`` holds what looked degenerate."""

    labels: np.ndarray
    scores: np.ndarray
    margin: np.ndarray
    restarts: list[Restart]
    stability: float
    cpca: CPCAResult
    nuisance: NuisanceFit
    landmarks: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def best(self) -> int:
        """Index of the restart whose labels were kept."""
        return int(np.argmax([r.total_score for r in self.restarts]))

    def summary(self) -> dict:
        """The stages' results as plain values, for ``run.json``."""
        return {
            "nuisance": self.nuisance.summary(),
            "cpca": {"neig": self.cpca.neig, "eigenvalues": self.cpca.eigenvalues.tolist(),
                     "sizes": np.bincount(self.cpca.labels).tolist(),
                     "landmarks": None if self.landmarks is None else len(self.landmarks)},
            "restarts": [{"seed": r.seed, "total_score": r.total_score, "sizes": r.sizes,
                          "start_agreement_with_cpca": r.start_agreement}
                         for r in self.restarts],
            "kept_restart": self.best,
            "stability": self.stability,
            "class_sizes": {str(k): int(size) for k, size in
                            enumerate(np.bincount(self.labels, minlength=self.scores.shape[1]))},
            "median_margin": [float(np.median(self.margin[self.labels == k])) if
                              np.any(self.labels == k) else None
                              for k in range(self.scores.shape[1])],
            "warnings": self.warnings,
        }  # fmt: skip


def stability(labelings: list[np.ndarray]) -> float:
    """Mean ARI between every two labelings (1 for a single one)."""
    pairs = list(itertools.combinations(labelings, 2))
    if not pairs:
        return 1.0
    return float(np.mean([adjusted_rand_index(a, b) for a, b in pairs]))


UNSTABLE = 0.5
"""Restarts agreeing less than this (mean pairwise ARI) are reported as unstable."""


def _doubts(kept: Restart, agreement: float) -> list[str]:
    """:func:`tomoclass.mco.doubts` of the kept assignment, and unstable restarts."""
    notes = doubts(kept.labels, len(kept.sizes))
    if agreement < UNSTABLE:
        notes.append(
            f"the restarts disagree (mean ARI {agreement:.2f}): the classes are not stable; "
            "try fewer classes, a focused mask or a lower low-pass"
        )
    return notes


def classify(
    particles: Particles | Preprocessing,
    mask: str | os.PathLike | np.ndarray | None,
    nclass: int,
    lowpass: float | None,
    binning: int = 1,
    *,
    lowest: float = 0.0,
    restarts: int = RESTARTS,
    seed: int = 0,
    comm=None,
    progress: Callable[[str, int, int], None] | None = None,
    cache_dir: str | os.PathLike | None = None,
    memory_budget: float = MEMORY_BUDGET,
) -> Classification:
    """Classify particles into ``nclass`` classes the recommended way (module docstring).

    ``particles``, ``mask``, ``lowpass``, ``binning``, ``lowest``: as for
    :func:`tomoclass.ccc.correlation_matrix` (or a :class:`~tomoclass.features.Preprocessing`
    with mask and lowpass None). ``restarts``: refinements, each from CPCA's eigenvectors
    clustered with its own seed. ``progress(stage, done, total)`` reports work done.
    Under MPI (``comm``) every rank returns the same result.
    """
    comm = comm or Serial()
    if restarts < 1:
        raise TomoclassError(f"restarts must be >= 1, got {restarts}")
    prep = as_preprocessing(particles, mask, lowpass, binning, lowest)
    n = len(prep)
    if not 2 <= nclass <= n // 2:
        raise TomoclassError(
            f"classes must be within 2..{n // 2} (half the particles), got {nclass}"
        )
    report = progress or (lambda stage, done, total: None)
    counted = [0]

    def features_done(count: int) -> None:
        counted[0] += count
        report("features", counted[0], n)

    f, w = prep.gathered_features(comm, progress=features_done, cache_dir=cache_dir,
                                  memory_budget=memory_budget)  # fmt: skip
    band = prep.band
    first, fit, landmarks = corrected_cpca(f, w, band, nclass, seed, comm)
    runs = []
    for r in range(restarts):
        start = first.labels if r == 0 else kmeans(first.coefficients, nclass, seed + r)
        result, _ = ac_rounds(f, w, band.herm, start, nclass, START_TEMPERATURE, ANNEALING_STEP,
                              local_search=1, seed=seed + r, comm=comm)  # fmt: skip
        scores = class_scores(f, w, band.herm, result.labels, nclass, comm)
        total = float(scores[np.arange(n), result.labels].sum())
        sizes = np.bincount(result.labels, minlength=nclass).tolist()
        runs.append(Restart(seed + r, result.labels, total, sizes,
                            adjusted_rand_index(first.labels, start)))  # fmt: skip
        report("restarts", r + 1, restarts)
    kept = runs[int(np.argmax([r.total_score for r in runs]))]
    scores = class_scores(f, w, band.herm, kept.labels, nclass, comm)
    agreement = stability([r.labels for r in runs])
    return Classification(
        labels=kept.labels, scores=scores, margin=margins(scores), restarts=runs,
        stability=agreement, cpca=first, nuisance=fit, landmarks=landmarks,
        warnings=_doubts(kept, agreement),
    )  # fmt: skip
