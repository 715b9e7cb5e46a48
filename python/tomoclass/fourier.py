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


def rfftn(volume: np.ndarray) -> np.ndarray:
    """``numpy.fft.rfftn`` of one volume ``(nz, ny, nx)`` or of a stack ``(N, nz, ny, nx)``."""
    array = np.ascontiguousarray(volume, dtype=np.float32)
    if array.ndim == 3:
        return _core.rfftn_stack(array[None])[0]
    if array.ndim == 4:
        return _core.rfftn_stack(array)
    raise TomoclassError(f"rfftn needs a volume or a stack of volumes, got shape {array.shape}")


def irfftn(spectrum: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``numpy.fft.irfftn`` back to volumes of ``shape = (nz, ny, nx)`` (one or a stack)."""
    array = np.ascontiguousarray(spectrum, dtype=np.complex64)
    expected = (shape[0], shape[1], shape[2] // 2 + 1)
    if array.shape[-3:] != expected:
        raise TomoclassError(f"spectrum of shape {array.shape} does not fit volumes of {shape}")
    if array.ndim == 3:
        return _core.irfftn_stack(array[None], list(shape))[0]
    return _core.irfftn_stack(array, list(shape))


def frequency_radius(value: float, box: int) -> float:
    """A frequency in Fourier voxels; values below 1 are fractions of ``box`` (PyTom's rule)."""
    if value < 0:
        raise TomoclassError(f"frequency must be >= 0, got {value}")
    return value * box if 0 < value < 1 else float(value)


def band_mask(shape: tuple[int, int, int], lowest: float, highest: float) -> np.ndarray:
    """1.0 on the half grid where ``lowest ≤ |k| ≤ highest`` (Fourier voxels), DC excluded."""
    return _core.band_mask(list(shape), float(lowest), float(highest))


def bin_volume(volume: np.ndarray, factor: int) -> np.ndarray:
    """Fourier-crop a cubic volume (or stack of them) to ``n // factor``, keeping values.

    Frequencies ``|k| < m / 2`` of the new size ``m`` are kept on each axis; the Nyquist planes
    of an even ``m`` are zeroed because they cannot stay Hermitian. ``factor`` must divide ``n``.
    """
    if factor < 1:
        raise TomoclassError(f"binning must be >= 1, got {factor}")
    array = np.ascontiguousarray(volume, dtype=np.float32)
    if factor == 1:
        return array
    try:
        if array.ndim == 3:
            return _core.bin_stack(array[None], int(factor))[0]
        if array.ndim == 4:
            return _core.bin_stack(array, int(factor))
    except ValueError as exc:
        raise TomoclassError(str(exc)) from None
    raise TomoclassError(f"binning needs a volume or a stack of volumes, got shape {array.shape}")
