"""Fourier transforms, band masks and binning, computed in the Rust core.

Volumes are float32 ``[z, y, x]``; spectra are complex64 on the rFFT half grid
``(nz, ny, nx // 2 + 1)`` with numpy's layout and scaling (``rfftn`` unnormalised,
``irfftn`` divides by the voxel count). Frequencies are radii in Fourier voxels of the box;
a value below 1 is read as a fraction of the box size, as PyTom does.
"""

from __future__ import annotations

import numpy as np

from tomoclass import _core
from tomoclass.errors import TomoclassError


def volumes_float32(data, name: str = "volume") -> np.ndarray:
    """``data`` — one volume ``(nz, ny, nx)`` or a stack ``(N, nz, ny, nx)`` of real numbers —
    as C-contiguous float32; a :class:`TomoclassError` naming ``name`` for another shape or
    for complex data (which would lose their imaginary part)."""
    array = np.asarray(data)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TomoclassError(f"{name}: real numbers needed, got {array.dtype}")
    if array.ndim not in (3, 4) or array.size == 0:
        raise TomoclassError(
            f"{name}: a volume (nz, ny, nx) or a stack of them (N, nz, ny, nx) is needed, "
            f"got shape {array.shape}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _grid(shape, name: str = "shape") -> list[int]:
    """``shape`` as three positive sizes ``[nz, ny, nx]``, or an error naming ``name``."""
    sizes = list(np.atleast_1d(np.asarray(shape)).ravel()) if np.ndim(shape) <= 1 else []
    if len(sizes) != 3 or not all(float(n).is_integer() and n >= 1 for n in sizes):
        raise TomoclassError(f"{name}: three positive sizes (nz, ny, nx) needed, got {shape!r}")
    return [int(n) for n in sizes]


def rfftn(volume: np.ndarray) -> np.ndarray:
    """``numpy.fft.rfftn`` of one volume ``(nz, ny, nx)`` or of a stack ``(N, nz, ny, nx)``."""
    array = volumes_float32(volume)
    return _core.rfftn_stack(array[None])[0] if array.ndim == 3 else _core.rfftn_stack(array)


def irfftn(spectrum: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``numpy.fft.irfftn`` back to volumes of ``shape = (nz, ny, nx)`` (one or a stack)."""
    grid = _grid(shape)
    array = np.ascontiguousarray(spectrum, dtype=np.complex64)
    expected = (grid[0], grid[1], grid[2] // 2 + 1)
    if array.ndim not in (3, 4) or array.shape[-3:] != expected:
        raise TomoclassError(
            f"spectrum: shape {array.shape} does not fit volumes of {tuple(grid)} "
            f"(the half grid {expected})"
        )
    if array.ndim == 3:
        return _core.irfftn_stack(array[None], grid)[0]
    return _core.irfftn_stack(array, grid)


def frequency_radius(value: float, box: int) -> float:
    """A frequency in Fourier voxels; values below 1 are fractions of ``box`` (PyTom's rule)."""
    if value < 0:
        raise TomoclassError(f"frequency must be >= 0, got {value}")
    return value * box if 0 < value < 1 else float(value)


def band_mask(shape: tuple[int, int, int], lowest: float, highest: float) -> np.ndarray:
    """1.0 on the half grid where ``lowest ≤ |k| ≤ highest`` (Fourier voxels), DC excluded."""
    return _core.band_mask(_grid(shape), float(lowest), float(highest))


def bin_volume(volume: np.ndarray, factor: int) -> np.ndarray:
    """Fourier-crop a cubic volume (or stack of them) to ``n // factor``, keeping values.

    Frequencies ``|k| < m / 2`` of the new size ``m`` are kept on each axis; the Nyquist planes
    of an even ``m`` are zeroed because they cannot stay Hermitian. ``factor`` must divide ``n``.
    """
    if factor < 1:
        raise TomoclassError(f"binning must be >= 1, got {factor}")
    array = volumes_float32(volume)
    if factor == 1:
        return array
    try:
        if array.ndim == 3:
            return _core.bin_stack(array[None], int(factor))[0]
        return _core.bin_stack(array, int(factor))
    except ValueError as exc:
        raise TomoclassError(str(exc)) from None
