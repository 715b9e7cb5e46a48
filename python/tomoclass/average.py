"""Wedge-weighted class averages, summed in Fourier space in the Rust core.

``A = irFFT( Σ W_i·F_i / max(Σ W_i, floor·n) )`` over the ``n`` particles of a class, with
``F_i`` the spectrum of the aligned (binned, unmasked) particle and ``W_i`` its wedge seen
from the aligned frame; PyTom's floor is 0.05. The result is low-passed to ``lowpass``
(Fourier voxels of the binned box; default: no low-pass) and keeps its mean. The wedge sum
``Σ W_i`` shows how well each Fourier voxel was sampled; it is returned (and written) as a
full, centred volume (DC at voxel ``m // 2``). Sums are accumulated in a fixed order, so the
averages are identical for any thread count and any number of MPI ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoclass import _core
from tomoclass.errors import TomoclassError
from tomoclass.features import CHUNK, Particles, ParticleStack, box_size, iter_chunks
from tomoclass.fourier import band_mask, frequency_radius
from tomoclass.io import write_volume
from tomoclass.parallel import Serial, share
from tomoclass.wedge import core_components

FLOOR = 0.05
"""PyTom's lower bound of the wedge sum, as a fraction of the number of particles."""


@dataclass
class ClassAverage:
    """One class: its label, its average (float32 ``[z, y, x]``), its centred wedge sum and
    how many particles it holds."""

    label: str
    volume: np.ndarray
    wedge_sum: np.ndarray
    count: int


def _labels_of(particles: Particles, labels) -> list[str]:
    if labels is not None:
        out = [str(v) for v in labels]
        if len(out) != len(particles):
            raise TomoclassError(f"{len(out)} labels for {len(particles)} particles")
        return out
    if isinstance(particles, ParticleStack):
        return ["0"] * len(particles)
    names = particles.class_names()
    return ["0" if name is None else name for name in names]


def _full_centred(half: np.ndarray, m: int) -> np.ndarray:
    """A real, point-symmetric half-grid quantity as a full ``m³`` volume with DC centred."""
    idx = (-np.arange(m)) % m
    mirrored = half[np.ix_(idx, idx)]  # value at (−kz, −ky, kx)
    full = np.empty((m, m, m), np.float32)
    nh = half.shape[2]
    full[..., :nh] = half
    negative = np.arange(nh, m)  # kx = j − m < 0 reads (−kz, −ky, m − j)
    full[..., negative] = mirrored[..., m - negative]
    return np.fft.fftshift(full)


def class_averages(
    particles: Particles,
    labels=None,
    binning: int = 1,
    lowpass: float | None = None,
    floor: float = FLOOR,
    order: int = 3,
    progress=None,
    comm=None,
) -> list[ClassAverage] | None:
    """Wedge-weighted averages of every class, in order of first appearance.

    ``labels`` (one per particle) default to the particle list's classes (particles without
    a class form class "0"). ``binning`` divides the box; ``lowpass`` is a radius in Fourier
    voxels of the binned box (below 1: a fraction of it). Under MPI (``comm``) each rank sums
    its share of the particles, chunk by chunk, and rank 0 adds the chunks in order, so the
    averages equal the single-process ones; they are returned on rank 0, None elsewhere.
    """
    comm = comm or Serial()
    if floor < 0:
        raise TomoclassError(f"floor must be >= 0, got {floor}")
    names = _labels_of(particles, labels)
    classes = list(dict.fromkeys(names))
    index = {name: k for k, name in enumerate(classes)}
    codes = [index[name] for name in names]
    box = box_size(particles)
    if binning < 1 or box % binning:
        raise TomoclassError(f"binning {binning} does not divide the box size {box}")
    m = box // binning
    highest = np.inf if lowpass is None else frequency_radius(lowpass, m)
    band = band_mask((m, m, m), 0.0, highest)
    band[0, 0, 0] = 1.0  # an average keeps its mean
    pre = _core.Preprocess(box, binning, np.ones((m, m, m), np.float32), order)
    chunks = -(-len(particles) // CHUNK)
    first, last = share(comm, comm.rank, chunks)
    mine = {}
    stop = min(last * CHUNK, len(particles))
    for a, volumes, rotations, shifts, wedges in iter_chunks(particles, first * CHUNK, stop, CHUNK):
        mine[a] = pre.class_sums(
            volumes,
            np.ascontiguousarray(rotations, dtype=np.float64),
            np.ascontiguousarray(shifts, dtype=np.float64),
            [core_components(wedge, binning) for wedge in wedges],
            codes[a : a + len(volumes)],
            len(classes),
        )
        if progress is not None:
            progress(len(volumes))
    gathered = comm.gather(mine, root=0)
    if comm.rank != 0:
        return None
    parts = {a: sums for part in gathered for a, sums in part.items()}
    fw = w = None
    counts = np.zeros(len(classes), int)
    for a in sorted(parts):  # the same order for any number of ranks
        chunk = parts[a]
        fw = chunk[0] if fw is None else fw + chunk[0]
        w = chunk[1] if w is None else w + chunk[1]
        counts += chunk[2]
    return [
        ClassAverage(
            label=name,
            volume=_core.average_from_sums(fw[k], w[k], int(counts[k]), floor, band, m),
            wedge_sum=_full_centred(w[k].astype(np.float32), m),
            count=int(counts[k]),
        )
        for k, name in enumerate(classes)
    ]


def write_averages(averages: list[ClassAverage], prefix: str | os.PathLike) -> list[Path]:
    """Write ``PREFIX_<label>.em`` and ``PREFIX_<label>_wedgesum.em`` (extension .em unless
    ``prefix`` ends in .mrc); returns the average files."""
    prefix = os.fspath(prefix)
    ext = ".mrc" if prefix.endswith(".mrc") else ".em"
    stem = prefix[: -len(ext)] if prefix.endswith(ext) else prefix
    written = []
    for avg in averages:
        path = Path(f"{stem}_{avg.label}{ext}")
        write_volume(path, avg.volume)
        write_volume(Path(f"{stem}_{avg.label}_wedgesum{ext}"), avg.wedge_sum)
        written.append(path)
    return written


def read_averages(
    prefix: str | os.PathLike, labels: list[str], counts: list[int]
) -> list[ClassAverage] | None:
    """Averages written earlier as ``PREFIX_<label>.em`` (or ``.mrc``) with their wedge sums,
    if there is one for every label; else None (then they must be computed)."""
    from tomoclass.io import read_volume

    stem = os.fspath(prefix)
    found = []
    for label, count in zip(labels, counts, strict=True):
        for ext in (".em", ".mrc"):
            volume, wedge_sum = Path(f"{stem}_{label}{ext}"), Path(f"{stem}_{label}_wedgesum{ext}")
            if volume.exists() and wedge_sum.exists():
                found.append(
                    ClassAverage(label, read_volume(volume), read_volume(wedge_sum), count)
                )
                break
        else:
            return None
    return found
