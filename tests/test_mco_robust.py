"""MCO without silent failure (issue 12): where it starts, random-start restarts, warnings on
degenerate results, oversampling merged by total score, per-particle scores in the lists."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tomoclass.mco as mco_module
from tomoclass import TomoclassError
from tomoclass.cli import main
from tomoclass.features import Preprocessing
from tomoclass.io import read_particle_list
from tomoclass.mask import spherical_mask
from tomoclass.mco import _joined, doubts, mco_exmx, merge_classes, random_labels, total_score
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation


@pytest.fixture(scope="module")
def three():
    """Three conformations at SNR 0.1 (400 particles, box 32, lowpass 8): features too."""
    sim = simulate_particles(SimulationConfig(n_particles=400, n_classes=3, snr=0.1, seed=2))
    prep = Preprocessing.for_band(sim.particle_stack(), spherical_mask(32), 8)
    feats = prep.features()
    return sim.labels, prep, (np.asarray(feats.f), np.asarray(feats.w), feats.band.herm)


def test_joined_relabels_compactly():
    labels = np.array([0, 1, 2, 3, 2, 1])
    assert _joined(labels, 1, 2).tolist() == [0, 1, 1, 2, 1, 1]


def test_merging_the_truth_split_in_two_gives_the_truth_back(three):
    """Each true class split at random into two: merging by total score must rejoin the
    halves (joining halves of different classes loses score), and the record is whole."""
    truth, _, (f, w, herm) = three
    halves = truth * 2 + random_labels(len(truth), 2, 9)
    merged, record = merge_classes(f, w, herm, halves, 6, 3)
    assert adjusted_rand_index(truth, merged) == 1.0
    assert record["sizes"] == np.bincount(halves).tolist()
    assert len(record["steps"]) == 5  # down to one class, for the dendrogram
    assert {tuple(sorted(m for m in range(6) if record["mapping"][m] == k)) for k in range(3)} == {
        (0, 1), (2, 3), (4, 5)}  # fmt: skip
    totals = [s["total_score"] for s in record["steps"]]
    assert totals[2] < totals[1]  # the first merge across classes costs score
    assert record["start_total_score"] == pytest.approx(total_score(f, w, herm, halves, 6))


def test_oversampling_is_not_below_the_direct_run(three):
    truth, prep, _ = three
    options = {"iterations": 30, "end_threshold": 0.01, "start": "random", "seed": 0}
    direct = mco_exmx(prep, None, 3, None, **options)
    over = mco_exmx(prep, None, 3, None, oversample=3, **options)
    ari = adjusted_rand_index
    assert ari(truth, over.labels) >= ari(truth, direct.labels) - 0.02
    assert over.scores.shape == (len(truth), 3) and len(over.merge["steps"]) == 8


def test_random_restarts_keep_the_best_start():
    """3:1 at SNR 0.03: EXMX from the first random start collapses (about equal halves);
    the restarts keep the start of the highest total score, which finds the classes."""
    sim = simulate_particles(SimulationConfig(n_particles=400, fractions=(3, 1), snr=0.03,
                                              seed=0))  # fmt: skip
    prep = Preprocessing.for_band(sim.particle_stack(), spherical_mask(32), 8)
    feats = prep.features()
    f, w, herm = np.asarray(feats.f), np.asarray(feats.w), feats.band.herm
    result = mco_exmx(prep, None, 2, None, iterations=30, end_threshold=0.01, start="random",
                      restarts=3, seed=0)  # fmt: skip
    totals = [t["total_score"] for t in result.restarts]
    assert [t["seed"] for t in result.restarts] == [0, 1, 2]
    assert totals[0] < max(totals) - 1.0  # the first start is a worse optimum
    assert total_score(f, w, herm, result.labels, 2) == pytest.approx(max(totals), abs=1e-3)
    assert adjusted_rand_index(sim.labels, result.labels) > 0.85
    with pytest.raises(TomoclassError, match="restarts are for --start random"):
        mco_exmx(prep, None, 2, None, start="cpca", restarts=2)


def test_degenerate_assignments_are_named():
    labels = np.array([0] * 150 + [1] * 49 + [2])
    lines = doubts(labels, 4, start=labels.copy())
    assert len(lines) == 2
    assert lines[0].startswith("class 2, 3 has fewer than 1% of the particles")
    assert "no particle moved from the start" in lines[1]
    assert doubts(labels[:-1], 2, start=np.roll(labels[:-1], 1)) == []


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    sim = simulate_particles(SimulationConfig(n_particles=60, n_classes=2, box=16, seed=3))
    return write_simulation(sim, tmp_path_factory.mktemp("robust") / "sim")


def _mco(listed, out, *extra, mask=None):
    mask = listed.parent / "mask.em" if mask is None else mask
    return ["mco-exmx", "-p", str(listed), "-m", str(mask), "-c", "2",
            "-d", str(out), "--highest-frequency", "4", *extra]  # fmt: skip


def test_start_list_needs_classes_and_uses_them(listed, tmp_path, capsys):
    assert main(_mco(listed, tmp_path / "a", "--start", "list")) == 2
    assert "--start list: the particle list has no classes" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert main(_mco(listed, tmp_path / "b", "--restarts", "0", "--start", "random")) == 2
    assert "restarts must be >= 1" in capsys.readouterr().err
    assert main(_mco(listed, tmp_path / "c")) == 0  # auto: no classes, so CPCA
    run = json.loads((tmp_path / "c" / "run.json").read_text())
    assert run["parameters"]["start"] == "auto" and run["restarts"] is None
    classified = tmp_path / "c" / "classifiedParticles.xml"
    capsys.readouterr()
    mask = listed.parent / "mask.em"
    assert main(_mco(classified, tmp_path / "d", "--start", "list", "-n", "1", mask=mask)) == 0
    run = json.loads((tmp_path / "d" / "run.json").read_text())
    moved = run["trace"][0]["changes"]
    assert moved <= 3  # started from the classes it was given
    said = capsys.readouterr().err
    assert "no particle moved" not in said  # a list's classes may well be a fixed point


def test_lists_carry_the_class_scores(listed, tmp_path):
    """The PyTom list's Score is each particle's score against its class; a STAR list gets
    tomoclassClassScore and tomoclassMargin and keeps its own columns; both agree with
    scores.csv."""
    import csv

    assert main(_mco(listed, tmp_path / "x")) == 0
    with open(tmp_path / "x" / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    xml = read_particle_list(tmp_path / "x" / "classifiedParticles.xml")
    own = [float(r[f"score_{r['class']}"]) for r in rows]
    assert [p.score for p in xml] == pytest.approx(own, abs=1e-5)
    star = tmp_path / "particles.star"
    assert main(["convert", str(listed), str(star)]) == 0
    out = tmp_path / "s"
    assert main(["classify", "-p", str(star), "-m", str(listed.parent / "mask.em"), "-n", "2",
                 "-f", "4", "-o", str(out), "--restarts", "1"]) == 0  # fmt: skip
    import starfile

    table = starfile.read(out / "classifiedParticles.star")["particles"]
    with open(out / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert table["tomoclassMargin"].tolist() == pytest.approx(
        [float(r["margin"]) for r in rows], abs=1e-5)  # fmt: skip
    labels = read_particle_list(out / "classifiedParticles.star").class_names()
    own = [float(r[f"score_{r['class']}"]) for r in rows]
    assert table["tomoclassClassScore"].tolist() == pytest.approx(own, abs=1e-5)
    assert [r["class"] for r in rows] == labels
    chosen = tmp_path / "sure.star"
    assert main(["select", "-p", str(out / "classifiedParticles.star"), "--min-margin",
                 "0", "-o", str(chosen)]) == 0  # fmt: skip
    assert len(read_particle_list(chosen)) == 60


def test_mco_module_exports():
    assert mco_module.STARTS == ("auto", "list", "cpca", "random")
