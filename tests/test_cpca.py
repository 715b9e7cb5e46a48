"""CPCA, class averages, select/split and the demo on simulated data with known classes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import asymmetric_phantom
from scipy.spatial.transform import Rotation as ScipyRotation

from tomoclass import TomoclassError
from tomoclass.average import class_averages
from tomoclass.ccc import correlation_matrix
from tomoclass.cli import main
from tomoclass.cpca import cpca, top_eigenpairs
from tomoclass.features import ParticleStack
from tomoclass.fourier import band_mask, irfftn, rfftn
from tomoclass.geometry import Rotation
from tomoclass.io import read_particle_list
from tomoclass.mask import spherical_mask
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, phantoms, simulate_particles
from tomoclass.transform import forward
from tomoclass.wedge import NO_WEDGE, SingleTiltWedge, weights


def stack_of(sim) -> ParticleStack:
    return sim.particle_stack()


@pytest.fixture(scope="module")
def three_classes():
    """240 particles, 3 classes, box 32, SNR 0.3, the simulator's four tilt ranges."""
    sim = simulate_particles(
        SimulationConfig(n_particles=240, n_classes=3, box=32, snr=0.3, seed=11)
    )
    return sim, correlation_matrix(stack_of(sim), spherical_mask(32), 8)


def test_adjusted_rand_index_known_values():
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0
    assert adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 1, 0, 1, 0, 1]) < 0
    assert abs(adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) - 0.5714285714) < 1e-9


def test_cpca_recovers_the_classes(three_classes):
    sim, matrix = three_classes
    result = cpca(matrix, "auto", 3, seed=0)
    assert adjusted_rand_index(sim.labels, result.labels) >= 0.9
    assert result.neig >= 3 and result.coefficients.shape == (240, result.neig)


def test_same_seed_same_labels(three_classes):
    _, matrix = three_classes
    a, b = cpca(matrix, 6, 3, seed=4), cpca(matrix, 6, 3, seed=4)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.coefficients, b.coefficients)


