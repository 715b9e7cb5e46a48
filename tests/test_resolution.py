"""Resolution per class: the FSC of two fixed half-sets and where it falls below 0.143
(issue 13 item 6)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tomoclass.average import class_averages, crossing, half_set_fsc, half_sets
from tomoclass.cli import main
from tomoclass.fourier import rfftn
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation


def _full_grid_fsc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The FSC over the whole grid (numpy), shells round(|k|) up to m // 2."""
    m = a.shape[0]
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    k = np.fft.fftfreq(m) * m
    shells = np.rint(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k**2)).astype(int)
    out = []
    for r in range(m // 2 + 1):
        s = shells == r
        num = np.real(fa[s] * np.conj(fb[s])).sum()
        out.append(num / np.sqrt((np.abs(fa[s]) ** 2).sum() * (np.abs(fb[s]) ** 2).sum()))
    return np.array(out)


@pytest.mark.parametrize("m", [16, 15])
def test_half_grid_fsc_equals_the_full_grid_one(m):
    rng = np.random.default_rng(m)
    common = rng.standard_normal((m, m, m))
    a = (common + rng.standard_normal((m, m, m))).astype(np.float32)
    b = (common + 2 * rng.standard_normal((m, m, m))).astype(np.float32)
    got = half_set_fsc(rfftn(a).astype(np.complex128), rfftn(b).astype(np.complex128))
    np.testing.assert_allclose(got, _full_grid_fsc(a, b), atol=1e-4)
    assert 0.3 < got[3:].mean() < 0.6  # signal 1, noise 1 and 4: 1 / sqrt(2·5) ≈ 0.45


def test_crossing_is_interpolated_between_shells():
    assert crossing(np.array([1.0, 0.5, 0.1, 0.0]), 0.143) == pytest.approx(1 + 0.357 / 0.4)
    assert crossing(np.array([1.0, 0.9, 0.8]), 0.143) == 2.0  # never: the last shell
    assert crossing(np.array([1.0, 0.1, 0.9]), 0.143) == 1.0


def test_half_sets_are_fixed_by_index_and_balanced():
    halves = half_sets(1000)
    assert np.array_equal(halves[:100], half_sets(100))
    assert 430 < halves.sum() < 570


def test_resolution_follows_the_snr():
    """Lower SNR, lower resolution (fewer Fourier voxels); the FSC starts at 1."""
    found = []
    for snr in (1.0, 0.1, 0.01):
        sim = simulate_particles(SimulationConfig(n_particles=200, snr=snr, seed=0))
        averages = class_averages(sim.particle_stack(), labels=sim.labels)
        assert all(a.fsc[0] > 0.99 and len(a.fsc) == 17 for a in averages)
        found.append(np.mean([a.resolution for a in averages]))
    assert found[0] > found[1] + 1 > found[2] + 2


def test_commands_report_the_resolution_in_angstrom(tmp_path, capsys):
    """RELION-layout particles carry 8 Å voxels: classify's run.json and average's
    PREFIX_resolution.json give the resolution in Å (box · voxel / shell)."""
    sim = simulate_particles(SimulationConfig(n_particles=40, box=16, snr=1.0, seed=1))
    star = write_simulation(sim, tmp_path / "sim", layout="relion")
    mask = str(star.parent / "mask.mrc")
    out = tmp_path / "classes"
    assert main(["classify", "-p", str(star), "-m", mask, "-n", "2", "-f", "4", "-o", str(out),
                 "--restarts", "1"]) == 0  # fmt: skip
    record = json.loads((out / "run.json").read_text())["resolution"]
    assert record["voxel_size"] == pytest.approx(8.0) and record["box"] == 16
    for c in record["classes"].values():
        assert c["angstrom"] == pytest.approx(16 * 8.0 / c["fourier_voxels"])
        assert len(c["fsc"]) == 9
    assert "resolution at FSC 0.143: class 0:" in capsys.readouterr().out
    assert main(["average", "-p", str(out / "classifiedParticles.star"),
                 "-o", str(tmp_path / "avg")]) == 0  # fmt: skip
    again = json.loads((tmp_path / "avg_resolution.json").read_text())
    assert again["classes"] == record["classes"]
