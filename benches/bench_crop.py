"""How far Fourier-cropped features move the CCC matrix (the evidence for issue 14, item 1).

Simulated particles (noise up to Nyquist, tilt wedges) and their spherical mask are
Fourier-cropped from the box ``n`` to smaller boxes ``c`` (shifts scaled by ``c / n``), and the
matrix is computed there with the same band (the frequencies keep their Fourier-voxel
radii). Printed: max and mean ``|ΔCCC|`` against today's full-box matrix, beside the spread of
the off-diagonal values, and how many times faster the cropped matrix is made (features
included, best of three, in the same process); then the same with every rotation and shift
set to zero, where the alignment is exact, to separate the mask's share from the
interpolation's.

Usage: python benches/bench_crop.py [--n 48] [--box 64] [--lowpass 16] [--step 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tomoclass import _core
from tomoclass.ccc import correlation_matrix
from tomoclass.features import ParticleStack
from tomoclass.mask import spherical_mask
from tomoclass.simulate import SimulationConfig, simulate_particles


def fourier_crop(volumes: np.ndarray, c: int) -> np.ndarray:
    """Volumes ``(…, n, n, n)`` cropped in Fourier space to ``c³`` (values kept, not sums;
    frequencies ``|k| < c / 2`` on each axis, the Nyquist plane of an even ``c`` dropped)."""
    n = volumes.shape[-1]
    spectrum = np.fft.fftn(volumes, axes=(-3, -2, -1))
    k = np.fft.fftfreq(c, 1 / c).astype(int)
    keep = np.abs(k) < c / 2
    index = np.where(keep, k % n, 0)
    cropped = spectrum[..., index[:, None, None], index[None, :, None], index[None, None, :]]
    cropped *= keep[:, None, None] & keep[None, :, None] & keep[None, None, :]
    return (np.fft.ifftn(cropped, axes=(-3, -2, -1)).real * (c / n) ** 3).astype(np.float32)


def timed_matrix(stack: ParticleStack, mask: np.ndarray, lowpass: float) -> tuple:
    """The CCC matrix and the best of three wall times (s) to compute it (features included)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        matrix = correlation_matrix(stack, mask, lowpass)
        times.append(time.perf_counter() - start)
    return matrix, min(times)


def compare(stack: ParticleStack, mask: np.ndarray, lowpass: float, step: int, label: str):
    n = stack.volumes.shape[-1]
    full, seconds = timed_matrix(stack, mask, lowpass)
    upper = np.triu_indices(len(full), 1)
    print(f"{label}: N={len(full)}, box {n}, lowpass {lowpass}, threads={_core.thread_count()}, "
          f"CCC spread {full[upper].std():.3f}")  # fmt: skip
    for c in range(n - step, int(2 * lowpass) + 1, -step):
        cropped = ParticleStack(fourier_crop(stack.volumes, c), stack.rotations,
                                stack.shifts * c / n, stack.wedges)  # fmt: skip
        matrix, cropped_seconds = timed_matrix(cropped, fourier_crop(mask, c), lowpass)
        diff = np.abs(matrix - full)[upper]
        print(f"  crop to {c} (band at {lowpass / (c / 2):.2f} of its Nyquist): "
              f"max |dCCC| {diff.max():.1e}, mean {diff.mean():.1e}; "
              f"{seconds / cropped_seconds:.1f}x faster than box {n}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="particles")
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--lowpass", type=float, default=16)
    parser.add_argument("--step", type=int, default=8, help="crop sizes step down by this")
    args = parser.parse_args()
    config = SimulationConfig(n_particles=args.n, n_classes=3, box=args.box, seed=0)
    stack = simulate_particles(config).particle_stack()
    mask = spherical_mask(args.box)
    compare(stack, mask, args.lowpass, args.step, "aligned particles")
    still = ParticleStack(stack.volumes, np.repeat(np.eye(3)[None], args.n, 0),
                          np.zeros((args.n, 3)), stack.wedges)  # fmt: skip
    compare(still, mask, args.lowpass, args.step, "no rotation or shift (exact alignment)")


if __name__ == "__main__":
    main()
