"""The missing wedge against the geometry of a tilt series, built here from first principles
and not from :mod:`tomoclass.wedge`: an asymmetric tilt range (−50..+60°) must give the
Fourier region its tilts sample, through ``tilt_range_wedge``, PyTom's Angle1/Angle2 and the
CCC matrix. Swapping Angle1 and Angle2, or turning the tilt axis round, mirrors that region
(``kx → −kx``) and fails these tests, which the CCC reference tests (they take their
weights from ``tomoclass.wedge.weights``) cannot see.

Geometry (README, Conventions): volumes ``[z, y, x]``, tilt axis y, beam z. At tilt θ the
specimen is turned right-handedly about +y by θ, ``R_y(θ)``, and projected along z. By the
projection-slice theorem the image holds the specimen's spectrum on the plane that is
perpendicular to the beam as seen from the specimen, ``b(θ) = R_y(θ)ᵀ·ẑ = (−sin θ, 0, cos θ)``
in ``(x, y, z)``: the voxel ``k`` is sampled at tilt θ iff ``g(θ) = k·b(θ) = 0``. Over a range
``lo..hi`` (shorter than 180°) the sinusoid ``g`` has a zero iff ``g(lo)·g(hi) ≤ 0``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation as ScipyRotation

from tomoclass.ccc import correlation_matrix
from tomoclass.features import ParticleStack
from tomoclass.wedge import SingleTiltWedge, tilt_range_wedge, weights

LO, HI = -50.0, 60.0  # an asymmetric tilt range, degrees


def half_grid(n: int, rotation: np.ndarray | None = None) -> np.ndarray:
    """Frequencies ``q = R·k`` (tomogram frame) of numpy's rFFT half grid of an ``n³`` box,
    ``(n, n, n//2 + 1, 3)`` as ``(x, y, z)``; ``R`` is the particle's rotation (a particle
    is the reference turned by ``R``, so its aligned frame sees the sampling at ``R·k``)."""
    k = np.fft.fftfreq(n, 1 / n)
    kz, ky, kx = np.meshgrid(k, k, np.arange(n // 2 + 1.0), indexing="ij")
    q = np.stack([kx, ky, kz], axis=-1)
    return q if rotation is None else q @ np.asarray(rotation).T


def sampled_by_tilts(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Whether a tilt series from ``lo`` to ``hi`` degrees samples the frequencies ``q``
    (``(…, 3)`` as ``(x, y, z)``): some tilt's central slice holds them (module docstring)."""

    def g(theta: float) -> np.ndarray:  # q·b(θ), b = (−sin θ, 0, cos θ)
        t = np.radians(theta)
        return -q[..., 0] * np.sin(t) + q[..., 2] * np.cos(t)

    return g(lo) * g(hi) <= 0


def pytom_region(q: np.ndarray, angle1: float, angle2: float) -> np.ndarray:
    """PyTom's own asymmetric wedge, ``create_asymmetric_wedge`` in pytom/agnostic/filter.py
    (SBC-Utrecht/PyTom at 4089d5d): its arrays are ``[x, y, z]`` with z halved, and its
    meshgrid (lines 409–411) names kx ``y`` and kz ``x``, so lines 460–461 sample
    ``tan(angle1) < kx/kz`` and ``tan(−angle2) > kx/kz`` on kz ≥ 0: Angle1 bounds the half
    ``kx·kz > 0``, Angle2 the other; the plane kz = 0 is sampled (x/0 is ±inf; line 462 sets
    kx = kz = 0). The other half follows by Hermitian symmetry, ``W(−k) = W(k)``."""
    x, z = q[..., 0], q[..., 2]
    sign = np.where(z < 0, -1.0, 1.0)  # the point reflection onto PyTom's half z ≥ 0
    x, z = sign * x, sign * z
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = x / z
        inside = (ratio > np.tan(np.radians(angle1))) | (ratio < np.tan(np.radians(-angle2)))
    return inside | (z == 0)


def ball(n: int) -> np.ndarray:
    """The half-grid voxels well inside the cutoff sphere ``|k| ≤ n // 2``."""
    return np.linalg.norm(half_grid(n), axis=-1) <= n // 2 - 1


def test_the_wedge_of_a_tilt_range_is_the_region_its_tilts_sample():
    """``weights(tilt_range_wedge(−50, 60))`` is 1 exactly where the tilts −50..+60 sample,
    and its mirror is not (the test tells the two apart)."""
    n = 32
    want = sampled_by_tilts(half_grid(n), LO, HI)
    got = weights(tilt_range_wedge(LO, HI), n) > 0
    inside = ball(n)
    np.testing.assert_array_equal(got[inside], want[inside])
    mirrored = sampled_by_tilts(half_grid(n), -HI, -LO)
    assert (mirrored != want)[inside].sum() > 500


def test_pytoms_angle1_and_angle2_are_the_tilt_range_as_tomoclass_reads_them():
    """PyTom's wedge rule with Angle1 = 90 − max tilt = 30, Angle2 = 90 + min tilt = 40 is
    the region of the tilts −50..+60, and so is tomoclass's ``SingleTiltWedge(30, 40)``."""
    n = 32
    q, inside = half_grid(n), ball(n)
    physical = sampled_by_tilts(q, LO, HI)
    np.testing.assert_array_equal(pytom_region(q, 30, 40)[inside], physical[inside])
    got = weights(SingleTiltWedge(angle1=30, angle2=40), n) > 0
    np.testing.assert_array_equal(got[inside], physical[inside])
    assert tilt_range_wedge(LO, HI) == SingleTiltWedge(30, 40)


