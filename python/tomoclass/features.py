"""How every particle of a run is prepared, in one object: :class:`Preprocessing`.

A run's preprocessing is its particles, their sampling weights, the binning, the real-space
mask and the band; ``ccc``, ``mco-*``, ``average`` and ``merge`` all take one
:class:`Preprocessing`, which reads the particles (and their weight volumes) in chunks, so
the volumes are never all in memory, and hands them to the Rust core.

Spectral features (SPEC §3): read → bin → align → multiply by the real-space mask → rFFT →
keep the band ``lowest ≤ |k| ≤ highest`` (DC excluded; Fourier voxels of the binned box)
where the particle sampled (``W_i > 0``), with its weights ``W_i`` on the same voxels.
Features larger than a memory budget go to a memory-mapped cache file.

Particles come as a :class:`~tomoclass.particles.ParticleList` (volumes read from disk) or as
a :class:`ParticleStack` held in memory.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoclass import _core
from tomoclass.checkpoint import Checkpoint
from tomoclass.errors import TomoclassError, UnsampledWarning
from tomoclass.fourier import frequency_radius
from tomoclass.geometry import rotation_matrices
from tomoclass.io import check_finite, read_volume, read_voxel_size
from tomoclass.io.files import reserved_npy
from tomoclass.io.volumes import read_volume_into
from tomoclass.parallel import Serial, allgather_rows, share
from tomoclass.particles import ParticleList
from tomoclass.wedge import Samplings, TiltSeries, Wedge

CHUNK = 128
"""Particles read and preprocessed at once."""

MEMORY_BUDGET = 2 * 2**30
"""Bytes of features kept in memory before they go to a memory-mapped cache file."""


@dataclass
class ParticleStack:
    """Particles in memory: float32 ``volumes`` ``(N, n, n, n)``, PyTom rotation matrices
    ``(N, 3, 3)``, shifts ``(N, 3)`` in voxels ``(x, y, z)``, and how each was sampled
    (a :data:`~tomoclass.wedge.Wedge`, or None for no information: full sampling)."""

    volumes: np.ndarray
    rotations: np.ndarray
    shifts: np.ndarray
    wedges: Sequence[Wedge | None]

    def __post_init__(self) -> None:
        """Shapes, type and rotations checked here, so that a mistake is a
        :class:`TomoclassError` naming the field rather than a message from the core."""
        volumes = self.volumes
        shape = getattr(volumes, "shape", None)
        if shape is None or len(shape) != 4 or len(set(shape[1:])) != 1:
            raise TomoclassError(f"volumes: a stack (N, n, n, n) of cubes is needed, got {shape}")
        if volumes.dtype != np.float32:
            raise TomoclassError(
                f"volumes: float32 is needed, got {volumes.dtype} (use volumes.astype(np.float32))"
            )
        n = shape[0]
        rotation_matrices(self.rotations, n)
        shifts = np.asarray(self.shifts, dtype=np.float64)
        if shifts.shape != (n, 3) or not np.all(np.isfinite(shifts)):
            raise TomoclassError(f"shifts: ({n}, 3) finite values are needed, got {shifts.shape}")
        try:
            count = len(self.wedges)
        except TypeError:
            count = None
        if count != n:
            raise TomoclassError(
                f"wedges: a sequence of one per particle ({n}) is needed (None for a particle "
                f"without one), got {count if count is not None else type(self.wedges).__name__}"
            )

    def __len__(self) -> int:
        return len(self.volumes)


Particles = ParticleList | ParticleStack


def take(particles: Particles, index: Sequence[int]) -> Particles:
    """The particles at ``index``, in that order (files are not read)."""
    if isinstance(particles, ParticleList):
        return particles[np.asarray(index, dtype=np.int64)]
    index = np.asarray(index, dtype=np.int64)
    return ParticleStack(particles.volumes[index], np.asarray(particles.rotations)[index],
                         np.asarray(particles.shifts)[index],
                         [particles.wedges[i] for i in index.tolist()])  # fmt: skip


@dataclass
class Band:
    """The band of the binned box ``box``: radii in Fourier voxels, ``flat`` half-grid indices
    of its voxels and their Hermitian weights ``herm``."""

    box: int
    lowest: float
    highest: float
    flat: np.ndarray
    herm: np.ndarray


def make_band(binned_box: int, lowpass: float, lowest: float = 0.0) -> Band:
    """The band up to ``lowpass`` (a radius, or a fraction of the box if below 1).

    ``lowpass`` must lie below Nyquist (``binned_box / 2``) and above ``lowest``.
    """
    highest = frequency_radius(lowpass, binned_box)
    low = frequency_radius(lowest, binned_box)
    if highest >= binned_box / 2:
        raise TomoclassError(
            f"lowpass {lowpass} is at or beyond Nyquist ({binned_box / 2} Fourier voxels "
            f"of the binned box {binned_box})"
        )
    if highest < 1 or low >= highest:
        raise TomoclassError(f"band {low}..{highest} Fourier voxels holds no frequency")
    flat, herm = _core.band_voxels(binned_box, low, highest)
    return Band(binned_box, low, highest, flat, herm)


def box_size(particles: Particles) -> int:
    """The particles' common cubic box size; an error names the first file that differs."""
    if not isinstance(particles, (ParticleList, ParticleStack)):
        raise TomoclassError(
            f"particles: a ParticleList (read_particle_list) or a ParticleStack is needed, got "
            f"{type(particles).__name__}"
        )
    if isinstance(particles, ParticleStack):
        shape = particles.volumes.shape[1:]
        if len(shape) != 3 or len(set(shape)) != 1:
            raise TomoclassError(f"particles must be cubic volumes, got shape {shape}")
        return int(shape[0])
    if len(particles) == 0:
        raise TomoclassError("the particle list is empty")
    first = particles[:1].paths()[0]  # not every path: 10⁵ of them take a second
    shape = read_volume(first, mmap=True).shape
    if len(set(shape)) != 1:
        raise TomoclassError(f"{first}: particle of shape {shape} is not a cube")
    return int(shape[0])


