"""The simulator: seeded, geometrically consistent with the conventions, honest about SNR."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation as ScipyRotation

from tomoclass import TomoclassError
from tomoclass.fourier import rfftn
from tomoclass.io import read_particle_list, read_volume
from tomoclass.simulate import (
    SimulationConfig,
    phantoms,
    read_truth,
    simulate_particles,
    tilt_range_wedge,
    write_simulation,
)
from tomoclass.transform import align, forward
from tomoclass.wedge import weights

FULL = ((-90.0, 90.0),)  # no missing wedge


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_same_seed_same_particles_other_seed_others():
    cfg = SimulationConfig(n_particles=12, box=16, seed=5)
    a, b = simulate_particles(cfg), simulate_particles(cfg)
    np.testing.assert_array_equal(a.volumes, b.volumes)
    np.testing.assert_array_equal(a.labels, b.labels)
    c = simulate_particles(SimulationConfig(n_particles=12, box=16, seed=6))
    assert not np.array_equal(a.volumes, c.volumes)


def test_classes_differ_but_share_the_body():
    maps = phantoms(32, 3)
    assert 0.5 < _corr(maps[0], maps[1]) < 0.98
    assert _corr(maps[0], maps[2]) < _corr(maps[0], maps[1])


def test_recorded_alignment_brings_particles_back_to_their_class():
    sim = simulate_particles(SimulationConfig(n_particles=8, box=24, snr=1e6, tilt_ranges=FULL))
    matrices = np.stack([r.matrix() for r in sim.rotations])
    aligned = align(sim.volumes, matrices, sim.shifts)
    for vol, label in zip(aligned, sim.labels, strict=True):
        own = _corr(vol, sim.references[label])
        other = _corr(vol, sim.references[1 - label])
        assert own > 0.99 and own > other + 0.01


def test_noise_has_the_requested_snr():
    cfg = SimulationConfig(n_particles=40, box=24, snr=0.5, tilt_ranges=FULL, seed=3)
    sim = simulate_particles(cfg)
    matrices = ScipyRotation.from_euler(
        "zxz", [[r.z1, r.x, r.z2] for r in sim.rotations], degrees=True
    ).as_matrix()
    clean = forward(sim.references[sim.labels], matrices, sim.shifts)
    noise = sim.volumes - clean
    signal_var = sim.references.var(axis=(1, 2, 3)).mean()
    # Noise is added before the wedge; even a full wedge ends at |k| = n/2 (PyTom's cutoff),
    # so the white noise keeps the fraction of its power inside that sphere.
    w = weights(tilt_range_wedge(*FULL[0]), 24)
    h = np.where(np.arange(w.shape[2]) == 0, 1.0, 2.0)
    kept = (w * h).sum() / (h.sum() * w.shape[0] * w.shape[1])
    assert abs(signal_var * kept / noise.var() - 0.5) < 0.05


def test_wedge_removes_the_missing_region_in_the_tomogram_frame():
    sim = simulate_particles(SimulationConfig(n_particles=6, box=24, tilt_ranges=((-50, 60),)))
    missing = weights(tilt_range_wedge(-50, 60), 24) == 0
    spectra = np.abs(rfftn(sim.volumes))
    assert spectra[:, missing].max() < 1e-3 * spectra.max()


def test_tilt_range_to_wedge_angles():
    w = tilt_range_wedge(-50, 60)
    assert (w.angle1, w.angle2) == (30, 40)


def test_class_fractions_and_alignment_errors():
    cfg = SimulationConfig(n_particles=100, box=16, fractions=(0.9, 0.1), angular_error=5.0)
    sim = simulate_particles(cfg)
    assert np.bincount(sim.labels).tolist() == [90, 10]
    exact = simulate_particles(SimulationConfig(n_particles=100, box=16, fractions=(0.9, 0.1)))
    recorded = np.stack([r.matrix() for r in sim.rotations])
    true = np.stack([r.matrix() for r in exact.rotations])
    angles = ScipyRotation.from_matrix(recorded @ true.transpose(0, 2, 1)).magnitude()
    assert 3 < np.degrees(np.median(angles)) < 8


def test_written_files_describe_the_simulation(tmp_path):
    sim = simulate_particles(SimulationConfig(n_particles=10, box=16, n_classes=3, seed=2))
    list_path = write_simulation(sim, tmp_path, fmt="mrc")
    plist = read_particle_list(list_path)
    assert len(plist) == 10
    truth = read_truth(tmp_path / "truth.csv")
    assert [truth[p.filename] for p in plist] == sim.labels.tolist()
    np.testing.assert_allclose(read_volume(plist.paths()[3]), sim.volumes[3])
    assert read_volume(tmp_path / "mask.mrc").shape == (16, 16, 16)
    assert plist[0].wedge == sim.wedges[0]
    np.testing.assert_allclose(plist.rotation_matrices()[1], sim.rotations[1].matrix())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_classes": 0},
        {"n_particles": 1, "n_classes": 2},
        {"snr": 0},
        {"box": 8},
        {"fractions": (1.0,)},
        {"tilt_ranges": ((60, -60),)},
    ],
)
def test_impossible_settings_are_refused(kwargs):
    with pytest.raises(TomoclassError):
        simulate_particles(SimulationConfig(**kwargs))
