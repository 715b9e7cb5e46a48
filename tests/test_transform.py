"""Rotation conventions and interpolation against scipy, and hand-made geometric cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation as ScipyRotation

from tomoclass import TomoclassError, rotation_matrix
from tomoclass.transform import affine_transform, align, forward


def _scipy_align(volume: np.ndarray, matrix: np.ndarray, shift: np.ndarray, order: int):
    """aligned(p) = particle(R(p − c) + c + s) with map_coordinates, p = (x, y, z)."""
    nz, ny, nx = volume.shape
    c = np.array([nx // 2, ny // 2, nz // 2], dtype=float)
    z, y, x = np.indices(volume.shape)
    p = np.stack([x, y, z], -1).reshape(-1, 3).astype(float)
    q = (p - c) @ matrix.T + c + shift
    coords = q[:, ::-1].T
    out = ndimage.map_coordinates(volume.astype(np.float64), coords, order=order, mode="constant")
    return out.reshape(volume.shape)


def test_matrix_equals_scipy_zxz(rng):
    for z1, z2, x in rng.uniform(-360, 360, size=(20, 3)):
        expected = ScipyRotation.from_euler("zxz", [z1, x, z2], degrees=True).as_matrix()
        np.testing.assert_allclose(rotation_matrix(z1, z2, x), expected, atol=1e-12)


def test_matrix_is_rz_rx_rz():
    # Z1 = 90 turns x into y; X = 90 turns y into z; Z2 = 90 then leaves z alone.
    np.testing.assert_allclose(rotation_matrix(90, 0, 0) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix(0, 0, 90) @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix(90, 90, 90) @ [1, 0, 0], [0, 0, 1], atol=1e-12)


@pytest.mark.parametrize("order", [1, 3])
def test_align_matches_map_coordinates(rng, order):
    volume = rng.standard_normal((12, 14, 16)).astype(np.float32)
    for _ in range(3):
        matrix = rotation_matrix(*rng.uniform(0, 360, 3))
        shift = rng.uniform(-2, 2, 3)
        expected = _scipy_align(volume, matrix, shift, order)
        np.testing.assert_allclose(align(volume, matrix, shift, order=order), expected, atol=2e-5)


def test_stack_equals_one_by_one(rng, phantom):
    stack = np.stack([phantom, phantom[::-1].copy(), phantom * 2])
    mats = np.stack([rotation_matrix(*rng.uniform(0, 360, 3)) for _ in range(3)])
    shifts = rng.uniform(-1, 1, (3, 3))
    together = align(stack, mats, shifts)
    for i in range(3):
        np.testing.assert_array_equal(together[i], align(stack[i], mats[i], shifts[i]))


def test_point_lands_where_the_matrix_says(rng):
    n = 32
    c = np.array([n // 2] * 3, dtype=float)
    ref = np.zeros((n, n, n), np.float32)
    point = np.array([20.0, 13.0, 17.0])  # (x, y, z)
    ref[17, 13, 20] = 1.0
    matrix = rotation_matrix(30, 50, 40)
    shift = np.array([1.0, -2.0, 0.5])
    particle = forward(ref, matrix, shift, order=1)
    z, y, x = np.indices(particle.shape)
    mass = particle.sum()
    centroid = np.array([(x * particle).sum(), (y * particle).sum(), (z * particle).sum()]) / mass
    np.testing.assert_allclose(centroid, matrix @ (point - c) + c + shift, atol=0.05)


def test_align_undoes_forward(phantom, rng):
    for _ in range(3):
        matrix = rotation_matrix(*rng.uniform(0, 360, 3))
        shift = rng.uniform(-1.5, 1.5, 3)
        back = align(forward(phantom, matrix, shift), matrix, shift)
        inner = np.s_[6:-6, 6:-6, 6:-6]
        err = np.abs(back[inner] - phantom[inner]).max() / phantom.max()
        assert err < 0.02
        assert np.corrcoef(back.ravel(), phantom.ravel())[0, 1] > 0.999


def test_quarter_turn_is_exact(phantom):
    turned = align(phantom, rotation_matrix(90, 0, 0), None)
    # R = Rz(90): aligned(x, y, z) = v(c − (y − c), c + (x − c), z) = v[z, x, 2c − y]
    c = phantom.shape[0] // 2
    expected = np.zeros_like(phantom)
    y = np.arange(phantom.shape[0])
    src = 2 * c - y
    ok = src < phantom.shape[0]
    expected[:, y[ok], :] = np.transpose(phantom, (0, 2, 1))[:, src[ok], :]
    np.testing.assert_allclose(turned, expected, atol=1e-5)


def test_bad_order_and_counts_raise(phantom):
    with pytest.raises(TomoclassError, match="order"):
        affine_transform(phantom, np.eye(3), np.zeros(3), order=2)
    with pytest.raises(TomoclassError, match="rotation"):
        align(np.stack([phantom, phantom]), np.eye(3).reshape(1, 3, 3))
