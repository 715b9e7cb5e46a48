"""Merging over-sampled classes by hierarchical clustering of their averages.

PyTom's advice: classify into more classes than expected, so that small classes are not
swallowed, then merge the look-alikes. The class averages are compared by their constrained
correlation (Rust core, masked, band-passed, no wedge: averages are fully sampled), the
distance ``1 − CCC`` is clustered with average linkage (scipy), and classes are merged by
explicit groups, into a number of clusters, or below a distance threshold. Merged classes
are numbered 0, 1, … in the order of their first member class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomoclass.average import ClassAverage
from tomoclass.ccc import correlation_matrix
from tomoclass.errors import TomoclassError
from tomoclass.features import ParticleStack
from tomoclass.wedge import NO_WEDGE


@dataclass
class Merge:
    """How classes merge: ``mapping`` old class label → new class label, the linkage of the
    averages (scipy's format) and the correlation matrix between them."""

    mapping: dict[str, str]
    linkage: np.ndarray
    correlation: np.ndarray


def average_correlation(
    averages: list[ClassAverage], mask: np.ndarray, lowpass: float
) -> np.ndarray:
    """CCC between class averages (no wedge), masked and band-passed up to ``lowpass``."""
    if len(averages) < 2:
        raise TomoclassError(f"merging needs at least 2 classes, the list has {len(averages)}")
    volumes = np.stack([a.volume for a in averages])
    k = len(averages)
    identity = np.repeat(np.eye(3)[None], k, 0)
    stack = ParticleStack(volumes, identity, np.zeros((k, 3)), [NO_WEDGE] * k)
    return correlation_matrix(stack, mask, lowpass).astype(np.float64)


def parse_groups(text: str, labels: list[str]) -> list[list[str]]:
    """``"0,2,3;1,4;5,6"`` as groups of class labels; classes named nowhere stay alone."""
    groups = [[c.strip() for c in group.split(",") if c.strip()] for group in text.split(";")]
    groups = [g for g in groups if g]
    named = [c for g in groups for c in g]
    unknown = sorted(set(named) - set(labels))
    if unknown:
        raise TomoclassError(f"groups: no class {', '.join(unknown)} in the list")
    twice = sorted({c for c in named if named.count(c) > 1})
    if twice:
        raise TomoclassError(f"groups: class {', '.join(twice)} named more than once")
    return groups + [[c] for c in labels if c not in named]


def merge_plan(
    averages: list[ClassAverage],
    mask: np.ndarray,
    lowpass: float,
    *,
    groups: str | None = None,
    n_clusters: int | None = None,
    threshold: float | None = None,
) -> Merge:
    """Decide the merge: exactly one of ``groups``, ``n_clusters`` or ``threshold``."""
    if sum(v is not None for v in (groups, n_clusters, threshold)) != 1:
        raise TomoclassError("give exactly one of groups, n-clusters or threshold")
    labels = [a.label for a in averages]
    correlation = average_correlation(averages, mask, lowpass)
    distance = np.clip(1.0 - correlation, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    tree = linkage(squareform(distance, checks=False), method="average")
    if groups is not None:
        clusters = {c: i for i, g in enumerate(parse_groups(groups, labels)) for c in g}
        assignment = [clusters[c] for c in labels]
    elif n_clusters is not None:
        if not 1 <= n_clusters <= len(labels):
            raise TomoclassError(f"n-clusters must be within 1..{len(labels)}, got {n_clusters}")
        assignment = fcluster(tree, n_clusters, criterion="maxclust").tolist()
    else:
        if threshold < 0:
            raise TomoclassError(f"threshold must be >= 0, got {threshold}")
        assignment = fcluster(tree, threshold, criterion="distance").tolist()
    order = list(dict.fromkeys(assignment))  # new numbers by first member class
    mapping = {c: str(order.index(a)) for c, a in zip(labels, assignment, strict=True)}
    return Merge(mapping, tree, correlation)


def score_linkage(record: dict, n: int) -> np.ndarray:
    """The merges of :func:`tomoclass.mco.merge_classes` (its ``record``) as a linkage in
    scipy's format: leaves are the original classes, heights the total score lost per
    particle since the start (made non-decreasing, as a dendrogram needs)."""
    ids = {(k,): k for k in range(len(record["sizes"]))}
    rows, height = [], 0.0
    for step in record["steps"]:
        a, b = (ids[tuple(group)] for group in step["joined"])
        height = max(height, (record["start_total_score"] - step["total_score"]) / n)
        joined = tuple(sorted(step["joined"][0] + step["joined"][1]))
        ids[joined] = len(ids)
        rows.append([a, b, height, len(joined)])
    return np.array(rows, dtype=np.float64)


def dendrogram_png(tree: np.ndarray, leaves: list[str], path, distance: str) -> None:
    """The dendrogram of linkage ``tree`` with leaf labels ``leaves``; ``distance`` names
    what the heights are."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import dendrogram

    from tomoclass.io.files import atomic_output

    figure, axes = plt.subplots(figsize=(max(4.0, 0.6 * len(leaves) + 2), 4), dpi=120)
    dendrogram(tree, labels=leaves, ax=axes, leaf_rotation=60)
    axes.set_ylabel(distance)
    axes.set_title("merging the classes")
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)


def score_dendrogram_png(record: dict, n: int, path) -> None:
    """The dendrogram of a merge by total score (:func:`score_linkage`; ``n`` particles),
    leaves labelled with class, size and new class."""
    sizes, mapping = record["sizes"], record["mapping"]
    leaves = [f"{k} (n={size}) → {mapping[k]}" for k, size in enumerate(sizes)]
    dendrogram_png(score_linkage(record, n), leaves, path, "total score lost per particle")


def average_dendrogram_png(plan: Merge, averages: list[ClassAverage], path) -> None:
    """The dendrogram of a merge by the class averages, leaves labelled with class, size and
    new class."""
    leaves = [f"{a.label} (n={a.count}) → {plan.mapping[a.label]}" for a in averages]
    dendrogram_png(plan.linkage, leaves, path, "1 − CCC between class averages")
