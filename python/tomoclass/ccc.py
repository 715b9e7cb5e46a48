"""The constrained-correlation (CCC) matrix of aligned particles, tile by tile.

``mode="fourier"`` (default) evaluates SPEC §3's constrained correlation from the spectral
features as blocked matrix products in the Rust core. ``mode="real"`` is PyTom's own
definition, for validation: per pair, particle i filtered by W_j and the band, j by W_i and
the band, inverse FFTs, normalised cross-correlation under the mask.

The matrix is split into square tiles of the upper triangle. Under MPI each rank computes
the features of its share of the particles (all ranks then hold all features) and the
tiles ``rank, rank + R, …``; rank 0 assembles the matrix. Finished tiles can be kept in a
checkpoint folder, so that an interrupted run resumes where it stopped. The diagonal is 1
by definition.

For very many particles, :func:`landmark_block` computes only the columns of a few
landmark particles (an N×m block, row block by row block) for the Nyström CPCA of
:mod:`tomoclass.cpca`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoclass import _core
from tomoclass.checkpoint import Checkpoint
from tomoclass.errors import TomoclassError
from tomoclass.features import MEMORY_BUDGET, Particles, Preprocessing, as_preprocessing
from tomoclass.fourier import band_mask
from tomoclass.io.files import atomic_output, publish, reserved_npy, save_npy, save_npz
from tomoclass.parallel import Serial, share

MODES = ("fourier", "real")

TILE = 512
"""Tile edge (particles): big enough for efficient matrix products, small enough to balance."""

REAL_TILE = 64
"""Real mode's default tile edge: a pair costs two inverse FFTs, so a tile of 512 would take
minutes, and a checkpoint keeps only whole tiles."""

Tile = tuple[int, int, int, int]


def tile_grid(n: int, tile: int = TILE) -> list[Tile]:
    """The tiles ``(row0, row1, col0, col1)`` covering the upper triangle of an n×n matrix."""
    edges = [*range(0, n, tile), n]
    spans = list(itertools.pairwise(edges))
    return [(r0, r1, c0, c1) for i, (r0, r1) in enumerate(spans) for (c0, c1) in spans[i:]]


def _tile_name(t: Tile) -> str:
    return f"tile_{t[0]}_{t[2]}"


def _tile_shape(t: Tile) -> tuple[int, int]:
    return t[1] - t[0], t[3] - t[2]


def _valid_landmarks(landmarks: np.ndarray, n: int) -> bool:
    """Whether ``landmarks`` are at least 2 sorted, distinct indices in ``0..n``."""
    return bool(len(landmarks) >= 2 and np.all(np.diff(landmarks) > 0) and landmarks[0] >= 0
                and landmarks[-1] < n)  # fmt: skip


def _fourier_tiles(prep: Preprocessing, comm, progress, cache_dir, budget, store) -> Callable:
    """Features of this rank's share (kept in ``store`` block by block), gathered on every
    rank; returns the tile computer."""
    f, w = prep.gathered_features(comm, progress=progress, cache_dir=cache_dir,
                                  memory_budget=budget, store=store)  # fmt: skip
    factors = _core.ccc_factors(f, w, prep.band.herm)
    return lambda batch: _core.ccc_tiles(*factors, batch)


def _real_tiles(prep: Preprocessing, progress) -> Callable:
    """Masked spectra and weights of all particles; returns the per-pair tile computer."""
    spectra, weights = prep.masked_spectra(progress=progress)
    band = prep.band
    grid = band_mask((band.box,) * 3, band.lowest, band.highest)

    def compute(batch: list[Tile]) -> list[np.ndarray]:
        return _core.real_ccc_tiles(spectra, weights, grid, prep.mask, batch)

    return compute


def correlation_matrix(
    particles: Particles | Preprocessing,
    mask: str | os.PathLike | np.ndarray | None = None,
    lowpass: float | None = None,
    binning: int = 1,
    mode: str = "fourier",
    *,
    lowest: float = 0.0,
    tile: int | None = None,
    comm=None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    cache_dir: str | os.PathLike | None = None,
    memory_budget: float = MEMORY_BUDGET,
    out: np.ndarray | None = None,
) -> np.ndarray | None:
    """The N×N constrained-correlation matrix (float32, symmetric, unit diagonal).

    ``particles``: the particles, or a :class:`~tomoclass.features.Preprocessing` (then without
    ``mask``, ``lowpass``, ``binning`` and ``lowest``, which it holds). ``mask``: volume file or
    array, of the particle box or the binned box. ``lowpass`` and ``lowest``: band radii in
    Fourier voxels of the binned box (below 1: fractions of it). ``binning``: Fourier binning
    factor dividing the box. ``comm``: an mpi4py communicator
    (default: one process); the matrix is returned on rank 0 and None elsewhere.
    ``tile``: tile edge in particles (default :data:`TILE`, :data:`REAL_TILE` in real
    mode). ``checkpoint``: folder for finished feature blocks and tiles; with ``resume``
    those of an earlier run with the same parameters are reused. ``progress(stage, done,
    total)`` reports work done. ``cache_dir``: where features larger than ``memory_budget``
    bytes are memory-mapped (shared by all ranks). ``out``: an ``(N, N)`` float32 array to
    fill on rank 0, e.g. a memory-mapped ``.npy`` for a matrix larger than memory (see
    :func:`open_matrix`).
    """
    comm = comm or Serial()
    if mode not in MODES:
        raise TomoclassError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if tile is None:
        tile = REAL_TILE if mode == "real" else TILE
    if tile < 1:
        raise TomoclassError(f"tile must be >= 1, got {tile}")
    n = len(particles)
    if n < 2:
        raise TomoclassError(f"a correlation matrix needs at least 2 particles, got {n}")
    if out is not None and (getattr(out, "shape", None) != (n, n) or out.dtype != np.float32):
        raise TomoclassError(
            f"out: an ({n}, {n}) float32 array is needed, got {getattr(out, 'shape', out)}"
        )
    prep = as_preprocessing(particles, mask, lowpass, binning, lowest)

    tiles = tile_grid(n, tile)[comm.rank :: comm.size]
    store = None
    if checkpoint is not None:
        params = prep.checkpoint_params() | {"tile": tile, "mode": mode}
        store = Checkpoint(Path(checkpoint), params, resume, comm)
    done = {t: b for t in tiles if store and (b := store.load(_tile_name(t), _tile_shape(t)))
            is not None}  # fmt: skip
    todo = [t for t in tiles if t not in done]

    start, stop = share(comm, comm.rank, n)
    feature_total = n if mode == "real" else stop - start
    counted = [0]

    def report_features(count: int) -> None:
        counted[0] += count
        if progress:
            progress("features", counted[0], feature_total)

    # One process fills the matrix (which may be a memory-mapped file) tile by tile, so that
    # it never holds the tiles twice; under MPI, rank 0 gathers them at the end.
    matrix = None
    if comm.rank == 0:
        matrix = out if out is not None else np.empty((n, n), np.float32)
    finished = len(done)
    if comm.size == 1:
        for t, block in done.items():
            _place(matrix, t, block)
        done = {}
    # Features are shared by all ranks (a collective step), so they are computed whenever any
    # rank has a tile left, and not at all when a resumed run is already complete.
    if any(comm.allgather(bool(todo))):
        compute = (
            _fourier_tiles(prep, comm, report_features, cache_dir, memory_budget, store)
            if mode == "fourier"
            else _real_tiles(prep, report_features)
        )
        batch_size = max(1, 2 * _core.thread_count())
        for k in range(0, len(todo), batch_size):
            batch = todo[k : k + batch_size]
            for t, block in zip(batch, compute(batch), strict=True):
                if comm.size == 1:
                    _place(matrix, t, block)
                else:
                    done[t] = block
                if store:
                    store.save(_tile_name(t), block)
                finished += 1
            if progress:
                progress("tiles", finished, len(tiles))

    gathered = comm.gather(done, root=0)
    if comm.rank != 0:
        return None
    for part in gathered:
        for t, block in part.items():
            _place(matrix, t, block)
    np.fill_diagonal(matrix, 1.0)
    return matrix


def matrix_from_features(f, w, herm, comm=None, landmarks: np.ndarray | None = None) -> np.ndarray:
    """The CCC matrix (or with ``landmarks`` its ``(N, m)`` columns at those particles) from
    features already computed; under MPI the tiles are shared and every rank gets all."""
    comm = comm or Serial()
    n = len(f)
    factors = _core.ccc_factors(f, w, herm)
    if landmarks is None:
        tiles, cols = tile_grid(n)[comm.rank :: comm.size], None
        out = np.empty((n, n), np.float32)
    else:
        cols = _core.ccc_factors(f[landmarks], w[landmarks], herm)
        edges = [*range(0, n, TILE), n]
        tiles = [(a, b, 0, len(landmarks)) for a, b in itertools.pairwise(edges)]
        tiles, out = tiles[comm.rank :: comm.size], np.empty((n, len(landmarks)), np.float32)
    done = list(zip(tiles, _core.ccc_tiles(*factors, tiles, cols=cols), strict=True))
    for part in comm.allgather(done) if comm.size > 1 else [done]:
        for (r0, r1, c0, c1), block in part:
            out[r0:r1, c0:c1] = block
            if landmarks is None:
                out[c0:c1, r0:r1] = block.T
    if landmarks is None:
        np.fill_diagonal(out, 1.0)
    else:
        out[landmarks, np.arange(len(landmarks))] = 1.0
    return out


def choose_landmarks(n: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct particle indices in ``0..n``, drawn uniformly with ``seed`` and
    sorted: the landmarks of a Nyström CPCA."""
    if not 2 <= count <= n:
        raise TomoclassError(f"landmarks must be within 2..{n} (the particles), got {count}")
    return np.sort(np.random.default_rng(seed).choice(n, size=count, replace=False))


