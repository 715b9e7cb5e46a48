"""Benchmark the core's 3-D FFT and particle alignment against numpy/scipy, same process.

Prints, for each box size, the time of tomoclass (Rust, rayon) and of the scipy baseline doing
the same work on the same data, and their ratio (baseline / tomoclass; > 1 means tomoclass is
faster). Baselines:

- FFT: ``scipy.fft.rfftn(stack, axes=(1, 2, 3), workers=T)`` on the whole stack.
- Alignment: per particle, numpy builds the coordinates ``R(p − c) + c + s`` and
  ``scipy.ndimage.map_coordinates(order=3, mode="constant")`` (prefilter included) samples
  them; timed on a subset and scaled to N. Reported twice: map_coordinates as called (one
  thread), and spread over T threads with a thread pool (scipy releases the GIL).

Usage: python benches/bench_core.py [--n 1000] [--boxes 32,64] [--subset 40] [--repeats 3]
Threads: tomoclass uses RAYON_NUM_THREADS (default: all cores); T is the same number.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft
from scipy import ndimage
from scipy.spatial.transform import Rotation as ScipyRotation

from tomoclass import _core
from tomoclass.fourier import rfftn
from tomoclass.transform import align


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def voxel_grid(n: int) -> np.ndarray:
    """Every voxel's ``(x, y, z)`` relative to the centre, ``(n³, 3)`` float64 (built once)."""
    z, y, x = np.indices((n, n, n))
    return np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float64) - n // 2


def scipy_align_one(
    volume: np.ndarray, matrix: np.ndarray, shift: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    """The baseline alignment of one particle: numpy coordinates + map_coordinates(order=3)."""
    q = grid @ matrix.T + volume.shape[0] // 2 + shift
    out = ndimage.map_coordinates(volume, q[:, ::-1].T, order=3, mode="constant")
    return out.reshape(volume.shape)


def bench_box(n: int, count: int, subset: int, repeats: int, threads: int) -> None:
    rng = np.random.default_rng(n)
    stack = rng.standard_normal((count, n, n, n), dtype=np.float32)
    mats = ScipyRotation.random(count, random_state=rng).as_matrix()
    shifts = rng.uniform(-2, 2, (count, 3))

    ours = best_time(lambda: rfftn(stack), repeats)
    base = best_time(lambda: scipy.fft.rfftn(stack, axes=(1, 2, 3), workers=threads), repeats)
    print(
        f"rfftn        N={count:5d} box={n:3d} threads={threads}: tomoclass {ours:7.3f} s  "
        f"scipy.fft(workers={threads}) {base:7.3f} s  ratio {base / ours:5.2f}"
    )

    ours = best_time(lambda: align(stack, mats, shifts, order=3), repeats)
    grid = voxel_grid(n)

    def baseline(i: int) -> np.ndarray:
        return scipy_align_one(stack[i], mats[i], shifts[i], grid)

    one = best_time(lambda: [baseline(i) for i in range(subset)], 1)
    with ThreadPoolExecutor(threads) as pool:
        pooled = best_time(lambda: list(pool.map(baseline, range(subset))), 1)
    one, pooled = one * count / subset, pooled * count / subset
    print(
        f"align cubic  N={count:5d} box={n:3d} threads={threads}: tomoclass {ours:7.3f} s  "
        f"map_coordinates {one:7.3f} s (ratio {one / ours:5.2f}), "
        f"on {threads} threads {pooled:7.3f} s (ratio {pooled / ours:5.2f})  "
        f"[scipy timed on {subset}, scaled to N]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="particles in the stack")
    parser.add_argument("--boxes", default="32,64", help="box sizes, comma-separated")
    parser.add_argument("--subset", type=int, default=40, help="particles timed for scipy align")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the best is kept")
    args = parser.parse_args()
    threads = _core.thread_count()
    for n in (int(b) for b in args.boxes.split(",")):
        bench_box(n, args.n, min(args.subset, args.n), args.repeats, threads)


if __name__ == "__main__":
    main()
