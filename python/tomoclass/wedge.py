"""How a particle was sampled: its Fourier weight ``W(u) ≥ 0`` in its own (tomogram) frame.

Seen from the particle's aligned frame the weight is ``W(R·k)``. Every algorithm takes it as
a real weight (binary wedges are the special case), assuming the particle's spectrum is the
structure's spectrum times the weight, ``F ≈ W·S``. The sources (PyTom calls all of them a
"wedge"):

``SingleTiltWedge`` — PyTom's ``<SingleTiltWedge Angle1 Angle2 CutoffRadius Smooth>``: tilt
axis y, beam z, and each angle is ``90° − maximal tilt`` (a ±60° tilt series has
Angle1 = Angle2 = 30). In its own frame a Fourier voxel ``k = (kx, ky, kz)`` is sampled iff
``|kz| ≈ 0`` or ``|kx| ≥ |kz|·tan(Angle)``, with Angle1 on the half ``kx·kz ≥ 0`` and Angle2
on the other. (PyTom's C++ takes ``|kz|`` before choosing the half, so it applies Angle1
wherever ``kx ≥ 0``; tomoclass uses the point-symmetric rule, which is what a real tilt series
samples.) ``cutoff_radius`` (Fourier voxels, 0 = ``n // 2``) zeroes everything beyond it, and
``smooth`` (Fourier voxels) ramps the weight linearly from 1 to 0 over that distance outside
the wedge edge, measured perpendicular to the edge plane, as PyTom's smoothed wedge does.
``tilt_axis_rotation`` rotates the wedge: its weight at ``q`` is the unrotated one at ``Tᵀ q``
(``Rotation(90, 0, 0)`` puts the tilt axis on x). A ``DoubleTiltWedge`` is the product of two.

``TiltSeries`` — the images of a tilt series: per tilt the angle about y, and optionally the
exposure, defocus, amplitude scale and B-factor; one-voxel-thick central slices weighted by
the exposure filter (Grant & Grigorieff 2015) and ``|CTF|`` (the data are assumed phase-flipped,
as STOPGAP and pytom-match-pick assume). A positive tilt samples the half ``kx·kz > 0``, as
Angle1 of a wedge: the slice of tilt θ holds ky and ``(cos θ, 0, sin θ)``.

``WeightVolume`` — a weight volume from a file, per particle or shared: Warp's 3-D CTF,
RELION 4/5's CTF² + multiplicity (for CTF-premultiplied data, whose weight is the square root
of the CTF² sum), PyTom's ``Wedge3dCTF`` and ``GeneralWedge`` (layouts and meaning in
:mod:`tomoclass.io.weights`).

Weights are float32 on the rFFT half grid ``(n, n, n // 2 + 1)``, indexed ``[kz, ky, kx]``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomoclass import _core
from tomoclass.errors import TomoclassError
from tomoclass.geometry import Rotation, rotation_matrices


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


def _floats(values, name: str, count: int | None = None) -> tuple[float, ...] | None:
    """``values`` as a tuple of finite floats (None stays None); ``count`` checks the length."""
    if values is None:
        return None
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out):
        raise TomoclassError(f"tilt series {name}: every value must be a finite number")
    if count is not None and len(out) != count:
        raise TomoclassError(f"tilt series {name}: {len(out)} values for {count} tilts")
    return out


@dataclass(frozen=True)
class TiltSeries:
    """The tilt images a particle was seen in (see the module docstring).

    ``angles``: degrees about y (RELION's ``rlnTomoYTilt``, STOPGAP's ``tilt_angle``);
    ``x_tilts``: degrees about x applied first (RELION's ``rlnTomoXTilt``; default 0).
    ``exposure``: e/Å² per tilt, ``defocus``: Å per tilt (positive underfocus), ``scale`` and
    ``bfactor`` (Å², envelope ``exp(−B·s²/4)``): RELION's ``rlnCtfScalefactor`` and
    ``rlnCtfBfactor``. Optics for the CTF: ``voltage`` (kV), ``cs`` (mm),
    ``amplitude_contrast``. ``pixel_size``: Å per voxel of the particle box (None: from the
    particle files). ``name``: the tilt series or tomogram it describes.
    """

    angles: tuple[float, ...]
    exposure: tuple[float, ...] | None = None
    defocus: tuple[float, ...] | None = None
    voltage: float = 300.0
    cs: float = 2.7
    amplitude_contrast: float = 0.07
    pixel_size: float | None = None
    x_tilts: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    bfactor: tuple[float, ...] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        angles = _floats(self.angles, "angles")
        if not angles:
            raise TomoclassError("a tilt series needs at least one tilt angle")
        if not all(-90.0 <= a <= 90.0 for a in angles):
            raise TomoclassError(f"tilt angles must be within -90..90 degrees, got {angles}")
        object.__setattr__(self, "angles", angles)
        for name in ("exposure", "defocus", "x_tilts", "scale", "bfactor"):
            object.__setattr__(self, name, _floats(getattr(self, name), name, len(angles)))
        if self.exposure is not None and min(self.exposure) < 0:
            raise TomoclassError("tilt series exposure must be >= 0 e/Å²")
        if self.scale is not None and min(self.scale) < 0:
            raise TomoclassError("tilt series scale factors must be >= 0")
        if not (self.voltage > 0 and math.isfinite(self.cs) and 0 <= self.amplitude_contrast < 1):
            raise TomoclassError(
                f"tilt series optics: voltage {self.voltage} kV must be > 0, Cs {self.cs} mm "
                f"finite and amplitude contrast {self.amplitude_contrast} within 0..1"
            )
        if self.pixel_size is not None and not (
            math.isfinite(self.pixel_size) and self.pixel_size > 0
        ):
            raise TomoclassError(f"tilt series pixel size must be > 0 Å, got {self.pixel_size}")

    @property
    def needs_pixel_size(self) -> bool:
        """Whether any weight depends on the frequency in 1/Å (exposure, CTF or B-factor)."""
        return any(v is not None for v in (self.exposure, self.defocus, self.bfactor))

    def normals(self) -> np.ndarray:
        """``(T, 3)`` unit normals ``(x, y, z)`` of the tilts' central planes (the beam
        directions in the tomogram frame): ``(Ry(θ)·Rx(ψ))ᵀ·z`` for tilt θ about y and ψ
        about x, as RELION's projection ``Rz·Ry·Rx``."""
        theta = np.radians(self.angles)
        alpha = np.radians(self.x_tilts or (0.0,) * len(self.angles))
        return np.column_stack(
            [-np.sin(theta), np.sin(alpha) * np.cos(theta), np.cos(alpha) * np.cos(theta)]
        )