@dataclass
class LandmarkBlock:
    """The columns of the CCC matrix at the ``landmarks`` (sorted particle indices):
    ``block`` ``(N, m)`` float32, with ``block[landmarks[j], j] = 1``."""

    block: np.ndarray
    landmarks: np.ndarray


def landmark_block(
    particles: Particles | Preprocessing,
    mask: str | os.PathLike | np.ndarray | None,
    lowpass: float | None,
    landmarks: np.ndarray,
    binning: int = 1,
    *,
    lowest: float = 0.0,
    tile: int | None = None,
    comm=None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> LandmarkBlock | None:
    """The CCC of every particle with each landmark (Fourier mode; parameters as for
    :func:`correlation_matrix`), for :func:`tomoclass.cpca.cpca`'s Nyström path.

    Only the landmarks' features and one row block's (``tile`` particles) are held at once,
    so memory does not grow with N beyond the ``(N, m)`` result. Row blocks are shared over
    MPI ranks and checkpointed like tiles; the block is returned on rank 0, None elsewhere.
    """
    comm = comm or Serial()
    n = len(particles)
    landmarks = np.asarray(landmarks, dtype=np.int64)
    if not _valid_landmarks(landmarks, n):
        raise TomoclassError(f"landmarks must be ≥ 2 sorted distinct indices below {n}")
    prep = as_preprocessing(particles, mask, lowpass, binning, lowest)
    m = len(landmarks)
    tile = TILE if tile is None else tile
    if tile < 1:
        raise TomoclassError(f"tile must be >= 1, got {tile}")
    tiles = [(a, min(a + tile, n), 0, m) for a in range(0, n, tile)]
    store = None
    if checkpoint is not None:
        chosen = hashlib.sha256(landmarks.tobytes()).hexdigest()
        params = prep.checkpoint_params() | {"tile": tile, "mode": "landmarks",
                                             "landmarks": chosen}  # fmt: skip
        store = Checkpoint(Path(checkpoint), params, resume, comm)
    mine = tiles[comm.rank :: comm.size]
    done = {t: b for t in mine if store and (b := store.load(_tile_name(t), _tile_shape(t)))
            is not None}  # fmt: skip
    herm = prep.band.herm
    if len(done) < len(mine):
        ref = prep.subset(landmarks).features()
        columns = _core.ccc_factors(ref.f, ref.w, herm)
    finished = comm.allgather(len(done))
    count = sum(finished)
    for t in mine:
        if t in done:
            continue
        rows = prep.features(t[0], t[1])
        factors = _core.ccc_factors(rows.f, rows.w, herm)
        (done[t],) = _core.ccc_tiles(*factors, [(0, t[1] - t[0], 0, m)], cols=columns)
        if store:
            store.save(_tile_name(t), done[t])
        count += 1
        if progress:
            progress("row blocks", count, len(tiles))
    gathered = comm.gather(done, root=0)
    if comm.rank != 0:
        return None
    block = np.empty((n, m), np.float32)
    for part in gathered:
        for (r0, r1, _, _), rows in part.items():
            block[r0:r1] = rows
    block[landmarks, np.arange(m)] = 1.0
    return LandmarkBlock(block, landmarks)


def write_landmarks(result: LandmarkBlock, directory: str | os.PathLike) -> Path:
    """Write ``correlation_landmarks.npz`` (arrays ``block`` and ``landmarks``) atomically."""
    path = Path(directory) / "correlation_landmarks.npz"
    save_npz(path, block=result.block, landmarks=result.landmarks)
    return path


def _place(matrix: np.ndarray, tile: Tile, block: np.ndarray) -> None:
    r0, r1, c0, c1 = tile
    matrix[r0:r1, c0:c1] = block
    matrix[c0:c1, r0:r1] = block.T


def open_matrix(directory: str | os.PathLike, n: int) -> np.memmap:
    """A memory-mapped ``(n, n)`` float32 ``.npy`` under a temporary name in ``directory``,
    to fill with :func:`correlation_matrix` (``out=``) and publish with :func:`write_matrix`."""
    return reserved_npy(Path(directory) / ".correlation_matrix.partial.npy", (n, n))


def write_matrix(
    matrix: np.ndarray, directory: str | os.PathLike, csv: bool = True
) -> tuple[Path | None, Path]:
    """Write ``correlation_matrix.npy`` and (unless ``csv`` is False) PyTom's comma-separated
    ``correlation_matrix.csv``, each atomically (as one set inside
    :func:`~tomoclass.io.files.output_group`). A matrix from :func:`open_matrix` is
    published by renaming its file, without a copy."""
    folder = Path(directory)
    csv_path, npy_path = folder / "correlation_matrix.csv", folder / "correlation_matrix.npy"
    if isinstance(matrix, np.memmap) and Path(matrix.filename).parent == folder.absolute():
        matrix.flush()
        publish(matrix.filename, npy_path)
    else:
        save_npy(npy_path, matrix)
    if not csv:
        return None, npy_path
    with atomic_output(csv_path) as tmp, open(tmp, "wb") as handle:
        for start in range(0, len(matrix), 256):
            handle.write(_core.format_csv(np.ascontiguousarray(matrix[start : start + 256])))
    return csv_path, npy_path


def read_matrix(path: str | os.PathLike) -> np.ndarray | LandmarkBlock:
    """A correlation matrix from ``.csv`` (comma-separated) or ``.npy`` (memory-mapped, not
    loaded), which must be square; or a landmark block from ``.npz``."""
    name = os.fspath(path)
    try:
        if name.endswith(".npz"):
            return _read_landmarks(name)
        if name.endswith(".npy"):
            matrix = np.load(name, allow_pickle=False, mmap_mode="r")
        else:
            matrix = np.loadtxt(name, delimiter=",", dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise TomoclassError(f"{name}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise TomoclassError(f"{name}: not a readable matrix ({exc})") from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise TomoclassError(f"{name}: matrix of shape {matrix.shape} is not square")
    return matrix


def _check_sizes(name: str) -> None:
    """Refuse an ``.npz`` whose arrays claim more data than they hold, before any array is
    allocated (a forged header could otherwise ask for terabytes)."""
    with zipfile.ZipFile(name) as archive:
        for member in archive.infolist():
            with archive.open(member) as handle:
                fmt = np.lib.format
                version = fmt.read_magic(handle)
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read(handle)
                claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if claimed > member.file_size:
                    raise TomoclassError(
                        f"{name}: {member.filename} claims shape {shape} ({claimed} bytes) "
                        f"but holds {member.file_size} bytes"
                    )


def _read_landmarks(name: str) -> LandmarkBlock:
    _check_sizes(name)
    with np.load(name, allow_pickle=False) as archive:
        if set(archive.files) != {"block", "landmarks"}:
            raise TomoclassError(f"{name}: not a landmark block (arrays {archive.files})")
        block, landmarks = archive["block"], archive["landmarks"]
    if block.ndim != 2 or landmarks.shape != (block.shape[1],):
        raise TomoclassError(
            f"{name}: block {block.shape} does not match {landmarks.shape} landmarks"
        )
    if not np.issubdtype(landmarks.dtype, np.integer) or not np.issubdtype(
        block.dtype, np.floating
    ):
        raise TomoclassError(f"{name}: block must be real numbers and landmarks integers")
    n = len(block)
    if not _valid_landmarks(landmarks, n):
        raise TomoclassError(f"{name}: landmarks must be ≥ 2 sorted distinct rows of the block")
    return LandmarkBlock(block, landmarks.astype(np.int64))
