"""The landmark (Nyström) path: the N×m block of ``ccc --landmarks`` and the CPCA from it."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from tomoclass import TomoclassError
from tomoclass.ccc import (
    LandmarkBlock,
    choose_landmarks,
    correlation_matrix,
    landmark_block,
    read_matrix,
)
from tomoclass.cli import main
from tomoclass.cpca import cpca, nystrom_eigenpairs, top_eigenpairs
from tomoclass.io import read_particle_list
from tomoclass.mask import spherical_mask
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, read_truth, simulate_particles, write_simulation


@pytest.fixture(scope="module")
def three_classes():
    """300 particles, 3 classes, box 32, SNR 0.3, and their full CCC matrix."""
    sim = simulate_particles(SimulationConfig(n_particles=300, n_classes=3, box=32, snr=0.3,
                                              seed=4))  # fmt: skip
    stack = sim.particle_stack()
    return sim, stack, correlation_matrix(stack, spherical_mask(32), 8)


def test_landmarks_are_seeded_sorted_and_distinct():
    a, b = choose_landmarks(1000, 50, seed=3), choose_landmarks(1000, 50, seed=3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 50 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, choose_landmarks(1000, 50, seed=4))
    with pytest.raises(TomoclassError, match=r"landmarks must be within 2\.\.10"):
        choose_landmarks(10, 11)


def test_block_equals_the_landmark_columns_of_the_full_matrix(three_classes):
    _, stack, full = three_classes
    landmarks = choose_landmarks(300, 40, seed=1)
    result = landmark_block(stack, spherical_mask(32), 8, landmarks, tile=70)  # a ragged last
    assert result.block.shape == (300, 40) and result.block.dtype == np.float32
    np.testing.assert_allclose(result.block, full[:, landmarks], atol=2e-6)
    assert np.all(result.block[landmarks, np.arange(40)] == 1.0)


def test_all_particles_as_landmarks_give_the_exact_eigenpairs(three_classes):
    _, _, full = three_classes
    block = LandmarkBlock(full, np.arange(300))
    values, vectors = nystrom_eigenpairs(block, 6)
    exact_values, exact_vectors = top_eigenpairs(full.astype(np.float64), 6)
    np.testing.assert_allclose(values, exact_values, rtol=1e-6)
    np.testing.assert_allclose(np.abs(vectors.T @ exact_vectors), np.eye(6), atol=1e-6)


def test_nystrom_cpca_recovers_the_classes_and_the_exact_subspace(three_classes):
    sim, _, full = three_classes
    landmarks = choose_landmarks(300, 100, seed=0)
    block = LandmarkBlock(full[:, landmarks], landmarks)
    nys, exact = cpca(block, "auto", 3), cpca(full, "auto", 3)
    assert adjusted_rand_index(sim.labels, nys.labels) >= 0.9
    assert adjusted_rand_index(exact.labels, nys.labels) >= 0.9
    _, u = top_eigenpairs(full.astype(np.float64), 3)
    _, v = nystrom_eigenpairs(block, 3)
    assert np.linalg.svd(u.T @ v, compute_uv=False).min() > 0.95


def test_nystrom_refuses_impossible_requests(three_classes):
    _, _, full = three_classes
    landmarks = choose_landmarks(300, 20, seed=0)
    block = LandmarkBlock(full[:, landmarks].copy(), landmarks)
    with pytest.raises(TomoclassError, match=r"within 1..10 \(half the landmarks\)"):
        cpca(block, 11, 3, name="b.npz")
    block.block[5, 3] = np.nan
    with pytest.raises(TomoclassError, match=r"b\.npz: contains NaN"):
        cpca(block, 4, 3, name="b.npz")


@pytest.mark.parametrize(
    "content, message",
    [
        ({"block": np.ones((5, 2), np.float32)}, "not a landmark block"),
        (
            {"block": np.ones((5, 2), np.float32), "landmarks": np.array([0, 1, 2])},
            "does not match",
        ),
        ({"block": np.ones((5, 2), np.float32), "landmarks": np.array([3, 1])}, "sorted distinct"),
        ({"block": np.ones((5, 2), np.float32), "landmarks": np.array([0.0, 1.0])}, "integers"),
    ],
)
def test_a_malformed_landmark_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    with pytest.raises(TomoclassError, match=message):
        read_matrix(path)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(TomoclassError, match=r"junk\.npz: not a readable matrix"):
        read_matrix(tmp_path / "junk.npz")


def test_a_forged_size_in_a_landmark_file_is_refused_before_allocating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    )  # 4 TB claimed, 100 bytes held
    landmarks = io.BytesIO()
    np.save(landmarks, np.arange(3))
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("block.npy", header.getvalue() + bytes(100))
        archive.writestr("landmarks.npy", landmarks.getvalue())
    with pytest.raises(TomoclassError, match=r"block\.npy claims shape \(1000000, 1000000\)"):
        read_matrix(path)


def test_cli_landmarks_then_cpca(tmp_path, capsys):
    sim = simulate_particles(SimulationConfig(n_particles=240, n_classes=3, box=32, snr=0.3,
                                              seed=8))  # fmt: skip
    plist = write_simulation(sim, tmp_path / "sim")
    out = tmp_path / "out"
    out.mkdir()
    common = ["-p", str(plist), "-m", str(plist.parent / "mask.em"), "-f", "8", "-o", str(out)]
    assert main(["ccc", *common, "--landmarks", "80", "--seed", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["correlation_landmarks.npz"]
    stored = read_matrix(out / "correlation_landmarks.npz")
    assert np.array_equal(stored.landmarks, choose_landmarks(240, 80, seed=2))
    api = landmark_block(read_particle_list(plist), plist.parent / "mask.em", 8, stored.landmarks)
    assert np.array_equal(stored.block, api.block)
    classified = tmp_path / "classes" / "classified.xml"
    classified.parent.mkdir()
    assert main(["cpca", "-p", str(plist), "-c", str(out / "correlation_landmarks.npz"),
                 "-n", "3", "-o", str(classified)]) == 0  # fmt: skip
    truth = read_truth(plist.parent / "truth.csv")
    result = read_particle_list(classified)
    labels = [truth[p.filename.split("sim/")[-1]] for p in result]
    assert adjusted_rand_index(labels, result.class_names()) >= 0.9
    capsys.readouterr()
    # Bad requests: one clear line, exit status 2, nothing written.
    cases = ((["--landmarks", "241"], "landmarks must be within 2..240"),
             (["--landmarks", "10", "--mode", "real"], "needs --mode fourier"))  # fmt: skip
    for extra, message in cases:
        empty = tmp_path / f"empty{len(extra)}"
        empty.mkdir()
        args = [*common[:-1], str(empty), *extra]
        assert main(["ccc", *args]) == 2
        assert message in capsys.readouterr().err
        assert list(empty.iterdir()) == []