@dataclass(frozen=True)
class WeightVolume:
    """A Fourier weight volume from a file, in the particle's own frame.

    ``filename`` as the list wrote it (relative to the list's folder unless absolute).
    ``premultiplied``: the particle's data were multiplied by its CTF and the file holds the
    sum of CTF² ``C`` (RELION 4/5 pseudo-subtomograms, ``rlnCtfDataAreCtfPremultiplied 1``;
    the weight is ``√C`` and the data are whitened by ``1/√C``);
    otherwise the file holds the CTF the data carry (Warp, RELION 3.0, PyTom ``Wedge3dCTF``),
    and where it is negative the data are phase-flipped. ``kind`` ``"general"`` is PyTom's
    ``GeneralWedge`` (a plain weight ≥ 0). ``ctf_max_resolution`` (Å) is PyTom's
    ``Wedge3dCTF`` attribute (Warp's ``rlnCtfMaxResolution``), kept for writing back.
    """

    filename: str
    premultiplied: bool = False
    kind: str = "ctf"
    ctf_max_resolution: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "filename", os.fspath(self.filename))
        if self.kind not in ("ctf", "general"):
            raise TomoclassError(
                f"weight volume kind must be 'ctf' or 'general', got {self.kind!r}"
            )


Wedge = SingleTiltWedge | DoubleTiltWedge | TiltSeries | WeightVolume
"""Any way tomoclass knows a particle was sampled."""
WEDGES = (SingleTiltWedge, DoubleTiltWedge, TiltSeries, WeightVolume)
"""The classes of :data:`Wedge`, for ``isinstance``."""

NO_WEDGE = SingleTiltWedge(0.0, 0.0)
"""Full sampling (Angle 0: no missing region), as PyTom reads a wedge of angle 0."""


def tilt_range_wedge(lo: float, hi: float) -> SingleTiltWedge:
    """The wedge of a tilt series from ``lo`` to ``hi`` degrees about y: ``Angle1 = 90 − hi``
    (the half a positive tilt samples), ``Angle2 = 90 + lo``."""
    if not -90 <= lo < hi <= 90:
        raise TomoclassError(f"tilt range {lo}:{hi} must satisfy -90 <= min < max <= 90")
    return SingleTiltWedge(angle1=90.0 - hi, angle2=90.0 + lo)


def tilt_range(wedge: Wedge) -> tuple[float, float] | None:
    """The tilt range ``(min, max)`` (degrees about y) a wedge stands for, if it is one
    (the inverse of :func:`tilt_range_wedge`, or a tilt series' extreme angles)."""
    if isinstance(wedge, TiltSeries):
        return min(wedge.angles), max(wedge.angles)
    if isinstance(wedge, SingleTiltWedge):
        return wedge.angle2 - 90.0, 90.0 - wedge.angle1
    return None


