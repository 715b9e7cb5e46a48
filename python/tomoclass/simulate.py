"""Synthetic aligned subtomograms with known classes: the test bed of every classifier.

Each class is the same compact, chiral body with one domain swung about a hinge by a
class-specific angle (a conformational change). Every particle is its class map rotated by a
random PyTom rotation and shifted (``tomoclass.transform.forward``), given white noise at the
requested SNR, then filtered by the missing wedge of its tomogram (wedge after noise, as in a
real tomogram). The particle list records the rotation and shift that bring the particle back
(optionally with alignment errors), so the particles are "aligned" in PyTom's sense.

SNR is the variance of the noise-free particle over the box divided by the noise variance.
A tilt range ``(min, max)`` in degrees becomes ``SingleTiltWedge(Angle1 = 90 − max,
Angle2 = 90 + min)``: a specimen tilted right-handedly about +y by a positive angle is sampled
on the Fourier half ``kx·kz > 0`` (Angle1's half in :mod:`tomoclass.wedge`); Dynamo tables are
read with the same rule.

Layouts (:func:`write_simulation`): ``pytom`` (the default) writes the particles above with a
PyTom list. ``warp`` and ``relion`` write the data set a Warp or RELION 5 user has: per
tomogram a dose-symmetric tilt series (:func:`tilt_scheme`; defocus from
:attr:`SimulationConfig.defoci`, 300 kV, Cs 2.7 mm, amplitude contrast 0.07), and per particle
the subtomogram its program makes of those tilt images together with its weight volume, in the
program's names, folders, data types and STAR files. Everything is computed in the tomogram
frame on the rFFT half grid of the box with tomoclass's tilt model (:mod:`tomoclass.wedge`,
:class:`~tomoclass.wedge.TiltSeries`): tilt ``j`` (angle θⱼ about y, pre-exposure eⱼ) is a
central slice one Fourier voxel thick, ``tⱼ(u) = max(0, 1 − |nⱼ·u|)`` with
``nⱼ = (−sin θⱼ, 0, cos θⱼ)``, carrying ``Xⱼ = CTFⱼ·Dⱼ·S + Nⱼ``: ``S`` the spectrum of the
class map moved by the particle's true rotation and shift, ``CTFⱼ`` the signed CTF and ``Dⱼ``
the exposure filter of Grant & Grigorieff (the real radiation damage), both at the frequency
within the tilt's plane, and ``Nⱼ`` white noise of standard deviation sigma. Everything is 0
beyond ``|u| = n/2`` (the Nyquist sphere). Per-particle depth defocus, astigmatism, contrast
inversion, normalisation, interpolation and oversampling are left out.

* ``warp`` (WarpTools ``ts_export_particles --3d``; warpem/warp
  ``WarpLib/TiltSeries/TiltSeries.ReconstructSubtomos.cs``, "RS"):
  data ``M·Σ tⱼ·CTFwⱼ·Xⱼ / max(Σ tⱼ·|CTFⱼ|, 10⁻⁴)`` with ``CTFwⱼ = CTFⱼ·Dⱼ·cos θⱼ`` and
  ``M = min(Σ tⱼ, 1)`` (RS 160-187), and the 3-D CTF ``M·Σ tⱼ·CTFⱼ·CTFwⱼ / max(Σ tⱼ·|CTFⱼ|,
  10⁻⁴)`` (RS 165-169, 216), with values below 0.01 set to 0 (``MakeSparse``, RS 263-271). Both
  are float16 MRC (mode 12) with the pixel size in the header (``Image.WriteMRC16b``, RS 206
  and 273); the CTF is the half grid ``(n, n, n//2+1)`` ``[z, y, x]``, DC at index 0 (RS 94,
  244-260). Files ``subtomo/<TS>/<TS>_<p:07d>_<px:.2f>A.mrc`` and ``…_ctf_<px:.2f>A.mrc``
  (``p`` counts from 0 within the tilt series, RS 206, 273, 287), and ``particles.star``: one
  bare ``data_`` table in WarpTools' columns and number formats
  (``WarpTools/Commands/Tiltseries/ExportParticlesTiltseries.cs`` 755-879), paths relative
  to the STAR file's folder (``--relative_output_paths``). Warp's CTF carries the dose
  weight once while its data carry it twice (the real damage and the weight), as in Warp. A
  Warp STAR file has no origin columns, so this layout simulates centred particles: it needs
  ``max_shift = shift_error = 0``.
* ``relion`` (``relion_tomo_subtomo``, pseudo-subtomograms; 3dem/relion
  ``src/jaz/tomography``): data ``Σ tⱼ·cⱼ·Xⱼ`` with ``cⱼ = CTFⱼ·Dⱼ``
  (premultiplied, divided by nothing; ``programs/subtomo.cpp`` 780-795) and the weights
  ``(2n, n, n//2+1)`` float32: ``z < n`` the CTF² sum ``Σ tⱼ·cⱼ²``, ``z ≥ n`` the multiplicity
  ``Σ tⱼ``, half grids with DC at index 0 (``subtomo.cpp`` 924-930; header pixel size
  ``1/px`` as there). Files ``Subtomograms/<tomo>/<k>_data.mrc`` and ``_weights.mrc`` for
  the particle named ``<tomo>/<k>`` (k from 1, ``particle_set.cpp`` 135-158),
  ``particles.star`` (``data_general``, ``data_optics`` with one group per tomogram,
  ``data_particles``; ``ParticleSet::write`` in ``particle_set.cpp``, columns as
  :mod:`tomoclass.io.star` reads them) and RELION 5's ``tomograms.star`` with one
  ``tilt_series/<tomo>.star`` per tomogram (:mod:`tomoclass.io.tomograms`), for
  ``--tomograms``. There are no
  tilt images, so RELION's own programs cannot load these tomograms.

Both also write ``truth.csv`` (``rlnImageName``, class, tomogram name, in the STAR file's
order), ``mask.mrc`` and ``class_<k>_reference.mrc``. Tomograms are named ``TS_01``,
``TS_02``, …; particle positions (metadata only) are drawn from the stream ``(seed, 2)``.

SNR of these layouts: the mean over particles of the variance of the noise-free data volume
(over the box) divided by the mean over particles of the expected variance of the noise in
the data volume. The noise of the data is ``Σ aⱼ(u)·Nⱼ`` for the layout's coefficients
``aⱼ``; it is made from the particle's white-noise volume (stream ``(seed, 1, i)``, as for
``pytom``) by ``rfft``, times ``sigma·sqrt(Σ aⱼ²)``, and sigma is set from this definition.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import mrcfile
import numpy as np

from tomoclass.errors import TomoclassError
from tomoclass.features import ParticleStack
from tomoclass.fourier import irfftn, rfftn
from tomoclass.geometry import Rotation, Shift
from tomoclass.io import write_particle_list, write_volume
from tomoclass.io.files import atomic_output
from tomoclass.mask import spherical_mask
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.transform import forward
from tomoclass.wedge import SingleTiltWedge, TiltSeries, tilt_range_wedge, weights

DEFAULT_TILT_RANGES: tuple[tuple[float, float], ...] = ((-60, 60), (-50, 60), (-60, 45), (-45, 45))
"""Tilt ranges (degrees) of the simulated tomograms; particles are spread over them in turn."""

DOMAIN_STEP = 45.0
"""Degrees the moving domain swings between consecutive classes."""

_CHUNK = 256  # particles simulated at once: bounds memory for large N
_SPECTRA_CACHE = 256 << 20  # bytes of noise-free spectra kept between the layouts' two passes

LAYOUTS: tuple[str, ...] = ("pytom", "warp", "relion")
"""File layouts :func:`write_simulation` writes (see the module docstring)."""

DEFAULT_DEFOCI: tuple[float, ...] = (2.5, 3.5, 4.5, 6.0)
"""Defocus (µm, underfocus) of the simulated tomograms in turn (warp and relion layouts)."""

VOLTAGE = 300.0
"""Acceleration voltage of the simulated tilt series, kV."""
SPHERICAL_ABERRATION = 2.7
"""Spherical aberration, mm."""
AMPLITUDE_CONTRAST = 0.07
"""Amplitude contrast Q0 (a fraction)."""
TOMOGRAM_SIZE: tuple[int, int, int] = (1024, 1024, 256)
"""Size x, y, z of every simulated tomogram in voxels of the particles (metadata only)."""
WARP_SPARSE = 0.01
"""Warp's ``MakeSparse``: 3-D CTF values of smaller magnitude are set to 0 (RS 263-271)."""
WARP_MIN_DENOMINATOR = 1e-4
"""Warp's floor of the back-projected Σ t·|CTF| it divides by (RS 165-187)."""


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Lengths are voxels, angles degrees."""

    n_particles: int = 200
    n_classes: int = 2
    box: int = 32
    snr: float = 0.1
    fractions: Sequence[float] | None = None
    tilt_ranges: Sequence[tuple[float, float]] = DEFAULT_TILT_RANGES
    max_shift: float = 2.0
    angular_error: float = 0.0
    shift_error: float = 0.0
    seed: int = 0
    pixel_size: float = 8.0
    """Å per voxel: in the header of every MRC file written (EM files have no place for it);
    the warp and relion layouts' CTFs and STAR files use it too."""
    defoci: Sequence[float] = DEFAULT_DEFOCI
    """Defocus of each tomogram in µm (underfocus), used in turn (warp and relion layouts)."""
    tilt_step: float = 3.0
    """Degrees between tilts: the tilts are the multiples of it within each tilt range."""
    dose_per_tilt: float = 3.0
    """Electron exposure of each tilt image, e/Å² (warp and relion layouts)."""
    factor: float = 0.0
    """0: classes differ by a swung domain (a conformational change). Above 0: they differ
    in composition: all share one conformation, and class ``k ≥ 1`` carries a small factor
    whose mass is this fraction of the body's, bound at site ``k`` (class 0 has none)."""

    def check(self, layout: str = "pytom") -> None:
        """Raise :class:`TomoclassError` naming the first impossible parameter (for ``layout``,
        one of :data:`LAYOUTS`)."""
        for name in ("n_particles", "n_classes", "box"):
            if not isinstance(getattr(self, name), (int, np.integer)):
                raise TomoclassError(f"{name}: a whole number needed, got {getattr(self, name)!r}")
        if any(np.shape(pair) != (2,) for pair in self.tilt_ranges):
            raise TomoclassError(
                f"tilt_ranges: (min, max) pairs of degrees needed, got {list(self.tilt_ranges)}"
            )
        if self.n_classes < 1 or self.n_classes > 360 / DOMAIN_STEP:
            raise TomoclassError(
                f"classes must be 1..{int(360 / DOMAIN_STEP)}, got {self.n_classes}"
            )
        if self.n_particles < self.n_classes:
            raise TomoclassError(
                f"particles ({self.n_particles}) must be at least the classes ({self.n_classes})"
            )
        if self.box < 16:
            raise TomoclassError(f"box must be >= 16 voxels, got {self.box}")
        if self.snr <= 0:
            raise TomoclassError(f"snr must be > 0, got {self.snr}")
        if self.fractions is not None and (
            len(self.fractions) != self.n_classes or min(self.fractions) <= 0
        ):
            raise TomoclassError(
                f"fractions must be {self.n_classes} positive numbers, got {list(self.fractions)}"
            )
        for lo, hi in self.tilt_ranges:
            if not -90 <= lo < hi <= 90:
                raise TomoclassError(f"tilt range ({lo}, {hi}) must satisfy -90 <= min < max <= 90")
        if not (math.isfinite(self.factor) and 0 <= self.factor <= 0.5):
            raise TomoclassError(f"factor must be within 0..0.5 of the mass, got {self.factor}")
        for name in ("max_shift", "angular_error", "shift_error"):
            if getattr(self, name) < 0:
                raise TomoclassError(f"{name.replace('_', '-')} must be >= 0")
        if layout not in LAYOUTS:
            raise TomoclassError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        for name in ("pixel_size", "tilt_step"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise TomoclassError(f"{name.replace('_', '-')} must be > 0, got {value}")
        if not (math.isfinite(self.dose_per_tilt) and self.dose_per_tilt >= 0):
            raise TomoclassError(f"dose per tilt must be >= 0 e/Å², got {self.dose_per_tilt}")
        if not self.defoci or not all(math.isfinite(d) and d > 0 for d in self.defoci):
            raise TomoclassError(f"defoci must be positive µm, got {list(self.defoci)}")
        if layout == "pytom":
            return
        for lo, hi in self.tilt_ranges:
            tilt_scheme(lo, hi, self.tilt_step, self.dose_per_tilt)
        if layout == "warp" and (self.max_shift != 0 or self.shift_error != 0):
            raise TomoclassError(
                "the warp layout has centred particles (a Warp STAR file has no origin "
                f"columns): max-shift and shift-error must be 0, got {self.max_shift} and "
                f"{self.shift_error}"
            )


@dataclass
class Simulation:
    """Simulated particles: particle ``i`` is of class ``labels[i]``. Its volume is made on
    demand (:meth:`volume_chunks`, or all at once as :attr:`volumes`), so a large simulation
    is written to disk without ever being whole in memory."""

    labels: np.ndarray
    rotations: list[Rotation]
    shifts: np.ndarray
    tomograms: np.ndarray
    wedges: list[SingleTiltWedge]
    references: np.ndarray
    config: SimulationConfig = field(repr=False)
    true_matrices: np.ndarray = field(repr=False)
    true_shifts: np.ndarray = field(repr=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def volume_chunks(self, chunk: int = _CHUNK) -> Iterator[tuple[int, np.ndarray]]:
        """``(first index, float32 volumes)`` of the particles, ``chunk`` at a time: the class
        map moved by the true rotation and shift, plus noise from the stream ``(seed, 1, i)``,
        filtered by the tomogram's wedge."""
        box, refs = self.config.box, self.references
        noise_sd = np.sqrt(refs.var(axis=(1, 2, 3)).mean() / self.config.snr)
        wedge_weights = np.stack([weights(w, box) for w in self.wedges])
        for start in range(0, len(self.labels), chunk):
            idx = np.arange(start, min(start + chunk, len(self.labels)))
            clean = forward(refs[self.labels[idx]], self.true_matrices[idx], self.true_shifts[idx])
            noise = np.stack([
                np.random.default_rng([self.config.seed, 1, i]).standard_normal((box,) * 3)
                for i in idx
            ])  # fmt: skip
            spectra = rfftn(clean + (noise_sd * noise).astype(np.float32))
            spectra *= wedge_weights[self.tomograms[idx]]
            yield start, irfftn(spectra, (box, box, box)).astype(np.float32, copy=False)

    @cached_property
    def volumes(self) -> np.ndarray:
        """All particles in memory, float32 ``(N, box, box, box)``."""
        return np.concatenate([v for _, v in self.volume_chunks()])

    def particle_stack(self) -> ParticleStack:
        """The particles as an in-memory :class:`~tomoclass.features.ParticleStack`, with the
        recorded rotations and shifts and each particle's tomogram wedge."""
        rotations = np.stack([r.matrix() for r in self.rotations])
        wedges = [self.wedges[t] for t in self.tomograms]
        return ParticleStack(self.volumes, rotations, self.shifts, wedges)

    # ---------------------------------------------------------------- warp and relion layouts

    @cached_property
    def tilt_series(self) -> list[TiltSeries]:
        """Each tomogram's tilt series (:func:`tilt_scheme`): angles, pre-exposures, defocus
        (Å), optics and pixel size; named ``TS_01``, ``TS_02``, …"""
        cfg = self.config
        series = []
        for t, (lo, hi) in enumerate(cfg.tilt_ranges):
            angles, exposure = tilt_scheme(lo, hi, cfg.tilt_step, cfg.dose_per_tilt)
            defocus = float(cfg.defoci[t % len(cfg.defoci)]) * 1e4
            series.append(
                TiltSeries(
                    angles=tuple(angles.tolist()),
                    exposure=tuple(exposure.tolist()),
                    defocus=(defocus,) * len(angles),
                    voltage=VOLTAGE,
                    cs=SPHERICAL_ABERRATION,
                    amplitude_contrast=AMPLITUDE_CONTRAST,
                    pixel_size=float(cfg.pixel_size),
                    name=f"TS_{t + 1:02d}",
                )
            )
        return series

    @cached_property
    def positions(self) -> np.ndarray:
        """``(N, 3)`` particle positions x, y, z in Å from the tomogram's centre (metadata of
        the warp and relion layouts, from the stream ``(seed, 2)``)."""
        rng = np.random.default_rng([self.config.seed, 2])
        span = np.array(TOMOGRAM_SIZE, dtype=np.float64) * self.config.pixel_size
        return rng.uniform(-0.4, 0.4, (len(self.labels), 3)) * span

    def transfers(self, layout: str) -> list[LayoutTransfer]:
        """Each tomogram's :class:`LayoutTransfer` for ``layout`` (``"warp"`` or ``"relion"``)."""
        key = ("transfers", layout)
        if key not in self._cache:
            if layout not in LAYOUTS[1:]:
                raise TomoclassError(f"layout must be 'warp' or 'relion', got {layout!r}")
            self._cache[key] = [
                layout_transfer(s, self.config.box, layout) for s in self.tilt_series
            ]
        return self._cache[key]

    def _clean_spectra(self, chunk: int = _CHUNK) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(first index, indices, rfft of the noise-free particles)``, ``chunk`` at a time;
        kept in memory for the next pass when all of them fit in :data:`_SPECTRA_CACHE` bytes."""
        key = ("spectra", chunk)
        if key in self._cache:
            yield from self._cache[key]
            return
        box, refs, n = self.config.box, self.references, len(self.labels)
        kept: list | None = [] if n * box * box * (box // 2 + 1) * 8 <= _SPECTRA_CACHE else None
        for start in range(0, n, chunk):
            idx = np.arange(start, min(start + chunk, n))
            clean = forward(refs[self.labels[idx]], self.true_matrices[idx], self.true_shifts[idx])
            item = (start, idx, rfftn(clean))
            if kept is not None:
                kept.append(item)
            yield item
        if kept is not None:
            self._cache[key] = kept

    def noise_sd(self, layout: str) -> float:
        """Sigma of the tilt images' noise (in ``numpy.fft.rfftn`` units of a real-space volume of
        unit-variance voxels) that gives ``config.snr`` in ``layout`` (see the module
        docstring). Costs one pass over the particles."""
        key = ("noise_sd", layout)
        if key not in self._cache:
            transfers = self.transfers(layout)
            box = self.config.box
            counts = _hermitian_counts(box)
            signal = np.stack([t.signal for t in transfers])
            total = 0.0
            for _, idx, spectra in self._clean_spectra():
                power = np.abs(spectra * signal[self.tomograms[idx]]) ** 2
                full = np.einsum("nzyx,x->n", power.astype(np.float64), counts)
                total += float((full - power[:, 0, 0, 0]).sum())
            signal_var = total / (len(self.labels) * float(box) ** 6)
            noise_var = np.array([
                ((t.noise.astype(np.float64) ** 2 * counts).sum() - float(t.noise[0, 0, 0]) ** 2)
                / float(box) ** 3
                for t in transfers
            ])  # fmt: skip
            mean_noise = float(noise_var[self.tomograms].mean())
            self._cache[key] = math.sqrt(signal_var / (self.config.snr * mean_noise))
        return self._cache[key]

    def layout_chunks(
        self, layout: str, chunk: int = _CHUNK, noise: bool = True
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(first index, float32 data volumes)`` of the particles in ``layout``
        (``"warp"`` or ``"relion"``), ``chunk`` at a time, in the order of the simulation
        (particle ``i`` is of class ``labels[i]``); ``noise=False`` gives the noise-free data."""
        transfers = self.transfers(layout)
        box = self.config.box
        signal = np.stack([t.signal for t in transfers])
        amplitude = np.stack([t.noise for t in transfers])
        sd = self.noise_sd(layout) if noise else 0.0
        for start, idx, spectra in self._clean_spectra(chunk):
            tomo = self.tomograms[idx]
            data = spectra * signal[tomo]  # a new array: cached spectra stay as they are
            if noise:
                white = np.stack([
                    np.random.default_rng([self.config.seed, 1, i]).standard_normal((box,) * 3)
                    for i in idx
                ])  # fmt: skip
                data += (sd * amplitude[tomo]).astype(np.float32) * rfftn(white)
            yield start, irfftn(data, (box, box, box)).astype(np.float32, copy=False)


def _gaussian(grid: tuple[np.ndarray, ...], centre, sigma) -> np.ndarray:
    return np.exp(
        -sum((g - c) ** 2 / (2 * s**2) for g, c, s in zip(grid, centre, sigma, strict=True))
    )


def phantoms(box: int, n_classes: int, factor: float = 0.0) -> np.ndarray:
    """Class maps ``(n_classes, box, box, box)``: one body, a domain swung per class; or,
    with ``factor`` > 0 (see :attr:`SimulationConfig.factor`), one conformation and a factor
    of that fraction of the mass bound at a site per class from class 1.

    Sizes scale with the box, so a phantom looks the same at every box size.
    """
    c = box // 2
    axis = (np.arange(box, dtype=np.float64) - c) / box
    grid = (axis[None, None, :], axis[None, :, None], axis[:, None, None])  # x, y, z
    body = (
        _gaussian(grid, (-0.06, 0.0, 0.0), (0.14, 0.09, 0.10))
        + 0.8 * _gaussian(grid, (0.08, -0.08, 0.03), (0.07, 0.07, 0.07))
        + 0.6 * _gaussian(grid, (-0.12, 0.12, -0.08), (0.045, 0.045, 0.045))
    )
    hinge = np.array([0.08, 0.06, 0.0])

    def domain(k: int) -> np.ndarray:
        angle = np.radians(DOMAIN_STEP * k)
        arm = 0.13 * np.array([np.sin(angle), np.cos(angle), 0.35])
        return 0.9 * _gaussian(grid, hinge + arm, (0.06, 0.06, 0.06))

    if factor <= 0:
        maps = [body + domain(k) for k in range(n_classes)]
    else:
        body = body + domain(0)
        maps = [body]
        for k in range(1, n_classes):
            # Sites on the body's surface, spread round z, clear of the domain at angle 0.
            angle = np.radians(DOMAIN_STEP * (k + 2))
            site = (-0.06 + 0.2 * np.cos(angle), 0.15 * np.sin(angle), -0.05)
            blob = _gaussian(grid, site, (0.035, 0.035, 0.035))
            maps.append(body + factor * body.sum() / blob.sum() * blob)
    out = np.stack(maps).astype(np.float32)
    return out / out.max()


def _class_labels(config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    fractions = (
        np.ones(config.n_classes) if config.fractions is None else np.array(config.fractions)
    )
    counts = np.floor(fractions / fractions.sum() * config.n_particles).astype(int)
    counts[: config.n_particles - counts.sum()] += 1  # the remainder, one each to the first
    labels = np.repeat(np.arange(config.n_classes), counts)
    return rng.permutation(labels)


def _pytom_angles(rotations) -> list[Rotation]:
    """PyTom angles of scipy rotations."""
    z1, x, z2 = rotations.as_euler("zxz", degrees=True).T
    return [Rotation(float(a), float(b), float(c)) for a, b, c in zip(z1, z2, x, strict=True)]


def simulate_particles(config: SimulationConfig) -> Simulation:
    """Simulate (volumes made on demand); same seed, same particles."""
    from scipy.spatial.transform import Rotation as ScipyRotation  # slow to import: lazily

    config.check()
    rng = np.random.default_rng(config.seed)
    n, box = config.n_particles, config.box
    labels = _class_labels(config, rng)
    true_rot = ScipyRotation.random(n, random_state=rng)
    shifts = rng.uniform(-config.max_shift, config.max_shift, (n, 3))
    tomograms = np.arange(n) % len(config.tilt_ranges)
    recorded_rot, recorded_shift = true_rot, shifts
    if config.angular_error > 0:
        errors = ScipyRotation.from_rotvec(
            rng.normal(0, np.radians(config.angular_error), (n, 3)) / np.sqrt(3)
        )
        recorded_rot = errors * true_rot
    if config.shift_error > 0:
        recorded_shift = shifts + rng.normal(0, config.shift_error, (n, 3))
    return Simulation(
        labels=labels,
        rotations=_pytom_angles(recorded_rot),
        shifts=recorded_shift,
        tomograms=tomograms,
        wedges=[tilt_range_wedge(lo, hi) for lo, hi in config.tilt_ranges],
        references=phantoms(box, config.n_classes, config.factor),
        config=config,
        true_matrices=true_rot.as_matrix(),
        true_shifts=shifts,
    )


# ------------------------------------------------------------------------ tilt series physics


def dose_symmetric_order(angles: Sequence[float], group: int = 2) -> np.ndarray:
    """The acquisition rank (0 = first) of each tilt angle in a dose-symmetric scheme (Hagen et
    al. 2017): starting at the tilt nearest 0°, groups of ``group`` tilts alternate between
    the positive and the negative side, each side from low to high |angle|; the first group is
    the start tilt and ``group − 1`` positive ones (0, +3, −3, −6, +6, +9, −9, … for groups of
    2). When one side runs out, the other continues."""
    values = np.asarray(angles, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0 or len(np.unique(values)) != len(values):
        raise TomoclassError(f"tilt angles must be distinct numbers, got {values.tolist()}")
    if group < 1:
        raise TomoclassError(f"tilt group must be >= 1, got {group}")
    start = int(np.argmin(np.abs(values)))
    sides = [
        sorted(np.flatnonzero(values > values[start]).tolist(), key=lambda i: values[i]),
        sorted(np.flatnonzero(values < values[start]).tolist(), key=lambda i: -values[i]),
    ]
    sequence, side, take = [start], 0, group - 1
    while sides[0] or sides[1]:
        source = sides[side] if sides[side] else sides[1 - side]
        sequence.extend(source[:take])
        del source[:take]
        side, take = 1 - side, group
    rank = np.empty(len(values), dtype=np.int64)
    rank[sequence] = np.arange(len(values))
    return rank


def tilt_scheme(
    lo: float, hi: float, step: float = 3.0, dose: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(angles, pre-exposures)`` of a tilt series from ``lo`` to ``hi`` degrees: the
    multiples of ``step`` within the range, ascending, and the exposure (e/Å²) each had received
    before it was taken, ``dose`` per tilt in :func:`dose_symmetric_order` (RELION's
    ``rlnMicrographPreExposure``; the first tilt is undamaged)."""
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    if last < first:
        raise TomoclassError(f"tilt range {lo}:{hi} holds no multiple of the tilt step {step}°")
    angles = np.arange(first, last + 1) * float(step) + 0.0  # + 0.0: no -0
    return angles, dose_symmetric_order(angles) * float(dose)


def wavelength(voltage: float) -> float:
    """Relativistic electron wavelength in Å at ``voltage`` kV."""
    volts = voltage * 1e3
    return 12.2643247 / math.sqrt(volts * (1 + 0.978466e-6 * volts))


def _half_grid(box: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fourier voxel coordinates ``(ux, uy, uz)`` of the rFFT half grid, broadcastable."""
    k = np.fft.fftfreq(box, 1.0 / box)
    return (
        np.arange(box // 2 + 1, dtype=np.float64)[None, None, :],
        k[None, :, None],
        k[:, None, None],
    )


def _hermitian_counts(box: int) -> np.ndarray:
    """How many voxels of the full grid each ``kx`` plane of the half grid stands for."""
    counts = np.full(box // 2 + 1, 2.0)
    counts[0] = 1.0
    if box % 2 == 0:
        counts[-1] = 1.0
    return counts


TiltImage = tuple[float, np.ndarray, np.ndarray, np.ndarray]
"""One tilt's ``(cos θ, triangle t, CTF, exposure filter D)`` on the half grid."""


def tilt_images(series: TiltSeries, box: int) -> Iterator[TiltImage]:
    """Per tilt of ``series``: ``(cos θ, t, CTF, D)`` on the half grid of ``box``: the
    triangle ``t = max(0, 1 − |n·u|)`` (0 beyond ``|u| = box/2``), the signed CTF
    ``sin(π·λ·Δf·s² − π/2·Cs·λ³·s⁴ + asin(Q0))`` and the exposure filter
    ``exp(−e / (2·(0.245·s^−1.665 + 2.81)))`` at the frequency ``s`` (1/Å) within the tilt's
    plane (:mod:`tomoclass.wedge`). Needs the series' exposures, defoci and pixel size."""
    if series.exposure is None or series.defocus is None or series.pixel_size is None:
        raise TomoclassError("simulated tilt images need exposures, defoci and a pixel size")
    ux, uy, uz = _half_grid(box)
    r2 = ux**2 + uy**2 + uz**2
    inside = r2 <= (box / 2) ** 2
    lam, cs = wavelength(series.voltage), series.cs * 1e7  # Å, Å
    phase = math.asin(series.amplitude_contrast)
    per_angstrom = 1.0 / (box * series.pixel_size)
    for angle, normal, exposure, defocus in zip(
        series.angles, series.normals(), series.exposure, series.defocus, strict=True
    ):
        d = normal[0] * ux + normal[1] * uy + normal[2] * uz
        t = np.where(inside, np.maximum(0.0, 1.0 - np.abs(d)), 0.0)
        s2 = np.maximum(r2 - d**2, 0.0) * per_angstrom**2
        ctf = np.sin(np.pi * lam * defocus * s2 - np.pi / 2 * cs * lam**3 * s2**2 + phase)
        with np.errstate(divide="ignore"):
            critical = 0.245 * s2 ** (-1.665 / 2) + 2.81  # inf at s = 0: no damage there
        damage = np.exp(-exposure / (2.0 * critical))
        yield math.cos(math.radians(angle)), t, ctf, damage


@dataclass(frozen=True)
class LayoutTransfer:
    """How one tomogram's tilt images become a layout's data and weights, on the half grid
    ``(n, n, n//2+1)``: the data are ``signal·S + sigma·noise·rfft(white)`` (``S`` the particle's
    noise-free spectrum, ``white`` a unit white-noise volume), and ``weights`` is the weight
    file's content (Warp: the float16 3-D CTF; RELION: the float32 CTF² sum stacked on the
    multiplicity, ``(2n, n, n//2+1)``)."""

    signal: np.ndarray
    noise: np.ndarray
    weights: np.ndarray


def layout_transfer(series: TiltSeries, box: int, layout: str) -> LayoutTransfer:
    """The :class:`LayoutTransfer` of ``series`` for particles of ``box³`` in ``layout``
    (``"warp"`` or ``"relion"``; formulas in the module docstring)."""
    shape = (box, box, box // 2 + 1)
    cover, ctf2, products, signal, noise2, sum_abs = (np.zeros(shape) for _ in range(6))
    for cos_theta, t, ctf, damage in tilt_images(series, box):
        cover += t
        c = ctf * damage  # what the tilt image carries
        if layout == "relion":
            ctf2 += t * c**2
            noise2 += (t * c) ** 2
        elif layout == "warp":
            weighted = c * cos_theta  # Warp's CTFw, from its dose model (here the real one)
            sum_abs += t * np.abs(ctf)
            products += t * ctf * weighted
            signal += t * weighted * c
            noise2 += (t * weighted) ** 2
        else:
            raise TomoclassError(f"layout must be 'warp' or 'relion', got {layout!r}")
    if layout == "relion":
        weights = np.concatenate([ctf2, cover]).astype(np.float32)
        return LayoutTransfer(ctf2.astype(np.float32), np.sqrt(noise2).astype(np.float32), weights)
    norm = np.minimum(cover, 1.0) / np.maximum(sum_abs, WARP_MIN_DENOMINATOR)
    ctf3d = products * norm
    ctf3d[np.abs(ctf3d) < WARP_SPARSE] = 0.0
    return LayoutTransfer(
        (signal * norm).astype(np.float32),
        (np.sqrt(noise2) * norm).astype(np.float32),
        ctf3d.astype(np.float16),
    )


# ------------------------------------------------------------------------------ writing


def write_simulation(
    sim: Simulation,
    directory: str | os.PathLike,
    fmt: str | None = None,
    layout: str = "pytom",
) -> Path:
    """Write the simulated data set into ``directory`` in ``layout`` (:data:`LAYOUTS`; see the
    module docstring) and return the particle list's path.

    ``pytom``: ``particles/particle_<i>.<fmt>``, ``particles.xml``, ``mask.<fmt>``,
    ``class_<k>_reference.<fmt>`` and ``truth.csv`` (filename, class, tomogram number); ``fmt``
    ``"em"`` (default) or ``"mrc"``. ``warp`` and ``relion``: their subtomograms, weight
    volumes and ``particles.star`` (RELION also ``tomograms.star`` and ``tilt_series/``),
    ``mask.mrc``, ``class_<k>_reference.mrc`` and ``truth.csv`` (``rlnImageName``, class,
    tomogram name); they write MRC only (``fmt`` None or ``"mrc"``). MRC files carry the
    voxel size :attr:`SimulationConfig.pixel_size`.
    """
    if layout not in LAYOUTS:
        raise TomoclassError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "pytom":
        return _write_pytom(sim, directory, "em" if fmt is None else fmt)
    if fmt not in (None, "mrc"):
        raise TomoclassError(f"the {layout} layout writes MRC files, not {fmt!r}")
    sim.config.check(layout)  # before anything is written
    folder = _make_folder(Path(directory))
    if layout == "warp":
        return _write_warp(sim, folder)
    return _write_relion(sim, folder)


def _make_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TomoclassError(
            f"{folder}: cannot create the output folder ({exc.strerror})"
        ) from None
    return folder


def _write_pytom(sim: Simulation, directory: str | os.PathLike, fmt: str) -> Path:
    if fmt not in ("em", "mrc"):
        raise TomoclassError(f"format must be 'em' or 'mrc', got {fmt!r}")
    folder = Path(directory)
    try:
        (folder / "particles").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TomoclassError(
            f"{folder}: cannot create the output folder ({exc.strerror})"
        ) from None
    pixel = sim.config.pixel_size  # stored by MRC files only
    for start, volumes in sim.volume_chunks():
        for i, volume in enumerate(volumes, start):
            write_volume(folder / f"particles/particle_{i:06d}.{fmt}", volume, voxel_size=pixel)
    particles = []
    for i in range(len(sim.labels)):
        name = f"particles/particle_{i:06d}.{fmt}"
        tomo = int(sim.tomograms[i])
        particles.append(
            Particle(
                filename=name,
                rotation=sim.rotations[i],
                shift=Shift(*(float(v) for v in sim.shifts[i])),
                pick_position=PickPosition(0.0, 0.0, 0.0, origin=f"tomogram_{tomo}"),
                wedge=sim.wedges[tomo],
            )
        )
    _write_maps(sim, folder, fmt)
    with open(folder / "truth.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "class", "tomogram"])
        for p, label, tomo in zip(particles, sim.labels, sim.tomograms, strict=True):
            writer.writerow([p.filename, int(label), int(tomo)])
    list_path = folder / "particles.xml"
    write_particle_list(ParticleList(particles, directory=folder), list_path)
    return list_path


def _write_maps(sim: Simulation, folder: Path, fmt: str) -> None:
    """``class_<k>_reference.<fmt>`` and ``mask.<fmt>``, MRC files with the voxel size."""
    pixel = sim.config.pixel_size
    for k, ref in enumerate(sim.references):
        write_volume(folder / f"class_{k}_reference.{fmt}", ref, voxel_size=pixel)
    write_volume(folder / f"mask.{fmt}", spherical_mask(sim.config.box), voxel_size=pixel)


def star_order(sim: Simulation) -> np.ndarray:
    """The simulation indices in the order of the warp and relion STAR files: grouped by
    tomogram (as WarpTools writes them), by index within a tomogram."""
    return np.argsort(sim.tomograms, kind="stable")


def _numbers_in_tomogram(sim: Simulation) -> np.ndarray:
    """Each particle's 0-based number within its tomogram, in STAR order."""
    numbers = np.empty(len(sim.labels), dtype=np.int64)
    seen: dict[int, int] = {}
    for i in star_order(sim):
        t = int(sim.tomograms[i])
        numbers[i] = seen.get(t, 0)
        seen[t] = numbers[i] + 1
    return numbers


def layout_filenames(sim: Simulation, layout: str) -> list[tuple[str, str]]:
    """``(data, weights)`` file names of each particle (simulation order) in ``layout``
    (``"warp"`` or ``"relion"``), relative to the data set's folder."""
    numbers = _numbers_in_tomogram(sim)
    names = []
    for i in range(len(sim.labels)):
        ts = sim.tilt_series[int(sim.tomograms[i])].name
        if layout == "warp":
            stem = f"subtomo/{ts}/{ts}_{numbers[i]:07d}"
            pixel = f"{sim.config.pixel_size:.2f}A.mrc"
            names.append((f"{stem}_{pixel}", f"{stem}_ctf_{pixel}"))
        elif layout == "relion":
            stem = f"Subtomograms/{ts}/{numbers[i] + 1}"
            names.append((f"{stem}_data.mrc", f"{stem}_weights.mrc"))
        else:
            raise TomoclassError(f"layout must be 'warp' or 'relion', got {layout!r}")
    return names


def _write_mrc(path: Path, data: np.ndarray, voxel_size: float) -> None:
    """``data`` as an MRC file in its own dtype (float16: mode 12), with ``voxel_size`` (Å)."""
    with atomic_output(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data))
            mrc.voxel_size = voxel_size


def _write_particles(sim: Simulation, folder: Path, layout: str, dtype: type) -> list[tuple]:
    """Write every particle's data and weight volume; return the file names."""
    names = layout_filenames(sim, layout)
    for data, _ in names:
        (folder / data).parent.mkdir(parents=True, exist_ok=True)
    transfers, pixel = sim.transfers(layout), sim.config.pixel_size
    # RELION writes its weights with the pixel size 1/px (subtomo.cpp 929)
    weight_pixel = 1.0 / pixel if layout == "relion" else pixel
    first: dict[int, Path] = {}  # a tomogram's weights are the same for all its particles
    for start, volumes in sim.layout_chunks(layout):
        for i, volume in enumerate(volumes, start):
            data, weight = names[i]
            _write_mrc(folder / data, volume.astype(dtype), pixel)
            tomo = int(sim.tomograms[i])
            if tomo in first:
                with atomic_output(folder / weight) as tmp:
                    shutil.copyfile(first[tomo], tmp)
            else:
                _write_mrc(folder / weight, transfers[tomo].weights, weight_pixel)
                first[tomo] = folder / weight
    return names


def _write_common(sim: Simulation, folder: Path, filenames: Sequence[str]) -> None:
    """References, mask and ``truth.csv`` (rows in STAR order) of the warp and relion layouts."""
    _write_maps(sim, folder, "mrc")
    with atomic_output(folder / "truth.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "class", "tomogram"])
        for i in star_order(sim):
            tomo = sim.tilt_series[int(sim.tomograms[i])].name
            writer.writerow([filenames[i], int(sim.labels[i]), tomo])


def _fixed(values: np.ndarray, digits: int) -> list[str]:
    return [f"{v + 0.0:.{digits}f}" for v in np.asarray(values, dtype=np.float64)]


def _float32_text(values: np.ndarray) -> list[str]:
    """Shortest text of each value as a float32 (how .NET writes Warp's float angles)."""
    return [
        np.format_float_positional(np.float32(v + 0.0), unique=True, trim="-")
        for v in np.asarray(values)
    ]


def _write_star_text(
    path: Path, blocks: Sequence[tuple[str, Mapping[str, Sequence[str] | str]]]
) -> None:
    """A STAR file of ``blocks`` ``(name, columns)`` with values already as text: a block whose
    values are strings is a key-value block, else a ``loop_`` with ``_name #i`` headers and
    right-aligned columns two spaces apart (Warp's style, ``WarpLib/Star.cs``)."""
    lines: list[str] = []
    for name, columns in blocks:
        lines += ["", f"data_{name}", ""]
        if all(isinstance(v, str) for v in columns.values()):
            width = max(len(k) for k in columns) + 1
            lines += [f"_{k:<{width}} {v}" for k, v in columns.items()]
            lines.append("")
            continue
        lines.append("loop_")
        lines += [f"_{k} #{j}" for j, k in enumerate(columns, 1)]
        cells = [list(map(str, v)) for v in columns.values()]
        widths = [max(map(len, c), default=0) for c in cells]
        for row in zip(*cells, strict=True):
            lines.append("".join(f"  {v:>{w}}" for v, w in zip(row, widths, strict=True)))
        lines.append("")
    with atomic_output(path) as tmp, open(tmp, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def _relion_angles(sim: Simulation, order: np.ndarray) -> np.ndarray:
    """RELION ``(rot, tilt, psi)`` of the recorded rotations, in ``order``."""
    from tomoclass.io.star import rotations_to_relion

    rows = np.array([[sim.rotations[i].z1, sim.rotations[i].z2, sim.rotations[i].x] for i in order])
    return rotations_to_relion(rows)


def _write_warp(sim: Simulation, folder: Path) -> Path:
    """WarpTools ``ts_export_particles --3d --relative_output_paths`` (module docstring)."""
    cfg, order = sim.config, star_order(sim)
    names = _write_particles(sim, folder, "warp", np.float16)
    tomo = [sim.tilt_series[int(sim.tomograms[i])].name for i in order]
    count = len(order)
    corner = np.array(TOMOGRAM_SIZE, dtype=np.float64) / 2.0
    pixels = sim.positions[order] / cfg.pixel_size + corner  # from the tomogram's corner
    angles = _relion_angles(sim, order)
    columns: dict[str, Sequence[str]] = {
        "rlnCoordinateX": _fixed(pixels[:, 0], 3),
        "rlnCoordinateY": _fixed(pixels[:, 1], 3),
        "rlnCoordinateZ": _fixed(pixels[:, 2], 3),
        "rlnAngleRot": _float32_text(angles[:, 0]),
        "rlnAngleTilt": _float32_text(angles[:, 1]),
        "rlnAnglePsi": _float32_text(angles[:, 2]),
        "rlnMicrographName": [f"{t}.tomostar" for t in tomo],
        "rlnMagnification": ["10000.0"] * count,
        "rlnDetectorPixelSize": _fixed([cfg.pixel_size] * count, 5),
        "rlnCtfMaxResolution": _float32_text([2.0 * cfg.pixel_size] * count),
        "rlnImageName": [names[i][0] for i in order],
        "rlnCtfImage": [names[i][1] for i in order],
        "rlnPixelSize": _fixed([cfg.pixel_size] * count, 5),
        "rlnVoltage": _fixed([VOLTAGE] * count, 3),
        "rlnSphericalAberration": _fixed([SPHERICAL_ABERRATION] * count, 3),
    }
    list_path = folder / "particles.star"
    _write_star_text(list_path, [("", columns)])
    _write_common(sim, folder, [n[0] for n in names])
    return list_path


def _write_relion(sim: Simulation, folder: Path) -> Path:
    """``relion_tomo_subtomo`` output (module docstring) and RELION 5's ``tomograms.star``."""
    cfg, order = sim.config, star_order(sim)
    names = _write_particles(sim, folder, "relion", np.float32)
    numbers = _numbers_in_tomogram(sim)
    series = sim.tilt_series
    tomo = [series[int(sim.tomograms[i])].name for i in order]
    groups = len(series)
    general = {"rlnTomoSubTomosAre2DStacks": "0"}
    optics: dict[str, Sequence[str]] = {
        "rlnOpticsGroup": [str(g + 1) for g in range(groups)],
        "rlnOpticsGroupName": [s.name for s in series],
        "rlnCtfDataAreCtfPremultiplied": ["1"] * groups,
        "rlnImageDimensionality": ["3"] * groups,
        "rlnTomoTiltSeriesPixelSize": _fixed([cfg.pixel_size] * groups, 6),
        "rlnTomoSubtomogramBinning": _fixed([1.0] * groups, 6),
        "rlnImagePixelSize": _fixed([cfg.pixel_size] * groups, 6),
        "rlnImageSize": [str(cfg.box)] * groups,
        "rlnVoltage": _fixed([VOLTAGE] * groups, 6),
        "rlnSphericalAberration": _fixed([SPHERICAL_ABERRATION] * groups, 6),
        "rlnAmplitudeContrast": _fixed([AMPLITUDE_CONTRAST] * groups, 6),
    }
    positions, angles = sim.positions[order], _relion_angles(sim, order)
    origins = -sim.shifts[order] * cfg.pixel_size  # RELION: particle at coordinate − origin
    particles: dict[str, Sequence[str]] = {
        "rlnTomoName": tomo,
        "rlnTomoParticleName": [f"{t}/{numbers[i] + 1}" for t, i in zip(tomo, order, strict=True)],
        "rlnCenteredCoordinateXAngst": _fixed(positions[:, 0], 6),
        "rlnCenteredCoordinateYAngst": _fixed(positions[:, 1], 6),
        "rlnCenteredCoordinateZAngst": _fixed(positions[:, 2], 6),
        "rlnAngleRot": _fixed(angles[:, 0], 6),
        "rlnAngleTilt": _fixed(angles[:, 1], 6),
        "rlnAnglePsi": _fixed(angles[:, 2], 6),
        "rlnOriginXAngst": _fixed(origins[:, 0], 6),
        "rlnOriginYAngst": _fixed(origins[:, 1], 6),
        "rlnOriginZAngst": _fixed(origins[:, 2], 6),
        "rlnImageName": [names[i][0] for i in order],
        "rlnCtfImage": [names[i][1] for i in order],
        "rlnOpticsGroup": [str(int(sim.tomograms[i]) + 1) for i in order],
    }
    list_path = folder / "particles.star"
    _write_star_text(
        list_path, [("general", general), ("optics", optics), ("particles", particles)]
    )
    _write_tomograms(sim, folder)
    _write_common(sim, folder, [n[0] for n in names])
    return list_path


def _write_tomograms(sim: Simulation, folder: Path) -> None:
    """RELION 5's ``tomograms.star`` and ``tilt_series/<tomo>.star``
    (:mod:`tomoclass.io.tomograms`): tilts in the order of their angles, the dose order in
    ``rlnMicrographPreExposure``."""
    (folder / "tilt_series").mkdir(exist_ok=True)
    series = sim.tilt_series
    size = [str(v) for v in TOMOGRAM_SIZE]
    count = len(series)
    global_columns: dict[str, Sequence[str]] = {
        "rlnTomoName": [s.name for s in series],
        "rlnVoltage": _fixed([VOLTAGE] * count, 6),
        "rlnSphericalAberration": _fixed([SPHERICAL_ABERRATION] * count, 6),
        "rlnAmplitudeContrast": _fixed([AMPLITUDE_CONTRAST] * count, 6),
        "rlnTomoTiltSeriesPixelSize": _fixed([sim.config.pixel_size] * count, 6),
        "rlnTomoHand": ["1"] * count,
        "rlnTomoSizeX": [size[0]] * count,
        "rlnTomoSizeY": [size[1]] * count,
        "rlnTomoSizeZ": [size[2]] * count,
        "rlnTomoTiltSeriesStarFile": [f"tilt_series/{s.name}.star" for s in series],
    }
    _write_star_text(folder / "tomograms.star", [("global", global_columns)])
    for s in series:
        tilts = len(s.angles)
        zeros = _fixed([0.0] * tilts, 6)
        defocus = _fixed(s.defocus, 6)
        columns: dict[str, Sequence[str]] = {
            "rlnTomoNominalStageTiltAngle": _fixed(s.angles, 6),
            "rlnMicrographPreExposure": _fixed(s.exposure, 6),
            "rlnTomoXTilt": zeros,
            "rlnTomoYTilt": _fixed(s.angles, 6),
            "rlnTomoZRot": zeros,
            "rlnTomoXShiftAngst": zeros,
            "rlnTomoYShiftAngst": zeros,
            "rlnDefocusU": defocus,
            "rlnDefocusV": defocus,
            "rlnDefocusAngle": zeros,
            "rlnCtfScalefactor": _fixed([1.0] * tilts, 6),
        }
        _write_star_text(folder / f"tilt_series/{s.name}.star", [(s.name, columns)])


def read_truth(path: str | os.PathLike) -> dict[str, int]:
    """``truth.csv`` as a mapping filename → true class."""
    with open(path, newline="") as handle:
        return {row["filename"]: int(row["class"]) for row in csv.DictReader(handle)}
