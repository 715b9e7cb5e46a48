"""Benchmark CPCA: accuracy on simulated data, and the cost of the eigen step.

1. ``accuracy``: adjusted Rand index (ARI) of CPCA against the truth on simulated particles
   (``tomoclass.simulate``; box 32, lowpass 8, the simulator's four tilt ranges) for several
   SNRs, numbers of classes and neig choices (``auto`` and fixed), and for a 90/10 imbalance.
   Each cell is the mean over ``--seeds`` data sets.
2. ``eigen``: the top-eigenpair step at N particles (Lanczos above 4000) against a full
   ``numpy.linalg.svd`` of the same matrix, as PyTom does. A full SVD at large N takes long,
   so it is timed at ``--svd-n`` and scaled by N³ unless ``--svd-n`` equals N.

Usage: python benches/bench_cpca.py [--particles 300] [--seeds 2] [--eigen-n 10000]
                                    [--svd-n 3000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tomoclass import _core
from tomoclass.ccc import correlation_matrix
from tomoclass.cpca import SPECTRUM, cpca, top_eigenpairs
from tomoclass.mask import spherical_mask
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, simulate_particles


def dataset(n: int, classes: int, snr: float, seed: int, fractions=None):
    sim = simulate_particles(SimulationConfig(n_particles=n, n_classes=classes, box=32, snr=snr,
                                              seed=seed, fractions=fractions))  # fmt: skip
    return sim.labels, correlation_matrix(sim.particle_stack(), spherical_mask(32), 8)


def accuracy(n: int, seeds: int) -> None:
    print(f"accuracy: N={n}, box 32, lowpass 8, mean ARI over {seeds} seeds (neig used in [])")
    print("| classes | SNR | neig auto | neig = classes | neig = 2 × classes |")
    print("| --- | --- | --- | --- | --- |")
    for classes in (2, 4, 6):
        for snr in (1.0, 0.3, 0.1):
            cells = {"auto": [], "k": [], "2k": []}
            used = []
            for seed in range(seeds):
                truth, matrix = dataset(n, classes, snr, seed)
                for key, neig in (("auto", "auto"), ("k", classes), ("2k", 2 * classes)):
                    result = cpca(matrix, neig, classes, seed)
                    cells[key].append(adjusted_rand_index(truth, result.labels))
                    if key == "auto":
                        used.append(result.neig)
            row = [f"{np.mean(cells[k]):.2f}" for k in ("auto", "k", "2k")]
            print(f"| {classes} | {snr} | {row[0]} [{'/'.join(map(str, used))}] | {row[1]} "
                  f"| {row[2]} |")  # fmt: skip
    print("\nimbalance 90/10, 2 classes, neig auto:")
    print("| SNR | ARI | rare class found (share of its particles in one class) |")
    print("| --- | --- | --- |")
    for snr in (1.0, 0.3, 0.1):
        aris, found = [], []
        for seed in range(seeds):
            truth, matrix = dataset(n, 2, snr, seed, fractions=(0.9, 0.1))
            labels = cpca(matrix, "auto", 2, seed).labels
            aris.append(adjusted_rand_index(truth, labels))
            rare = labels[truth == 1]
            found.append(np.bincount(rare).max() / len(rare))
        print(f"| {snr} | {np.mean(aris):.2f} | {np.mean(found):.2f} |")


def eigen(n: int, svd_n: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, 64)).astype(np.float32)
    norms = np.linalg.norm(base, axis=1, keepdims=True)
    matrix = (base / norms) @ (base / norms).T  # a correlation-like matrix of rank 64
    start = time.perf_counter()
    top_eigenpairs(matrix, 10)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    cpca(matrix, "auto", 4)
    auto = time.perf_counter() - start
    small = matrix[:svd_n, :svd_n].astype(np.float64)
    start = time.perf_counter()
    np.linalg.svd(small)
    svd = (time.perf_counter() - start) * (n / svd_n) ** 3
    scaled = "" if svd_n == n else f" (timed at N={svd_n}, scaled by N³)"
    print(
        f"eigen    N={n} threads={_core.thread_count()}: top 10 eigenpairs {ours:.1f} s, "
        f"cpca with neig auto ({SPECTRUM} eigenvalues examined) {auto:.1f} s; "
        f"full numpy.linalg.svd {svd:.0f} s{scaled}; ratio {svd / ours:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eigen-n", type=int, default=10000)
    parser.add_argument("--svd-n", type=int, default=3000)
    args = parser.parse_args()
    eigen(args.eigen_n, args.svd_n)
    accuracy(args.particles, args.seeds)


if __name__ == "__main__":
    main()
