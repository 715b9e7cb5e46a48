"""Multiple correlation optimisation, MCO-EXMX (Hrabe et al. 2012), over spectral features.

Each iteration forms the class averages in feature space from the current assignment
(weighted by the particles' sampling weights, PyTom's floor), scores every particle
against every average seen through the particle's own weight (constrained correlation,
SPEC §3), and moves each particle to its best class. It stops when the fraction of
particles that changed class is at most ``end_threshold``, or after ``iterations``. A class
that empties is re-seeded with the worse-fitting half of the largest class, unless
``allow_collapse``. The start (:data:`STARTS`) is the list's classes, CPCA's labels (the
default for a list without classes), or a random assignment from the counter-based stream
``(seed, round 0, particle)``, so results depend on the seed only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomoclass import _core
from tomoclass.checkpoint import Checkpoint
from tomoclass.errors import TomoclassError
from tomoclass.features import (
    MEMORY_BUDGET,
    Particles,
    ParticleStack,
    Preprocessing,
    as_preprocessing,
)
from tomoclass.geometry import PointSymmetry
from tomoclass.parallel import Serial, allgather_rows, share

FLOOR = 0.05


@dataclass(frozen=True)
class ShiftSearch:
    """How particles are scored beyond the plain score. Translation tolerance: with
    ``radius`` > 0 scores are the peak over shifts ``|t| ≤ radius`` (voxels of the binned
    box), found by inverse FFTs over the band (``flat`` half-grid indices of an ``box³``
    box). ``reference``: the features ``(f, w)`` class averages are formed from, when they
    are not the scored ones (symmetrised, :func:`symmetric_features`)."""

    radius: float
    flat: np.ndarray
    box: int
    reference: tuple[np.ndarray, np.ndarray] | None = None


def class_means(f, w, labels, nclass: int, shift: ShiftSearch | None) -> np.ndarray:
    """Class averages in feature space (from ``shift.reference`` if it has one)."""
    if shift is not None and shift.reference is not None:
        f, w = shift.reference
    return _core.mco_class_means(f, w, np.asarray(labels).tolist(), nclass, FLOOR)[0]


def class_scores(f, w, herm, labels, nclass: int, comm=None, shift=None) -> np.ndarray:
    """Scores ``(N, nclass)`` of every particle against the class averages of ``labels``
    (with a :class:`ShiftSearch`, the peak over shifts).

    Under MPI every rank scores its share of the particles and all ranks receive all rows;
    a row does not depend on how the particles are shared, so neither does the result.
    """
    comm = comm or Serial()
    means = class_means(f, w, labels, nclass, shift)
    start, stop = share(comm, comm.rank, len(f))
    return allgather_rows(comm, score_rows(f[start:stop], w[start:stop], herm, means, shift))


def score_rows(f, w, herm, means, shift) -> np.ndarray:
    """Scores of particles ``f``, ``w`` against the averages ``means`` (in the core)."""
    if shift is None or shift.radius <= 0:
        return _core.mco_scores(f, w, herm, means)
    rows, _ = _core.mco_shift_scores(f, w, herm, shift.flat.tolist(), shift.box, means,
                                     float(shift.radius))  # fmt: skip
    return rows


def leave_one_out_scores(f, w, herm, labels, nclass: int) -> np.ndarray:
    """Scores ``(N, nclass)`` of every particle against the class averages of ``labels``
    formed without it (the particle's own class loses its term, the others are unchanged).

    With the true labels, ``argmax`` of these rows is the best classification MCO's score
    can give the data: the leave-one-out limit that accuracy benches report.
    """
    labels = np.asarray(labels)
    scores = _core.mco_scores(f, w, herm, _core.mco_class_means(f, w, labels.tolist(), nclass,
                                                                FLOOR)[0])  # fmt: skip
    m = w.shape[1]
    wd = w.astype(np.float64)
    fw = np.concatenate([wd, wd], axis=1) * f
    w2, reach = wd * wd, wd.max(axis=1) ** 2
    onehot = np.eye(nclass)[labels]
    own_fw = (onehot.T @ fw)[labels] - fw
    own_w2 = (onehot.T @ w2)[labels] - w2
    own_reach = (onehot.T @ reach)[labels] - reach
    lowest = np.maximum(FLOOR * own_reach, np.finfo(np.float64).tiny)[:, None]
    mean = own_fw / np.concatenate([np.maximum(own_w2, lowest)] * 2, axis=1)
    h = np.asarray(herm, np.float64)
    hw = h * wd
    numerator = (hw * (f[:, :m] * mean[:, :m] + f[:, m:] * mean[:, m:])).sum(axis=1)
    energy = (h * (f[:, :m] ** 2 + f[:, m:] ** 2)).sum(axis=1)
    reference = (h * w2 * (mean[:, :m] ** 2 + mean[:, m:] ** 2)).sum(axis=1)
    denominator = np.sqrt(energy * reference)
    own = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    scores[np.arange(len(labels)), labels] = own
    return scores


@dataclass
class MCOResult:
    """Final labels (``0..nclass−1``) and the trace: per iteration (``iteration``,
    ``changes``, ``fraction_changed``, ``total_score``, ``occupancy``) or per round. With
    ``update_shifts``, ``shifts`` holds the particles' new shifts ``(N, 3)``."""

    labels: np.ndarray
    trace: list[dict] = field(default_factory=list)
    shifts: np.ndarray | None = None
    scores: np.ndarray | None = None
    """Every particle's score against every class average of ``labels``, ``(N, nclass)``."""
    merge: dict | None = None
    """With ``oversample``: the merges (:func:`merge_classes`) and the refinement after them."""
    restarts: list[dict] | None = None
    """From a random start with restarts: every start tried (seed, total score, sizes)."""
    warnings: list[str] = field(default_factory=list)
    """What looked degenerate (a near-empty class, no particle moved)."""


def random_labels(n: int, nclass: int, seed: int) -> np.ndarray:
    """A seeded random assignment from the counter stream ``(seed, 0, particle)``."""
    return np.minimum((_core.counter_uniform(seed, 0, n) * nclass).astype(int), nclass - 1)


STARTS = ("auto", "list", "cpca", "random")
"""Where MCO starts: ``list`` the list's classes, ``cpca`` CPCA's labels (of the corrected
correlations, :func:`tomoclass.cpca.corrected_cpca`), ``random`` a seeded random assignment,
``auto`` the list's classes when it has at least two, else CPCA."""


def _list_classes(particles: Particles) -> list[str | None]:
    return [] if isinstance(particles, ParticleStack) else particles.class_names()


def start_labels(
    particles: Particles,
    nclass: int,
    seed: int,
    start: str = "auto",
    features: tuple | None = None,
    comm=None,
) -> np.ndarray:
    """The start of an MCO run (see :data:`STARTS`); ``features`` ``(f, w, band)`` of the
    particles are needed for ``cpca``."""
    if start not in STARTS:
        raise TomoclassError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    names = _list_classes(particles)
    distinct = list(dict.fromkeys(name for name in names if name is not None))
    listed = len(distinct) >= 2 and None not in names
    if start == "list" and not listed:
        raise TomoclassError(
            "--start list: the particle list has no classes (every particle needs one, and "
            "at least two different); use --start cpca or random"
        )
    if start == "random":
        return random_labels(len(particles), nclass, seed)
    if start == "cpca" or (start == "auto" and not listed):
        from tomoclass.cpca import corrected_cpca  # cpca's start imports this module's users

        f, w, band = features
        return corrected_cpca(f, w, band, nclass, seed, comm)[0].labels
    if len(distinct) != nclass:
        raise TomoclassError(
            f"the particle list has {len(distinct)} classes but {nclass} were asked for; "
            "start elsewhere with --start cpca or random"
        )
    index = {name: k for k, name in enumerate(distinct)}
    return np.array([index[name] for name in names])


def reseed_empty(labels: np.ndarray, scores: np.ndarray, nclass: int) -> np.ndarray:
    """Give every empty class the worse-fitting half of the (then) largest class."""
    labels = labels.copy()
    for k in range(nclass):
        if np.any(labels == k):
            continue
        largest = int(np.bincount(labels, minlength=nclass).argmax())
        members = np.flatnonzero(labels == largest)
        if len(members) < 2:
            continue
        worst = members[np.argsort(scores[members, largest], kind="stable")]
        labels[worst[: len(members) // 2]] = k
    return labels


@dataclass
class Progress:
    """Where a run stands after a completed iteration (EXMX) or round (AC): all a checkpoint
    needs to continue to the same result. ``step`` 0 means nothing done yet."""

    step: int
    labels: np.ndarray
    trace: list[dict] = field(default_factory=list)
    best_labels: np.ndarray | None = None
    best_total: float = -np.inf
    swaps: list[tuple] = field(default_factory=list)
    seed: int | None = None
    """The seed of the run proper (with restarts: of the start that won)."""
    tried: list[dict] | None = None
    """Random starts tried so far (step 0: the run proper has not begun)."""


def scores_and_shifts(f, w, herm, labels, nclass: int, shift: ShiftSearch, comm=None):
    """:func:`class_scores` with a shift search, and the best shift ``(x, y, z)`` (binned
    voxels, aligned frame) behind each score, ``(N, nclass, 3)``: the particle matches that
    class's average moved by this shift. One pass of the core's shift search gives both."""
    comm = comm or Serial()
    means = class_means(f, w, labels, nclass, shift)
    start, stop = share(comm, comm.rank, len(f))
    rows, found = _core.mco_shift_scores(f[start:stop], w[start:stop], herm,
                                         shift.flat.tolist(), shift.box, means,
                                         float(shift.radius))  # fmt: skip
    return allgather_rows(comm, rows), allgather_rows(comm, found)


def refine_particle_shifts(particles: Particles, found: np.ndarray, binning: int) -> np.ndarray:
    """New particle shifts ``s + R·(t·binning)`` from the best aligned-frame shifts ``t``
    (binned voxels): aligning with them centres every particle on its class average."""
    if isinstance(particles, ParticleStack):
        rotations, current = np.asarray(particles.rotations), np.asarray(particles.shifts)
    else:
        rotations, current = particles.rotation_matrices(), particles.shifts()
    return current + np.einsum("nij,nj->ni", rotations, found * binning)


def _with_shifts(result: MCOResult, prep: Preprocessing, f, w, herm, nclass, shift, comm):
    """``result`` with the scores of its final labels and the refined particle shifts, each
    particle centred on its own class's average."""
    if shift is None or shift.radius <= 0:
        raise TomoclassError("updating shifts needs a shift search: give max_shift > 0")
    result.scores, found = scores_and_shifts(f, w, herm, result.labels, nclass, shift, comm)
    own = found[np.arange(len(found)), np.asarray(result.labels)].astype(np.float64)
    result.shifts = refine_particle_shifts(prep.particles, own, prep.binning)
    return result


def exmx_iterations(
    f: np.ndarray,
    w: np.ndarray,
    herm: np.ndarray,
    labels: np.ndarray,
    nclass: int,
    iterations: int,
    end_threshold: float,
    allow_collapse: bool = False,
    on_iteration=None,
    comm=None,
    resume: Progress | None = None,
    shift: ShiftSearch | None = None,
) -> MCOResult:
    """EXMX from ``labels`` on features ``f`` ``(N, 2M)``, wedges ``w`` ``(N, M)``.

    ``on_iteration(progress)`` is called after every iteration; ``resume`` (such a progress)
    continues an interrupted run exactly where it stopped.
    """
    state = resume or Progress(0, np.asarray(labels, dtype=int))
    converged = bool(state.trace) and state.trace[-1]["fraction_changed"] <= end_threshold
    for iteration in range(state.step + 1, 0 if converged else iterations + 1):
        scores = class_scores(f, w, herm, state.labels, nclass, comm, shift)
        new = scores.argmax(axis=1)
        if not allow_collapse:
            new = reseed_empty(new, scores, nclass)
        changes = int((new != state.labels).sum())
        state.step, state.labels = iteration, new
        state.trace.append({
            "iteration": iteration,
            "changes": changes,
            "fraction_changed": changes / len(new),
            "total_score": float(scores[np.arange(len(new)), new].sum()),
            "occupancy": np.bincount(new, minlength=nclass).tolist(),
        })  # fmt: skip
        if on_iteration is not None:
            on_iteration(state)
        if changes / len(new) <= end_threshold:
            break
    return MCOResult(state.labels, state.trace)


def mco_exmx(
    particles: Particles | Preprocessing,
    mask: str | os.PathLike | np.ndarray | None,
    nclass: int,
    highest: float | None = 0.25,
    binning: int = 1,
    *,
    lowest: float = 0.0,
    iterations: int = 10,
    end_threshold: float = 0.05,
    seed: int = 0,
    allow_collapse: bool = False,
    on_iteration=None,
    comm=None,
    resume: Progress | None = None,
    max_shift: float = 0.0,
    update_shifts: bool = False,
    cache_dir: str | os.PathLike | None = None,
    memory_budget: float = MEMORY_BUDGET,
    start: str = "auto",
    oversample: int = 1,
    restarts: int | None = None,
    on_restart=None,
    symmetry: PointSymmetry | None = None,
    feature_checkpoint: str | os.PathLike | None = None,
) -> MCOResult:
    """Classify particles by MCO-EXMX into ``nclass`` classes.

    ``particles``: the particles, or a :class:`~tomoclass.features.Preprocessing` (then
    ``mask`` and ``highest`` are None and ``binning`` and ``lowest`` are its own).
    ``highest``/``lowest``: band radii in Fourier voxels of the binned box (below 1:
    fractions of it); ``end_threshold``: stop when at most this fraction changed class;
    ``max_shift`` (voxels of the unbinned box): score each particle at its best shift within
    that radius (PyTom's translation tolerance); ``update_shifts`` then also returns the
    particles' shifts that centre them on their final class averages.
    ``start``: where to start (:data:`STARTS`). ``oversample`` F: classify into F·nclass
    classes, then merge them by total score (:func:`merge_classes`) and refine by EXMX.
    ``restarts`` (random starts only; None: :data:`RESTARTS`): random starts tried, the best
    by total score is the run proper; ``on_restart(progress)`` is called after each.
    ``symmetry``: a :class:`~tomoclass.geometry.PointSymmetry`; particles are then scored
    against symmetrised class averages (:func:`symmetric_features`).
    ``on_iteration(entry, labels)`` is called after each iteration. Features larger than
    ``memory_budget`` bytes are memory-mapped from files in ``cache_dir`` (shared by all MPI
    ranks) instead of held in memory, as in :func:`tomoclass.ccc.correlation_matrix`.
    ``feature_checkpoint``: a folder where finished feature blocks are kept, and from which
    those of an earlier run of the same particles, mask and band are taken (a run with
    other inputs there is an error).
    """
    if not 0 <= end_threshold <= 1:
        raise TomoclassError(f"end threshold must be within 0..1, got {end_threshold}")
    if iterations < 1:
        raise TomoclassError(f"iterations must be >= 1, got {iterations}")
    prep = as_preprocessing(particles, mask, highest, binning, lowest)
    run = nclass * _checked_oversample(oversample)
    f, w, herm, shift = _features_for(prep, run, comm, max_shift, cache_dir, memory_budget,
                                      symmetry, feature_checkpoint)  # fmt: skip
    proper = resume if resume is not None and resume.step > 0 else None
    labels = _start_of(prep, run, seed, start, (f, w, prep.band), comm, proper)

    def descend(begin, _seed, **progress):
        return exmx_iterations(f, w, herm, begin, run, iterations, end_threshold,
                               allow_collapse, comm=comm, shift=shift, **progress)  # fmt: skip

    seed, labels, tried = _restarted(descend, (f, w, herm, shift), run, seed, start, restarts,
                                     labels, resume, comm, on_restart)  # fmt: skip
    result = descend(labels, seed, on_iteration=_seeded(on_iteration, seed, tried),
                     resume=proper)  # fmt: skip
    result.restarts = tried
    return _finish(result, prep, (f, w, herm, shift), run, nclass, comm, update_shifts,
                   end_threshold, allow_collapse, _random_start(start, labels))  # fmt: skip


RESTARTS = 3
"""Random starts tried by default (seeds ``seed``, ``seed + 1``, …) when MCO starts at
random: each is run to its end, and the run proper repeats the one of highest total score."""


def _restarted(run_from, features, classes, seed, start, restarts, labels, resume, comm,
               on_restart):  # fmt: skip
    """``(seed, start labels, starts tried)`` of the run proper. From a random start with
    ``restarts`` > 1 (None: :data:`RESTARTS`), each seed's start is run by
    ``run_from(labels, seed)``, ``on_restart(progress)`` is called after each (step 0, the
    starts ``tried``), and the seed of the highest total score wins. ``resume`` continues
    the starts, or keeps its seed once the run proper has begun."""
    if resume is not None and resume.step > 0:
        return (seed if resume.seed is None else resume.seed), None, resume.tried
    if start != "random":
        if restarts not in (None, 1):
            raise TomoclassError("restarts are for --start random; give --restarts 1")
        return seed, labels, None
    count = RESTARTS if restarts is None else restarts
    if count < 1:
        raise TomoclassError(f"restarts must be >= 1, got {count}")
    if count == 1:
        return seed, labels, None
    f, w, herm, shift = features
    tried = list(resume.tried or []) if resume is not None else []
    for r in range(len(tried), count):
        begin = random_labels(len(f), classes, seed + r)
        final = run_from(begin, seed + r).labels
        tried.append({"seed": seed + r,
                      "total_score": total_score(f, w, herm, final, classes, comm, shift),
                      "sizes": np.bincount(final, minlength=classes).tolist()})  # fmt: skip
        if on_restart is not None:
            on_restart(Progress(0, np.zeros(0, int), tried=list(tried)))
    best = max(tried, key=lambda t: t["total_score"])  # the first of equals
    return best["seed"], random_labels(len(f), classes, best["seed"]), tried


def _seeded(callback, seed, tried):
    """``callback`` given progress that carries the run's ``seed`` and the starts
    ``tried`` (for checkpoints)."""
    if callback is None:
        return None

    def call(progress):
        progress.seed, progress.tried = seed, tried
        callback(progress)

    return call


def _random_start(start: str, labels):
    """The start labels when they were random (staying there is then suspect), else None:
    the list's or CPCA's classes may well be a fixed point already."""
    return labels if start == "random" else None


def _checked_oversample(factor: int) -> int:
    if factor < 1:
        raise TomoclassError(f"oversample must be >= 1, got {factor}")
    return int(factor)


SMALL_CLASS = 0.01
"""A class with fewer than this fraction of the particles (or fewer than 2) is near-empty."""


def doubts(labels: np.ndarray, nclass: int, start: np.ndarray | None = None) -> list[str]:
    """One line for each sign of a degenerate assignment: a near-empty class
    (:data:`SMALL_CLASS`), or (given the ``start``) no particle moved from it."""
    notes = []
    sizes = np.bincount(labels, minlength=nclass)
    small = np.flatnonzero(sizes < max(2, SMALL_CLASS * len(labels)))
    if len(small):
        notes.append(
            f"class {', '.join(map(str, small))} has fewer than {SMALL_CLASS:.0%} of the "
            "particles: a collapsed class, too many classes, or a rare state to check by eye"
        )
    if start is not None and np.array_equal(labels, start):
        notes.append(
            "no particle moved from the start: it was already a fixed point, or the scores "
            "cannot tell the classes apart"
        )
    return notes


def _finish(result, prep, features, classes, nclass, comm, update_shifts, end_threshold,
            allow_collapse, start):  # fmt: skip
    """``result`` of a run into ``classes`` classes, merged down to ``nclass`` if that is
    fewer (then refined by EXMX to convergence), with every particle's scores, what looked
    degenerate and, if asked, refined shifts."""
    f, w, herm, shift = features
    if classes > nclass:
        merged, record = merge_classes(f, w, herm, result.labels, classes, nclass, comm, shift)
        refined = exmx_iterations(f, w, herm, merged, nclass, FINAL_ITERATIONS, end_threshold,
                                  allow_collapse, comm=comm, shift=shift)  # fmt: skip
        result.merge = {**record, "refinement": refined.trace}
        result.labels = refined.labels
    if update_shifts:  # the shift search's scores: the same as class_scores gives
        result = _with_shifts(result, prep, f, w, herm, nclass, shift, comm)
    else:
        result.scores = class_scores(f, w, herm, result.labels, nclass, comm, shift)
    result.warnings += doubts(result.labels, nclass, start)
    return result


CANDIDATES = 3
"""Classes each class may merge with at a step: those its members score highest against."""


def merge_classes(f, w, herm, labels, classes: int, nclass: int, comm=None, shift=None):
    """Merge ``classes`` classes of ``labels`` two at a time: each step joins the pair whose
    union keeps the highest total score (every particle scored against the averages of the
    merged assignment), among the pairs where one class's members score highest against the
    other (:data:`CANDIDATES` per class). A total over all particles holds at low SNR, where
    the distance between two small classes' noisy averages does not.

    Merging goes on to one class, so that the steps form a whole tree (for the dendrogram);
    returns the labels at ``nclass`` classes (``0..nclass−1``, numbered by the smallest
    original class in each) and the merge record: the original classes' ``sizes``, their
    new class (``mapping``), the ``start_total_score`` and the ``steps``
    ``{"joined": [group, group], "total_score": …}`` in original class numbers."""
    labels = np.asarray(labels).copy()
    groups = [[k] for k in range(classes)]  # original classes in each current class
    record = {"sizes": np.bincount(labels, minlength=classes).tolist(), "steps": []}
    record["start_total_score"] = total_score(f, w, herm, labels, classes, comm, shift)
    kept = labels if classes <= nclass else None
    record["mapping"] = list(range(classes))
    while len(groups) > 1:
        k = len(groups)
        scores = class_scores(f, w, herm, labels, k, comm, shift)
        pairs = set()
        for a in range(k):
            members = labels == a
            if not members.any():
                pairs.update((min(a, b), max(a, b)) for b in range(k) if b != a)
                continue
            affinity = scores[members].mean(axis=0)
            near = [int(b) for b in np.argsort(-affinity, kind="stable") if b != a]
            pairs.update((min(a, b), max(a, b)) for b in near[:CANDIDATES])
        own = scores[np.arange(len(labels)), labels].astype(np.float64)
        best = None
        for a, b in sorted(pairs):
            total = _joined_total(f, w, herm, labels, own, a, b, shift)
            if best is None or total > best[0]:
                best = (total, a, b)
        total, a, b = best
        labels = _joined(labels, a, b)
        record["steps"].append({"joined": [groups[a], groups[b]], "total_score": total})
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]
        if len(groups) == nclass:
            kept = labels.copy()
            record["mapping"] = [next(i for i, g in enumerate(groups) if k in g)
                                 for k in range(classes)]  # fmt: skip
    return kept, record


def _joined_total(f, w, herm, labels, own, a: int, b: int, shift) -> float:
    """The total score after joining classes ``a`` and ``b``: only their members' scores
    change (against the one joined average); every other class keeps its average, so its
    members keep their scores ``own``."""
    members = (labels == a) | (labels == b)
    if not members.any():
        return float(own.sum())
    rf, rw = (f, w) if shift is None or shift.reference is None else shift.reference
    mean, _ = _core.mco_class_means(rf[members], rw[members], [0] * int(members.sum()), 1, FLOOR)
    joined = score_rows(f[members], w[members], herm, mean, shift)[:, 0]
    return float(own[~members].sum() + joined.astype(np.float64).sum())


def _joined(labels: np.ndarray, a: int, b: int) -> np.ndarray:
    """``labels`` with class ``b`` (> ``a``) joined to ``a`` and the classes above ``b``
    moved down by one."""
    out = np.where(labels == b, a, labels)
    return np.where(out > b, out - 1, out)


def _start_of(prep, nclass, seed, start, features, comm, resume) -> np.ndarray | None:
    """The start labels of a fresh run (None when resuming: the checkpoint has them)."""
    if resume is not None:
        return None
    return start_labels(prep.particles, nclass, seed, start, features, comm)


def _features_for(prep: Preprocessing, nclass, comm, max_shift, cache_dir, memory_budget,
                  symmetry=None, kept=None):  # fmt: skip
    """Checked parameters, then the features ``(f, w, herm)`` of all particles (under MPI
    each rank computes its share and all ranks receive all; memory-mapped from ``cache_dir``
    beyond ``memory_budget`` bytes; finished blocks kept in, and taken from, the folder
    ``kept``)."""
    n = len(prep)
    if not isinstance(nclass, (int, np.integer)) or not 2 <= nclass <= n:
        raise TomoclassError(f"classes must be within 2..{n} (the particles), got {nclass!r}")
    if max_shift < 0:
        raise TomoclassError(f"max shift must be >= 0, got {max_shift}")
    store = None
    if kept is not None:
        store = Checkpoint(Path(kept), prep.checkpoint_params(), True, comm, required=False)
    f, w = prep.gathered_features(comm, cache_dir=cache_dir, memory_budget=memory_budget,
                                  store=store)  # fmt: skip
    band = prep.band
    reference = None
    if symmetry is not None and symmetry.nfold > 1:
        reference = symmetric_features(prep, symmetry, comm, (f, w))
    shift = None
    if max_shift > 0 or reference is not None:
        shift = ShiftSearch(max_shift / prep.binning, band.flat, band.box, reference)
    return f, w, band.herm, shift


def symmetric_features(prep: Preprocessing, symmetry, comm=None, first=None):
    """Features ``(f, w)`` whose class averages are the symmetrised ones: per particle
    ``w = sqrt(Σ_k W_k²)`` and ``w·f = Σ_k W_k·F_k`` over its symmetry copies ``k`` (the
    particle turned by :meth:`~tomoclass.geometry.PointSymmetry.operators`), so that
    ``Σ w·f / Σ w²`` over a class is the weighted average of all copies, as PyTom's
    symmetrised particle lists give. Held in memory. ``first``: the copy-0 features, if
    computed already."""
    f0, w0 = first if first is not None else prep.gathered_features(comm)
    weights = np.concatenate([w0, w0], axis=1).astype(np.float64)
    total, power = weights * f0, np.square(w0, dtype=np.float64)
    for g in symmetry.operators()[1:]:
        fg, wg = prep.turned(g).gathered_features(comm)
        total += np.concatenate([wg, wg], axis=1) * fg
        power += np.square(wg, dtype=np.float64)
    w = np.sqrt(power)
    safe = np.where(w > 0, w, 1.0)
    f = total / np.concatenate([safe, safe], axis=1)
    return f.astype(np.float32), w.astype(np.float32)


TEMPERATURES = ("sigma", "annealing")
CRITERIA = ("metropolis", "threshold")
FINAL_ITERATIONS = 100
"""Most EXMX iterations of the final descent at temperature 0."""


def total_score(f, w, herm, labels, nclass: int, comm=None, shift=None) -> float:
    """Σ of every particle's score against the average of its own class (that assignment's)."""
    scores = class_scores(f, w, herm, labels, nclass, comm, shift)
    return float(scores[np.arange(len(scores)), labels].sum())


def ac_rounds(
    f: np.ndarray,
    w: np.ndarray,
    herm: np.ndarray,
    labels: np.ndarray,
    nclass: int,
    start_temperature: float,
    step: float,
    *,
    local_search: int = 5,
    temperature: str = "sigma",
    criterion: str = "metropolis",
    end_threshold: float = 0.05,
    seed: int = 0,
    allow_collapse: bool = False,
    on_round=None,
    comm=None,
    resume: Progress | None = None,
    shift: ShiftSearch | None = None,
) -> tuple[MCOResult, list[tuple]]:
    """MCO-AC: rounds of EXMX (``local_search`` iterations) and an annealed reassignment at
    a temperature that drops by ``step`` per round until it is ≤ 0, then EXMX at T = 0 to
    convergence. The best assignment by total score is kept. Returns the result (its trace
    holds one entry per round, then the final descent) and the accepted jumps
    ``(round, particle, from, to, score lost)``. ``on_round(progress)`` is called after every
    round; ``resume`` continues from such a progress to the same result."""
    if start_temperature < 0 or step <= 0:
        raise TomoclassError(
            f"start temperature must be >= 0 and the annealing step > 0, got "
            f"{start_temperature} and {step}"
        )
    if temperature not in TEMPERATURES or criterion not in CRITERIA:
        raise TomoclassError(
            f"temperature must be one of {TEMPERATURES} and criterion one of {CRITERIA}"
        )
    if local_search < 1:
        raise TomoclassError(f"local search increment must be >= 1, got {local_search}")
    state = resume or Progress(0, np.asarray(labels, dtype=int))
    rounds = int(np.ceil(start_temperature / step - 1e-9))  # T_r = T − (r − 1)·step > 0
    for round_ in range(state.step + 1, rounds + 1):
        t = start_temperature - (round_ - 1) * step
        local = exmx_iterations(f, w, herm, state.labels, nclass, local_search, end_threshold,
                                allow_collapse, comm=comm, shift=shift)  # fmt: skip
        current = local.labels
        scores = class_scores(f, w, herm, current, nclass, comm, shift)
        total = float(scores[np.arange(len(scores)), current].sum())
        if total > state.best_total:
            state.best_labels, state.best_total = current.copy(), total
        t_eff = t * float(scores.std()) if temperature == "sigma" else t
        moved, jumps = _core.mco_anneal(scores, current.tolist(), t_eff, criterion, seed, round_)
        moved = np.asarray(moved)
        if not allow_collapse:
            moved = reseed_empty(moved, scores, nclass)
        state.swaps += [(round_, *jump) for jump in jumps]
        state.trace.append({
            "round": round_, "temperature": t, "effective_temperature": t_eff,
            "total_score": total, "changes": int((moved != current).sum()),
            "occupancy": np.bincount(moved, minlength=nclass).tolist(),
        })  # fmt: skip
        state.step, state.labels = round_, moved
        if on_round is not None:
            on_round(state)
    final = exmx_iterations(f, w, herm, state.labels, nclass, FINAL_ITERATIONS, end_threshold,
                            allow_collapse, comm=comm, shift=shift)  # fmt: skip
    total = total_score(f, w, herm, final.labels, nclass, comm, shift)
    trace = [*state.trace, {"round": "final", "temperature": 0.0, "total_score": total,
                            "iterations": len(final.trace)}]  # fmt: skip
    best = state.best_labels
    if best is None or total >= state.best_total:
        best = final.labels
    return MCOResult(best, trace), state.swaps


def mco_ac(
    particles: Particles | Preprocessing,
    mask: str | os.PathLike | np.ndarray | None,
    nclass: int,
    start_temperature: float,
    step: float,
    highest: float | None = 0.25,
    binning: int = 1,
    *,
    lowest: float = 0.0,
    seed: int = 0,
    on_round=None,
    comm=None,
    resume: Progress | None = None,
    max_shift: float = 0.0,
    update_shifts: bool = False,
    cache_dir: str | os.PathLike | None = None,
    memory_budget: float = MEMORY_BUDGET,
    start: str = "auto",
    oversample: int = 1,
    restarts: int | None = None,
    on_restart=None,
    symmetry: PointSymmetry | None = None,
    feature_checkpoint: str | os.PathLike | None = None,
    **options,
) -> tuple[MCOResult, list[tuple]]:
    """Classify particles by MCO-AC (simulated annealing around EXMX) into ``nclass`` classes;
    ``options`` as :func:`ac_rounds` (``local_search``, ``temperature``, ``criterion``,
    ``end_threshold``, ``allow_collapse``); the other parameters as :func:`mco_exmx`."""
    prep = as_preprocessing(particles, mask, highest, binning, lowest)
    run = nclass * _checked_oversample(oversample)
    f, w, herm, shift = _features_for(prep, run, comm, max_shift, cache_dir, memory_budget,
                                      symmetry, feature_checkpoint)  # fmt: skip
    proper = resume if resume is not None and resume.step > 0 else None
    labels = _start_of(prep, run, seed, start, (f, w, prep.band), comm, proper)

    def anneal(begin, chosen, on_round=None, resume=None):
        return ac_rounds(f, w, herm, begin, run, start_temperature, step, seed=chosen,
                         on_round=on_round, comm=comm, resume=resume, shift=shift,
                         **options)  # fmt: skip

    seed, labels, tried = _restarted(lambda begin, chosen: anneal(begin, chosen)[0],
                                     (f, w, herm, shift), run, seed, start, restarts, labels,
                                     resume, comm, on_restart)  # fmt: skip
    result, swaps = anneal(labels, seed, _seeded(on_round, seed, tried), proper)
    result.restarts = tried
    result = _finish(result, prep, (f, w, herm, shift), run, nclass, comm, update_shifts,
                     options.get("end_threshold", 0.05),
                     options.get("allow_collapse", False),
                     _random_start(start, labels))  # fmt: skip
    return result, swaps
