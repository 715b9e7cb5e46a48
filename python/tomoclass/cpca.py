"""Constrained principal component analysis (CPCA): eigenvectors of the CCC matrix, then
k-means (Förster et al. 2008).

Only the top ``neig`` eigenpairs are computed (``scipy.linalg.eigh`` with an index subset,
or Lanczos via ``scipy.sparse.linalg.eigsh`` for large N; never a full SVD). Each particle's
coefficients are ``sqrt(λ_k)·u_k``; k-means++ with several restarts keeps the assignment of
lowest inertia. Everything random is seeded: the same seed gives the same labels.

From a landmark block (:class:`~tomoclass.ccc.LandmarkBlock`, N×m) the eigenpairs are those
of a rank-restricted Nyström approximation of the matrix (:func:`nystrom_eigenpairs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tomoclass.ccc import LandmarkBlock, choose_landmarks, matrix_from_features
from tomoclass.errors import TomoclassError
from tomoclass.features import Band
from tomoclass.nuisance import NuisanceFit, remove_nuisance
from tomoclass.parallel import Serial

if TYPE_CHECKING:
    from scipy.sparse.linalg import LinearOperator

DENSE_LIMIT = 4000
"""Above this many particles the eigenpairs come from Lanczos iterations."""

RESTARTS = 10
"""k-means++ restarts; the lowest inertia wins."""

ITERATIONS = 100
"""k-means iterations per restart (PyTom uses 50)."""

SPECTRUM = 60
"""Eigenvalues examined to choose ``neig`` automatically."""


@dataclass
class NoiseEdge:
    """How ``neig="auto"`` chose: the Marchenko–Pastur ``edge`` and the leading ``spectrum``
    (descending) compared with it, which is the correlation matrix's or, for a landmark
    block, that of its landmark rows ``W`` (``of``)."""

    edge: float
    spectrum: np.ndarray
    of: str

    def summary(self) -> dict:
        """Plain values for ``run.json``."""
        return {"edge": self.edge, "spectrum": self.spectrum.tolist(), "of": self.of}


@dataclass
class CPCAResult:
    """Labels (0..nclass−1, numbered by first appearance), coefficients ``(N, neig)``,
    the top eigenvalues (descending), the ``neig`` used and, when it was chosen
    automatically, the ``noise`` edge it was chosen by."""

    labels: np.ndarray
    coefficients: np.ndarray
    eigenvalues: np.ndarray
    neig: int
    noise: NoiseEdge | None = None


BLOCK = 2048
"""Rows and columns of a matrix handled at once when it is streamed (e.g. memory-mapped)."""


def _spans(n: int) -> list[tuple[int, int]]:
    return [(a, min(a + BLOCK, n)) for a in range(0, n, BLOCK)]


def check_matrix(ccc: np.ndarray, name: str = "correlation matrix") -> np.ndarray:
    """The matrix if it is square, symmetric and finite, else a clear error naming ``name``.

    Checked tile by tile, so a memory-mapped matrix is never loaded whole; a matrix small
    enough for dense eigensolvers (≤ DENSE_LIMIT) comes back as float64 in memory.
    """
    matrix = ccc if isinstance(ccc, np.memmap) else np.asarray(ccc)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise TomoclassError(f"{name}: shape {matrix.shape} is not square")
    spans = _spans(len(matrix))
    for i, (a, b) in enumerate(spans):
        for c, d in spans[i:]:
            upper = np.asarray(matrix[a:b, c:d], dtype=np.float64)
            lower = np.asarray(matrix[c:d, a:b], dtype=np.float64)
            if not (np.all(np.isfinite(upper)) and np.all(np.isfinite(lower))):
                raise TomoclassError(f"{name}: contains NaN or Inf")
            if not np.allclose(upper, lower.T, atol=1e-5):
                raise TomoclassError(f"{name}: is not symmetric")
    return np.asarray(matrix, dtype=np.float64) if len(matrix) <= DENSE_LIMIT else matrix


def _eigh(matrix: np.ndarray, **options):
    """``scipy.linalg.eigh``, imported on first use (scipy's linear algebra is slow to
    import, and most commands never need it)."""
    from scipy.linalg import eigh

    return eigh(matrix, **options)


def _streamed(matrix: np.ndarray) -> LinearOperator:
    """``x ↦ M·x`` reading ``M`` in row blocks (float64 products)."""
    from scipy.sparse.linalg import LinearOperator

    spans = _spans(len(matrix))

    def product(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(matrix), -1)
        return np.concatenate([np.asarray(matrix[a:b], dtype=np.float64) @ x for a, b in spans])

    return LinearOperator(matrix.shape, matvec=product, matmat=product, dtype=np.float64)


def top_eigenpairs(ccc: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest eigenvalues (descending) and their eigenvectors ``(N, count)``,
    each vector's sign fixed so that its largest-magnitude entry is positive. Above
    DENSE_LIMIT particles, Lanczos iterations stream the matrix in row blocks."""
    from scipy.sparse.linalg import eigsh

    n = len(ccc)
    if n <= DENSE_LIMIT or count >= n - 1:
        dense = np.asarray(ccc, dtype=np.float64)
        values, vectors = _eigh(dense, subset_by_index=[n - count, n - 1])
    else:
        start = np.random.default_rng(seed).standard_normal(n)
        values, vectors = eigsh(_streamed(ccc), k=count, which="LA", v0=start)
    order = np.argsort(values)[::-1]
    return values[order], _fix_signs(vectors[:, order])


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Each column's sign chosen so that its largest-magnitude entry is positive."""
    flip = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])])
    return vectors * np.where(flip == 0, 1, flip)


