"""The default classification: the nuisance model, ``classify`` and its command, margins and
``select --min-margin`` (issue 12)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import HAVE_MPI, MPI_REASON, needs

from tomoclass.ccc import correlation_matrix
from tomoclass.classify import classify, half_sets, stability
from tomoclass.cli import main
from tomoclass.cpca import cpca
from tomoclass.features import Preprocessing
from tomoclass.io import read_particle_list
from tomoclass.io.scores import margins
from tomoclass.mask import spherical_mask
from tomoclass.mco import leave_one_out_scores
from tomoclass.metrics import adjusted_rand_index
from tomoclass.nuisance import _Predictors, remove_nuisance
from tomoclass.plotting import report
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation

# Two conformations 3:1 at low SNR over four tilt ranges: CPCA of the raw matrix clusters on
# what the wedges predict (ARI ≈ 0) although every particle can be told (limit ≈ 1).
HARD = SimulationConfig(n_particles=400, n_classes=2, fractions=(3, 1), snr=0.05, seed=0)


@pytest.fixture(scope="module")
def hard():
    sim = simulate_particles(HARD)
    prep = Preprocessing.for_band(sim.particle_stack(), spherical_mask(32), 8)
    feats = prep.features()
    return sim.labels, prep, feats, correlation_matrix(prep)


def test_model_recovers_a_matrix_made_of_it(hard):
    """A matrix built from the model's own predictors with known coefficients is explained
    entirely: the coefficients come back and the residual is zero off the diagonal, for the
    full matrix and for a landmark block."""
    _, _, feats, _ = hard
    f, w = np.asarray(feats.f), np.asarray(feats.w)
    model = _Predictors(f, w, feats.band, 0.05)
    n, count = len(f), model.shells
    truth = np.concatenate([[0.3], np.linspace(2.0, -1.0, count)])
    every = np.arange(n)
    made = truth[0] + np.tensordot(truth[1:], model.block(slice(None), every), 1)
    made = made.astype(np.float32)
    residual, fit = remove_nuisance(made, f, w, feats.band)
    assert np.allclose(fit.coefficients, truth, rtol=1e-3, atol=1e-3)
    off = ~np.eye(n, dtype=bool)
    assert np.abs(residual[off]).max() < 1e-3
    assert np.all(np.diag(residual) == 1) and np.array_equal(residual, residual.T)
    assert fit.explained > 0.999
    landmarks = np.arange(0, n, 3)
    block, fit_block = remove_nuisance(made[:, landmarks], f, w, feats.band, landmarks=landmarks)
    assert np.allclose(fit_block.coefficients, truth, rtol=1e-3, atol=1e-3)
    assert np.all(block[landmarks, np.arange(len(landmarks))] == 1)
    assert np.abs(np.where(block == 1, 0, block)).max() < 1e-3


def test_nuisance_removed_lets_cpca_see_the_classes(hard):
    """On the hard set raw CPCA fails and CPCA of the corrected matrix reaches the limit."""
    truth, _, feats, matrix = hard
    f, w = np.asarray(feats.f), np.asarray(feats.w)
    limit = leave_one_out_scores(f, w, feats.band.herm, truth, 2).argmax(1)
    assert adjusted_rand_index(truth, limit) > 0.95
    assert adjusted_rand_index(truth, cpca(matrix, "auto", 2).labels) < 0.3
    corrected, fit = remove_nuisance(matrix, f, w, feats.band)
    assert fit.explained > 0.3
    assert adjusted_rand_index(truth, cpca(corrected, "auto", 2).labels) > 0.9


def test_classify_reaches_the_limit_and_is_seeded(hard):
    truth, prep, _, _ = hard
    result = classify(prep, None, 2, None, restarts=3, seed=5)
    assert adjusted_rand_index(truth, result.labels) > 0.9
    assert len(result.restarts) == 3 and [r.seed for r in result.restarts] == [5, 6, 7]
    kept = result.restarts[result.best]
    assert kept.total_score == max(r.total_score for r in result.restarts)
    assert np.array_equal(result.labels, kept.labels)
    assert result.scores.shape == (len(truth), 2)
    assert np.allclose(result.margin, np.abs(result.scores[:, 0] - result.scores[:, 1]))
    # the margin means something: confident particles are right more often than the rest
    right = result.labels == truth if adjusted_rand_index(truth, result.labels) > 0 else None
    high = result.margin >= np.median(result.margin)
    assert right[high].mean() >= right[~high].mean()
    again = classify(prep, None, 2, None, restarts=3, seed=5)
    assert np.array_equal(again.labels, result.labels)
    assert np.array_equal(again.scores, result.scores)
    summary = json.loads(json.dumps(result.summary()))
    assert summary["kept_restart"] == result.best and len(summary["restarts"]) == 3


def test_margins_and_stability():
    scores = np.array([[0.5, 0.2, 0.4], [0.1, 0.3, 0.3]])
    assert np.allclose(margins(scores), [0.1, 0.0])
    a, b = np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0])
    assert stability([a]) == 1.0 and stability([a, b]) == 1.0
    assert stability([a, b, np.array([0, 1, 0, 1])]) < 1.0


@pytest.fixture(scope="module")
def sim_list(tmp_path_factory):
    sim = simulate_particles(SimulationConfig(n_particles=80, n_classes=2, box=16, seed=3))
    return write_simulation(sim, tmp_path_factory.mktemp("classify") / "sim")


def _classify_args(sim_list, out, *extra):
    return ["classify", "-p", str(sim_list), "-m", str(sim_list.parent / "mask.em"),
            "-n", "2", "-f", "4", "-o", str(out), *extra]  # fmt: skip


def test_cli_writes_the_folder_and_select_uses_its_margins(sim_list, tmp_path, capsys):
    out = tmp_path / "classes"
    assert main(_classify_args(sim_list, out, "--restarts", "2")) == 0
    assert "restarts agree at ARI" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "class_0.em", "class_0_wedgesum.em", "class_1.em", "class_1_wedgesum.em",
        "classifiedParticles.xml", "coefficients.csv", "coefficients.npy", "eigenvalues.csv",
        "eigenvalues.npy", "run.json", "scores.csv",
    ]  # fmt: skip
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "classify" and len(run["restarts"]) == 2
    assert sum(run["class_sizes"].values()) == 80
    page = report(out).read_text()
    assert page.count("<img") == 5 and "Margins" in page and "Resolution" in page
    classified = read_particle_list(out / "classifiedParticles.xml")
    with open(out / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["class"] for r in rows] == classified.class_names()
    margin = np.array([float(r["margin"]) for r in rows])
    cut = float(np.median(margin))
    chosen = tmp_path / "confident.xml"
    assert main(["select", "-p", str(out / "classifiedParticles.xml"),
                 "--min-margin", str(cut), "-o", str(chosen)]) == 0  # fmt: skip
    assert len(read_particle_list(chosen)) == int((margin >= cut).sum())
    both = tmp_path / "both.xml"
    assert main(["select", "-p", str(out / "classifiedParticles.xml"), "--classes", "1",
                 "--min-margin", str(cut), "-o", str(both)]) == 0  # fmt: skip
    kept = read_particle_list(both)
    assert set(kept.class_names()) <= {"1"}
    assert len(kept) == int(((margin >= cut) & (np.array(classified.class_names()) == "1")).sum())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--restarts", "0"], "restarts must be >= 1"),
        (["-n", "60"], "classes must be 'auto' or within 2..40"),
    ],
)
def test_cli_bad_classify_input(args, message, sim_list, tmp_path, capsys):
    out = tmp_path / "classes"
    assert main([*_classify_args(sim_list, out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_bad_select_input(sim_list, tmp_path, capsys):
    plist = str(sim_list)
    out = str(tmp_path / "x.xml")
    cases = [
        (["--min-margin", "-0.1"], "--min-margin must be within 0..2"),
        (["--min-margin", "0.1"], "scores.csv: no scores table beside the list"),
        ([], "give --classes, --min-margin or both"),
    ]
    for extra, message in cases:
        assert main(["select", "-p", plist, "-o", out, *extra]) == 2
        assert message in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("particle,class,score_0,score_1,margin\nnone.em,0,0.1,0.2,0.1\n")
    assert main(["select", "-p", plist, "-o", out, "--min-margin", "0", "--scores",
                 str(other)]) == 2  # fmt: skip
    assert "lists other particles than the list" in capsys.readouterr().err
    assert not os.path.exists(out)


def _run(prefix, sim_list, out, env=None):
    args = [*prefix, sys.executable, "-m", "tomoclass.cli",
            *_classify_args(sim_list, out, "--restarts", "2")]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    return {n: (out / n).read_bytes() for n in ("classifiedParticles.xml", "scores.csv")}


def test_one_and_two_threads_agree(sim_list, tmp_path):
    outputs = []
    for threads in ("1", "2"):
        env = {**os.environ, "RAYON_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        outputs.append(_run([], sim_list, tmp_path / threads, env))
    assert outputs[0] == outputs[1]


@needs(HAVE_MPI, MPI_REASON)
def test_one_and_two_ranks_agree(sim_list, tmp_path):
    one = _run([], sim_list, tmp_path / "one")
    two = _run(["mpiexec", "-n", "2"], sim_list, tmp_path / "two")
    assert one == two
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # no cache left


def test_auto_class_count_finds_three_conformations():
    """Three conformations: two classes are as reproducible between half-sets as three (a
    merge of two real classes is reproducible too), four are not; the most classes within
    tolerance of the best is three."""
    sim = simulate_particles(SimulationConfig(n_particles=400, n_classes=3, snr=0.1, seed=1))
    prep = Preprocessing.for_band(sim.particle_stack(), spherical_mask(32), 8)
    result = classify(prep, None, "auto", None, seed=1, restarts=2, max_classes=4)
    count = result.class_count
    assert [t["classes"] for t in count.tried] == [2, 3, 4]
    agreement = [t["half_set_agreement"] for t in count.tried]
    assert agreement[1] > agreement[2] + 0.1
    assert count.chosen == 3 and len(result.scores[0]) == 3
    assert count.sureness.startswith("3 classes: the half-sets agree at ARI")
    assert adjusted_rand_index(sim.labels, result.labels) > 0.9
    assert json.loads(json.dumps(result.summary()))["class_count"]["chosen"] == 3


def test_half_sets_are_seeded_and_disjoint():
    a, b = half_sets(101, 3)
    assert len(a) == 50 and len(b) == 51 and not set(a) & set(b)
    assert np.array_equal(half_sets(101, 3)[0], a) and not np.array_equal(half_sets(101, 4)[0], a)


def test_cli_auto_needs_enough_particles(sim_list, tmp_path, capsys):
    out = tmp_path / "classes"
    assert main([*_classify_args(sim_list, out), "-n", "auto"]) == 2
    assert "-n auto needs at least 120 particles" in capsys.readouterr().err
    assert main([*_classify_args(sim_list, out), "-n", "auto", "--max-classes", "3"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["class_count"]["chosen"] in (2, 3)
    assert "Number of classes" in report(out).read_text()
    assert main([*_classify_args(sim_list, tmp_path / "x"), "-n", "two"]) == 2
    assert "must be 'auto' or a whole number" in capsys.readouterr().err
