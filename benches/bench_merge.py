"""Benchmark oversample-then-merge: does a rare class survive?

Simulated particles (box 32, lowpass 8, the simulator's four tilt ranges) of 3 classes with
proportions 50/45/5 %, at each SNR of ``--snr``. Each method classifies into 3 classes
directly, or into 9 and merges back to 3: by the distance between the class averages
(``tomoclass merge --n-clusters 3``), or by total score as ``cpca --oversample 3`` does, and
``mco-exmx --oversample 3`` (by total score, then refined by EXMX). ``classify`` for comparison.
Reported: ARI against the truth and the rare class's F1 score (the best-matching class:
2·precision·recall / (precision + recall)), mean over seeds, beside the leave-one-out limit
(every particle scored against the class averages of the true labels of all others). Then
the cost of merging by total score: ``--merge-classes`` EXMX classes of ``--merge-n``
particles merged to one, against the same merges with every candidate scored in full.

Usage: python benches/bench_merge.py [--particles 400] [--seeds 3] [--snr 0.3,0.1]
                                     [--merge-n 4000] [--merge-classes 30]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from tomoclass.average import class_averages
from tomoclass.ccc import correlation_matrix
from tomoclass.classify import classify
from tomoclass.cpca import cpca
from tomoclass.features import ParticleStack, Preprocessing
from tomoclass.mask import spherical_mask
from tomoclass.mco import (
    CANDIDATES,
    _joined,
    class_scores,
    exmx_iterations,
    leave_one_out_scores,
    mco_exmx,
    merge_classes,
    random_labels,
    total_score,
)
from tomoclass.merge import merge_plan
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, simulate_particles


def rare_f1(truth: np.ndarray, labels: np.ndarray, rare: int = 2) -> float:
    best = 0.0
    for k in np.unique(labels):
        hit = np.sum((labels == k) & (truth == rare))
        if hit:
            precision, recall = hit / np.sum(labels == k), hit / np.sum(truth == rare)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def merged(stack: ParticleStack, labels: np.ndarray, classes: int) -> np.ndarray:
    averages = class_averages(stack, labels=labels)
    plan = merge_plan(averages, spherical_mask(32), 8, n_clusters=classes)
    return np.array([int(plan.mapping[str(v)]) for v in labels])


def exmx(f: np.ndarray, w: np.ndarray, herm: np.ndarray, classes: int, seed: int) -> np.ndarray:
    start = random_labels(len(f), classes, seed)
    return exmx_iterations(f, w, herm, start, classes, 50, 0.0).labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--snr", default="0.3,0.1")
    parser.add_argument("--merge-n", type=int, default=4000, help="particles of the cost run")
    parser.add_argument("--merge-classes", type=int, default=30, help="classes merged there")
    args = parser.parse_args()
    print(f"N={args.particles}, 3 classes 50/45/5 %, box 32, lowpass 8, mean of {args.seeds} "
          "seeds; ARI / rare-class F1")  # fmt: skip
    snrs = [float(v) for v in args.snr.split(",")]
    print("| method | " + " | ".join(f"SNR {v}" for v in snrs) + " |")
    print("| --- " * (len(snrs) + 1) + "|")
    table = [run_snr(args, snr) for snr in snrs]
    for name in table[0]:
        cells = " | ".join("{:.2f} / {:.2f}".format(*np.mean(t[name], axis=0)) for t in table)
        print(f"| {name} | {cells} |")
    cost(args.merge_n, args.merge_classes)


def cost(n: int, classes: int) -> None:
    """Merging ``classes`` EXMX classes down to one by total score, as ``--oversample``
    does, against scoring every particle against every class for each candidate pair (the
    same choices, computed in full)."""
    sim = simulate_particles(SimulationConfig(n_particles=n, n_classes=3, box=32, snr=0.1,
                                              seed=0))  # fmt: skip
    feats = Preprocessing.for_band(sim.particle_stack(), spherical_mask(32), 8).features()
    f, w, herm = np.asarray(feats.f), np.asarray(feats.w), feats.band.herm
    labels = exmx(f, w, herm, classes, 0)
    start = time.perf_counter()
    _, record = merge_classes(f, w, herm, labels, classes, 1)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    full = merge_in_full(f, w, herm, labels, classes)
    slow = time.perf_counter() - start
    same = [s["joined"] for s in record["steps"]] == full
    threads = os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))
    print(f"\ncost: merging {classes} classes to 1, N={n}, box 32, lowpass 8, {threads} threads: "
          f"{fast:.2f} s; every candidate scored in full {slow:.2f} s: {slow / fast:.1f}x "
          f"faster, same merges: {same}")  # fmt: skip


def merge_in_full(f, w, herm, labels, classes: int) -> list:
    """The merges of :func:`tomoclass.mco.merge_classes` with the total score of every
    candidate recomputed over all particles and classes (the baseline)."""
    groups = [[k] for k in range(classes)]
    steps = []
    while len(groups) > 1:
        k = len(groups)
        scores = class_scores(f, w, herm, labels, k)
        pairs = set()
        for a in range(k):
            members = labels == a
            affinity = scores[members].mean(axis=0) if members.any() else np.zeros(k)
            near = [int(b) for b in np.argsort(-affinity, kind="stable") if b != a]
            pairs.update((min(a, b), max(a, b)) for b in (near if not members.any() else
                                                          near[:CANDIDATES]))  # fmt: skip
        totals = {(a, b): total_score(f, w, herm, _joined(labels, a, b), k - 1)
                  for a, b in sorted(pairs)}  # fmt: skip
        a, b = max(totals, key=totals.get)
        steps.append([groups[a], groups[b]])
        labels = _joined(labels, a, b)
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]
    return steps


def run_snr(args, snr: float) -> dict[str, list]:
    results: dict[str, list] = {}
    for seed in range(args.seeds):
        sim = simulate_particles(SimulationConfig(n_particles=args.particles, n_classes=3, box=32,
                                                  snr=snr, fractions=(0.5, 0.45, 0.05),
                                                  seed=seed))  # fmt: skip
        stack = sim.particle_stack()
        matrix = correlation_matrix(stack, spherical_mask(32), 8)
        prep = Preprocessing.for_band(stack, spherical_mask(32), 8)
        feats = prep.features()
        f, w = np.asarray(feats.f), np.asarray(feats.w)
        direct = {"iterations": 50, "end_threshold": 0.0, "seed": seed, "start": "random"}
        runs = {
            "leave-one-out limit": leave_one_out_scores(
                f, w, feats.band.herm, sim.labels, 3
            ).argmax(axis=1),
            "CPCA, 3 classes": cpca(matrix, "auto", 3, seed).labels,
            "CPCA, 9 merged to 3 by averages": merged(
                stack, cpca(matrix, "auto", 9, seed).labels, 3
            ),
            "CPCA --oversample 3 (by total score)": merge_classes(
                f, w, feats.band.herm, cpca(matrix, "auto", 9, seed).labels, 9, 3
            )[0],
            "EXMX, 3 classes": exmx(f, w, feats.band.herm, 3, seed),
            "EXMX, 9 merged to 3 by averages": merged(
                stack, exmx(f, w, feats.band.herm, 9, seed), 3
            ),
            "EXMX --oversample 3 (by total score), one start": mco_exmx(
                prep, None, 3, None, oversample=3, restarts=1, **direct
            ).labels,
            "EXMX --oversample 3 --start random (3 starts, the default)": mco_exmx(
                prep, None, 3, None, oversample=3, **direct
            ).labels,
            "classify, 3 classes": classify(prep, None, 3, None, seed=seed).labels,
        }
        for name, labels in runs.items():
            results.setdefault(name, []).append(
                (adjusted_rand_index(sim.labels, labels), rare_f1(sim.labels, labels))
            )
    return results


if __name__ == "__main__":
    main()
