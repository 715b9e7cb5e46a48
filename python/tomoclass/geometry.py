"""Rotations and shifts in PyTom's conventions.

Angles are degrees. ``Rotation(z1, z2, x)`` is PyTom's ``<Rotation Z1 Z2 X Paradigm="ZXZ"/>``
with matrix ``R = Rz(z2) @ Rx(x) @ Rz(z1)`` acting on column vectors ``(x, y, z)``; it equals
``scipy.spatial.transform.Rotation.from_euler("zxz", [z1, x, z2], degrees=True)``.
A particle is the reference rotated by ``R`` about voxel ``n // 2`` and then moved by ``+shift``.
Shifts are voxels, written ``(x, y, z)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomoclass import _core
from tomoclass.errors import TomoclassError


@dataclass(frozen=True)
class Rotation:
    """PyTom ZXZ rotation, degrees: ``z1`` about z, then ``x`` about x, then ``z2`` about z."""

    z1: float = 0.0
    z2: float = 0.0
    x: float = 0.0

    def matrix(self) -> np.ndarray:
        """The 3×3 float64 rotation matrix acting on ``(x, y, z)`` column vectors."""
        return rotation_matrix(self.z1, self.z2, self.x)


@dataclass(frozen=True)
class Shift:
    """A shift in voxels, ``(x, y, z)``."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0

    def vector(self) -> np.ndarray:
        """The shift as a float64 ``(x, y, z)`` vector."""
        return np.array([self.x, self.y, self.z], dtype=np.float64)


def rotation_matrices(matrices, count: int | None = None, name: str = "rotations") -> np.ndarray:
    """``matrices`` — one ``(3, 3)`` or ``(N, 3, 3)``, ``N = count`` when given — as float64
    ``(N, 3, 3)`` rotations; a :class:`TomoclassError` naming ``name`` for another shape or
    count, or a matrix that is not a rotation (orthonormal, determinant +1)."""
    try:
        mats = np.asarray(matrices, dtype=np.float64)
    except (TypeError, ValueError):
        raise TomoclassError(f"{name}: 3×3 rotation matrices of numbers needed") from None
    if mats.shape == (3, 3):
        mats = mats[None]
    wanted = "N" if count is None else count
    if mats.ndim != 3 or mats.shape[1:] != (3, 3) or count not in (None, len(mats)):
        raise TomoclassError(f"{name}: (3, 3) or ({wanted}, 3, 3) matrices needed, got shape "
                             f"{np.shape(matrices)}")  # fmt: skip
    gram = mats @ np.swapaxes(mats, 1, 2)
    proper = np.allclose(gram, np.eye(3), atol=1e-4) and np.all(np.linalg.det(mats) > 0)
    if not (np.all(np.isfinite(mats)) and proper):
        raise TomoclassError(f"{name}: every matrix must be a rotation (orthonormal, det +1)")
    return mats


def zxz_matrices(z1: np.ndarray, z2: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Matrices ``Rz(z2) @ Rx(x) @ Rz(z1)`` ``(N, 3, 3)`` of PyTom angles in degrees (arrays
    of N), acting on ``(x, y, z)``; equal to scipy's ``Rotation.from_euler("zxz",
    [z1, x, z2], degrees=True)``, without importing scipy.spatial (half a second)."""
    angles = np.radians(np.stack([z1, z2, x]).astype(np.float64))
    (c1, c2, cx), (s1, s2, sx) = np.cos(angles), np.sin(angles)
    zero, one = np.zeros_like(c1), np.ones_like(c1)

    def stacked(rows) -> np.ndarray:
        return np.moveaxis(np.array(rows), -1, 0)

    rz1 = stacked([[c1, -s1, zero], [s1, c1, zero], [zero, zero, one]])
    rx = stacked([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    rz2 = stacked([[c2, -s2, zero], [s2, c2, zero], [zero, zero, one]])
    return rz2 @ rx @ rz1


def rotation_matrix(z1: float, z2: float, x: float) -> np.ndarray:
    """Matrix ``Rz(z2) @ Rx(x) @ Rz(z1)`` of PyTom angles in degrees (computed in the Rust core)."""
    return np.asarray(_core.rotation_matrix(float(z1), float(z2), float(x)))


@dataclass(frozen=True)
class PointSymmetry:
    """PyTom's ``PointSymmetry``: ``nfold``-fold rotational symmetry about the axis
    ``Rz(z2)·Rx(x)·ẑ`` of the aligned particle (the particle's z axis when both are 0).

    Averaging with it adds every particle ``nfold`` times, turned by ``360·k/nfold`` degrees
    about the axis (PyTom's ``PointSymmetry.apply`` of a particle list: copy ``k`` has the
    rotation ``R·S·Rz(−360·k/n)·S⁻¹`` with ``S = Rz(z2)·Rx(x)``), so the average is
    symmetric."""

    nfold: int = 1
    z2: float = 0.0
    x: float = 0.0

    def __post_init__(self) -> None:
        from tomoclass.errors import TomoclassError

        try:
            whole = int(self.nfold) == self.nfold and self.nfold >= 1
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise TomoclassError(f"symmetry order must be a whole number >= 1, got {self.nfold}")
        object.__setattr__(self, "nfold", int(self.nfold))

    def operators(self) -> np.ndarray:
        """The ``(nfold, 3, 3)`` matrices ``G_k`` that turn a particle's rotation ``R`` into
        its copies' ``R·G_k`` (``G_0`` is the identity)."""
        axis = rotation_matrix(0.0, self.z2, self.x)
        turns = [rotation_matrix(-360.0 * k / self.nfold, 0.0, 0.0) for k in range(self.nfold)]
        return np.stack([axis @ turn @ axis.T for turn in turns])
