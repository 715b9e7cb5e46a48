"""Weight volumes from files: 3-D CTFs and weights in the layouts their writers define.

Every layout is turned into the rFFT half grid ``(n, n, n // 2 + 1)`` of the particle box
(``[kz, ky, kx]``, DC at index 0, negative frequencies wrapped as ``numpy.fft.rfftn``), plus
the filter that makes the particle's data consistent with it (``F ≈ W·S``). The layout is
told by the volume's shape for particles of ``n³``:

* ``(n, n, n//2+1)`` — the half grid itself: Warp's 3-D CTF (``rlnCtfImage``, float16 MRC;
  warpem/warp ``WarpLib/TiltSeries/TiltSeries.ReconstructSubtomos.cs`` lines 94 and 244-260:
  a half-complex grid with x halved, DC at 0, the real part kept) and the same form of
  RELION 3.0's 3-D CTF.
* ``(n//2+1, n, n)`` — PyTom's ``Wedge3dCTF`` after ``pytom/bin/import_subtomos.py`` (lines
  30-41): z halved, DC at 0 (SBC-Utrecht/PyTom ``pytom/basic/structures.py`` 1487-1489).
* ``(2n, n, n//2+1)`` — RELION 4/5 ``_weights.mrc`` (3dem/relion
  ``src/jaz/tomography/programs/subtomo.cpp`` 924-930): slices ``z < n`` hold the sum of
  CTF² (times the dose weights) and ``z ≥ n`` the multiplicity, both on the half grid, DC at
  0; the data were premultiplied by the CTF (lines 780-795). Voxels of multiplicity below
  0.01 (RELION's ``--subtomo_multi_thr`` default, ``src/ml_optimiser.cpp`` 10668-10683) are
  unsampled; otherwise the CTF² sum is the weight volume (see below).
* ``(n, n, n)`` — a full grid with DC at the centre ``n // 2``: PyTom's ``GeneralWedge``
  (``structures.py`` 1649), RELION 3.0's cubic 3-D CTF and RELION's optional ``_CTF2.mrc``.

What the values mean comes from the list (see :class:`tomoclass.wedge.WeightVolume`):

* a CTF the data carry (Warp, RELION 3.0, PyTom ``Wedge3dCTF``): its magnitude is the
  weight; where it is negative the data are phase-flipped (a data filter of ``±1``). Warp's
  CTF is ≥ 0, RELION 3.0's is signed.
* the sum of CTF² ``C`` of premultiplied data (RELION 4/5): the data are ``Σ t·c·X`` over
  the tilts, so their signal is ``C·S`` and their noise variance is ``C·σ²`` (the noise went
  through the same CTF). Whitened (divided by ``√C``) they are ``√C·S`` plus white noise: the
  weight is ``√C`` and the data filter ``1/√C``. Then the average ``Σ W·F / Σ W²`` is
  RELION's ``Σ data / Σ C`` and the correlation of two particles is the plain product of
  their data, each particle's CTF applied once. (Taking ``C`` itself as the weight would
  apply it three times and drown the high frequencies in the over-sampled centre; a
  simulated RELION set loses most of its accuracy that way, ``benches/bench_weights.py``.)
  Dividing data and ``C`` by the multiplicity, as RELION does, leaves the whitened data
  unchanged, so tomoclass does not. Negative values are an error.
* a general weight (PyTom ``GeneralWedge``, ≥ 0), taken as it is.
"""

from __future__ import annotations

import os

import numpy as np

from tomoclass.errors import TomoclassError
from tomoclass.io.volumes import check_finite, read_volume
from tomoclass.wedge import WeightVolume

MULTIPLICITY_THRESHOLD = 0.01
"""RELION's default ``--subtomo_multi_thr``: voxels sampled less are treated as unsampled."""


def _fail(path, message: str) -> TomoclassError:
    return TomoclassError(f"{os.fspath(path)}: {message}")


def half_grid_from_z_halved(volume: np.ndarray) -> np.ndarray:
    """PyTom's z-halved ``(n//2+1, n, n)`` grid as the x-halved ``(n, n, n//2+1)`` one, by the
    symmetry ``W(−k) = W(k)`` of a real weight."""
    h, n = volume.shape[0], volume.shape[1]
    k = (n - np.arange(n)) % n  # index of −k
    iz = np.arange(n)[:, None, None]
    iy = np.arange(n)[None, :, None]
    ix = np.arange(h)[None, None, :]
    direct = iz < h  # kz ≥ 0 is stored as is
    mirror_z, mirror_y, mirror_x = k[iz], k[iy], k[ix]
    zi = np.where(direct, iz, mirror_z)
    yi = np.where(direct, iy, mirror_y)
    xi = np.where(direct, ix, mirror_x)
    return np.ascontiguousarray(volume[zi, yi, xi], dtype=np.float32)


def read_weight_volume(
    path: str | os.PathLike, box: int, volume: WeightVolume
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(weight, data filter or None)`` on the half grid of ``box³`` particles from the file
    ``path`` of ``volume`` (see the module docstring); errors name the file."""
    data = read_volume(path)
    check_finite(data, path)
    n, h = box, box // 2 + 1
    shape = data.shape
    if shape == (2 * n, n, h):
        if not volume.premultiplied:
            raise _fail(
                path,
                "a RELION CTF² and multiplicity volume needs premultiplied data "
                "(the optics group's rlnCtfDataAreCtfPremultiplied 1)",
            )
        return _relion_weights(path, data[:n], data[n:])
    if shape == (n, n, h):
        grid = data
    elif shape == (h, n, n):
        grid = half_grid_from_z_halved(data)
    elif shape == (n, n, n):
        grid = np.fft.ifftshift(data)[..., :h]
    else:
        raise _fail(
            path,
            f"weight volume of shape {shape} (z, y, x) fits no known layout for particles of "
            f"{n}³: expected {(n, n, h)} (Warp, RELION 3.0), {(h, n, n)} (PyTom), "
            f"{(2 * n, n, h)} (RELION 4/5 CTF² and multiplicity) or {(n, n, n)} (full, centred)",
        )
    return _meaning(path, np.ascontiguousarray(grid, dtype=np.float32), volume)


def _meaning(path, grid: np.ndarray, volume: WeightVolume) -> tuple:
    """Weight and data filter of a grid read as ``volume`` says (see the module docstring)."""
    negative = bool((grid < 0).any())
    if volume.kind == "ctf" and not volume.premultiplied:
        if not negative:
            return grid, None
        return np.abs(grid), np.where(grid < 0, -1.0, 1.0).astype(np.float32)
    if negative:
        what = "a sum of CTF²" if volume.premultiplied else "a GeneralWedge"
        raise _fail(path, f"{what} has negative weights (minimum {grid.min():.4g})")
    if not volume.premultiplied:
        return grid, None
    sampled = grid > 0
    root = np.sqrt(np.where(sampled, grid, 1.0))
    return np.where(sampled, root, 0.0).astype(np.float32), np.where(
        sampled, 1.0 / root, 0.0
    ).astype(np.float32)


def _relion_weights(path, ctf2: np.ndarray, multiplicity: np.ndarray) -> tuple:
    if (ctf2 < 0).any() or (multiplicity < 0).any():
        raise _fail(path, "RELION weights hold negative CTF² or multiplicity values")
    sampled = multiplicity >= MULTIPLICITY_THRESHOLD
    grid = np.ascontiguousarray(np.where(sampled, ctf2, 0.0), dtype=np.float32)
    return _meaning(path, grid, WeightVolume(os.fspath(path), premultiplied=True))