def wedges_of(particles: Particles) -> list[Wedge | None]:
    """How each particle was sampled (None where nothing says)."""
    if isinstance(particles, ParticleStack):
        return list(particles.wedges)
    return particles.wedges()


def warn_unsampled(particles: Particles, where: str = "the particles") -> None:
    """One warning if particles carry no sampling information (they count as fully sampled)."""
    missing = sum(w is None for w in wedges_of(particles))
    if missing:
        warnings.warn(
            f"{where}: {missing} of {len(particles)} particles carry no missing-wedge or CTF "
            "information and are treated as fully sampled",
            UnsampledWarning,
            stacklevel=3,
        )


def _read_chunk(paths: Sequence[Path], box: int) -> np.ndarray:
    stack = np.empty((len(paths), box, box, box), np.float32)
    for path, volume in zip(paths, stack, strict=True):
        read_volume_into(path, volume)
    # One pass over the chunk: its sum is finite when every voxel is. If it is not (a NaN or
    # Inf, or an overflow of the sum), each volume is checked, and the culprit named.
    with np.errstate(over="ignore", invalid="ignore"):
        total = stack.sum()
    if not np.isfinite(total):
        for path, volume in zip(paths, stack, strict=True):
            check_finite(volume, path)
    return stack


@dataclass
class Chunk:
    """Consecutive particles from ``start``, ready for the core: volumes, rotation matrices,
    shifts (float64, contiguous) and the core's samplings."""

    start: int
    volumes: np.ndarray
    rotations: np.ndarray
    shifts: np.ndarray
    samplings: list

    def geometry(self) -> tuple:
        """``(rotations, shifts, samplings)`` as the core's functions take them."""
        return self.rotations, self.shifts, self.samplings


@dataclass
class Features:
    """Spectral features: ``f`` ``(N, 2M)`` = ``F_i`` on the band where ``W_i > 0`` as
    ``[Re | Im]``, ``w`` ``(N, M)`` the weights on the band, and the band itself."""

    f: np.ndarray
    w: np.ndarray
    band: Band


