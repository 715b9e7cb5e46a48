"""Missing-wedge models and their Fourier weights, in PyTom's conventions.

A ``SingleTiltWedge`` is PyTom's ``<SingleTiltWedge Angle1 Angle2 CutoffRadius Smooth>``: tilt axis
y, beam z, and each angle is ``90° − maximal tilt`` (a ±60° tilt series has Angle1 = Angle2 = 30).
In its own frame a Fourier voxel ``k = (kx, ky, kz)`` is sampled iff ``|kz| ≈ 0`` or
``|kx| ≥ |kz|·tan(Angle)``, with Angle1 on the half ``kx·kz ≥ 0`` and Angle2 on the other.
(PyTom's C++ takes ``|kz|`` before choosing the half, so it applies Angle1 wherever ``kx ≥ 0``;
tomoclass uses the point-symmetric rule, which is what a real tilt series samples.)
``cutoff_radius`` (Fourier voxels, 0 = ``n // 2``) zeroes everything beyond it, and ``smooth``
(Fourier voxels) ramps the weight linearly from 1 to 0 over that distance outside the wedge edge,
measured perpendicular to the edge plane, as PyTom's smoothed wedge does.
``tilt_axis_rotation`` rotates the wedge: its weight at ``q`` is the unrotated one at ``Tᵀ q``
(``Rotation(90, 0, 0)`` puts the tilt axis on x).

A ``DoubleTiltWedge`` is the product of two single-tilt wedges (the second normally about x).
Weights are float32 on the rFFT half grid ``(n, n, n // 2 + 1)``, indexed ``[kz, ky, kx]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tomoclass import _core
from tomoclass.errors import TomoclassError
from tomoclass.geometry import Rotation


@dataclass(frozen=True)
class SingleTiltWedge:
    """A single-axis tilt series' wedge; angles in degrees (``90 − max tilt``)."""

    angle1: float = 30.0
    angle2: float = 30.0
    cutoff_radius: float = 0.0
    smooth: float = 0.0
    tilt_axis_rotation: Rotation = field(default_factory=Rotation)

    def __post_init__(self) -> None:
        for name in ("angle1", "angle2"):
            value = getattr(self, name)
            if not 0.0 <= value <= 90.0:
                raise TomoclassError(f"wedge {name} must be within 0..90 degrees, got {value}")
        if self.cutoff_radius < 0:
            raise TomoclassError(f"wedge cutoff radius must be >= 0, got {self.cutoff_radius}")
        if self.smooth < 0:
            raise TomoclassError(f"wedge smooth must be >= 0, got {self.smooth}")

    @property
    def components(self) -> tuple[SingleTiltWedge, ...]:
        """The single-tilt wedges whose weights multiply to this one."""
        return (self,)


@dataclass(frozen=True)
class DoubleTiltWedge:
    """Two tilt series of the same specimen: the product of their wedges."""

    first: SingleTiltWedge
    second: SingleTiltWedge

    @property
    def components(self) -> tuple[SingleTiltWedge, ...]:
        """The single-tilt wedges whose weights multiply to this one."""
        return (self.first, self.second)


Wedge = SingleTiltWedge | DoubleTiltWedge
"""Any wedge tomoclass understands."""

NO_WEDGE = SingleTiltWedge(0.0, 0.0)
"""Full sampling (Angle 0: no missing region), as PyTom reads a wedge of angle 0."""


def core_components(
    wedge: Wedge | None, binning: int = 1
) -> list[tuple[float, float, float, float, list]]:
    """The wedge as the Rust core takes it: ``(angle1, angle2, cutoff, smooth, tilt matrix)``
    per single-tilt component, radii divided by ``binning``. No wedge means full sampling."""
    return [
        (
            c.angle1,
            c.angle2,
            c.cutoff_radius / binning,
            c.smooth / binning,
            c.tilt_axis_rotation.matrix().tolist(),
        )
        for c in (wedge or NO_WEDGE).components
    ]


def weights(wedge: Wedge, box: int, rotation: np.ndarray | None = None) -> np.ndarray:
    """Weights ``W(R·k)`` of ``wedge`` seen from a particle's aligned frame.

    ``rotation`` is the particle's PyTom rotation matrix (identity: the tomogram frame);
    the result is float32 ``(box, box, box // 2 + 1)``, ``[kz, ky, kx]``.
    """
    matrix = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    return weights_stack([wedge], box, matrix[None])[0]


def weights_stack(wedges: Sequence[Wedge], box: int, rotations: np.ndarray) -> np.ndarray:
    """Weights of many particles, ``(N, box, box, box // 2 + 1)``; threaded in the Rust core."""
    mats = np.ascontiguousarray(np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3))
    try:
        return _core.wedge_stack(int(box), [core_components(w) for w in wedges], mats)
    except ValueError as exc:
        raise TomoclassError(str(exc)) from None
