"""FFTs, band masks and binning against numpy, and their conventions."""

from __future__ import annotations

import numpy as np
import pytest

from tomoclass import TomoclassError
from tomoclass.fourier import band_mask, bin_volume, frequency_radius, irfftn, rfftn


@pytest.mark.parametrize("shape", [(16, 16, 16), (9, 12, 15), (1, 8, 7)])
def test_rfftn_matches_numpy(rng, shape):
    volume = rng.standard_normal(shape).astype(np.float32)
    expected = np.fft.rfftn(volume.astype(np.float64))
    got = rfftn(volume)
    assert got.dtype == np.complex64 and got.shape == expected.shape
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, atol=2e-6 * scale)


def test_irfftn_matches_numpy_and_round_trips(rng):
    volume = rng.standard_normal((10, 12, 14)).astype(np.float32)
    spectrum = np.fft.rfftn(volume).astype(np.complex64)
    spectrum[0, 1, 0] += 3j  # not Hermitian: numpy keeps the real part's meaning, so do we
    expected = np.fft.irfftn(spectrum, volume.shape, axes=(0, 1, 2))
    np.testing.assert_allclose(irfftn(spectrum, volume.shape), expected, atol=1e-5)
    np.testing.assert_allclose(irfftn(rfftn(volume), volume.shape), volume, atol=1e-5)


def test_stack_transform_equals_single(rng):
    stack = rng.standard_normal((5, 8, 8, 8)).astype(np.float32)
    spectra = rfftn(stack)
    for i in range(5):
        np.testing.assert_array_equal(spectra[i], rfftn(stack[i]))
    np.testing.assert_allclose(irfftn(spectra, (8, 8, 8)), stack, atol=1e-5)


def test_band_mask_is_a_shell_without_dc():
    n = 20
    mask = band_mask((n, n, n), 2.0, 5.0)
    kz = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    r = np.sqrt(kz[:, None, None] ** 2 + kz[None, :, None] ** 2 + kx[None, None, :] ** 2)
    np.testing.assert_array_equal(mask, ((r >= 2) & (r <= 5)).astype(np.float32))
    assert band_mask((n, n, n), 0.0, 3.0)[0, 0, 0] == 0.0


def test_frequency_fraction_rule():
    assert frequency_radius(0.25, 32) == 8.0
    assert frequency_radius(8, 32) == 8.0
    with pytest.raises(TomoclassError):
        frequency_radius(-1, 32)


def test_binning_matches_numpy_fourier_crop(rng):
    n, b = 16, 2
    m = n // b
    volume = rng.standard_normal((n, n, n)).astype(np.float32)
    f = np.fft.fftn(volume.astype(np.float64))
    k = np.fft.fftfreq(m) * m
    idx = np.where(k < 0, n + k, k).astype(int)
    crop = f[np.ix_(idx, idx, idx)]
    keep = np.abs(k) < m / 2
    crop *= keep[:, None, None] * keep[None, :, None] * keep[None, None, :]
    expected = np.fft.ifftn(crop).real / b**3
    np.testing.assert_allclose(bin_volume(volume, b), expected, atol=1e-5)


def test_binning_keeps_means_and_band_limited_waves():
    n = 24
    z, y, x = np.indices((n, n, n))
    wave = 2.0 + np.cos(2 * np.pi * (x + 2 * y - z) / n)
    binned = bin_volume(wave.astype(np.float32), 3)
    zb, yb, xb = np.indices(binned.shape)
    np.testing.assert_allclose(binned, 2.0 + np.cos(2 * np.pi * (xb + 2 * yb - zb) / 8), atol=1e-5)
    stack = bin_volume(np.stack([wave, 2 * wave]).astype(np.float32), 3)
    np.testing.assert_allclose(stack[1], 2 * binned, atol=1e-5)


def test_binning_must_divide_the_box():
    with pytest.raises(TomoclassError, match="divide"):
        bin_volume(np.zeros((10, 10, 10), np.float32), 3)
