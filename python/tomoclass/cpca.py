"""Constrained principal component analysis (CPCA): eigenvectors of the CCC matrix, then
k-means (Förster et al. 2008).

Only the top ``neig`` eigenpairs are computed (``scipy.linalg.eigh`` with an index subset,
or Lanczos via ``scipy.sparse.linalg.eigsh`` for large N; never a full SVD). Each particle's
coefficients are ``sqrt(λ_k)·u_k``; k-means++ with several restarts keeps the assignment of
lowest inertia. Everything random is seeded: the same seed gives the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.linalg import eigh
from scipy.sparse.linalg import LinearOperator, eigsh

from tomoclass.errors import TomoclassError

DENSE_LIMIT = 4000
"""Above this many particles the eigenpairs come from Lanczos iterations."""

RESTARTS = 10
"""k-means++ restarts; the lowest inertia wins."""

ITERATIONS = 100
"""k-means iterations per restart (PyTom uses 50)."""

SPECTRUM = 60
"""Eigenvalues examined to choose ``neig`` automatically."""


@dataclass
class CPCAResult:
    """Labels (0..nclass−1, numbered by first appearance), coefficients ``(N, neig)``,
    the top eigenvalues (descending) and the ``neig`` used."""

    labels: np.ndarray
    coefficients: np.ndarray
    eigenvalues: np.ndarray
    neig: int


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


def _streamed(matrix: np.ndarray) -> LinearOperator:
    """``x ↦ M·x`` reading ``M`` in row blocks (float64 products)."""
    spans = _spans(len(matrix))

    def product(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(matrix), -1)
        return np.concatenate([np.asarray(matrix[a:b], dtype=np.float64) @ x for a, b in spans])

    return LinearOperator(matrix.shape, matvec=product, matmat=product, dtype=np.float64)


def top_eigenpairs(ccc: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest eigenvalues (descending) and their eigenvectors ``(N, count)``,
    each vector's sign fixed so that its largest-magnitude entry is positive. Above
    DENSE_LIMIT particles, Lanczos iterations stream the matrix in row blocks."""
    n = len(ccc)
    if n <= DENSE_LIMIT or count >= n - 1:
        dense = np.asarray(ccc, dtype=np.float64)
        values, vectors = eigh(dense, subset_by_index=[n - count, n - 1])
    else:
        start = np.random.default_rng(seed).standard_normal(n)
        values, vectors = eigsh(_streamed(ccc), k=count, which="LA", v0=start)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    flip = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(count)])
    return values, vectors * np.where(flip == 0, 1, flip)


def noise_edge_neig(ccc: np.ndarray, eigenvalues: np.ndarray, nclass: int) -> int:
    """How many leading eigenvalues stand above the noise: the bulk of the spectrum is
    modelled as Marchenko–Pastur, its mean and variance matched to the eigenvalues not
    counted as signal (from the trace and the Frobenius norm, so no full decomposition is
    needed), and the signal count and the edge ``mean·(1 + √(variance / mean²))²`` are
    refined until they agree. The dominant (mean) eigenvalue always counts; the result is
    never below ``nclass``."""
    values = np.asarray(eigenvalues, dtype=np.float64)
    n = len(ccc)
    trace = float(sum(np.trace(np.asarray(ccc[a:b, a:b], np.float64)) for a, b in _spans(n)))
    frobenius = float(sum(np.square(np.asarray(ccc[a:b], np.float64)).sum() for a, b in _spans(n)))
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
    return int(min(max(signal, nclass), len(values)))


def kmeans(points: np.ndarray, nclass: int, seed: int, restarts: int = RESTARTS) -> np.ndarray:
    """k-means++ labels of lowest inertia over ``restarts`` seeded runs, renumbered by first
    appearance."""
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
    ccc: np.ndarray, neig: int | str, nclass: int, seed: int = 0, name: str = "correlation matrix"
) -> CPCAResult:
    """Classify by CPCA: ``neig`` eigenvectors (or ``"auto"``), then k-means into ``nclass``.

    ``ccc`` may be memory-mapped (``numpy.load(…, mmap_mode="r")``): it is then checked and
    used in blocks, never loaded whole. ``name`` (e.g. the matrix file) is used in errors.
    """
    matrix = check_matrix(ccc, name)
    n = len(matrix)
    if not 2 <= nclass <= n:
        raise TomoclassError(f"nclass must be within 2..{n} (the particles), got {nclass}")
    if neig == "auto":
        values, vectors = top_eigenpairs(matrix, min(SPECTRUM, n - 1), seed)
        neig = noise_edge_neig(matrix, values, nclass)
        values, vectors = values[:neig], vectors[:, :neig]
    else:
        if not isinstance(neig, (int, np.integer)) or not 1 <= neig <= n:
            raise TomoclassError(f"neig must be 'auto' or within 1..{n}, got {neig}")
        values, vectors = top_eigenpairs(matrix, int(neig), seed)
    coefficients = vectors * np.sqrt(np.clip(values, 0, None))
    labels = kmeans(coefficients, nclass, seed)
    return CPCAResult(labels, coefficients, values, int(neig))
