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


def _centre(shape: Sequence[int]) -> np.ndarray:
    nz, ny, nx = shape
    return np.array([nx // 2, ny // 2, nz // 2], dtype=np.float64)


def _as_matrices(rotations: np.ndarray, count: int) -> np.ndarray:
    mats = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    if len(mats) != count:
        raise TomoclassError(f"{count} volumes but {len(mats)} rotation matrices")
    return mats


def _as_shifts(shifts: np.ndarray | None, count: int) -> np.ndarray:
    if shifts is None:
        return np.zeros((count, 3))
    out = np.asarray(shifts, dtype=np.float64).reshape(-1, 3)
    if len(out) != count:
        raise TomoclassError(f"{count} volumes but {len(out)} shifts")
    return out


def affine_transform(
    volumes: np.ndarray, matrices: np.ndarray, offsets: np.ndarray, order: int = 3
) -> np.ndarray:
    """``out(p) = volume(M·p + offset)`` for one volume or each volume of a stack.

    ``p`` is the output voxel ``(x, y, z)``; ``matrices`` is ``(3, 3)`` or ``(N, 3, 3)`` and
    ``offsets`` ``(3,)`` or ``(N, 3)``, in voxels.
    """
    array = np.ascontiguousarray(volumes, dtype=np.float32)
    if array.ndim not in (3, 4):
        raise TomoclassError(f"expected a volume or a stack of volumes, got shape {array.shape}")
    stack = array if array.ndim == 4 else array[None]
    mats = np.ascontiguousarray(_as_matrices(matrices, len(stack)))
    offs = np.ascontiguousarray(_as_shifts(offsets, len(stack)))
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
    array = np.asarray(volumes)
    mats = _as_matrices(rotations, 1 if array.ndim == 3 else len(array))
    shs = _as_shifts(shifts, len(mats))
    c = _centre(array.shape[-3:])
    return affine_transform(array, mats, c + shs - mats @ c, order)


def forward(
    volumes: np.ndarray, rotations: np.ndarray, shifts: np.ndarray | None = None, order: int = 3
) -> np.ndarray:
    """Put a reference into the particle frame: ``particle(p) = ref(Rᵀ(p − c − s) + c)``.

    The inverse of :func:`align` (up to interpolation and the box edge).
    """
    array = np.asarray(volumes)
    mats = _as_matrices(rotations, 1 if array.ndim == 3 else len(array))
    shs = _as_shifts(shifts, len(mats))
    inv = np.transpose(mats, (0, 2, 1))
    c = _centre(array.shape[-3:])
    return affine_transform(array, inv, c - np.einsum("nij,nj->ni", inv, c + shs), order)