class Preprocessing:
    """The preprocessing of a run: particles, their sampling weights, binning, mask and band.

    ``mask``: a volume file or array of the particle box or the binned box (None: no mask,
    as for averages). ``band``: the feature band (None when only averages are made).
    ``binning``: Fourier binning factor dividing the box; ``order``: interpolation (1 or 3);
    ``chunk``: particles read at once. Weight volumes are read when their particles are.
    Tilt series without a pixel size take it from the first particle file's header.
    """

    def __init__(
        self,
        particles: Particles,
        mask: str | os.PathLike | np.ndarray | None = None,
        band: Band | None = None,
        binning: int = 1,
        *,
        order: int = 3,
        chunk: int = CHUNK,
    ) -> None:
        from tomoclass.mask import load_mask  # mask imports this module's neighbours

        self.particles = particles
        self.box = box_size(particles)
        if binning < 1 or self.box % binning:
            raise TomoclassError(f"binning {binning} does not divide the box size {self.box}")
        self.binning, self.order, self.chunk = binning, order, chunk
        self.turn: np.ndarray | None = None  # see turned()
        m = self.box // binning
        self.mask = (
            np.ones((m, m, m), np.float32) if mask is None else load_mask(mask, self.box, binning)
        )
        self.band = band
        warn_unsampled(particles)
        directory = particles.directory if isinstance(particles, ParticleList) else None
        self.samplings = Samplings(self.box, binning, directory, self._pixel_size())
        try:
            self.core = _core.Preprocess(self.box, binning, self.mask, order)
        except ValueError as exc:
            raise TomoclassError(str(exc)) from None

    @classmethod
    def for_band(
        cls,
        particles: Particles,
        mask: str | os.PathLike | np.ndarray,
        lowpass: float,
        binning: int = 1,
        lowest: float = 0.0,
        **options,
    ) -> Preprocessing:
        """The preprocessing of a correlation run: ``mask`` and the band ``lowest..lowpass``
        (Fourier voxels of the binned box; below 1: fractions of it)."""
        box = box_size(particles)
        if binning < 1 or box % binning:
            raise TomoclassError(f"binning {binning} does not divide the box size {box}")
        return cls(particles, mask, make_band(box // binning, lowpass, lowest), binning, **options)

    def unmasked(self) -> Preprocessing:
        """The same particles, sampling and binning without mask or band, for averages."""
        mask = np.ones_like(self.mask)
        core = _core.Preprocess(self.box, self.binning, mask, self.order)
        return self._copy(mask=mask, band=None, core=core)

    def turned(self, turn: np.ndarray) -> Preprocessing:
        """The same preprocessing with every particle's rotation ``R`` taken as ``R·turn``
        (a symmetry copy, see :class:`~tomoclass.geometry.PointSymmetry`)."""
        return self._copy(turn=np.asarray(turn, dtype=np.float64))

    def _copy(self, **changes) -> Preprocessing:
        other = object.__new__(Preprocessing)
        other.__dict__.update(self.__dict__, **changes)
        return other

    def _pixel_size(self) -> float | None:
        """Å per voxel from the first particle file, if any tilt series needs it."""
        needs = any(
            isinstance(w, TiltSeries) and w.needs_pixel_size and w.pixel_size is None
            for w in wedges_of(self.particles)
        )
        if not needs or not isinstance(self.particles, ParticleList):
            return None
        return read_voxel_size(self.particles[:1].paths()[0])

    @property
    def binned_box(self) -> int:
        """The box size after binning."""
        return self.box // self.binning

    def __len__(self) -> int:
        return len(self.particles)

    def subset(self, index: Sequence[int]) -> Preprocessing:
        """The same preprocessing of the particles at ``index`` (e.g. Nyström landmarks)."""
        return self._copy(particles=take(self.particles, index))

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[Chunk]:
        """Particles ``start..stop`` in chunks, reading files only when they are needed."""
        stop = len(self.particles) if stop is None else stop
        window = slice(start, stop)  # the geometry of these particles only
        part = self.particles
        if isinstance(part, ParticleStack):
            rotations, shifts = np.asarray(part.rotations)[window], np.asarray(part.shifts)[window]
            wedges, paths = list(part.wedges[window]), None
        else:
            part = part[window]
            rotations, shifts, paths = part.rotation_matrices(), part.shifts(), part.paths()
            wedges = part.wedges()
        if self.turn is not None:
            rotations = np.asarray(rotations) @ self.turn
        for a in range(0, stop - start, self.chunk):
            b = min(a + self.chunk, stop - start)
            if paths is None:
                volumes = np.ascontiguousarray(part.volumes[start + a : start + b], np.float32)
                check_finite(volumes, f"particles {start + a}..{start + b - 1}")
            else:
                volumes = _read_chunk(paths[a:b], self.box)
            yield Chunk(
                start + a,
                volumes,
                np.ascontiguousarray(rotations[a:b], dtype=np.float64),
                np.ascontiguousarray(shifts[a:b], dtype=np.float64),
                [self._sampling(start + i, wedges[i]) for i in range(a, b)],
            )

    def _sampling(self, index: int, wedge: Wedge | None):
        try:
            return self.samplings.core(wedge)
        except TomoclassError as exc:
            raise TomoclassError(f"particle {index}: {exc}") from None

    def features(
        self,
        start: int = 0,
        stop: int | None = None,
        *,
        out: tuple[np.ndarray, np.ndarray] | None = None,
        progress=None,
        store: Checkpoint | None = None,
    ) -> Features:
        """Features of particles ``start..stop`` (default: all) on the band.

        ``out``: arrays ``(f, w)`` of ``stop − start`` rows to fill (e.g. rows of a
        memory-mapped file) instead of new ones in memory. ``progress`` is called with the
        number of particles done after each chunk. ``store``: a checkpoint keeping every
        finished chunk, whose chunks are taken instead of computed again.
        """
        band = self._band()
        stop = len(self.particles) if stop is None else stop
        m = len(band.flat)
        if out is None:
            f = np.empty((stop - start, 2 * m), np.float32)
            w = np.empty((stop - start, m), np.float32)
        else:
            f, w = out
            if f.shape != (stop - start, 2 * m) or w.shape != (stop - start, m):
                raise ValueError(f"out arrays {f.shape}, {w.shape} do not fit {stop - start} rows")
        for a in range(start, stop, self.chunk):
            b = min(a + self.chunk, stop)
            kept = _kept_features(store, a, b, m)
            if kept is None:
                (chunk,) = self.chunks(a, b)
                kept = self._core_call(
                    self.core.features, chunk.volumes, *chunk.geometry(),
                    (band.lowest, band.highest),
                )  # fmt: skip
                if store is not None:
                    store.save(f"features_{a}_{b}_f", kept[0])
                    store.save(f"features_{a}_{b}_w", kept[1])
            f[a - start : b - start], w[a - start : b - start] = kept
            if progress is not None:
                progress(b - a)
        return Features(f, w, band)

    def gathered_features(
        self,
        comm=None,
        *,
        progress=None,
        cache_dir: str | os.PathLike | None = None,
        memory_budget: float = float("inf"),
        store: Checkpoint | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(f, w)`` of all particles; under MPI each rank computes its share and
        every rank receives all of them, in particle order. ``store``: see :meth:`features`.

        Features larger than ``memory_budget`` bytes go to ``cache_dir`` (a folder all ranks
        see, e.g. beside the output): each rank fills its rows of one shared file, and all
        get it memory-mapped read-only, so no rank holds them in memory and a node's page
        cache serves all its ranks.
        """
        comm = comm or Serial()
        n, m = len(self.particles), len(self._band().flat)
        start, stop = share(comm, comm.rank, n)
        if cache_dir is None or feature_bytes(n, self._band()) <= memory_budget:
            feats = self.features(start, stop, progress=progress, store=store)
            return allgather_rows(comm, feats.f), allgather_rows(comm, feats.w)
        paths = (Path(cache_dir) / "features_f.npy", Path(cache_dir) / "features_w.npy")
        if comm.rank == 0:
            try:
                Path(cache_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TomoclassError(f"{cache_dir}: cannot write ({exc.strerror})") from None
            for path, width in zip(paths, (2 * m, m), strict=True):
                reserved_npy(path, (n, width)).flush()
        comm.allgather(None)  # the files exist before any rank opens them
        f, w = (np.load(path, mmap_mode="r+") for path in paths)
        self.features(start, stop, out=(f[start:stop], w[start:stop]), progress=progress,
                      store=store)  # fmt: skip
        f.flush()
        w.flush()
        del f, w
        comm.allgather(None)  # every rank's rows are written
        return tuple(np.load(path, mmap_mode="r") for path in paths)

    def masked_spectra(self, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Full half-grid spectra ``rFFT(mask·align(bin(v)))`` ``(N, m, m, m//2+1)`` and the
        particles' weights on the same grid, for the real-space (PyTom) correlation."""
        m = self.binned_box
        spectra = np.empty((len(self.particles), m, m, m // 2 + 1), np.complex64)
        weights = np.empty((len(self.particles), m, m, m // 2 + 1), np.float32)
        for chunk in self.chunks():
            b = chunk.start + len(chunk.volumes)
            spectra[chunk.start : b] = self._core_call(
                self.core.spectra, chunk.volumes, *chunk.geometry()
            )
            weights[chunk.start : b] = self._core_call(
                _core.weight_stack, m, chunk.samplings, chunk.rotations
            )
            if progress is not None:
                progress(b - chunk.start)
        return spectra, weights

    def class_sums(self, chunk: Chunk, codes: Sequence[int], classes: int) -> tuple:
        """Per-class sums ``(Σ W·F, Σ W², counts, reach)`` of one chunk (unmasked when the
        preprocessing has no mask; see :mod:`tomoclass.average`)."""
        return self._core_call(
            self.core.class_sums, chunk.volumes, *chunk.geometry(), list(codes), classes
        )

    def checkpoint_params(self) -> dict:
        """What features (and the correlations from them) depend on, to refuse resuming a
        run whose inputs changed."""
        band = self._band()
        return {"n": len(self), "box": self.box, "binning": self.binning,
                "lowest": band.lowest, "highest": band.highest,
                "data": self.fingerprint()}  # fmt: skip

    def fingerprint(self) -> str:
        """A digest of everything a result depends on besides the numeric parameters: the
        mask, the particles' geometry and sampling, and their data (file names, sizes and
        times, or the volumes themselves for a stack in memory)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.mask).tobytes())
        particles = self.particles
        if isinstance(particles, ParticleStack):
            digest.update(np.ascontiguousarray(particles.volumes).tobytes())
            rotations, shifts = particles.rotations, particles.shifts
        else:
            for path in particles.paths():
                try:
                    stat = path.stat()
                except OSError as exc:
                    raise TomoclassError(f"{path}: cannot read ({exc.strerror})") from None
                digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            rotations, shifts = particles.rotation_matrices(), particles.shifts()
        digest.update(np.ascontiguousarray(rotations, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(shifts, dtype=np.float64).tobytes())
        digest.update(repr(wedges_of(particles)).encode())
        return digest.hexdigest()

    def _band(self) -> Band:
        if self.band is None:
            raise ValueError("this preprocessing has no band (it was made for averages)")
        return self.band

    @staticmethod
    def _core_call(function, *args):
        """Call the core; its errors (a weight volume of another box, say) name no file."""
        try:
            return function(*args)
        except ValueError as exc:
            raise TomoclassError(str(exc)) from None


def as_preprocessing(
    particles: Particles | Preprocessing,
    mask: str | os.PathLike | np.ndarray | None,
    lowpass: float | None,
    binning: int = 1,
    lowest: float = 0.0,
) -> Preprocessing:
    """``particles`` if it is a :class:`Preprocessing` (then ``mask`` and ``lowpass`` must be
    None), else the preprocessing of ``particles`` with ``mask`` and the band up to
    ``lowpass``."""
    if isinstance(particles, Preprocessing):
        if mask is not None or lowpass is not None:
            raise TomoclassError(
                "give a Preprocessing or particles with mask and lowpass, not both"
            )
        return particles
    if mask is None or lowpass is None:
        raise TomoclassError("particles need a mask and a lowpass")
    return Preprocessing.for_band(particles, mask, lowpass, binning, lowest)


def _kept_features(store: Checkpoint | None, a: int, b: int, m: int) -> tuple | None:
    """The features of particles ``a..b`` (band of ``m`` voxels) from ``store``, if there."""
    if store is None:
        return None
    f = store.load(f"features_{a}_{b}_f", (b - a, 2 * m))
    w = store.load(f"features_{a}_{b}_w", (b - a, m))
    return None if f is None or w is None else (f, w)


def feature_bytes(n: int, band: Band) -> int:
    """Bytes of the features of ``n`` particles on ``band`` (F as Re, Im and W; float32)."""
    return n * 3 * len(band.flat) * 4
