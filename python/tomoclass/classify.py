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
:func:`tomoclass.cpca.corrected_cpca` (a landmark block beyond 4000 particles). With
``nclass="auto"`` the number of classes is chosen first by the agreement of two half-sets
(:func:`choose_class_count`); with a :class:`~tomoclass.geometry.PointSymmetry` the
refinement scores particles against symmetrised class averages.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from tomoclass.cpca import Corrected, CPCAResult, corrected_correlations, corrected_cpca, kmeans
from tomoclass.errors import TomoclassError
from tomoclass.features import MEMORY_BUDGET, Particles, Preprocessing, as_preprocessing
from tomoclass.geometry import PointSymmetry
from tomoclass.io.scores import margins
from tomoclass.mco import (
    ShiftSearch,
    ac_rounds,
    class_means,
    class_scores,
    doubts,
    score_rows,
    symmetric_features,
)
from tomoclass.metrics import adjusted_rand_index
from tomoclass.nuisance import NuisanceFit
from tomoclass.parallel import Serial

RESTARTS = 4
"""Seeded restarts of the refinement (the first starts from CPCA's own labels)."""

START_TEMPERATURE = 1.0
"""Annealing of each restart: T = 1 times the spread of the scores, dropping by 0.2 per
round (5 rounds of one EXMX iteration each), then EXMX to convergence."""
ANNEALING_STEP = 0.2


MAX_CLASSES = 6
"""Most classes ``-n auto`` tries."""

PER_CLASS = 10
"""``-n auto`` needs this many particles per class in each half-set at the most classes."""

TOLERANCE = 0.05
"""``-n auto`` keeps the most classes whose half-set agreement (ARI) is within this of the
best agreement over all counts tried: as reproducible as the best count, up to noise."""


@dataclass
class ClassCount:
    """What ``-n auto`` measured: for each count tried, the agreement of the two half-sets
    (each classified on its own; every particle assigned by each half's class averages; ARI
    between the two assignments) and the restarts' stability; the count chosen and a
    sentence on how sure that is."""

    tried: list[dict]
    chosen: int
    sureness: str

    def summary(self) -> dict:
        return {"tried": self.tried, "chosen": self.chosen, "sureness": self.sureness}


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
    class_count: ClassCount | None = None
    """With ``nclass="auto"``: how the count was chosen."""

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
                     "landmarks": None if self.landmarks is None else len(self.landmarks),
                     "noise_edge": None if self.cpca.noise is None else self.cpca.noise.summary()},
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
            "class_count": None if self.class_count is None else self.class_count.summary(),
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
    nclass: int | str,
    lowpass: float | None,
    binning: int = 1,
    *,
    lowest: float = 0.0,
    restarts: int = RESTARTS,
    seed: int = 0,
    max_classes: int = MAX_CLASSES,
    symmetry: PointSymmetry | None = None,
    comm=None,
    progress: Callable[[str, int, int], None] | None = None,
    cache_dir: str | os.PathLike | None = None,
    memory_budget: float = MEMORY_BUDGET,
) -> Classification:
    """Classify particles into ``nclass`` classes the recommended way (module docstring);
    ``nclass="auto"`` chooses it first (:func:`choose_class_count`, up to ``max_classes``).

    ``particles``, ``mask``, ``lowpass``, ``binning``, ``lowest``: as for
    :func:`tomoclass.ccc.correlation_matrix` (or a :class:`~tomoclass.features.Preprocessing`
    with mask and lowpass None). ``restarts``: refinements, each from CPCA's eigenvectors
    clustered with its own seed. ``symmetry``: a
    :class:`~tomoclass.geometry.PointSymmetry`; the refinement then scores particles against
    symmetrised class averages. ``progress(stage, done, total)`` reports work done.
    Under MPI (``comm``) every rank returns the same result.
    """
    comm = comm or Serial()
    if restarts < 1:
        raise TomoclassError(f"restarts must be >= 1, got {restarts}")
    prep = as_preprocessing(particles, mask, lowpass, binning, lowest)
    n = len(prep)
    if nclass == "auto":
        _check_auto(n, max_classes)
    elif not isinstance(nclass, (int, np.integer)) or not 2 <= nclass <= n // 2:
        raise TomoclassError(
            f"classes must be 'auto' or within 2..{n // 2} (half the particles), got {nclass}"
        )
    report = progress or (lambda stage, done, total: None)
    counted = [0]

    def features_done(count: int) -> None:
        counted[0] += count
        report("features", counted[0], n)

    f, w = prep.gathered_features(comm, progress=features_done, cache_dir=cache_dir,
                                  memory_budget=memory_budget)  # fmt: skip
    band, scoring = prep.band, None
    if symmetry is not None and symmetry.nfold > 1:
        reference = symmetric_features(prep, symmetry, comm, (f, w))
        scoring = ShiftSearch(0.0, band.flat, band.box, reference)
    count = None
    if nclass == "auto":
        count = choose_class_count(f, w, band, max_classes, restarts, seed, comm, report,
                                   scoring)  # fmt: skip
        nclass = count.chosen
    result = _classify_features(f, w, band, int(nclass), restarts, seed, comm, report, scoring)
    result.class_count = count
    return result


