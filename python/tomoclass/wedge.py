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

from dataclasses import dataclass, field

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
