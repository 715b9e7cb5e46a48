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
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation as ScipyRotation

from tomoclass.errors import TomoclassError
from tomoclass.features import ParticleStack
from tomoclass.fourier import irfftn, rfftn
from tomoclass.geometry import Rotation, Shift
from tomoclass.io import write_particle_list, write_volume
from tomoclass.mask import spherical_mask
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.transform import forward
from tomoclass.wedge import SingleTiltWedge, tilt_range_wedge, weights

DEFAULT_TILT_RANGES: tuple[tuple[float, float], ...] = ((-60, 60), (-50, 60), (-60, 45), (-45, 45))
"""Tilt ranges (degrees) of the simulated tomograms; particles are spread over them in turn."""

DOMAIN_STEP = 45.0
"""Degrees the moving domain swings between consecutive classes."""

_CHUNK = 256  # particles simulated at once: bounds memory for large N


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

    def check(self) -> None:
        """Raise :class:`TomoclassError` naming the first impossible parameter."""
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
        for name in ("max_shift", "angular_error", "shift_error"):
            if getattr(self, name) < 0:
                raise TomoclassError(f"{name.replace('_', '-')} must be >= 0")


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


def _gaussian(grid: tuple[np.ndarray, ...], centre, sigma) -> np.ndarray:
    return np.exp(
        -sum((g - c) ** 2 / (2 * s**2) for g, c, s in zip(grid, centre, sigma, strict=True))
    )


def phantoms(box: int, n_classes: int) -> np.ndarray:
    """Class maps ``(n_classes, box, box, box)``: one body, a domain swung per class.

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
    maps = []
    for k in range(n_classes):
        angle = np.radians(DOMAIN_STEP * k)
        arm = 0.13 * np.array([np.sin(angle), np.cos(angle), 0.35])
        domain = 0.9 * _gaussian(grid, hinge + arm, (0.06, 0.06, 0.06))
        maps.append(body + domain)
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


def _pytom_angles(rotations: ScipyRotation) -> list[Rotation]:
    z1, x, z2 = rotations.as_euler("zxz", degrees=True).T
    return [Rotation(float(a), float(b), float(c)) for a, b, c in zip(z1, z2, x, strict=True)]


def simulate_particles(config: SimulationConfig) -> Simulation:
    """Simulate (volumes made on demand); same seed, same particles."""
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
        references=phantoms(box, config.n_classes),
        config=config,
        true_matrices=true_rot.as_matrix(),
        true_shifts=shifts,
    )


def write_simulation(sim: Simulation, directory: str | os.PathLike, fmt: str = "em") -> Path:
    """Write particles, ``particles.xml``, ``mask.<fmt>``, ``class_<k>_reference.<fmt>`` and
    ``truth.csv`` (filename, class, tomogram) into ``directory``; return the list's path."""
    if fmt not in ("em", "mrc"):
        raise TomoclassError(f"format must be 'em' or 'mrc', got {fmt!r}")
    folder = Path(directory)
    try:
        (folder / "particles").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TomoclassError(
            f"{folder}: cannot create the output folder ({exc.strerror})"
        ) from None
    for start, volumes in sim.volume_chunks():
        for i, volume in enumerate(volumes, start):
            write_volume(folder / f"particles/particle_{i:06d}.{fmt}", volume)
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
    for k, ref in enumerate(sim.references):
        write_volume(folder / f"class_{k}_reference.{fmt}", ref)
    write_volume(folder / f"mask.{fmt}", spherical_mask(sim.config.box))
    with open(folder / "truth.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "class", "tomogram"])
        for p, label, tomo in zip(particles, sim.labels, sim.tomograms, strict=True):
            writer.writerow([p.filename, int(label), int(tomo)])
    list_path = folder / "particles.xml"
    write_particle_list(ParticleList(particles, directory=folder), list_path)
    return list_path


def read_truth(path: str | os.PathLike) -> dict[str, int]:
    """``truth.csv`` as a mapping filename → true class."""
    with open(path, newline="") as handle:
        return {row["filename"]: int(row["class"]) for row in csv.DictReader(handle)}
