"""Benchmark the CCC matrix: tomoclass against PyTom's per-pair method and numpy's matmul.

Three measurements, each printed with N, box, lowpass and threads:

1. ``pairs``: the whole matrix (features + tiles) against the per-pair baseline that PyTom
   runs (numpy/scipy: align both particles with map_coordinates, mask, FFT, cross wedges and
   band, inverse FFTs, masked NCC), timed on a subset of pairs and scaled to N(N−1)/2.
2. ``kernel``: the tile kernel's throughput (GFLOP/s of its three matrix products) as a
   fraction of numpy's float32 matmul throughput on matrices of the same size.
3. ``command`` (``--command N``): the whole ``tomoclass ccc`` command on N simulated particles
   on disk (reading, features, matrix, CSV and NPY writing), with its wall time and peak
   memory (RSS) beyond the N×N float32 matrix.

Usage: python benches/bench_ccc.py [--n 2000] [--box 32] [--lowpass 8] [--pairs 40]
                                   [--command 10000] [--workdir bench-out]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from tomoclass import _core
from tomoclass.ccc import correlation_matrix
from tomoclass.features import ParticleStack, Preprocessing
from tomoclass.mask import spherical_mask
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation
from tomoclass.wedge import weights


def simulated_stack(n: int, box: int, seed: int = 0) -> ParticleStack:
    config = SimulationConfig(n_particles=n, n_classes=3, box=box, seed=seed)
    return simulate_particles(config).particle_stack()


def pytom_pair(stack: ParticleStack, i: int, j: int, mask: np.ndarray, band: np.ndarray) -> float:
    """One CCC as PyTom computes it, in numpy/scipy."""
    n = stack.volumes.shape[1]
    c = n // 2
    z, y, x = np.indices((n, n, n))
    p = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float64) - c
    spectra, wedge = [], []
    for k in (i, j):
        q = p @ stack.rotations[k].T + c + stack.shifts[k]
        aligned = ndimage.map_coordinates(stack.volumes[k], q[:, ::-1].T, order=3, mode="constant")
        spectra.append(np.fft.rfftn(aligned.reshape(n, n, n) * mask))
        wedge.append(weights(stack.wedges[k], n, stack.rotations[k]))
    a = np.fft.irfftn(spectra[0] * wedge[0] * wedge[1] * band, (n, n, n), axes=(0, 1, 2))
    b = np.fft.irfftn(spectra[1] * wedge[1] * wedge[0] * band, (n, n, n), axes=(0, 1, 2))
    m = mask / mask.sum()
    da, db = a - (a * m).sum(), b - (b * m).sum()
    return float((m * da * db).sum() / np.sqrt((m * da * da).sum() * (m * db * db).sum()))


def bench_pairs(n: int, box: int, lowpass: float, subset: int, threads: int) -> None:
    stack = simulated_stack(n, box)
    mask = spherical_mask(box)
    start = time.perf_counter()
    correlation_matrix(stack, mask, lowpass)
    ours = time.perf_counter() - start
    band = _core.band_mask([box] * 3, 0.0, float(lowpass))
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, n, (subset, 2))
    start = time.perf_counter()
    for i, j in pairs:
        pytom_pair(stack, int(i), int(j), mask, band)
    per_pair = (time.perf_counter() - start) / subset
    baseline = per_pair * n * (n - 1) / 2
    print(
        f"pairs    N={n} box={box} lowpass={lowpass} threads={threads}: tomoclass {ours:.2f} s, "
        f"per-pair baseline {per_pair * 1e3:.2f} ms/pair -> {baseline:.0f} s "
        f"(timed on {subset} pairs); ratio {baseline / ours:.0f}"
    )


def bench_kernel(n: int, box: int, lowpass: float, threads: int) -> None:
    stack = simulated_stack(min(n, 2048), box, seed=2)
    feats = Preprocessing.for_band(stack, spherical_mask(box), lowpass).features()
    x, p, q = _core.ccc_factors(feats.f, feats.w, feats.band.herm)
    rows, m = len(x), feats.w.shape[1]
    tiles = [(r, min(r + 512, rows), c, min(c + 512, rows)) for r in range(0, rows, 512)
             for c in range(0, rows, 512)]  # fmt: skip
    _core.ccc_tiles(x, p, q, tiles[:2])  # warm up
    start = time.perf_counter()
    _core.ccc_tiles(x, p, q, tiles)
    ours = time.perf_counter() - start
    flops = 2.0 * rows * rows * (2 * m + m + m)  # X·Xᵀ, P·Qᵀ, Q·Pᵀ
    a = np.ascontiguousarray(x)
    np.matmul(a, a.T)
    start = time.perf_counter()
    np.matmul(a, a.T)
    np.matmul(p, q.T)
    np.matmul(q, p.T)
    blas = time.perf_counter() - start
    print(
        f"kernel   N={rows} M={m} box={box} lowpass={lowpass} threads={threads}: "
        f"tomoclass {flops / ours / 1e9:.1f} GFLOP/s, numpy float32 matmul "
        f"{flops / blas / 1e9:.1f} GFLOP/s; fraction {blas / ours:.2f}"
    )


def bench_command(n: int, box: int, lowpass: float, workdir: Path, threads: int) -> None:
    data = workdir / f"sim_{n}_{box}"
    if not (data / "particles.xml").exists():
        print(f"simulating {n} particles into {data} (once) ...", flush=True)
        sim = simulate_particles(SimulationConfig(n_particles=n, n_classes=3, box=box))
        write_simulation(sim, data)
        del sim
    out = workdir / f"ccc_{n}_{box}"
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tomoclass.cli", "ccc", "-p", str(data / "particles.xml"),
               "-m", str(data / "mask.em"), "-f", str(lowpass), "-o", str(out)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # GiB (ru_maxrss: KiB)
    matrix = n * n * 4 / 2**30
    print(
        f"command  N={n} box={box} lowpass={lowpass} threads={threads}: "
        f"tomoclass ccc {wall:.1f} s, "
        f"peak RSS {peak:.2f} GiB = matrix {matrix:.2f} GiB + {peak - matrix:.2f} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="particles for pairs and kernel")
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--lowpass", type=float, default=8)
    parser.add_argument("--pairs", type=int, default=40, help="pairs timed for the baseline")
    parser.add_argument("--command", type=int, default=0, help="particles for the command run")
    parser.add_argument("--workdir", type=Path, default=Path("bench-out"))
    args = parser.parse_args()
    threads = _core.thread_count()
    bench_pairs(args.n, args.box, args.lowpass, args.pairs, threads)
    bench_kernel(args.n, args.box, args.lowpass, threads)
    if args.command:
        bench_command(args.command, args.box, args.lowpass, args.workdir, threads)


if __name__ == "__main__":
    main()
