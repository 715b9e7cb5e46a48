"""Weighted class averages, summed in Fourier space in the Rust core.

``A = irFFT( Σ W_i·F_i / max(Σ W_i², floor·Σ max(W_i)²) )`` over the particles of a class,
with ``F_i`` the spectrum of the aligned (binned, unmasked) particle and ``W_i`` its sampling
weight seen from the aligned frame: for data ``F_i ≈ W_i·S`` this is the least-squares
estimate of ``S``. PyTom's floor is 0.05 of the largest weight sum the class could reach
(``0.05·n`` for binary wedges, as PyTom). The result is low-passed to ``lowpass`` (Fourier
voxels of the binned box; default: no low-pass) and keeps its mean. The weight sum
``Σ W_i²`` shows how well each Fourier voxel was sampled (the wedge sum for binary wedges);
it is returned (and written) as a full, centred volume (DC at voxel ``m // 2``). Sums are
accumulated in a fixed order, so the averages are identical for any thread count and any
number of MPI ranks.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tomoclass import _core
from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.features import Particles, ParticleStack, Preprocessing
from tomoclass.fourier import band_mask, frequency_radius
from tomoclass.geometry import PointSymmetry
from tomoclass.io import write_volume
from tomoclass.io.volumes import common_voxel_size
from tomoclass.parallel import Serial, share
from tomoclass.particles import ParticleList

FLOOR = 0.05
"""PyTom's lower bound of the wedge sum, as a fraction of the number of particles."""


@dataclass
class ClassAverage:
    """One class: its label, its average (float32 ``[z, y, x]``), its centred weight sum
    ``Σ W²`` (the wedge sum for binary wedges) and how many particles it holds; the Fourier
    shell correlation of its two half-set averages (``fsc[r]`` for shells ``r = 0 … m/2``,
    Fourier voxels of the binned box) and the resolution where it falls below 0.143 (in the
    same units; None when a half is empty). ``voxel_size``: Å per voxel of the average (the
    particles' voxel size times the binning; None when their files do not agree on one)."""

    label: str
    volume: np.ndarray
    wedge_sum: np.ndarray
    count: int
    fsc: np.ndarray | None = None
    resolution: float | None = None
    voxel_size: float | None = None


