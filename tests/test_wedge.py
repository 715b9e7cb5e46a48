"""Missing-wedge weights: sampled fractions, symmetries and rotations."""

from __future__ import annotations

import numpy as np
import pytest

from tomoclass import Rotation, TomoclassError, rotation_matrix
from tomoclass.wedge import DoubleTiltWedge, SingleTiltWedge, weights, weights_stack


def _grid(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    return np.meshgrid(k, k, kx, indexing="ij")  # kz, ky, kx


def _inside(n: int, radius: float) -> np.ndarray:
    kz, ky, kx = _grid(n)
    r = np.sqrt(kx**2 + ky**2 + kz**2)
    return (r > 0) & (r <= radius)


def _sampled_fraction(w: np.ndarray) -> float:
    """Fraction of the full Fourier ball sampled: the half grid counts kx > 0 twice."""
    n = w.shape[0]
    ball = _inside(n, n // 2 - 1)
    h = np.where(_grid(n)[2] == 0, 1.0, 2.0)
    return float((h * w)[ball].sum() / h[ball].sum())


def test_plus_minus_60_samples_two_thirds():
    assert abs(_sampled_fraction(weights(SingleTiltWedge(30, 30), 64)) - 2 / 3) < 0.003


def test_asymmetric_wedge_samples_its_own_fraction():
    # −40..+60 degrees: 100 of 180 degrees of directions.
    assert abs(_sampled_fraction(weights(SingleTiltWedge(30, 50), 64)) - 100 / 180) < 0.003


def test_asymmetric_wedge_is_the_mirror_of_the_swapped_one():
    n = 32
    a = weights(SingleTiltWedge(20, 45), n)
    b = weights(SingleTiltWedge(45, 20), n)
    # Mirroring kx on the half grid is (kx, ky, kz) → (kx, −ky, −kz) by Hermitian symmetry.
    mirrored = np.roll(b[::-1, ::-1, :], 1, axis=(0, 1))
    kx = _grid(n)[2]
    off_axis = kx != 0  # on kx = 0 both halves meet; the rule picks Angle1 there
    np.testing.assert_array_equal(a[off_axis], mirrored[off_axis])
    assert not np.array_equal(a, b)


def test_matches_direct_formula_in_tomogram_frame():
    n = 24
    w = weights(SingleTiltWedge(25, 40), n)
    kz, ky, kx = _grid(n)
    angle = np.where(kx * kz >= 0, 25.0, 40.0)
    sampled = (np.abs(kz) < 1e-4) | (np.abs(kx) >= np.abs(kz) * np.tan(np.radians(angle)))
    expected = sampled & (np.sqrt(kx**2 + ky**2 + kz**2) <= n // 2)
    np.testing.assert_array_equal(w, expected.astype(np.float32))


def test_rotated_particle_sees_rotated_wedge(rng):
    n = 24
    wedge = SingleTiltWedge(30, 30)
    matrix = rotation_matrix(*rng.uniform(0, 360, 3))
    w = weights(wedge, n, matrix)
    kz, ky, kx = _grid(n)
    k = np.stack([kx, ky, kz], -1)
    q = k @ matrix.T  # R·k: the tomogram-frame frequency
    sampled = (np.abs(q[..., 2]) < 1e-4) | (
        np.abs(q[..., 0]) >= np.abs(q[..., 2]) * np.tan(np.radians(30))
    )
    expected = sampled & (np.linalg.norm(q, axis=-1) <= n // 2)
    assert (w != expected).mean() < 1e-3  # only voxels exactly on an edge may differ


def test_tilt_axis_rotation_z1_90_puts_axis_on_x():
    n = 32
    along_x = weights(SingleTiltWedge(30, 30, tilt_axis_rotation=Rotation(90, 0, 0)), n)
    kz, ky, kx = _grid(n)
    # Tilt axis x: the missing region lies around kz in the (ky, kz) plane.
    expected = (np.abs(kz) < 1e-4) | (np.abs(ky) >= np.abs(kz) * np.tan(np.radians(30)))
    expected &= np.sqrt(kx**2 + ky**2 + kz**2) <= n // 2
    np.testing.assert_array_equal(along_x, expected.astype(np.float32))


def test_double_tilt_is_the_product():
    n = 24
    first = SingleTiltWedge(30, 30)
    second = SingleTiltWedge(35, 35, tilt_axis_rotation=Rotation(90, 0, 0))
    both = weights(DoubleTiltWedge(first, second), n)
    np.testing.assert_array_equal(both, weights(first, n) * weights(second, n))
    assert both.mean() > weights(first, n).mean() * weights(second, n).mean() - 1e-6


def test_cutoff_and_smooth():
    n = 32
    w = weights(SingleTiltWedge(30, 30, cutoff_radius=6), n)
    assert w[0, 0, 6] == 1 and w[0, 0, 7] == 0
    soft = weights(SingleTiltWedge(30, 30, smooth=4), n)
    hard = weights(SingleTiltWedge(30, 30), n)
    ramp = (soft > 0) & (soft < 1)
    assert ramp.any() and np.all(hard[ramp] == 0)
    assert np.all(soft >= hard)


def test_stack_equals_single(rng):
    n = 16
    wedges = [SingleTiltWedge(30, 30), SingleTiltWedge(20, 40, smooth=2)]
    mats = np.stack([rotation_matrix(*rng.uniform(0, 360, 3)) for _ in wedges])
    stack = weights_stack(wedges, n, mats)
    for i, wedge in enumerate(wedges):
        np.testing.assert_array_equal(stack[i], weights(wedge, n, mats[i]))


def test_angles_outside_0_90_are_refused():
    with pytest.raises(TomoclassError, match="angle1"):
        SingleTiltWedge(100, 30)