def test_top_eigenpairs_match_a_full_decomposition(three_classes):
    _, matrix = three_classes
    values, vectors = top_eigenpairs(matrix.astype(np.float64), 5)
    full_values, full_vectors = np.linalg.eigh(matrix.astype(np.float64))
    np.testing.assert_allclose(values, full_values[::-1][:5], rtol=1e-8)
    overlap = np.abs(np.sum(vectors * full_vectors[:, ::-1][:, :5], axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-6)


def test_coefficients_are_eigenvectors_times_the_root_of_their_eigenvalues():
    """Two blocks of 6 and 4 particles, correlation 0.5 within a block and 0 between: the top
    eigenpairs are 1 + 5·0.5 on the 6-block (entries 1/√6) and 1 + 3·0.5 on the 4-block
    (entries 1/2), so the coefficients are (√3.5/√6, 0) and (0, √2.5/2) by hand."""
    sizes = [6, 4]
    blocks = [np.full((s, s), 0.5) + 0.5 * np.eye(s) for s in sizes]
    matrix = np.block([[blocks[0], np.zeros((6, 4))], [np.zeros((4, 6)), blocks[1]]])
    result = cpca(matrix, 2, 2, seed=0)
    np.testing.assert_allclose(result.eigenvalues, [3.5, 2.5], atol=1e-12)
    want = np.zeros((10, 2))
    want[:6, 0] = np.sqrt(3.5 / 6)
    want[6:, 1] = np.sqrt(2.5) / 2
    np.testing.assert_allclose(result.coefficients, want, atol=1e-12)
    np.testing.assert_array_equal(result.labels, [0] * 6 + [1] * 4)


def test_coefficients_match_numpy_eigh_of_an_indefinite_matrix(rng):
    """On a random symmetric matrix with known spectrum (negative eigenvalues too, as a CCC
    matrix has), column k of the coefficients is ±√λ_k·u_k of ``numpy.linalg.eigh``."""
    n = 30
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    spectrum = np.concatenate([[9.0, 4.0, 2.25, 1.0], rng.uniform(-0.5, 0.5, n - 4)])
    matrix = (q * spectrum) @ q.T
    matrix = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(matrix)
    values, vectors = values[::-1][:4], vectors[:, ::-1][:, :4]
    np.testing.assert_allclose(values, [9.0, 4.0, 2.25, 1.0], atol=1e-10)
    result = cpca(matrix, 4, 2, seed=0)
    np.testing.assert_allclose(result.eigenvalues, values, atol=1e-10)
    signs = np.sign(np.sum(result.coefficients * vectors, axis=0))
    np.testing.assert_allclose(result.coefficients, signs * vectors * np.sqrt(values), atol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(result.coefficients, axis=0), [3, 2, 1.5, 1])


@pytest.mark.parametrize(
    ("neig", "nclass", "message"),
    [(0, 2, "neig"), (241, 2, "neig"), (3, 1, "nclass"), (3, 241, "nclass")],
)
def test_impossible_parameters(three_classes, neig, nclass, message):
    with pytest.raises(TomoclassError, match=message):
        cpca(three_classes[1], neig, nclass)


@pytest.mark.parametrize(
    "matrix",
    [np.ones((3, 4)), np.array([[1.0, 0.2], [0.5, 1.0]]), np.array([[1.0, np.nan], [np.nan, 1.0]])],
)
def test_bad_matrices(matrix):
    with pytest.raises(TomoclassError):
        cpca(matrix, 1, 2)


def test_average_of_noise_free_copies_is_the_phantom():
    box, n = 32, 60
    ref = phantoms(box, 1)[0]
    rng = np.random.default_rng(3)
    rotations = ScipyRotation.random(n, random_state=rng).as_matrix()
    shifts = rng.uniform(-2, 2, (n, 3))
    wedge = SingleTiltWedge(30, 30)
    particles = irfftn(rfftn(forward(np.repeat(ref[None], n, 0), rotations, shifts))
                       * weights(wedge, box), (box,) * 3)  # fmt: skip
    (avg,) = class_averages(ParticleStack(particles, rotations, shifts, [wedge] * n), lowpass=10)
    band = band_mask((box,) * 3, 0, 10)
    inside = lambda v: irfftn(rfftn(v) * band, (box,) * 3).ravel()  # noqa: E731
    assert avg.count == n
    assert np.corrcoef(inside(avg.volume), inside(ref))[0, 1] >= 0.99


def test_average_value_is_the_weighted_sum_over_the_floored_weight_sum():
    """Four random volumes, unrotated, with different wedges (one smoothed, so weights lie
    between 0 and 1, and one full): the average equals, voxel by voxel of numpy's rFFT,
    irfft(Σ W·F / max(Σ W², floor·Σ max(W)²)) for floor 0.05 and 0.6 (where the floor
    holds for many voxels), and the wedge sum is Σ W² centred."""
    box, n = 16, 4
    rng = np.random.default_rng(3)
    volumes = rng.standard_normal((n, box, box, box)).astype(np.float32)
    wedges = [SingleTiltWedge(30, 30), SingleTiltWedge(45, 20, smooth=2.0), NO_WEDGE,
              SingleTiltWedge(60, 10)]  # fmt: skip
    stack = ParticleStack(volumes, np.repeat(np.eye(3)[None], n, 0), np.zeros((n, 3)), wedges)
    w = np.stack([weights(wedge, box).astype(np.float64) for wedge in wedges])
    f = np.fft.rfftn(volumes.astype(np.float64), axes=(1, 2, 3))
    reach = (w.reshape(n, -1).max(axis=1) ** 2).sum()
    assert reach == n
    for floor in (0.05, 0.6):
        (avg,) = class_averages(stack, floor=floor)
        floored = np.sum(w**2, axis=0) < floor * reach
        assert floored.sum() > 500  # voxels where the floor, not Σ W², divides
        want = np.fft.irfftn((w * f).sum(0) / np.maximum((w**2).sum(0), floor * reach),
                             s=(box,) * 3, axes=(0, 1, 2))  # fmt: skip
        np.testing.assert_allclose(avg.volume, want, atol=1e-5)
        assert avg.count == n
    # The centred wedge sum's kx ≥ 0 half (x from box/2 on) is Σ W² with kz, ky centred.
    centred = np.fft.fftshift((w**2).sum(0), axes=(0, 1))[..., : box // 2]
    np.testing.assert_allclose(avg.wedge_sum[..., box // 2 :], centred, atol=1e-6)


def test_a_full_copy_and_wedge_filtered_copies_average_back_to_the_volume_exactly():
    """One copy of a volume sampled fully and three filtered by their wedges (F = W·S): the
    least-squares average Σ W·F / Σ W² is S itself on the sampled ball |k| ≤ n/2, to float
    precision. Dividing by the particle count instead would damp every voxel that a wedge
    missed (the correlation test above cannot tell)."""
    box = 16
    volume = asymmetric_phantom(box)
    wedges = [NO_WEDGE, SingleTiltWedge(30, 30), SingleTiltWedge(50, 20),
              SingleTiltWedge(25, 40, tilt_axis_rotation=Rotation(90, 0, 0))]  # fmt: skip
    spectrum = rfftn(volume)
    copies = np.stack([irfftn(spectrum * weights(w, box), (box,) * 3) for w in wedges])
    stack = ParticleStack(copies.astype(np.float32), np.repeat(np.eye(3)[None], 4, 0),
                          np.zeros((4, 3)), wedges)  # fmt: skip
    (avg,) = class_averages(stack)
    ball = irfftn(spectrum * (weights(NO_WEDGE, box) > 0), (box,) * 3)
    assert np.abs(ball - volume).max() < 0.05 * np.abs(volume).max()  # the ball holds it
    np.testing.assert_allclose(avg.volume, ball, atol=1e-5 * np.abs(volume).max())


def test_wedge_sum_of_many_orientations_is_nearly_uniform():
    box, n = 24, 200
    rotations = ScipyRotation.random(n, random_state=np.random.default_rng(5)).as_matrix()
    stack = ParticleStack(np.zeros((n, box, box, box), np.float32), rotations, np.zeros((n, 3)),
                          [SingleTiltWedge(30, 30)] * n)  # fmt: skip
    (avg,) = class_averages(stack)
    k = np.arange(box) - box // 2
    r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    shell = (r >= 3) & (r <= box // 2 - 2)
    values = avg.wedge_sum[shell] / n
    assert abs(values.mean() - 2 / 3) < 0.03
    assert values.std() / values.mean() < 0.1


def test_averages_do_not_depend_on_thread_count(three_classes, tmp_path):
    import subprocess
    import sys

    script = (
        "import numpy as np, sys; from tomoclass.simulate import *; "
        "from tomoclass.average import class_averages; "
        "from tomoclass.features import ParticleStack; "
        "s = simulate_particles(SimulationConfig(n_particles=40, box=16, seed=1)); "
        "st = ParticleStack(s.volumes, np.stack([r.matrix() for r in s.rotations]), s.shifts, "
        "[s.wedges[t] for t in s.tomograms]); "
        "np.save(sys.argv[1], class_averages(st, labels=s.labels)[0].volume)"
    )
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"avg{threads}.npy"
        env = {**__import__("os").environ, "RAYON_NUM_THREADS": threads}
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env)
        outs.append(np.load(out))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_cli_cpca_select_split_average(tmp_path, capsys):
    data, out = tmp_path / "sim", tmp_path / "out"
    assert main(["simulate", str(data), "-n", "60", "-k", "2", "--snr", "1", "--seed", "2"]) == 0
    out.mkdir()
    assert main(["ccc", "-p", str(data / "particles.xml"), "-m", str(data / "mask.em"),
                 "-f", "8", "-o", str(out)]) == 0  # fmt: skip
    classified = out / "classified.xml"
    matrix = str(out / "correlation_matrix.csv")
    args = ["cpca", "-p", str(data / "particles.xml"), "-c", matrix, "-n", "2"]
    assert main([*args, "-o", str(classified)]) == 0
    plist = read_particle_list(classified)
    assert sorted(set(plist.class_names())) == ["0", "1"]
    for name in ("classified_class_0.em", "classified_class_1_wedgesum.em", "eigenvalues.csv",
                 "coefficients.npy", "run.json"):  # fmt: skip
        assert (out / name).exists(), name
    assert (
        main(["select", "-p", str(classified), "--classes", "1", "-o", str(out / "one.xml")]) == 0
    )
    assert set(read_particle_list(out / "one.xml").class_names()) == {"1"}
    assert main(["split", "-p", str(classified), "-o", str(out / "part")]) == 0
    sizes = [len(read_particle_list(out / f"part_{k}.xml")) for k in (0, 1)]
    assert sum(sizes) == 60
    assert main(["average", "-p", str(out / "one.xml"), "-o", str(out / "avg")]) == 0
    assert (out / "avg_1.em").exists()


def test_cli_cpca_bad_input_writes_nothing(tmp_path, capsys):
    data = tmp_path / "sim"
    main(["simulate", str(data), "-n", "20", "--box", "16"])
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.eye(5))
    args = ["cpca", "-p", str(data / "particles.xml"), "-n", "2", "-o", str(tmp_path / "c.xml")]
    assert main([*args, "-c", str(wrong)]) == 2
    assert "wrong.npy" in capsys.readouterr().err
    asym = tmp_path / "asym.npy"
    m = np.eye(20)
    m[0, 1] = 0.5
    np.save(asym, m)
    assert main([*args, "-c", str(asym)]) == 2
    assert "symmetric" in capsys.readouterr().err
    assert not (tmp_path / "c.xml").exists()


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "demo"), "-n", "120", "-k", "2", "--snr", "1"]) == 0
    out = capsys.readouterr().out
    ari = float(out.split("adjusted Rand index against the truth:")[1].split()[0])
    assert ari >= 0.9
    assert (tmp_path / "demo" / "classes" / "classifiedParticles.xml").exists()
    assert (tmp_path / "demo" / "classes" / "report.html").exists()