def matrix_moments(ccc: np.ndarray) -> tuple[int, float, float]:
    """``(N, trace, squared Frobenius norm)`` of a matrix, read in row blocks."""
    n = len(ccc)
    trace = float(sum(np.trace(np.asarray(ccc[a:b, a:b], np.float64)) for a, b in _spans(n)))
    frobenius = float(sum(np.square(np.asarray(ccc[a:b], np.float64)).sum() for a, b in _spans(n)))
    return n, trace, frobenius


def check_landmarks(landmarks: LandmarkBlock, name: str = "landmark block") -> np.ndarray:
    """The landmark-by-landmark block ``W`` (float64) if the block is finite and ``W`` is
    symmetric, else a clear error naming ``name``."""
    block = landmarks.block
    for a, b in _spans(len(block)):
        if not np.all(np.isfinite(block[a:b])):
            raise TomoclassError(f"{name}: contains NaN or Inf")
    inner = np.asarray(block[landmarks.landmarks], dtype=np.float64)
    if not np.allclose(inner, inner.T, atol=1e-5):
        raise TomoclassError(f"{name}: the landmark block is not symmetric")
    return (inner + inner.T) / 2


def nystrom_eigenpairs(
    landmarks: LandmarkBlock,
    count: int,
    inner: np.ndarray | None = None,
    name: str = "landmark block",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest eigenpairs of the rank-restricted Nyström approximation
    ``C ≈ B·W_r⁺·Bᵀ`` from the ``(N, m)`` block ``B`` of landmark columns and its landmark
    rows ``W``.

    ``W_r`` keeps the ``r = min(2·count, m // 2)`` largest eigenvalues of ``W`` (positive
    ones only): a CCC matrix is far from positive definite, its noise bulk spreads around
    zero, and inverting the near-zero eigenvalues would swamp the result with landmark
    noise. With ``W_r = U·Λ·Uᵀ``, ``G = B·U·Λ^{-1/2}`` gives ``C ≈ G·Gᵀ``; its eigenpairs
    come from the small ``Gᵀ·G``, so the vectors are orthonormal. Sign convention as
    :func:`top_eigenpairs`. Cost ``O(N·m·r)``. ``inner``: ``W`` as from
    :func:`check_landmarks` (checked here if not given)."""
    inner = check_landmarks(landmarks, name) if inner is None else inner
    m = len(inner)
    rank = min(2 * count, max(m // 2, 1))
    lam, u = _eigh(inner, subset_by_index=[m - rank, m - 1])
    keep = lam > 1e-8 * max(lam.max(), 0.0)
    if not keep.any():
        raise TomoclassError(f"{name}: the landmark block has no positive eigenvalue")
    whiten = u[:, keep] / np.sqrt(lam[keep])
    block = landmarks.block
    g = np.concatenate([np.asarray(block[a:b], np.float64) @ whiten for a, b in _spans(len(block))])
    count = min(count, g.shape[1])
    values, v = _eigh(g.T @ g, subset_by_index=[g.shape[1] - count, g.shape[1] - 1])
    order = np.argsort(values)[::-1]
    values, v = values[order], v[:, order]
    vectors = (g @ v) / np.sqrt(np.clip(values, 1e-300, None))
    return values, _fix_signs(vectors)


def noise_edge(
    moments: tuple[int, float, float], eigenvalues: np.ndarray, nclass: int
) -> tuple[int, float]:
    """How many leading eigenvalues stand above the noise, and the edge they were counted
    against: the bulk of the spectrum is modelled as Marchenko–Pastur, its mean and variance
    matched to the eigenvalues not counted as signal (from the ``moments`` ``(N, trace,
    squared Frobenius norm)``, so no full decomposition is needed), and the signal count and
    the edge ``mean·(1 + √(variance / mean²))²`` are refined until they agree. The dominant
    (mean) eigenvalue always counts; the count is never below ``nclass``."""
    values = np.asarray(eigenvalues, dtype=np.float64)
    n, trace, frobenius = moments
    signal = 1
    for _ in range(len(values)):
        rest = n - signal
        mean = (trace - values[:signal].sum()) / rest
        second = (frobenius - np.square(values[:signal]).sum()) / rest
        ratio = max(second - mean * mean, 0.0) / max(mean * mean, 1e-300)
        edge = mean * (1 + np.sqrt(ratio)) ** 2
        count = max(int((values > edge).sum()), 1)
        if count == signal:
            break
        signal = count
    return int(min(max(signal, nclass), len(values))), float(edge)


def kmeans(points: np.ndarray, nclass: int, seed: int, restarts: int = RESTARTS) -> np.ndarray:
    """k-means++ labels of lowest inertia over ``restarts`` seeded runs, renumbered by first
    appearance."""
    from scipy.cluster.vq import kmeans2

    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centroids, labels = kmeans2(points, nclass, iter=ITERATIONS, minit="++", seed=rng)
        inertia = float(((points - centroids[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    _, first = np.unique(best, return_index=True)
    order = np.argsort(first)
    renumber = np.empty(nclass, int)
    renumber[order] = np.arange(len(order))
    return renumber[best]


def cpca(
    ccc: np.ndarray | LandmarkBlock,
    neig: int | str,
    nclass: int,
    seed: int = 0,
    name: str = "correlation matrix",
) -> CPCAResult:
    """Classify by CPCA: ``neig`` eigenvectors (or ``"auto"``), then k-means into ``nclass``.

    ``ccc`` may be memory-mapped (``numpy.load(…, mmap_mode="r")``): it is then checked and
    used in blocks, never loaded whole. A :class:`~tomoclass.ccc.LandmarkBlock` gives the
    Nyström (landmark) CPCA: eigenpairs of ``B·W_r⁺·Bᵀ`` (at most ``m/2``), with ``"auto"``
    judged on the spectrum of the landmark block ``W``. ``name`` (e.g. the file) is used in
    errors.
    """
    landmark = isinstance(ccc, LandmarkBlock)
    if landmark:
        inner = check_landmarks(ccc, name)
        n, limit = len(ccc.block), len(ccc.landmarks) // 2
    else:
        matrix = check_matrix(ccc, name)
        n = limit = len(matrix)
    if not isinstance(nclass, (int, np.integer)) or not 2 <= nclass <= n:
        raise TomoclassError(f"nclass must be within 2..{n} (the particles), got {nclass!r}")
    if limit < 2:
        raise TomoclassError(f"{name}: too few landmarks ({len(ccc.landmarks)}), use at least 4")

    def eigenpairs(count: int) -> tuple[np.ndarray, np.ndarray]:
        if landmark:
            return nystrom_eigenpairs(ccc, count, inner, name)
        return top_eigenpairs(matrix, count, seed)

    if neig == "auto" and landmark:
        # W is a uniformly sampled principal block of the matrix, so its own spectrum says
        # how many directions stand above the noise (the Nyström tail is not trustworthy).
        count = min(SPECTRUM, limit)
        top = _eigh(inner, eigvals_only=True, subset_by_index=[len(inner) - count, len(inner) - 1])
        neig, edge = noise_edge(matrix_moments(inner), top[::-1], nclass)
        noise = NoiseEdge(edge, top[::-1], "landmark block")
        values, vectors = eigenpairs(neig)
    elif neig == "auto":
        values, vectors = eigenpairs(min(SPECTRUM, limit - 1))
        neig, edge = noise_edge(matrix_moments(matrix), values, nclass)
        noise = NoiseEdge(edge, values, "correlation matrix")
        values, vectors = values[:neig], vectors[:, :neig]
    else:
        noise = None
        if not isinstance(neig, (int, np.integer)) or not 1 <= neig <= limit:
            what = "half the landmarks" if landmark else "the particles"
            raise TomoclassError(f"neig must be 'auto' or within 1..{limit} ({what}), got {neig}")
        values, vectors = eigenpairs(int(neig))
    coefficients = vectors * np.sqrt(np.clip(values, 0, None))
    labels = kmeans(coefficients, nclass, seed)
    return CPCAResult(labels, coefficients, values, len(values), noise)


LANDMARKS_ABOVE = 4000
"""Beyond this many particles :func:`corrected_cpca` uses a landmark block (Nyström CPCA)."""
LANDMARKS = 2000
"""Landmark columns of that block."""


@dataclass
class Corrected:
    """The correlations of a set of features less what their sampling predicts: ``source``
    (a matrix or :class:`~tomoclass.ccc.LandmarkBlock`; on rank 0 only, None elsewhere),
    the nuisance ``fit`` (rank 0) and the ``landmarks`` (None for the full matrix)."""

    source: np.ndarray | LandmarkBlock | None
    fit: NuisanceFit | None
    landmarks: np.ndarray | None


def corrected_correlations(f: np.ndarray, w: np.ndarray, band: Band, seed: int = 0,
                           comm=None) -> Corrected:  # fmt: skip
    """The correlations of features ``f``, ``w`` on ``band`` less what the particles'
    sampling predicts (:func:`tomoclass.nuisance.remove_nuisance`): the full matrix, or
    beyond :data:`LANDMARKS_ABOVE` particles a landmark block of :data:`LANDMARKS` seeded
    columns. Under MPI the tiles are shared and rank 0 holds the result."""
    comm = comm or Serial()
    n = len(f)
    landmarks = choose_landmarks(n, LANDMARKS, seed) if n > LANDMARKS_ABOVE else None
    matrix = matrix_from_features(f, w, band.herm, comm, landmarks)
    if comm.rank != 0:
        return Corrected(None, None, landmarks)
    corrected, fit = remove_nuisance(matrix, f, w, band, landmarks=landmarks)
    del matrix
    source = corrected if landmarks is None else LandmarkBlock(corrected, landmarks)
    return Corrected(source, fit, landmarks)


def corrected_cpca(
    f: np.ndarray,
    w: np.ndarray,
    band: Band,
    nclass: int,
    seed: int = 0,
    comm=None,
    corrected: Corrected | None = None,
) -> tuple[CPCAResult, NuisanceFit, np.ndarray | None]:
    """CPCA (``neig`` auto) of :func:`corrected_correlations` (or of ``corrected``, made
    already for these features): the start of ``classify`` and of MCO's ``--start cpca``.
    Returns the result, the nuisance fit and the landmarks (None for the full matrix); under
    MPI (``comm``) rank 0 decides and every rank returns the same."""
    comm = comm or Serial()
    corrected = corrected or corrected_correlations(f, w, band, seed, comm)
    result = None
    if comm.rank == 0:  # one rank decides, so that all continue from the same labels
        result = cpca(corrected.source, "auto", nclass, seed)
    result, fit = comm.bcast((result, corrected.fit), root=0)
    return result, fit, corrected.landmarks
