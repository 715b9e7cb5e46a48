"""Sampling weights from files and tilt series: every layout reads to the same half grid, the
data are made consistent with the weights, and weights travel with the particles through
the correlation (``tomoclass.io.weights``, ``tomoclass.wedge``, ``tomoclass.features``)."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from tomoclass import TomoclassError
from tomoclass.ccc import correlation_matrix
from tomoclass.features import ParticleStack, Preprocessing
from tomoclass.fourier import irfftn, rfftn
from tomoclass.geometry import rotation_matrix
from tomoclass.io import write_volume
from tomoclass.io.weights import read_weight_volume
from tomoclass.mask import spherical_mask
from tomoclass.wedge import TiltSeries, WeightVolume, tilt_range_wedge, weights

N = 8
H = N // 2 + 1


def symmetric_full(rng, n: int = N) -> np.ndarray:
    """A random weight ≥ 0 on the full grid (DC at index 0) with W(−k) = W(k)."""
    a = rng.uniform(0.1, 1.0, (n, n, n))
    minus = (-np.arange(n)) % n
    return (a + a[np.ix_(minus, minus, minus)]).astype(np.float32)


def write_mrc(path, data, mode_float16=False):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data.astype(np.float16 if mode_float16 else np.float32))
    return path


@pytest.fixture
def full(rng):
    return symmetric_full(rng)


def test_every_layout_reads_to_the_same_half_grid(tmp_path, full):
    half = full[..., :H]
    warp = write_mrc(tmp_path / "warp_ctf.mrc", half, mode_float16=True)  # x halved, float16
    pytom = write_mrc(tmp_path / "pytom.mrc", full[:H])  # z halved (import_subtomos)
    general = write_mrc(tmp_path / "general.mrc", np.fft.fftshift(full))  # full, centred
    multiplicity = np.linspace(0.5, 4.0, half.size).reshape(half.shape).astype(np.float32)
    relion = write_mrc(tmp_path / "w_weights.mrc", np.concatenate([half * multiplicity,
                                                                   multiplicity]))  # fmt: skip
    got_warp, filter_warp = read_weight_volume(warp, N, WeightVolume("x"))
    np.testing.assert_allclose(got_warp, half, rtol=1e-3)  # float16
    assert filter_warp is None
    for path in (pytom, general):
        got, data_filter = read_weight_volume(path, N, WeightVolume("x"))
        np.testing.assert_allclose(got, half, rtol=1e-6)
        assert data_filter is None
    got, data_filter = read_weight_volume(relion, N, WeightVolume("x", premultiplied=True))
    c2 = half * multiplicity  # premultiplied data: weight √C2, whitening filter 1/√C2
    np.testing.assert_allclose(got, np.sqrt(c2), rtol=1e-5)
    np.testing.assert_allclose(data_filter, 1 / np.sqrt(c2), rtol=1e-5)
    with pytest.raises(TomoclassError, match="rlnCtfDataAreCtfPremultiplied") as err:
        read_weight_volume(relion, N, WeightVolume("x"))
    assert str(relion) in str(err.value)


def test_premultiplied_data_whitened_by_their_weights_are_the_weight_times_the_signal(
    rng, tmp_path
):
    """RELION's data ``Σ t·c·(c·S + noise)``: after the data filter they are ``W·S`` plus
    white noise, with ``W`` read from the CTF² sum (noise variance ∝ CTF² sum)."""
    tilts = rng.uniform(-1, 1, (5, N, N, H))  # per-tilt signed CTF × interpolation weight
    signal = rng.standard_normal((N, N, H)) + 1j * rng.standard_normal((N, N, H))
    noise = rng.standard_normal((200, 5, N, N, H))
    data = (tilts * (tilts * signal + noise)).sum(axis=1)  # 200 noise draws
    c2 = (tilts**2).sum(axis=0).astype(np.float32)
    multiplicity = np.ones_like(c2)
    path = write_mrc(tmp_path / "w.mrc", np.concatenate([c2, multiplicity]))
    weight, data_filter = read_weight_volume(path, N, WeightVolume("x", premultiplied=True))
    whitened = data * data_filter
    np.testing.assert_allclose(whitened.mean(axis=0), weight * signal, atol=0.35)
    np.testing.assert_allclose(whitened.std(axis=0), 1.0, atol=0.2)  # white: the same everywhere


def test_relion_voxels_below_the_multiplicity_threshold_are_unsampled(tmp_path, full):
    half = full[..., :H]
    multiplicity = np.ones_like(half)
    multiplicity[0, 1, 2] = 0.005  # below RELION's --subtomo_multi_thr 0.01
    path = write_mrc(tmp_path / "w.mrc", np.concatenate([half, multiplicity]))
    got, data_filter = read_weight_volume(path, N, WeightVolume("x", premultiplied=True))
    assert got[0, 1, 2] == 0 and data_filter[0, 1, 2] == 0
    assert got[0, 1, 1] == pytest.approx(np.sqrt(half[0, 1, 1]))


def test_a_signed_ctf_is_a_weight_and_a_phase_flip(tmp_path, full):
    signed = full[..., :H] * np.where(np.arange(H) % 2, -1, 1)  # negative on odd kx
    path = write_mrc(tmp_path / "ctf.mrc", signed)
    got, data_filter = read_weight_volume(path, N, WeightVolume("x"))
    np.testing.assert_array_equal(got, np.abs(signed))
    np.testing.assert_array_equal(data_filter, np.sign(signed))
    for volume in (WeightVolume("x", premultiplied=True), WeightVolume("x", kind="general")):
        with pytest.raises(TomoclassError, match="negative") as err:
            read_weight_volume(path, N, volume)
        assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("shape", "message"),
    [((N, N, N + 1), "fits no known layout"), ((N, N, H), "NaN")],
)
def test_bad_weight_volumes_name_the_file(tmp_path, shape, message):
    data = np.ones(shape, np.float32)
    if message == "NaN":
        data[1, 1, 1] = np.nan
    path = write_mrc(tmp_path / "bad.mrc", data)
    with pytest.raises(TomoclassError, match=message) as err:
        read_weight_volume(path, N, WeightVolume("x"))
    assert str(path) in str(err.value)


def test_a_particle_sees_its_weight_volume_through_its_rotation(tmp_path, full):
    write_mrc(tmp_path / "w.mrc", full[..., :H])
    about_z = rotation_matrix(90, 0, 0)  # a quarter turn about z: grid points map to grid points
    seen = weights(WeightVolume("w.mrc"), N, about_z, directory=tmp_path)
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(N, 1 / N),) * 2, np.arange(H), indexing="ij")
    q = np.einsum("ij,...j->...i", about_z, np.stack([kx, ky, kz], -1))  # R·k
    index = np.rint(q).astype(int) % N
    np.testing.assert_allclose(seen, full[index[..., 2], index[..., 1], index[..., 0]], rtol=1e-5)


def test_tilt_series_samples_the_side_of_its_positive_tilts():
    # The slices of −40..60° in 2° steps cover the wedge of that range within |k| ≤ 8; a
    # tilt series with the opposite sign convention would sample the mirror image.
    series = weights(TiltSeries(tuple(range(-40, 61, 2))), 32)
    wedge = weights(tilt_range_wedge(-40, 60), 32)
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(32, 1 / 32),) * 2, np.arange(17), indexing="ij")
    radius = np.sqrt(kx**2 + ky**2 + kz**2)
    elevation = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))
    edge = np.where(kx * kz >= 0, 60.0, 40.0)  # the wedge's edges, degrees from the kx axis
    # Distance from the edge plane (it holds the tilt axis y), in Fourier voxels.
    from_edge = np.hypot(kx, kz) * np.abs(np.sin(np.radians(elevation - edge)))
    clear = (radius <= 8) & (from_edge > 1.2)  # beyond a one-voxel slice's reach of the edge
    assert clear.sum() > 600
    np.testing.assert_array_equal(series[clear], wedge[clear])
    mirrored = weights(TiltSeries(tuple(range(-60, 41, 2))), 32)
    assert (mirrored[clear] != wedge[clear]).sum() > 100


def test_tilt_series_values_are_checked():
    with pytest.raises(TomoclassError, match=r"within -90\.\.90"):
        TiltSeries((-95.0, 0.0))
    with pytest.raises(TomoclassError, match="2 values for 3 tilts"):
        TiltSeries((-3.0, 0.0, 3.0), exposure=(0.0, 3.0))
    series = TiltSeries((0.0,), exposure=(10.0,))
    stack = ParticleStack(np.zeros((2, N, N, N), np.float32), np.eye(3)[None].repeat(2, 0),
                          np.zeros((2, 3)), [series, series])  # fmt: skip
    with pytest.raises(TomoclassError, match=r"particle 0: .*pixel size"):
        Preprocessing.for_band(stack, spherical_mask(N), 3).features()


def test_the_data_filter_phase_flips_the_particle_before_it_is_aligned(tmp_path, full, rng):
    """A particle with a signed CTF is correlated as its phase-flipped data under |CTF|."""
    signed = full[..., :H] * np.where(rng.uniform(size=(N, N, H)) < 0.3, -1, 1)
    signed = np.where(np.arange(H) == 0, np.abs(signed), signed)  # a real kx = 0 plane
    signed[0, 0, 0] = 1.0
    write_mrc(tmp_path / "signed.mrc", signed)
    write_mrc(tmp_path / "flipped.mrc", np.abs(signed))
    volumes = rng.standard_normal((3, N, N, N)).astype(np.float32)
    flipped = volumes.copy()
    flipped[0] = irfftn(rfftn(volumes[0]) * np.sign(signed), (N, N, N))
    rotations = np.stack([rotation_matrix(*rng.uniform(0, 360, 3)) for _ in range(3)])
    shifts = rng.uniform(-1, 1, (3, 3))
    other = tilt_range_wedge(-50, 60)
    mine = [WeightVolume(str(tmp_path / "signed.mrc")), other, other]
    theirs = [WeightVolume(str(tmp_path / "flipped.mrc"), kind="general"), other, other]
    mask = spherical_mask(N)
    a = correlation_matrix(ParticleStack(volumes, rotations, shifts, mine), mask, 3)
    b = correlation_matrix(ParticleStack(flipped, rotations, shifts, theirs), mask, 3)
    np.testing.assert_allclose(a, b, atol=2e-6)
    plain = [WeightVolume(str(tmp_path / "flipped.mrc"), kind="general"), other, other]
    c = correlation_matrix(ParticleStack(volumes, rotations, shifts, plain), mask, 3)
    assert np.abs(c - a).max() > 0.05  # without the flip the correlations differ


def test_a_weight_volume_of_another_box_names_the_particle(tmp_path):
    write_volume(tmp_path / "w.mrc", np.ones((2 * N, 2 * N, N + 1), np.float32))
    stack = ParticleStack(np.zeros((1, N, N, N), np.float32), np.eye(3)[None], np.zeros((1, 3)),
                          [WeightVolume(str(tmp_path / "w.mrc"))])  # fmt: skip
    with pytest.raises(TomoclassError, match=r"particle 0: .*w\.mrc"):
        Preprocessing.for_band(stack, spherical_mask(N), 3).features()
