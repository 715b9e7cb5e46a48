"""Benchmark the CCC matrix: the whole ``tomoclass ccc`` command against PyTom's per-pair
method, the tile kernel against numpy's matmul, and the CSV writer.

For each ``N:box:lowpass`` set (default ``2000:32:8`` and ``1000:64:16``; simulated particles
on disk, made once in ``--workdir``), one run prints, with N, box, lowpass and threads:

1. ``command``: the wall time of ``tomoclass ccc`` as a user runs it (reading the EM files,
   features, matrix, writing NPY, and CSV unless ``--no-csv``), against the per-pair method in
   numpy/scipy on the same particles, timed on ``--pairs`` pairs and scaled to N(N−1)/2. Two
   baselines: PyTom's whole method per pair (align both particles with
   ``map_coordinates(order=3)``, mask, FFT, cross wedges and band, inverse FFTs, masked NCC),
   and the same with every particle aligned, masked and transformed once beforehand (only
   the cross-filtering, inverse FFTs and NCC per pair: the faster, fairer baseline).
2. ``kernel``: the tile kernel on the tiles the command computes (the upper triangle) against
   numpy's float32 matmul (OpenBLAS) making the same matrix from the same factors
   (``X·Xᵀ``, which numpy runs as a symmetric product, and ``P·Qᵀ``); interleaved, best of 5.
3. ``csv``: ``correlation_matrix.csv``'s formatting of the command's matrix in MB/s, against
   ``numpy.savetxt`` (``%.9g``, which round-trips float32) on the same matrix.

Usage: python benches/bench_ccc.py [--sets 2000:32:8,1000:64:16] [--pairs 20]
                                   [--memory 10000] [--workdir bench-out]
``--memory N`` also runs the command on N particles of 32³ and prints its peak memory.
Threads: RAYON_NUM_THREADS (default: all cores); numpy's OpenBLAS uses the same cores.
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from tomoclass import _core
from tomoclass.ccc import tile_grid
from tomoclass.features import ParticleStack, Preprocessing
from tomoclass.io import read_volume
from tomoclass.mask import spherical_mask
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation
from tomoclass.wedge import weights


def simulation(n: int, box: int) -> SimulationConfig:
    return SimulationConfig(n_particles=n, n_classes=3, box=box, seed=0)


def on_disk(n: int, box: int, workdir: Path) -> Path:
    """The simulated set written once into ``workdir``; its folder."""
    data = workdir / f"sim_{n}_{box}"
    if not (data / "particles.xml").exists():
        print(f"simulating {n} particles of {box}³ into {data} (once) ...", flush=True)
        write_simulation(simulate_particles(simulation(n, box)), data)
    return data


def run_ccc(data: Path, lowpass: float, out: Path, *flags: str) -> tuple[float, float]:
    """Wall time (s) and peak RSS (GiB) of ``tomoclass ccc`` on the set in ``data``."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tomoclass.cli", "ccc", "-p", str(data / "particles.xml"),
               "-m", str(data / "mask.em"), "-f", str(lowpass), "-o", str(out), *flags]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def aligned_spectrum(stack: ParticleStack, k: int, mask: np.ndarray) -> np.ndarray:
    """PyTom's per-particle step: align with map_coordinates(order=3), mask, rFFT."""
    n = stack.volumes.shape[1]
    c = n // 2
    z, y, x = np.indices((n, n, n))
    p = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float64) - c
    q = p @ stack.rotations[k].T + c + stack.shifts[k]
    aligned = ndimage.map_coordinates(stack.volumes[k], q[:, ::-1].T, order=3, mode="constant")
    return np.fft.rfftn(aligned.reshape(n, n, n) * mask)


def pair_ncc(sa, sb, wa, wb, band: np.ndarray, mask: np.ndarray) -> float:
    """PyTom's per-pair step: cross wedges and band, inverse FFTs, masked NCC."""
    n = mask.shape[0]
    a = np.fft.irfftn(sa * wa * wb * band, (n, n, n), axes=(0, 1, 2))
    b = np.fft.irfftn(sb * wb * wa * band, (n, n, n), axes=(0, 1, 2))
    m = mask / mask.sum()
    da, db = a - (a * m).sum(), b - (b * m).sum()
    return float((m * da * db).sum() / np.sqrt((m * da * da).sum() * (m * db * db).sum()))


def per_pair_times(stack: ParticleStack, mask, lowpass: float, pairs: int) -> tuple[float, float]:
    """Seconds per pair of PyTom's whole method, and of its per-pair step alone."""
    n = stack.volumes.shape[1]
    band = _core.band_mask([n] * 3, 0.0, float(lowpass))
    chosen = np.random.default_rng(1).integers(0, len(stack), (pairs, 2))

    def wedge(k):
        return weights(stack.wedges[k], n, stack.rotations[k])

    start = time.perf_counter()
    for i, j in chosen:
        pair_ncc(aligned_spectrum(stack, i, mask), aligned_spectrum(stack, j, mask),
                 wedge(i), wedge(j), band, mask)  # fmt: skip
    whole = (time.perf_counter() - start) / pairs
    ready = {k: (aligned_spectrum(stack, k, mask), wedge(k)) for k in set(chosen.ravel())}
    start = time.perf_counter()
    for i, j in chosen:
        pair_ncc(ready[i][0], ready[j][0], ready[i][1], ready[j][1], band, mask)
    return whole, (time.perf_counter() - start) / pairs


