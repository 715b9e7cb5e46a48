"""Real-space masks: the region of the box that holds the particle.

Masks are float32 ``[z, y, x]`` volumes in 0..1, centred on voxel ``n // 2``.
"""

from __future__ import annotations

import os

import numpy as np

from tomoclass.errors import TomoclassError
from tomoclass.fourier import bin_volume
from tomoclass.io import check_finite, read_volume


def spherical_mask(box: int, radius: float | None = None, smooth: float = 2.0) -> np.ndarray:
    """A sphere of ``radius`` voxels (default ``box // 2 − smooth − 1``) with a Gaussian edge.

    Inside the radius the mask is 1; beyond it falls off as ``exp(−d² / (2·smooth²))`` with the
    distance ``d`` past the radius (0 beyond ``3·smooth``), as PyTom's ``sphere`` mask does.
    """
    if not isinstance(box, (int, np.integer)) or box < 2:
        raise TomoclassError(f"box: a whole number of voxels >= 2 needed, got {box!r}")
    if radius is None:
        radius = box // 2 - smooth - 1
    if not 0 < radius <= box / 2 or smooth < 0:
        raise TomoclassError(f"mask radius {radius} / smooth {smooth} do not fit a box of {box}")
    grid = np.arange(box, dtype=np.float32) - box // 2
    r = np.sqrt(grid[:, None, None] ** 2 + grid[None, :, None] ** 2 + grid[None, None, :] ** 2)
    past = np.maximum(r - radius, 0.0)
    if smooth == 0:
        return (past == 0).astype(np.float32)
    mask = np.exp(-(past**2) / (2 * smooth**2))
    mask[past > 3 * smooth] = 0.0
    return mask.astype(np.float32)


def load_mask(mask: str | os.PathLike | np.ndarray, box: int, binning: int = 1) -> np.ndarray:
    """The real-space mask for particles of ``box³`` binned by ``binning``.

    ``mask`` is a volume file or an array, of the particle box (it is then binned like the
    particles, as PyTom reads it) or already of the binned box.
    """
    name = os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else "mask"
    volume = read_volume(mask) if isinstance(mask, (str, os.PathLike)) else np.asarray(mask)
    binned = box // binning
    if volume.shape == (box,) * 3:
        volume = bin_volume(volume, binning)
    elif volume.shape != (binned,) * 3:
        raise TomoclassError(
            f"{name}: mask of shape {volume.shape} fits neither the particles ({box}³) "
            f"nor the binned particles ({binned}³)"
        )
    check_finite(volume, name)
    if not np.any(volume > 0):
        raise TomoclassError(f"{name}: mask is empty (no positive voxel)")
    _check_extent(volume, name)
    return np.ascontiguousarray(volume, dtype=np.float32)


WHOLE_BOX = 0.95
"""A mask whose weight fills more of the box than this masks nothing (a warning)."""
NEARLY_NOTHING = 0.001
"""A mask whose weight fills less of the box than this keeps almost nothing (a warning)."""


def _check_extent(volume: np.ndarray, name: str) -> None:
    """One warning line if the mask keeps (nearly) the whole box or almost nothing: its
    weight ``Σ mask / max(mask)`` as a fraction of the box."""
    import warnings

    from tomoclass.errors import TomoclassWarning

    kept = float(volume.sum() / volume.max() / volume.size)
    if kept > WHOLE_BOX:
        warnings.warn(
            f"{name}: the mask keeps {kept:.0%} of the box, so it hardly masks: the box "
            "edges (neighbours, noise) count as much as the particle",
            TomoclassWarning, stacklevel=3,
        )  # fmt: skip
    elif kept < NEARLY_NOTHING:
        warnings.warn(
            f"{name}: the mask keeps only {kept:.2%} of the box ({kept * volume.size:.0f} "
            "voxels' worth); check that it is the mask you meant",
            TomoclassWarning, stacklevel=3,
        )  # fmt: skip
