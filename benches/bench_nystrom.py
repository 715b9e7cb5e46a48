"""Benchmark the Nyström (landmark) CPCA against the exact one at N = 5000.

Simulated particles (``tomoclass.simulate``; box 32, lowpass 8, the simulator's four tilt
ranges, equal classes). For each SNR the full CCC matrix is computed once, and the landmark
block is its columns at ``m`` landmarks (``ccc --landmarks`` computes exactly these columns;
``tests/test_ccc.py`` checks that). Printed per ``m`` and neig:

- ``cos``: the smallest cosine of the principal angles between the exact and the Nyström
  top-neig eigenvector subspaces (1 = the same subspace);
- ``λ err``: the largest relative error of the top-neig eigenvalues;
- ARI of the Nyström labels against the exact CPCA's and against the truth;
- time of the eigen step, exact (``top_eigenpairs``, Lanczos at this N) ÷ Nyström, in the
  same process, and of the matrix work: N² against N·m correlations.

Usage: python benches/bench_nystrom.py [--particles 5000] [--classes 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tomoclass import _core
from tomoclass.ccc import LandmarkBlock, choose_landmarks, correlation_matrix
from tomoclass.cpca import cpca, nystrom_eigenpairs, top_eigenpairs
from tomoclass.mask import spherical_mask
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, simulate_particles


def subspace_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.svd(a.T @ b, compute_uv=False).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, k = args.particles, args.classes
    print(f"Nyström vs exact CPCA: N={n}, {k} classes, box 32, lowpass 8, "
          f"{_core.thread_count()} threads")  # fmt: skip
    print("| SNR | m | neig | cos | λ err | ARI vs exact | ARI vs truth (exact) "
          "| eigen time exact ÷ Nyström |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for snr in (0.3, 0.1):
        sim = simulate_particles(SimulationConfig(n_particles=n, n_classes=k, box=32, snr=snr,
                                                  seed=args.seed))  # fmt: skip
        matrix = correlation_matrix(sim.particle_stack(), spherical_mask(32), 8)
        exact_auto = cpca(matrix, "auto", k, args.seed)
        for m in (250, 500, 1000):
            landmarks = choose_landmarks(n, m, args.seed)
            block = LandmarkBlock(np.ascontiguousarray(matrix[:, landmarks]), landmarks)
            for neig in ("auto", k, 2 * k):
                exact = exact_auto if neig == "auto" else cpca(matrix, neig, k, args.seed)
                nys = cpca(block, neig, k, args.seed)
                count = min(exact.neig, nys.neig)
                start = time.perf_counter()
                values, vectors = top_eigenpairs(matrix, count, args.seed)
                t_exact = time.perf_counter() - start
                start = time.perf_counter()
                approx_values, approx = nystrom_eigenpairs(block, count)
                t_nys = time.perf_counter() - start
                cos = subspace_cos(vectors, approx)
                err = float(np.max(np.abs(approx_values - values) / np.abs(values)))
                shown = f"auto [{exact.neig}/{nys.neig}]" if neig == "auto" else str(neig)
                print(f"| {snr} | {m} | {shown} | {cos:.3f} | {err:.3f} "
                      f"| {adjusted_rand_index(exact.labels, nys.labels):.3f} "
                      f"| {adjusted_rand_index(sim.labels, nys.labels):.3f} "
                      f"({adjusted_rand_index(sim.labels, exact.labels):.3f}) "
                      f"| {t_exact / t_nys:.0f}× |")  # fmt: skip
    print(f"\nmatrix work: N·m of N² correlations, e.g. m=1000 at N=100,000: "
          f"{1000 / 100_000:.0%} (the tiles are the same kernel)")  # fmt: skip


if __name__ == "__main__":
    main()
