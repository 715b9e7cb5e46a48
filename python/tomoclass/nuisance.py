"""Correlation that is not structure: the part of the CCC matrix that the particles'
sampling predicts, modelled and taken out before clustering.

Two particles of the same structure correlate more when their weights (wedges, CTFs, dose)
overlap where the structure has power, so a CCC matrix carries, besides the classes, a
pattern set by each particle's tomogram, defocus and wedge orientation. It is often larger
than a subtle class difference and takes the leading eigenvectors that CPCA clusters on.

The model: if every particle were the global average ``A`` (wedge-weighted, over all
particles) plus its own noise, the numerator of ``CCC_ij`` would be
``Σ h·W_i²·W_j²·|A|²``. Split over ``S`` shells of one Fourier voxel each, this gives one
predictor per shell, ``E^s_ij = Σ_{k∈s} h·W_i²·W_j²·|A|² / D_ij``, over the CCC's own
denominator ``D_ij = sqrt(Σ h·W_j²·|F_i|² · Σ h·W_i²·|F_j|²)`` (SPEC §3). The shell
coefficients absorb what the model cannot know per shell (the signal's share of the power).
``C_ij ≈ a + Σ_s b_s·E^s_ij`` is fitted by least squares over all pairs ``i ≠ j`` and
subtracted; the residual keeps unit diagonal. Everything runs tile by tile over float32
matrix products, so memory stays at a few tiles beyond the matrix itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomoclass import _core
from tomoclass.errors import TomoclassError
from tomoclass.features import Band

MAX_SHELLS = 16
"""Most shells of the model (the band's width in Fourier voxels, up to this many)."""

TILE = 512
"""Rows and columns of the matrix handled at once."""


@dataclass
class NuisanceFit:
    """The fitted model: ``coefficients`` ``[a, b_1 … b_S]``, the shell edges (Fourier
    voxels) and the share of the off-diagonal variance of the matrix it explains."""

    coefficients: np.ndarray
    edges: np.ndarray
    explained: float

    def summary(self) -> dict:
        return {"shells": len(self.edges) - 1, "edges": self.edges.tolist(),
                "coefficients": self.coefficients.tolist(),
                "explained_variance": self.explained}  # fmt: skip


def _radii(band: Band) -> np.ndarray:
    """Radius (Fourier voxels) of every band voxel of the half grid."""
    n = band.box
    z, y, x = np.unravel_index(np.asarray(band.flat), (n, n, n // 2 + 1))
    z = np.where(z > n // 2, z - n, z)
    y = np.where(y > n // 2, y - n, y)
    return np.sqrt(x * x + y * y + z * z)


class _Predictors:
    """The per-particle factors of the model, made for the rows a block needs (so that
    memory-mapped features stay on disk): ``P = h·|F|²``, ``Q = W²`` (the CCC's denominator)
    and, per shell, ``Y_s = √h·W²·|A|`` on that shell's voxels."""

    def __init__(self, f: np.ndarray, w: np.ndarray, band: Band, floor: float) -> None:
        self.f, self.w, self.m = f, w, w.shape[1]
        self.herm = np.asarray(band.herm, np.float32)
        means, _ = _core.mco_class_means(f, w, [0] * len(w), 1, floor)
        self.amplitude = np.hypot(means[0, : self.m], means[0, self.m :]).astype(np.float32)
        r = _radii(band)
        count = int(np.clip(round(band.highest - band.lowest), 1, MAX_SHELLS))
        self.edges = np.linspace(r.min(), r.max(), count + 1)
        self.shell = np.clip(np.searchsorted(self.edges, r, side="right") - 1, 0, count - 1)

    @property
    def shells(self) -> int:
        return len(self.edges) - 1

    def _factors(self, index) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        f, w = np.asarray(self.f[index], np.float32), np.asarray(self.w[index], np.float32)
        p = self.herm * (np.square(f[:, : self.m]) + np.square(f[:, self.m :]))
        q = np.square(w)
        y = np.sqrt(self.herm) * self.amplitude * q
        return p, q, [y[:, self.shell == s] for s in range(self.shells)]

    def block(self, rows: slice, cols: np.ndarray | slice) -> np.ndarray:
        """``(S, rows, cols)``: the predictors ``E^s`` of a block of the matrix."""
        (pa, qa, ya), (pb, qb, yb) = self._factors(rows), self._factors(cols)
        d = np.sqrt((pa @ qb.T) * (qa @ pb.T))
        safe = np.where(d > 0, d, np.inf)
        return np.stack([(a @ b.T) / safe for a, b in zip(ya, yb, strict=True)])


def _blocks(n: int, columns: np.ndarray | None):
    """``(rows, cols, particles, off)`` blocks covering the matrix (its upper triangle when
    square): ``cols`` index the matrix's columns, ``particles`` the particles they are;
    ``off`` weighs the entries of distinct particles (2 above the diagonal, for both)."""
    spans = [slice(a, min(a + TILE, n)) for a in range(0, n, TILE)]
    if columns is not None:
        everything = slice(None)
        for rows in spans:
            off = np.arange(rows.start, rows.stop)[:, None] != columns[None, :]
            yield rows, everything, columns, off.astype(np.float64)
        return
    for i, rows in enumerate(spans):
        for cols in spans[i:]:
            off = np.full((rows.stop - rows.start, cols.stop - cols.start), 2.0)
            if cols == rows:
                off = np.triu(off, 1)
            yield rows, cols, cols, off


def remove_nuisance(
    matrix: np.ndarray,
    f: np.ndarray,
    w: np.ndarray,
    band: Band,
    *,
    landmarks: np.ndarray | None = None,
    floor: float = 0.05,
) -> tuple[np.ndarray, NuisanceFit]:
    """The CCC ``matrix`` (N×N, or the ``(N, m)`` columns of a landmark block) less the
    correlation the particles' sampling predicts (module docstring), and the fit.

    ``f``, ``w``: the particles' features and weights on ``band`` (as the matrix was made);
    ``landmarks``: the particle indices of the columns of a landmark block. The result is a
    new float32 array with 1 where a particle meets itself. ``floor``: of the global
    average's weight sum, as for class averages."""
    n = len(f)
    columns = None if landmarks is None else np.asarray(landmarks)
    shape = (n, n) if columns is None else (n, len(columns))
    if matrix.shape != shape:
        raise TomoclassError(f"correlations {matrix.shape} do not fit {n} particles' features")
    model = _Predictors(f, w, band, floor)
    count = model.shells + 1
    gram, moment = np.zeros((count, count)), np.zeros(count)
    total, square, pairs = 0.0, 0.0, 0.0
    for rows, cols, particles, off in _blocks(n, columns):
        e = model.block(rows, particles).astype(np.float64).reshape(count - 1, -1)
        z = np.concatenate([np.ones((1, e.shape[1])), e])  # design: 1, E^1 … E^S per pair
        c = np.asarray(matrix[rows, cols], np.float64).ravel()
        weight = off.ravel()
        gram += (z * weight) @ z.T
        moment += (z * weight) @ c
        pairs, total, square = pairs + weight.sum(), total + weight @ c, square + weight @ (c * c)
    coefficients = np.linalg.lstsq(gram, moment, rcond=None)[0]
    residual = np.empty(shape, np.float32)
    rest = 0.0
    for rows, cols, particles, off in _blocks(n, columns):
        e = model.block(rows, particles)
        fit = coefficients[0] + np.tensordot(coefficients[1:], e, axes=1)
        block = np.asarray(matrix[rows, cols], np.float64) - fit
        rest += float((off * block * block).sum())
        residual[rows, cols] = block
        if columns is None:
            residual[cols, rows] = block.T
    if columns is None:
        np.fill_diagonal(residual, 1.0)
    else:
        residual[columns, np.arange(len(columns))] = 1.0
    variance = square - total * total / max(pairs, 1.0)
    explained = 1.0 - rest / variance if variance > 0 else 0.0
    return residual, NuisanceFit(coefficients, model.edges, float(explained))
