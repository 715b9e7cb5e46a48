"""Point symmetry as PyTom's MCO jobs have it: the group, symmetrised averages, symmetrised
references in MCO, and the command line (issue 12 item 7)."""

from __future__ import annotations

import numpy as np
import pytest

from tomoclass import TomoclassError, _core
from tomoclass.average import class_averages
from tomoclass.cli import main
from tomoclass.features import Preprocessing
from tomoclass.geometry import PointSymmetry, rotation_matrix
from tomoclass.io import read_volume
from tomoclass.mask import spherical_mask
from tomoclass.mco import FLOOR, mco_exmx, symmetric_features
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation
from tomoclass.transform import forward


def test_operators_form_the_cyclic_group_about_the_axis():
    sym = PointSymmetry(4, z2=30.0, x=50.0)
    ops = sym.operators()
    assert np.allclose(ops[0], np.eye(3))
    assert np.allclose(np.linalg.matrix_power(ops[1], 4), np.eye(3), atol=1e-12)
    assert np.allclose(ops[1] @ ops[1], ops[2])
    axis = rotation_matrix(0, 30, 50) @ np.array([0.0, 0.0, 1.0])
    for g in ops:
        assert np.allclose(g @ axis, axis)
    assert np.isclose(np.trace(ops[1]), 1 + 2 * np.cos(np.pi / 2))  # a quarter turn
    for bad in (0, -2, 1.5):
        with pytest.raises(TomoclassError, match="symmetry order"):
            PointSymmetry(bad)


@pytest.fixture(scope="module")
def one_class():
    """60 particles of one (asymmetric) map, SNR 10, random orientations, no shifts."""
    return simulate_particles(SimulationConfig(n_particles=60, n_classes=1, snr=10, seed=0,
                                               max_shift=0))  # fmt: skip


def _threefold(volume: np.ndarray) -> np.ndarray:
    turns = np.stack([rotation_matrix(120 * k, 0, 0) for k in range(3)])
    return forward(np.repeat(volume[None], 3, 0), turns, np.zeros((3, 3))).mean(0)


def _corr(a, b) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_symmetrised_average_is_the_symmetrised_map(one_class):
    """With 3-fold symmetry the average matches the map averaged over its three turns about
    z (and is unchanged by a turn), better than the plain map does; turning each particle
    about its own axis instead (G·R for R·G) fails this."""
    ref = one_class.references[0]
    plain = class_averages(one_class.particle_stack())[0].volume
    sym = class_averages(one_class.particle_stack(), symmetry=PointSymmetry(3))[0].volume
    assert _corr(sym, _threefold(ref)) > 0.99 > _corr(sym, ref)
    turned = forward(sym[None], rotation_matrix(120, 0, 0)[None], np.zeros((1, 3)))[0]
    assert 1 - _corr(sym, turned) < 0.002
    assert 1 - _corr(plain, forward(plain[None], rotation_matrix(120, 0, 0)[None],
                                    np.zeros((1, 3)))[0]) > 0.05  # fmt: skip


def test_symmetric_features_average_all_copies(one_class):
    """Class means of the symmetrised features are the weighted means over all copies."""
    prep = Preprocessing.for_band(one_class.particle_stack(), spherical_mask(32), 6)
    f, w = symmetric_features(prep, PointSymmetry(2))
    copies = [prep.features(), prep.turned(PointSymmetry(2).operators()[1]).features()]
    stacked_f = np.concatenate([c.f for c in copies])
    stacked_w = np.concatenate([c.w for c in copies])
    labels = [0] * len(f)
    want, _ = _core.mco_class_means(stacked_f, stacked_w, labels * 2, 1, FLOOR)
    got, _ = _core.mco_class_means(f, w, labels, 1, FLOOR)
    assert np.allclose(got, want, atol=1e-4 * np.abs(want).max())


def test_mco_scores_against_symmetrised_references(one_class):
    prep = Preprocessing.for_band(one_class.particle_stack(), spherical_mask(32), 6)
    plain = mco_exmx(prep, None, 2, None, start="random", restarts=1, iterations=1)
    sym = mco_exmx(prep, None, 2, None, start="random", restarts=1, iterations=1,
                   symmetry=PointSymmetry(3))  # fmt: skip
    assert not np.allclose(plain.scores, sym.scores)


def test_cli_symmetry(tmp_path, capsys):
    sim = simulate_particles(SimulationConfig(n_particles=40, n_classes=2, box=16, seed=5))
    listed = write_simulation(sim, tmp_path / "sim")
    mask = str(listed.parent / "mask.em")
    out = tmp_path / "avg"
    out.mkdir()
    assert main(["average", "-p", str(listed), "-o", str(out / "c"), "--symmetry", "0"]) == 2
    assert "symmetry order must be a whole number >= 1, got 0" in capsys.readouterr().err
    assert main(["average", "-p", str(listed), "-o", str(out / "c"), "--symmetry", "4"]) == 0
    volume = read_volume(out / "c_0.em")
    quarter = forward(volume[None], rotation_matrix(90, 0, 0)[None], np.zeros((1, 3)))[0]
    assert 1 - _corr(volume, quarter) < 0.01
    job = tmp_path / "job.xml"
    assert main(["job", "exmx", "-p", str(listed), "-m", mask, "-c", "2", "-d",
                 str(tmp_path / "mco"), "--highest-frequency", "4", "--symmetry", "4",
                 "-o", str(job)]) == 0  # fmt: skip
    assert 'NFold="4"' in job.read_text()
    assert main(["mco-exmx", "-j", str(job)]) == 0
    average = read_volume(tmp_path / "mco" / "class_0.em")
    quarter = forward(average[None], rotation_matrix(90, 0, 0)[None], np.zeros((1, 3)))[0]
    assert 1 - _corr(average, quarter) < 0.01


def test_symmetric_features_equal_the_average_of_explicitly_turned_copies():
    """Built from copies with rotations R·G made here (not through Preprocessing.turned) and
    smooth, non-binary wedges, so that turning by G·R, or summing W² instead of W, fails."""
    import dataclasses

    from tomoclass.features import ParticleStack
    from tomoclass.wedge import SingleTiltWedge

    sim = simulate_particles(SimulationConfig(n_particles=30, n_classes=1, snr=10, seed=0,
                                              max_shift=0))  # fmt: skip
    stack = sim.particle_stack()
    wedges = [SingleTiltWedge(30 + 5 * (i % 3), 35, smooth=2.0) for i in range(len(stack))]
    stack = ParticleStack(stack.volumes, stack.rotations, stack.shifts, wedges)
    symmetry, mask = PointSymmetry(3), spherical_mask(32)
    f, w = symmetric_features(Preprocessing.for_band(stack, mask, 6), symmetry)
    copies = []
    for g in symmetry.operators():
        turned = dataclasses.replace(stack, rotations=np.asarray(stack.rotations) @ g)
        copies.append(Preprocessing.for_band(turned, mask, 6).features())
    all_f, all_w = np.concatenate([c.f for c in copies]), np.concatenate([c.w for c in copies])
    want, _ = _core.mco_class_means(all_f, all_w, [0] * len(all_f), 1, FLOOR)
    got, _ = _core.mco_class_means(f, w, [0] * len(f), 1, FLOOR)
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