def test_a_turned_particle_sees_its_tilt_series_through_its_rotation(rng):
    """For random particle rotations the weights are the tilt series' region at ``R·k``
    (voxels within 1e-6 of an edge plane, where rounding may decide, are left out)."""
    n = 24
    inside = ball(n)
    for rotation in ScipyRotation.random(3, random_state=rng).as_matrix():
        q = half_grid(n, rotation)
        want = sampled_by_tilts(q, LO, HI)
        t_lo, t_hi = np.radians([LO, HI])
        edge = np.minimum(np.abs(-q[..., 0] * np.sin(t_lo) + q[..., 2] * np.cos(t_lo)),
                          np.abs(-q[..., 0] * np.sin(t_hi) + q[..., 2] * np.cos(t_hi)))  # fmt: skip
        clear = inside & (edge > 1e-6)
        got = weights(tilt_range_wedge(LO, HI), n, rotation) > 0
        np.testing.assert_array_equal(got[clear], want[clear])


# Tilt ranges of the particles' tomograms; each wedge is written as PyTom writes it.
RANGES = [(-50.0, 60.0), (-65.0, 45.0), (-30.0, 70.0), (-60.0, 55.0), (-45.0, 50.0)]


def aligned_spectrum(volume: np.ndarray, rotation: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """rFFT of the masked aligned particle, ``aligned(p) = particle(R(p − c) + c)`` (README,
    Conventions), by cubic B-spline interpolation with zeros outside."""
    n = volume.shape[0]
    z, y, x = np.indices(volume.shape, dtype=np.float64) - n // 2
    p = rotation @ np.stack([x.ravel(), y.ravel(), z.ravel()]) + n // 2
    aligned = ndimage.map_coordinates(volume.astype(np.float64), [p[2], p[1], p[0]], order=3,
                                      mode="constant").reshape(volume.shape)  # fmt: skip
    return np.fft.rfftn(mask * aligned)


def test_ccc_of_particles_with_asymmetric_wedges_uses_the_sampled_regions(rng):
    """The CCC matrix (Fourier mode) of 5 turned particles from tomograms with different
    asymmetric tilt ranges equals the SPEC formula Σ h·W_i·W_j·Re(F_i F_j*) / √(Σ h·W_j²|F_i|²
    · Σ h·W_i²|F_j|²) with W the physical sampling of each tilt range at ``R·k``."""
    n, lowpass = 16, 6.0
    volumes = np.stack([ndimage.gaussian_filter(v, 1.0) for v in rng.standard_normal((5, n, n, n))])
    rotations = ScipyRotation.random(5, random_state=rng).as_matrix()
    wedges = [SingleTiltWedge(angle1=90 - hi, angle2=90 + lo) for lo, hi in RANGES]
    z, y, x = np.indices((n,) * 3) - n // 2
    mask = (np.sqrt(x**2 + y**2 + z**2) <= 6.5).astype(np.float64)
    stack = ParticleStack(volumes.astype(np.float32), rotations, np.zeros((5, 3)), wedges)
    got = correlation_matrix(stack, mask.astype(np.float32), lowpass, 1, "fourier")

    radius = np.linalg.norm(half_grid(n), axis=-1)
    kx = half_grid(n)[..., 0]
    g = np.where((kx == 0) | (kx == n // 2), 1.0, 2.0) * ((radius > 0) & (radius <= lowpass))
    w = [sampled_by_tilts(half_grid(n, r), lo, hi).astype(np.float64)
         for r, (lo, hi) in zip(rotations, RANGES, strict=True)]  # fmt: skip
    f = [w_i * aligned_spectrum(v, r, mask) for v, r, w_i in zip(volumes, rotations, w,
                                                                 strict=True)]  # fmt: skip
    want = np.eye(5)
    for i in range(5):
        for j in range(i + 1, 5):
            num = np.sum(g * w[i] * w[j] * (f[i] * np.conj(f[j])).real)
            energy_i = np.sum(g * w[j] ** 2 * np.abs(f[i]) ** 2)
            energy_j = np.sum(g * w[i] ** 2 * np.abs(f[j]) ** 2)
            want[i, j] = want[j, i] = num / np.sqrt(energy_i * energy_j)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.ptp(want[np.triu_indices(5, 1)]) > 0.1  # not trivial values


@pytest.mark.parametrize("swap", [False, True])
def test_the_mirrored_region_is_not_the_tilt_series(swap):
    """Sanity of the geometry above: swapping Angle1/Angle2 equals mirroring kx, and both
    differ from the tilt series' region on many voxels."""
    n = 24
    q, inside = half_grid(n), ball(n)
    a1, a2 = (40, 30) if swap else (30, 40)
    region = pytom_region(q, a1, a2)
    mirrored = q * np.array([-1.0, 1.0, 1.0])
    assert np.array_equal(region[inside], pytom_region(mirrored, a2, a1)[inside])
    differ = (region != sampled_by_tilts(q, LO, HI))[inside].sum()
    assert (differ > 200) if swap else (differ == 0)
