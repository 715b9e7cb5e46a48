"""Rotating and shifting volumes in PyTom's conventions, by interpolation in the Rust core.

A particle is the reference rotated by ``R`` about the centre ``c = n // 2`` and moved by
``+s`` (voxels, ``(x, y, z)``): ``particle(p) = ref(Rᵀ(p − c − s) + c)``. Aligning a particle
is the inverse: ``aligned(p) = particle(R(p − c) + c + s)``. ``order`` is 1 (trilinear) or
3 (cubic B-spline, the default); points from outside the box read 0, exactly as
``scipy.ndimage.map_coordinates(order, mode="constant")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomoclass import _core
from tomoclass.errors import TomoclassError
from tomoclass.fourier import volumes_float32
from tomoclass.geometry import rotation_matrices


def _centre(shape: Sequence[int]) -> np.ndarray:
    nz, ny, nx = shape
    return np.array([nx // 2, ny // 2, nz // 2], dtype=np.float64)


def _as_shifts(shifts: np.ndarray | None, count: int, name: str = "shifts") -> np.ndarray:
    """``shifts`` ``(3,)`` or ``(count, 3)`` as float64 ``(count, 3)`` (None: zeros); an
    error naming ``name`` for another shape or count."""
    if shifts is None:
        return np.zeros((count, 3))
    try:
        out = np.asarray(shifts, dtype=np.float64)
    except (TypeError, ValueError):
        raise TomoclassError(f"{name}: numbers (x, y, z) needed") from None
    out = out[None] if out.shape == (3,) else out
    if out.shape != (count, 3) or not np.all(np.isfinite(out)):
        raise TomoclassError(f"{name}: (3,) or ({count}, 3) finite values needed, got shape "
                             f"{np.shape(shifts)}")  # fmt: skip
    return out


def _count(array: np.ndarray) -> int:
    """How many volumes ``array`` (one volume or a stack) holds."""
    return 1 if array.ndim == 3 else len(array)


def affine_transform(
    volumes: np.ndarray, matrices: np.ndarray, offsets: np.ndarray, order: int = 3
) -> np.ndarray:
    """``out(p) = volume(M·p + offset)`` for one volume or each volume of a stack.

    ``p`` is the output voxel ``(x, y, z)``; ``matrices`` is ``(3, 3)`` or ``(N, 3, 3)`` and
    ``offsets`` ``(3,)`` or ``(N, 3)``, in voxels.
    """
    array = volumes_float32(volumes, "volumes")
    stack = array if array.ndim == 4 else array[None]
    mats = np.asarray(matrices, dtype=np.float64)
    mats = np.ascontiguousarray(mats[None] if mats.shape == (3, 3) else mats)
    if mats.shape != (len(stack), 3, 3):
        raise TomoclassError(f"matrices: (3, 3) or ({len(stack)}, 3, 3) needed, got shape "
                             f"{np.shape(matrices)}")  # fmt: skip
    offs = np.ascontiguousarray(_as_shifts(offsets, len(stack), "offsets"))
    try:
        out = _core.transform_stack(stack, mats, offs, int(order))
    except ValueError as exc:
        raise TomoclassError(str(exc)) from None
    return out if array.ndim == 4 else out[0]


def align(
    volumes: np.ndarray, rotations: np.ndarray, shifts: np.ndarray | None = None, order: int = 3
) -> np.ndarray:
    """Bring particles into the reference frame: ``aligned(p) = particle(R(p − c) + c + s)``.

    ``rotations`` are PyTom rotation matrices ``(3, 3)`` or ``(N, 3, 3)``; ``shifts`` are the
    particles' shifts ``(x, y, z)`` in voxels.
    """
    array = volumes_float32(volumes, "volumes")
    mats = rotation_matrices(rotations, _count(array))
    shs = _as_shifts(shifts, len(mats))
    c = _centre(array.shape[-3:])
    return affine_transform(array, mats, c + shs - mats @ c, order)


def forward(
    volumes: np.ndarray, rotations: np.ndarray, shifts: np.ndarray | None = None, order: int = 3
) -> np.ndarray:
    """Put a reference into the particle frame: ``particle(p) = ref(Rᵀ(p − c − s) + c)``.

    The inverse of :func:`align` (up to interpolation and the box edge).
    """
    array = volumes_float32(volumes, "volumes")
    mats = rotation_matrices(rotations, _count(array))
    shs = _as_shifts(shifts, len(mats))
    inv = np.transpose(mats, (0, 2, 1))
    c = _centre(array.shape[-3:])
    return affine_transform(array, inv, c - np.einsum("nij,nj->ni", inv, c + shs), order)
