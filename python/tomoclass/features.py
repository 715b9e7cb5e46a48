"""Spectral features of particles: each particle preprocessed once, in the Rust core.

Pipeline (SPEC §3): read → bin → align → multiply by the real-space mask → rFFT → keep the
band ``lowest ≤ |k| ≤ highest`` (DC excluded; Fourier voxels of the binned box) → multiply
by the particle's own wedge ``W_i``. Particles are read and processed in chunks, so the
volumes are never all in memory; features larger than a memory budget go to a memory-mapped
cache file.

Particles come as a :class:`~tomoclass.particles.ParticleList` (volumes read from disk) or as
a :class:`ParticleStack` held in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoclass import _core
from tomoclass.errors import TomoclassError
from tomoclass.fourier import frequency_radius
from tomoclass.io import check_finite, read_volume
from tomoclass.io.files import reserved_npy
from tomoclass.parallel import Serial, allgather_rows, share
from tomoclass.particles import ParticleList
from tomoclass.wedge import Wedge, core_components

CHUNK = 128
"""Particles read and preprocessed at once."""

MEMORY_BUDGET = 2 * 2**30
"""Bytes of features kept in memory before they go to a memory-mapped cache file."""


@dataclass
class ParticleStack:
    """Particles in memory: float32 ``volumes`` ``(N, n, n, n)``, PyTom rotation matrices
    ``(N, 3, 3)``, shifts ``(N, 3)`` in voxels ``(x, y, z)``, and one wedge per particle."""

    volumes: np.ndarray
    rotations: np.ndarray
    shifts: np.ndarray
    wedges: Sequence[Wedge | None]

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
    if isinstance(particles, ParticleStack):
        shape = particles.volumes.shape[1:]
        if len(shape) != 3 or len(set(shape)) != 1:
            raise TomoclassError(f"particles must be cubic volumes, got shape {shape}")
        return int(shape[0])
    if len(particles) == 0:
        raise TomoclassError("the particle list is empty")
    first = particles.paths()[0]
    shape = read_volume(first, mmap=True).shape
    if len(set(shape)) != 1:
        raise TomoclassError(f"{first}: particle of shape {shape} is not a cube")
    return int(shape[0])


def _read_chunk(paths: Sequence[Path], box: int) -> np.ndarray:
    stack = np.empty((len(paths), box, box, box), np.float32)
    for k, path in enumerate(paths):
        volume = read_volume(path)
        if volume.shape != (box,) * 3:
            raise TomoclassError(
                f"{path}: particle of shape {volume.shape}, but the first particle is {box}³"
            )
        check_finite(volume, path)
        stack[k] = volume
    return stack


def iter_chunks(
    particles: Particles, start: int = 0, stop: int | None = None, chunk: int = CHUNK
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, list]]:
    """``(first index, volumes, rotation matrices, shifts, wedges)`` for particles
    ``start..stop`` in chunks, reading files only when they are needed."""
    stop = len(particles) if stop is None else stop
    if isinstance(particles, ParticleStack):
        for a in range(start, stop, chunk):
            b = min(a + chunk, stop)
            volumes = np.ascontiguousarray(particles.volumes[a:b], dtype=np.float32)
            check_finite(volumes, f"particles {a}..{b - 1}")
            rotations = np.asarray(particles.rotations[a:b], dtype=np.float64)
            yield a, volumes, rotations, np.asarray(particles.shifts[a:b]), particles.wedges[a:b]
        return
    box = box_size(particles)
    part = particles[start:stop]  # the geometry of these particles only
    paths, rotations = part.paths(), part.rotation_matrices()
    shifts, wedges = part.shifts(), part.wedges()
    for a in range(start, stop, chunk):
        b = min(a + chunk, stop)
        k = slice(a - start, b - start)
        yield a, _read_chunk(paths[k], box), rotations[k], shifts[k], wedges[k]


def _preprocess(particles: Particles, mask: np.ndarray, binning: int, order: int):
    try:
        return _core.Preprocess(box_size(particles), int(binning), mask, int(order))
    except ValueError as exc:
        raise TomoclassError(str(exc)) from None


def _geometry(rotations: np.ndarray, shifts: np.ndarray, wedges: list, binning: int) -> tuple:
    return (
        np.ascontiguousarray(rotations, dtype=np.float64),
        np.ascontiguousarray(shifts, dtype=np.float64),
        [core_components(w, binning) for w in wedges],
    )


@dataclass
class Features:
    """Spectral features: ``f`` ``(N, 2M)`` = ``W_i·F_i`` on the band as ``[Re | Im]``,
    ``w`` ``(N, M)`` the wedges on the band, and the band itself."""

    f: np.ndarray
    w: np.ndarray
    band: Band


def spectral_features(
    particles: Particles,
    mask: np.ndarray,
    band: Band,
    binning: int = 1,
    *,
    start: int = 0,
    stop: int | None = None,
    order: int = 3,
    progress=None,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> Features:
    """Features of particles ``start..stop`` (default: all) for the binned ``mask`` and ``band``.

    ``out``: arrays ``(f, w)`` of ``stop − start`` rows to fill (e.g. rows of a memory-mapped
    file) instead of new ones in memory. ``progress`` is called with the number of particles
    done after each chunk.
    """
    stop = len(particles) if stop is None else stop
    m = len(band.flat)
    if out is None:
        f, w = np.empty((stop - start, 2 * m), np.float32), np.empty((stop - start, m), np.float32)
    else:
        f, w = out
        if f.shape != (stop - start, 2 * m) or w.shape != (stop - start, m):
            raise ValueError(f"out arrays {f.shape}, {w.shape} do not fit {stop - start} rows")
    pre = _preprocess(particles, mask, binning, order)
    for a, volumes, rotations, shifts, wedges in iter_chunks(particles, start, stop):
        geometry = _geometry(rotations, shifts, wedges, binning)
        cf, cw = pre.features(volumes, *geometry, (band.lowest, band.highest))
        f[a - start : a - start + len(cf)] = cf
        w[a - start : a - start + len(cw)] = cw
        if progress is not None:
            progress(len(cf))
    return Features(f, w, band)


def masked_spectra(
    particles: Particles,
    mask: np.ndarray,
    binning: int = 1,
    *,
    order: int = 3,
    progress=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Full half-grid spectra ``rFFT(mask·align(bin(v)))`` ``(N, m, m, m//2+1)`` and the
    particles' wedges on the same grid, for the real-space (PyTom) correlation."""
    box = box_size(particles)
    m = box // binning
    spectra = np.empty((len(particles), m, m, m // 2 + 1), np.complex64)
    wedges = np.empty((len(particles), m, m, m // 2 + 1), np.float32)
    pre = _preprocess(particles, mask, binning, order)
    for a, volumes, rotations, shifts, chunk_wedges in iter_chunks(particles):
        b = a + len(volumes)
        geometry = _geometry(rotations, shifts, chunk_wedges, binning)
        spectra[a:b] = pre.spectra(volumes, *geometry)
        wedges[a:b] = _core.wedge_stack(m, geometry[2], geometry[0])
        if progress is not None:
            progress(b - a)
    return spectra, wedges


def prepare(
    particles: Particles,
    mask: str | os.PathLike | np.ndarray,
    binning: int,
    highest: float,
    lowest: float = 0.0,
) -> tuple[np.ndarray, Band]:
    """Check the box and binning, then the binned mask and the band of a run."""
    from tomoclass.mask import load_mask  # mask imports this module's neighbours

    box = box_size(particles)
    if binning < 1 or box % binning:
        raise TomoclassError(f"binning {binning} does not divide the box size {box}")
    return load_mask(mask, box, binning), make_band(box // binning, highest, lowest)


def feature_bytes(n: int, band: Band) -> int:
    """Bytes of the features of ``n`` particles on ``band`` (F as Re, Im and W; float32)."""
    return n * 3 * len(band.flat) * 4


def gathered_features(
    particles: Particles,
    mask: np.ndarray,
    band: Band,
    binning: int,
    comm=None,
    *,
    progress=None,
    cache_dir: str | os.PathLike | None = None,
    memory_budget: float = float("inf"),
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(f, w)`` of all particles; under MPI each rank computes its share and every
    rank receives all of them, in particle order.

    Features larger than ``memory_budget`` bytes go to ``cache_dir`` (a folder all ranks
    see, e.g. beside the output): each rank fills its rows of one shared file, and all get
    it memory-mapped read-only, so no rank holds them in memory and a node's page cache
    serves all its ranks.
    """
    comm = comm or Serial()
    start, stop = share(comm, comm.rank, len(particles))
    if cache_dir is None or feature_bytes(len(particles), band) <= memory_budget:
        feats = spectral_features(particles, mask, band, binning, start=start, stop=stop,
                                  progress=progress)  # fmt: skip
        return allgather_rows(comm, feats.f), allgather_rows(comm, feats.w)
    m, n = len(band.flat), len(particles)
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
    spectral_features(particles, mask, band, binning, start=start, stop=stop,
                      progress=progress, out=(f[start:stop], w[start:stop]))  # fmt: skip
    f.flush()
    w.flush()
    del f, w
    comm.allgather(None)  # every rank's rows are written
    return tuple(np.load(path, mmap_mode="r") for path in paths)
