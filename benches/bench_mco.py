"""Benchmark MCO: the cost of an EXMX iteration and of AC rounds, and accuracy against CPCA.

1. ``iteration``: one EXMX iteration (class means + scores of every particle against every
   class, in the Rust core) at N particles and K classes, box 32, lowpass 8, features of
   simulated particles; goal ≤ 1 s at N = 10,000, K = 20 on 2 cores.
2. ``shift``: one scoring with ``--max-shift 2`` (an inverse FFT per particle and class)
   against numpy doing the same inverse FFTs, timed on a subset and scaled to N.
3. ``ac``: 10 annealing rounds (one EXMX iteration each) at N = 2000.
4. ``accuracy``: ARI against the truth of CPCA (neig auto), EXMX (random start) and AC
   (T = 2·sigma, step 0.2, one EXMX iteration per round) on the same simulated sets
   (300 particles, box 32, lowpass 8, the simulator's four tilt ranges), mean of 2 seeds.

Usage: python benches/bench_mco.py [--n 10000] [--classes 20] [--ac-n 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tomoclass import _core
from tomoclass.ccc import correlation_matrix
from tomoclass.cpca import cpca
from tomoclass.features import ParticleStack, Preprocessing
from tomoclass.mask import spherical_mask
from tomoclass.mco import ac_rounds, exmx_iterations, random_labels
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, simulate_particles


def simulated(n: int, classes: int, snr: float, seed: int):
    sim = simulate_particles(SimulationConfig(n_particles=n, n_classes=classes, box=32,
                                              snr=snr, seed=seed))  # fmt: skip
    return sim.labels, sim.particle_stack()


def features(stack: ParticleStack):
    feats = Preprocessing.for_band(stack, spherical_mask(32), 8).features()
    return np.asarray(feats.f), np.asarray(feats.w), feats.band.herm


def bench_iteration(n: int, classes: int) -> None:
    _, stack = simulated(n, 3, 0.1, 0)
    f, w, herm = features(stack)
    del stack
    labels = random_labels(n, classes, 0)
    exmx_iterations(f, w, herm, labels, classes, 1, 0.0)  # warm up
    start = time.perf_counter()
    exmx_iterations(f, w, herm, labels, classes, 1, 0.0)
    took = time.perf_counter() - start
    print(f"iteration N={n} K={classes} box=32 lowpass=8 M={w.shape[1]} "
          f"threads={_core.thread_count()}: one EXMX iteration {took:.2f} s")  # fmt: skip


def bench_shift(n: int, classes: int, radius: float = 2.0, subset: int = 50) -> None:
    """One EXMX scoring with --max-shift against numpy doing the same inverse FFTs."""
    _, stack = simulated(n, classes, 0.1, 3)
    feats = Preprocessing.for_band(stack, spherical_mask(32), 8).features()
    band = feats.band
    f, w, herm = np.asarray(feats.f), np.asarray(feats.w), band.herm
    means, _ = _core.mco_class_means(f, w, random_labels(n, classes, 0).tolist(), classes, 0.05)
    start = time.perf_counter()
    _core.mco_shift_scores(f, w, herm, band.flat.tolist(), 32, means, radius)
    ours = time.perf_counter() - start
    m, size = w.shape[1], 32 * 32 * 17
    k = np.arange(-int(radius), int(radius) + 1)
    z, y, x = np.meshgrid(k, k, k, indexing="ij")
    near = (x**2 + y**2 + z**2) <= radius**2
    offsets = ((z[near] % 32) * 32 + (y[near] % 32)) * 32 + (x[near] % 32)
    a = means[:, :m] - 1j * means[:, m:]
    start = time.perf_counter()
    for i in range(subset):
        fi = (f[i, :m] + 1j * f[i, m:]) * w[i]
        for c in range(classes):
            spectrum = np.zeros(size, np.complex64)
            spectrum[band.flat] = fi * a[c]
            corr = np.fft.irfftn(spectrum.reshape(32, 32, 17), (32, 32, 32), axes=(0, 1, 2))
            corr.ravel()[offsets].max()
    numpy = (time.perf_counter() - start) * n / subset
    print(f"shift    N={n} K={classes} max-shift={radius} box=32 lowpass=8 "
          f"threads={_core.thread_count()}: tomoclass {ours:.2f} s, numpy inverse FFTs "
          f"{numpy:.2f} s (timed on {subset} particles); ratio {numpy / ours:.1f}")  # fmt: skip


def bench_ac(n: int) -> None:
    _, stack = simulated(n, 4, 0.3, 1)
    f, w, herm = features(stack)
    start = time.perf_counter()
    ac_rounds(f, w, herm, random_labels(n, 4, 0), 4, 2.0, 0.2, local_search=1)
    took = time.perf_counter() - start
    print(f"ac       N={n} K=4 box=32 lowpass=8 threads={_core.thread_count()}: "
          f"10 rounds + final descent {took:.2f} s")  # fmt: skip


def bench_accuracy(seeds: int) -> None:
    print("| classes | SNR | CPCA (neig auto) | MCO-EXMX | MCO-AC |")
    print("| --- | --- | --- | --- | --- |")
    for classes in (2, 4, 6):
        for snr in (0.3, 0.1):
            scores = {"cpca": [], "exmx": [], "ac": []}
            for seed in range(seeds):
                truth, stack = simulated(300, classes, snr, seed)
                matrix = correlation_matrix(stack, spherical_mask(32), 8)
                scores["cpca"].append(adjusted_rand_index(truth, cpca(matrix, "auto", classes,
                                                                      seed).labels))  # fmt: skip
                f, w, herm = features(stack)
                start = random_labels(300, classes, seed)
                exmx = exmx_iterations(f, w, herm, start, classes, 50, 0.0)
                scores["exmx"].append(adjusted_rand_index(truth, exmx.labels))
                ac, _ = ac_rounds(f, w, herm, start, classes, 2.0, 0.2, local_search=1,
                                  seed=seed)  # fmt: skip
                scores["ac"].append(adjusted_rand_index(truth, ac.labels))
            row = " | ".join(f"{np.mean(scores[k]):.2f}" for k in ("cpca", "exmx", "ac"))
            print(f"| {classes} | {snr} | {row} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--ac-n", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    bench_iteration(args.n, args.classes)
    bench_shift(args.ac_n // 2, 4)
    bench_ac(args.ac_n)
    bench_accuracy(args.seeds)


if __name__ == "__main__":
    main()