def bench_command(n, box, lowpass, pairs, workdir, threads) -> np.ndarray:
    data = on_disk(n, box, workdir)
    out = workdir / f"ccc_{n}_{box}"
    with_csv, _ = run_ccc(data, lowpass, out)
    without, _ = run_ccc(data, lowpass, workdir / f"ccc_{n}_{box}_nocsv", "--no-csv")
    stack = simulate_particles(simulation(n, box)).particle_stack()
    whole, step = per_pair_times(stack, read_volume(data / "mask.em"), lowpass, pairs)
    total = n * (n - 1) / 2
    head = f"command  N={n} box={box} lowpass={lowpass} threads={threads}:"
    print(f"{head} tomoclass ccc {with_csv:.2f} s with CSV, {without:.2f} s without")
    for name, per in (("whole method", whole), ("per-pair step only", step)):
        base = per * total
        print(f"{head}   vs PyTom's {name} {per * 1e3:.2f} ms/pair -> {base:.0f} s "
              f"({pairs} pairs timed): ratio {base / with_csv:.0f} with CSV, "
              f"{base / without:.0f} without")  # fmt: skip
    return np.load(out / "correlation_matrix.npy")


def best_interleaved(functions: dict, repeats: int = 5) -> dict:
    """Shortest wall time of each function, the functions run in turn ``repeats`` times."""
    best = dict.fromkeys(functions, float("inf"))
    for fn in functions.values():
        fn()  # warm up
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def bench_kernel(n: int, box: int, lowpass: float, threads: int) -> None:
    stack = simulate_particles(simulation(n, box)).particle_stack()
    feats = Preprocessing.for_band(stack, spherical_mask(box), lowpass).features()
    x, p, q = _core.ccc_factors(feats.f, feats.w, feats.band.herm)
    tiles = tile_grid(n)
    best = best_interleaved({
        "tomoclass": lambda: _core.ccc_tiles(x, p, q, tiles),
        "numpy": lambda: (np.matmul(x, x.T), np.matmul(p, q.T)),
    })  # fmt: skip
    print(
        f"kernel   N={n} M={p.shape[1]} box={box} lowpass={lowpass} threads={threads}: "
        f"tomoclass {best['tomoclass']:.3f} s, numpy float32 matmul {best['numpy']:.3f} s; "
        f"fraction {best['numpy'] / best['tomoclass']:.2f}"
    )


def bench_csv(matrix: np.ndarray, box: int, lowpass: float, threads: int) -> None:
    text = _core.format_csv(matrix)

    def savetxt():
        np.savetxt(io.BytesIO(), matrix, fmt="%.9g", delimiter=",")

    best = best_interleaved({"tomoclass": lambda: _core.format_csv(matrix), "numpy": savetxt}, 3)
    mb = len(text) / 1e6
    n = len(matrix)
    print(
        f"csv      N={n} box={box} lowpass={lowpass} threads={threads}: {mb:.1f} MB in "
        f"{best['tomoclass']:.3f} s = {mb / best['tomoclass']:.0f} MB/s; numpy.savetxt "
        f"{best['numpy']:.2f} s; ratio {best['numpy'] / best['tomoclass']:.0f}"
    )


def bench_memory(n: int, workdir: Path, threads: int) -> None:
    data = on_disk(n, 32, workdir)
    wall, peak = run_ccc(data, 8, workdir / f"ccc_{n}_32")
    matrix = n * n * 4 / 2**30
    print(
        f"memory   N={n} box=32 lowpass=8 threads={threads}: tomoclass ccc {wall:.1f} s, "
        f"peak RSS {peak:.2f} GiB = matrix {matrix:.2f} GiB + {peak - matrix:.2f} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="2000:32:8,1000:64:16", help="N:box:lowpass,...")
    parser.add_argument("--pairs", type=int, default=20, help="pairs timed for the baselines")
    parser.add_argument("--memory", type=int, default=0, help="particles for the memory run")
    parser.add_argument("--workdir", type=Path, default=Path("bench-out"))
    args = parser.parse_args()
    threads = _core.thread_count()
    for spec in args.sets.split(","):
        n, box, lowpass = (float(v) for v in spec.split(":"))
        n, box = int(n), int(box)
        matrix = bench_command(n, box, lowpass, args.pairs, args.workdir, threads)
        bench_kernel(n, box, lowpass, threads)
        bench_csv(matrix, box, lowpass, threads)
    if args.memory:
        bench_memory(args.memory, args.workdir, threads)


if __name__ == "__main__":
    main()