def _classify_features(f, w, band, nclass, restarts, seed, comm, report, scoring=None,
                       corrected: Corrected | None = None) -> Classification:  # fmt: skip
    """:func:`classify` of features already computed (``scoring``: the MCO stage's
    :class:`~tomoclass.mco.ShiftSearch`, e.g. symmetrised references; ``corrected``: their
    corrected correlations, if made already)."""
    n = len(f)
    first, fit, landmarks = corrected_cpca(f, w, band, nclass, seed, comm, corrected)
    runs, scored = [], []
    for r in range(restarts):
        start = first.labels if r == 0 else kmeans(first.coefficients, nclass, seed + r)
        result, _ = ac_rounds(f, w, band.herm, start, nclass, START_TEMPERATURE, ANNEALING_STEP,
                              local_search=1, seed=seed + r, comm=comm,
                              shift=scoring)  # fmt: skip
        scores = class_scores(f, w, band.herm, result.labels, nclass, comm, scoring)
        scored.append(scores)
        total = float(scores[np.arange(n), result.labels].sum())
        sizes = np.bincount(result.labels, minlength=nclass).tolist()
        runs.append(Restart(seed + r, result.labels, total, sizes,
                            adjusted_rand_index(first.labels, start)))  # fmt: skip
        report(f"restarts ({nclass} classes)", r + 1, restarts)
    best = int(np.argmax([r.total_score for r in runs]))
    kept, scores = runs[best], scored[best]
    agreement = stability([r.labels for r in runs])
    return Classification(
        labels=kept.labels, scores=scores, margin=margins(scores), restarts=runs,
        stability=agreement, cpca=first, nuisance=fit, landmarks=landmarks,
        warnings=_doubts(kept, agreement),
    )  # fmt: skip


def _check_auto(n: int, max_classes: int) -> None:
    if max_classes < 2:
        raise TomoclassError(f"max classes must be >= 2, got {max_classes}")
    need = 2 * PER_CLASS * max_classes
    if n < need:
        raise TomoclassError(
            f"-n auto needs at least {need} particles for half-sets of up to {max_classes} "
            f"classes ({PER_CLASS} per class in each half), got {n}; give -n or fewer "
            "--max-classes"
        )


def half_sets(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two seeded halves of ``range(n)`` (sorted indices)."""
    order = np.random.default_rng([seed, 12]).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def choose_class_count(f, w, band, max_classes, restarts, seed, comm=None, report=None,
                       scoring=None):  # fmt: skip
    """How many classes the data support: for every count from 2 to ``max_classes`` the
    particles' two seeded halves are classified separately (as :func:`classify` does),
    every particle is assigned to its best class average of each half, and the two
    assignments are compared (ARI). Splitting a real class makes the halves disagree, so
    the choice is the most classes whose agreement is within :data:`TOLERANCE` of the best
    one. Returns a :class:`ClassCount`."""
    comm = comm or Serial()
    report = report or (lambda stage, done, total: None)
    halves = half_sets(len(f), seed)
    # The correlations of each half do not depend on the count: made once per half.
    corrected = [corrected_correlations(f[half], w[half], band, seed, comm) for half in halves]
    tried = []
    for nclass in range(2, max_classes + 1):
        assigned, stabilities = [], []
        for half, correlations in zip(halves, corrected, strict=True):
            within = None if scoring is None else replace(
                scoring, reference=tuple(x[half] for x in scoring.reference))  # fmt: skip
            part = _classify_features(f[half], w[half], band, nclass, restarts, seed, comm,
                                      lambda *a: None, within, correlations)  # fmt: skip
            stabilities.append(part.stability)
            means = class_means(f[half], w[half], part.labels, nclass, within)
            assigned.append(score_rows(f, w, band.herm, means, scoring).argmax(axis=1))
        tried.append({"classes": nclass,
                      "half_set_agreement": adjusted_rand_index(*assigned),
                      "restart_stability": float(np.mean(stabilities))})  # fmt: skip
        report("class counts", nclass - 1, max_classes - 1)
    best = max(t["half_set_agreement"] for t in tried)
    good = [t for t in tried if t["half_set_agreement"] >= best - TOLERANCE]
    chosen = good[-1]
    return ClassCount(tried, chosen["classes"], _sureness(tried, chosen))


def _sureness(tried: list[dict], chosen: dict) -> str:
    """How clearly the chosen count stands out, in words."""
    k, agree = chosen["classes"], chosen["half_set_agreement"]
    after = next((t for t in tried if t["classes"] == k + 1), None)
    text = f"{k} classes: the half-sets agree at ARI {agree:.2f}"
    if after is not None:
        text += f", {k + 1} classes at {after['half_set_agreement']:.2f}"
    if agree < 0.5:
        return text + "; weak: the data hardly support any split, check the averages"
    if after is None:
        return text + "; the most classes tried: try a larger --max-classes"
    if after is not None and agree - after["half_set_agreement"] < 0.1:
        return text + "; uncertain between these counts, compare their averages"
    return text + "; clear"