class Samplings:
    """Turns particles' wedges into the Rust core's ``Sampling`` objects, each built once.

    ``box``: the particle box; ``binning`` scales analytic wedges' radii as before;
    ``directory``: where relative weight-volume names start; ``pixel_size``: Å per particle
    voxel for tilt series that do not give one (None: such a series is an error).
    """

    MAX_VOLUMES = 256
    """Weight volumes kept built at once (shared ones are read once; per-particle ones pass)."""

    def __init__(
        self,
        box: int,
        binning: int = 1,
        directory: str | os.PathLike | None = None,
        pixel_size: float | None = None,
    ) -> None:
        self.box, self.binning, self.pixel_size = box, binning, pixel_size
        self.directory = Path(directory if directory is not None else os.getcwd())
        self._built: dict = {}
        self._volumes: dict = {}

    def path(self, volume: WeightVolume) -> Path:
        """The file of a weight volume."""
        return Path(os.path.normpath(self.directory / volume.filename))

    def core(self, wedge: Wedge | None) -> _core.Sampling:
        """The core's sampling of ``wedge`` (None: full sampling)."""
        wedge = NO_WEDGE if wedge is None else wedge
        if not isinstance(wedge, WEDGES):
            raise TomoclassError(
                f"wedges: {wedge!r} is not a wedge (SingleTiltWedge, DoubleTiltWedge, "
                "TiltSeries, WeightVolume or None)"
            )
        if isinstance(wedge, WeightVolume):
            return self._volume(wedge)
        built = self._built.get(wedge)
        if built is None:
            built = self._built[wedge] = self._build(wedge)
        return built

    def _build(self, wedge: Wedge) -> _core.Sampling:
        try:
            if isinstance(wedge, TiltSeries):
                return self._tilt_series(wedge)
            components = [
                (c.angle1, c.angle2, c.cutoff_radius / self.binning, c.smooth / self.binning,
                 c.tilt_axis_rotation.matrix().tolist())
                for c in wedge.components
            ]  # fmt: skip
            return _core.Sampling.wedges(components)
        except ValueError as exc:
            raise TomoclassError(str(exc)) from None

    def _tilt_series(self, series: TiltSeries) -> _core.Sampling:
        pixel = series.pixel_size or self.pixel_size
        if series.needs_pixel_size and pixel is None:
            raise TomoclassError(
                f"tilt series {series.name or '(unnamed)'}: exposures or defoci need the "
                "particles' pixel size, and neither the list nor the particle files give one"
            )
        count = len(series.angles)
        nan = (math.nan,) * count
        return _core.Sampling.tilt_series(
            np.ascontiguousarray(series.normals()),
            list(series.exposure or (0.0,) * count),
            list(series.defocus or nan),
            list(series.scale or (1.0,) * count),
            list(series.bfactor or (0.0,) * count),
            (series.voltage, series.cs, series.amplitude_contrast),
            float(pixel or 1.0),
            self.box,
        )

    def _volume(self, volume: WeightVolume) -> _core.Sampling:
        from tomoclass.io.weights import read_weight_volume

        path = self.path(volume)
        key = (path, volume.premultiplied, volume.kind)
        built = self._volumes.get(key)
        if built is None:
            weight, data_filter = read_weight_volume(path, self.box, volume)
            built = _core.Sampling.grid(weight, data_filter)
            if len(self._volumes) >= self.MAX_VOLUMES:
                self._volumes.clear()
            self._volumes[key] = built
        return built


def weights(
    wedge: Wedge | None,
    box: int,
    rotation: np.ndarray | None = None,
    directory: str | os.PathLike | None = None,
) -> np.ndarray:
    """Weights ``W(R·k)`` of ``wedge`` seen from a particle's aligned frame.

    ``rotation`` is the particle's PyTom rotation matrix (identity: the tomogram frame);
    ``directory`` is where a weight volume's relative file name starts (default: here). The
    result is float32 ``(box, box, box // 2 + 1)``, ``[kz, ky, kx]``.
    """
    matrix = np.eye(3) if rotation is None else rotation_matrices(rotation, 1, "rotation")
    return weights_stack([wedge], box, matrix, directory)[0]


def weights_stack(
    wedges: Sequence[Wedge | None],
    box: int,
    rotations: np.ndarray,
    directory: str | os.PathLike | None = None,
) -> np.ndarray:
    """Weights of many particles, ``(N, box, box, box // 2 + 1)``; threaded in the Rust core."""
    if not isinstance(box, (int, np.integer)) or box < 1:
        raise TomoclassError(f"box: a whole number of voxels >= 1 needed, got {box!r}")
    samplings = Samplings(int(box), directory=directory)
    mats = np.ascontiguousarray(rotation_matrices(rotations, len(wedges)))
    try:
        return _core.weight_stack(int(box), [samplings.core(w) for w in wedges], mats)
    except ValueError as exc:
        raise TomoclassError(str(exc)) from None