def _labels_of(particles: Particles, labels) -> list[str]:
    if labels is not None:
        array = np.asarray(labels)
        if array.shape != (len(particles),):
            raise TomoclassError(
                f"labels: one per particle ({len(particles)}) needed, got shape {array.shape}"
            )
        return [str(v) for v in array.tolist()]
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
    particles: Particles | Preprocessing,
    labels=None,
    binning: int = 1,
    lowpass: float | None = None,
    floor: float = FLOOR,
    order: int = 3,
    progress=None,
    comm=None,
    symmetry: PointSymmetry | None = None,
) -> list[ClassAverage] | None:
    """Weighted averages of every class, in order of first appearance.

    ``particles``: the particles, or a run's :class:`~tomoclass.features.Preprocessing` (its
    particles, sampling and binning are used, without its mask). ``labels`` (one per
    particle) default to the particle list's classes (particles without a class form class
    "0"). ``binning`` divides the box; ``lowpass`` is a radius in Fourier
    voxels of the binned box (below 1: a fraction of it). Under MPI (``comm``) each rank sums
    its share of the particles, chunk by chunk, and rank 0 adds the chunks in order, so the
    averages equal the single-process ones; they are returned on rank 0, None elsewhere.
    ``symmetry``: a :class:`~tomoclass.geometry.PointSymmetry`; every particle then counts
    once per symmetry copy (PyTom's way), so the averages are symmetric.
    """
    comm = comm or Serial()
    if floor < 0:
        raise TomoclassError(f"floor must be >= 0, got {floor}")
    if isinstance(particles, Preprocessing):
        prep = particles.unmasked()
    else:
        prep = Preprocessing(particles, binning=binning, order=order)
    names = _labels_of(prep.particles, labels)
    classes = list(dict.fromkeys(names))
    index = {name: k for k, name in enumerate(classes)}
    halves = half_sets(len(prep))
    codes = [2 * index[name] + int(h) for name, h in zip(names, halves, strict=True)]
    m = prep.binned_box
    highest = np.inf if lowpass is None else frequency_radius(lowpass, m)
    band = band_mask((m, m, m), 0.0, highest)
    band[0, 0, 0] = 1.0  # an average keeps its mean
    chunks = -(-len(prep) // prep.chunk)
    first, last = share(comm, comm.rank, chunks)
    mine = {}
    stop = min(last * prep.chunk, len(prep))
    copies = (PointSymmetry() if symmetry is None else symmetry).operators()
    for chunk in prep.chunks(first * prep.chunk, stop):
        a = chunk.start
        mine[a] = _symmetric_sums(prep, chunk, codes[a : a + len(chunk.volumes)],
                                  2 * len(classes), copies)  # fmt: skip
        if progress is not None:
            progress(len(chunk.volumes))
    gathered = comm.gather(mine, root=0)
    if comm.rank != 0:
        return None
    parts = {a: sums for part in gathered for a, sums in part.items()}
    voxel = average_voxel_size(prep.particles, prep.binning)
    fw = w = None
    counts, reach = np.zeros(2 * len(classes), int), np.zeros(2 * len(classes))
    for a in sorted(parts):  # the same order for any number of ranks
        chunk_fw, chunk_w, chunk_counts, chunk_reach = parts[a]
        fw = chunk_fw if fw is None else fw + chunk_fw
        w = chunk_w if w is None else w + chunk_w
        counts += chunk_counts
        reach += chunk_reach
    averages = []
    for k, name in enumerate(classes):
        both = slice(2 * k, 2 * k + 2)
        total_w = w[both].sum(axis=0)
        volume = _core.average_from_sums(fw[both].sum(axis=0), total_w, float(reach[both].sum()),
                                         floor, band, m)  # fmt: skip
        fsc = None
        if counts[2 * k] and counts[2 * k + 1]:
            fsc = half_set_fsc(*(fw[h] / np.maximum(w[h], floor * reach[h]) for h in
                                 (2 * k, 2 * k + 1)))  # fmt: skip
        averages.append(ClassAverage(
            label=name, volume=volume, wedge_sum=_full_centred(total_w.astype(np.float32), m),
            count=int(counts[both].sum()), fsc=fsc,
            resolution=None if fsc is None else crossing(fsc, FSC_THRESHOLD), voxel_size=voxel,
        ))  # fmt: skip
    return averages


def average_voxel_size(particles: Particles, binning: int = 1) -> float | None:
    """Å per voxel of averages of ``particles`` binned by ``binning``: their files' common
    voxel size times ``binning`` (None for particles in memory, EM files or sizes that
    differ; see :func:`tomoclass.io.volumes.common_voxel_size`)."""
    if not isinstance(particles, ParticleList):
        return None
    size = common_voxel_size(particles.paths())
    return None if size is None else size * binning


FSC_THRESHOLD = 0.143
"""The gold-standard FSC threshold (Rosenthal & Henderson 2003)."""


def half_sets(n: int) -> np.ndarray:
    """Which half (0 or 1) each of ``n`` particles is in for the FSC: fixed by the particle's
    index (the counter stream ``(0, 7, particle)``), whatever the classification."""
    return _core.counter_uniform(0, 7, n) >= 0.5


def _shells(m: int) -> np.ndarray:
    """Shell index ``round(|k|)`` of every voxel of the ``m³`` half grid."""
    k = np.fft.fftfreq(m) * m
    kx = np.arange(m // 2 + 1)
    radius = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    return np.rint(radius).astype(int)


def half_set_fsc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The Fourier shell correlation of two half-grid spectra ``(m, m, m//2+1)`` over shells
    ``0 … m/2`` (Hermitian weights, so half-grid sums equal full-grid sums)."""
    m = a.shape[0]
    shells = _shells(m).ravel()
    herm = np.full(a.shape, 2.0)
    herm[..., 0] = 1.0
    if m % 2 == 0:
        herm[..., -1] = 1.0
    herm = herm.ravel()
    a, b = a.ravel(), b.ravel()
    keep = shells <= m // 2
    sums = [np.bincount(shells[keep], weights=(herm * x)[keep], minlength=m // 2 + 1)
            for x in (np.real(a * np.conj(b)), np.abs(a) ** 2, np.abs(b) ** 2)]  # fmt: skip
    denominator = np.sqrt(sums[1] * sums[2])
    return np.divide(sums[0], denominator, out=np.zeros_like(sums[0]), where=denominator > 0)


def crossing(fsc: np.ndarray, threshold: float) -> float:
    """The radius (Fourier voxels) where ``fsc`` first falls below ``threshold`` from shell 1
    on, interpolated between shells; the last shell if it never does."""
    for r in range(1, len(fsc)):
        if fsc[r] < threshold:
            before = fsc[r - 1]
            return float(r - 1 + (before - threshold) / (before - fsc[r])) if r > 1 else 1.0
    return float(len(fsc) - 1)


def _symmetric_sums(prep, chunk, codes, classes: int, copies: np.ndarray) -> tuple:
    """The class sums of a chunk summed over its symmetry copies (rotations ``R·G_k``); the
    particles are counted once."""
    fw, w, counts, reach = prep.class_sums(chunk, codes, classes)
    for g in copies[1:]:
        turned = replace(chunk, rotations=np.ascontiguousarray(chunk.rotations @ g))
        more = prep.class_sums(turned, codes, classes)
        fw, w, reach = fw + more[0], w + more[1], np.add(reach, more[3])
    return fw, w, counts, reach


def average_suffix(averages: list[ClassAverage]) -> str:
    """``.mrc`` when the averages have a voxel size (their particles were MRC files of one
    size), else ``.em``: the format of averages written under a prefix without one."""
    return ".mrc" if averages and all(a.voxel_size for a in averages) else ".em"


def write_averages(averages: list[ClassAverage], prefix: str | os.PathLike) -> list[Path]:
    """Write ``PREFIX_<label>.em`` and ``PREFIX_<label>_wedgesum.em``, or ``.mrc``: the
    extension ``prefix`` ends in, else MRC when the averages have a voxel size (their
    particles were MRC files of one size) and EM otherwise, so that averages keep their
    particles' format. An MRC average carries its voxel size; an EM file has no place for
    it. Returns the average files."""
    prefix = os.fspath(prefix)
    if prefix.endswith((".em", ".mrc")):
        stem, ext = os.path.splitext(prefix)
    else:
        stem, ext = prefix, average_suffix(averages)
    if ext == ".em" and average_suffix(averages) == ".mrc":
        warnings.warn(
            f"{prefix}: EM files hold no voxel size, so the averages lose their "
            f"{averages[0].voxel_size:g} Å (write PREFIX.mrc to keep it)",
            TomoclassWarning,
            stacklevel=2,
        )
    written = []
    for avg in averages:
        path = Path(f"{stem}_{avg.label}{ext}")
        write_volume(path, avg.volume, voxel_size=avg.voxel_size)
        write_volume(Path(f"{stem}_{avg.label}_wedgesum{ext}"), avg.wedge_sum)
        written.append(path)
    return written


def read_averages(
    prefix: str | os.PathLike, labels: list[str], counts: list[int]
) -> list[ClassAverage] | None:
    """Averages written earlier as ``PREFIX_<label>.em`` (or ``.mrc``) with their wedge sums,
    if there is one for every label; else None (then they must be computed)."""
    from tomoclass.io import read_volume, read_voxel_size

    found = []
    for label, count in zip(labels, counts, strict=True):
        volume = average_path(prefix, label)
        if volume is None:
            return None
        wedge_sum = volume.with_name(f"{volume.stem}_wedgesum{volume.suffix}")
        if not wedge_sum.is_file():
            return None
        found.append(ClassAverage(label, read_volume(volume), read_volume(wedge_sum), count,
                                  voxel_size=read_voxel_size(volume)))  # fmt: skip
    return found


def average_path(prefix: str | os.PathLike, label: str) -> Path | None:
    """The average ``PREFIX_<label>.em`` (or ``.mrc``) written earlier, if there is one."""
    for ext in (".em", ".mrc"):
        path = Path(f"{os.fspath(prefix)}_{label}{ext}")
        if path.is_file():
            return path
    return None


def resolution_text(c: dict) -> str:
    """Where one class's FSC falls below 0.143 (an entry of a resolution record's
    ``classes``): in Å when the voxel size is known, else in Fourier voxels."""
    if c["fourier_voxels"] is None:
        return "no FSC (a half-set is empty)"
    if c["angstrom"] is not None:
        return f"{c['angstrom']:.1f} Å"
    return f"{c['fourier_voxels']:.1f} Fourier voxels"