def test_cpca_labels_do_not_depend_on_blas_threads(three_classes, tmp_path):
    import os
    import subprocess
    import sys

    _, matrix = three_classes
    np.save(tmp_path / "ccc.npy", matrix)
    script = (
        "import numpy as np, sys; from tomoclass.cpca import cpca; "
        "r = cpca(np.load(sys.argv[1]), 'auto', 3, 0); np.save(sys.argv[2], r.labels)"
    )
    labels = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        out = tmp_path / f"labels{threads}.npy"
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "ccc.npy"), str(out)],
                       check=True, env=env)  # fmt: skip
        labels.append(np.load(out))
    np.testing.assert_array_equal(labels[0], labels[1])


def test_a_memory_mapped_matrix_is_streamed_to_the_same_result(three_classes, tmp_path,
                                                                monkeypatch):  # fmt: skip
    import importlib

    from tomoclass.ccc import read_matrix

    # tomoclass.cpca is also the public function; the module is reached by its import name.
    cpca_module = importlib.import_module("tomoclass.cpca")

    matrix = three_classes[1]
    dense = cpca(matrix, "auto", 3, seed=0)
    path = tmp_path / "ccc.npy"
    np.save(path, matrix.astype(np.float32))
    mapped = read_matrix(path)
    assert isinstance(mapped, np.memmap)
    # Small limits make the 240-particle matrix take the streamed (Lanczos, blocked) path.
    monkeypatch.setattr(cpca_module, "DENSE_LIMIT", 50)
    monkeypatch.setattr(cpca_module, "BLOCK", 64)
    streamed = cpca(mapped, "auto", 3, seed=0)
    assert streamed.neig == dense.neig
    np.testing.assert_allclose(streamed.eigenvalues, dense.eigenvalues, rtol=1e-5)
    assert adjusted_rand_index(dense.labels, streamed.labels) == 1.0
    broken = np.array(matrix, dtype=np.float32)
    broken[3, 200] += 0.5
    np.save(path, broken)
    with pytest.raises(TomoclassError, match=r"ccc\.npy: is not symmetric"):
        cpca(read_matrix(path), 3, 3, name=str(path))
