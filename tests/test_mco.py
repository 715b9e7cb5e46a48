"""MCO-EXMX: scores against the SPEC formula, recovery of classes, empty-class policy, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tomoclass.mco as mco_module
from tomoclass import TomoclassError, _core
from tomoclass.cli import main
from tomoclass.features import ParticleStack
from tomoclass.io import read_particle_list
from tomoclass.mask import spherical_mask
from tomoclass.mco import (
    exmx_iterations,
    leave_one_out_scores,
    mco_exmx,
    random_labels,
    reseed_empty,
)
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, simulate_particles


def stack_of(sim) -> ParticleStack:
    return sim.particle_stack()


def random_features(n: int = 9, m: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, 2 * m)).astype(np.float32)
    w = (rng.uniform(size=(n, m)) > 0.3).astype(np.float32)
    w[0, :5] = 0.5  # soft wedge values too
    herm = np.where(np.arange(m) % 7 == 0, 1.0, 2.0).astype(np.float32)
    return f, w, herm


def test_class_means_and_scores_match_the_spec_formula():
    f, w, herm = random_features()
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1])
    m = w.shape[1]
    means, counts = _core.mco_class_means(f, w, labels.tolist(), 3, 0.05)
    assert counts == [4, 3, 2]
    fc = f[:, :m].astype(np.float64) + 1j * f[:, m:]
    for k in range(3):
        members = labels == k
        wsum = (w[members] ** 2).sum(0)
        reach = (w[members].max(1) ** 2).sum()  # the floor: 0.05 of the largest weight sum
        want = (w[members] * fc[members]).sum(0) / np.maximum(wsum, 0.05 * reach)
        np.testing.assert_allclose(means[k, :m] + 1j * means[k, m:], want, atol=1e-5)
    scores = _core.mco_scores(f, w, herm, means)
    a = means[:, :m].astype(np.float64) + 1j * means[:, m:]
    for i in range(len(f)):
        for k in range(3):  # F_i against W_i·A_k
            num = np.sum(herm * w[i] * np.real(fc[i] * np.conj(a[k])))
            energy = np.sum(herm * np.abs(fc[i]) ** 2)
            den = np.sqrt(energy * np.sum(herm * w[i] ** 2 * np.abs(a[k]) ** 2))
            assert abs(scores[i, k] - num / den) < 1e-5


def test_leave_one_out_scores_drop_only_the_particle_itself():
    f, w, herm = random_features()
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1])
    loo = leave_one_out_scores(f, w, herm, labels, 3)
    for i in range(len(f)):
        others = np.delete(np.arange(len(f)), i)
        means, _ = _core.mco_class_means(f[others], w[others], labels[others].tolist(), 3, 0.05)
        want = _core.mco_scores(f[i : i + 1], w[i : i + 1], herm, means)[0]
        np.testing.assert_allclose(loo[i], want, atol=2e-5)


@pytest.fixture(scope="module")
def two_classes():
    """300 particles, 2 classes, box 32, SNR 0.1, the simulator's four tilt ranges."""
    sim = simulate_particles(
        SimulationConfig(n_particles=300, n_classes=2, box=32, snr=0.1, seed=1)
    )
    return sim, stack_of(sim)


def test_exmx_from_a_random_start_recovers_two_classes(two_classes):
    sim, stack = two_classes
    result = mco_exmx(stack, spherical_mask(32), 2, 8, iterations=20, seed=0, start="random")
    assert adjusted_rand_index(sim.labels, result.labels) >= 0.9
    assert result.trace[-1]["fraction_changed"] <= 0.05
    first, last = result.trace[0]["total_score"], result.trace[-1]["total_score"]
    assert last > first


def test_memory_mapped_features_give_the_same_run(two_classes, tmp_path, monkeypatch):
    _, stack = two_classes
    in_memory = mco_exmx(stack, spherical_mask(32), 2, 8, iterations=3, seed=2)
    seen = []
    real = mco_module._core.mco_class_means
    monkeypatch.setattr(mco_module._core, "mco_class_means",
                        lambda f, *a: seen.append(type(f)) or real(f, *a))  # fmt: skip
    mapped = mco_exmx(stack, spherical_mask(32), 2, 8, iterations=3, seed=2,
                      cache_dir=tmp_path / "features", memory_budget=0)  # fmt: skip
    assert seen and all(kind is np.memmap for kind in seen)
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == [
        "features_f.npy",
        "features_w.npy",
    ]
    np.testing.assert_array_equal(mapped.labels, in_memory.labels)
    assert mapped.trace == in_memory.trace


def test_same_seed_same_labels_other_seed_other_start(two_classes):
    _, stack = two_classes
    a = mco_exmx(stack, spherical_mask(32), 2, 8, iterations=2, seed=5)
    b = mco_exmx(stack, spherical_mask(32), 2, 8, iterations=2, seed=5)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.trace == b.trace
    assert not np.array_equal(random_labels(300, 2, 5), random_labels(300, 2, 6))


def test_an_emptied_class_is_reseeded_with_the_worst_of_the_largest():
    labels = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([[0.9, 0], [0.1, 0], [0.5, 0], [0.2, 0], [0, 1], [0, 1]], np.float32)
    out = reseed_empty(labels, np.c_[scores, np.zeros(6)], 3)
    np.testing.assert_array_equal(out, [0, 2, 0, 2, 1, 1])


def test_allow_collapse_keeps_empty_classes_empty():
    f, w, herm = random_features(n=12, seed=3)
    f[:, :] = f[0]  # identical particles: everything goes to one class
    kept = exmx_iterations(f, w, herm, np.arange(12) % 3, 3, 3, 0.0, allow_collapse=True)
    reseeded = exmx_iterations(f, w, herm, np.arange(12) % 3, 3, 3, 0.0)
    assert np.bincount(kept.labels, minlength=3).min() == 0
    assert np.bincount(reseeded.labels, minlength=3).min() > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"nclass": 1}, "classes"), ({"nclass": 301}, "classes"), ({"end_threshold": 1.5}, "end")],
)
def test_impossible_parameters(two_classes, kwargs, message):
    args = {"nclass": 2, **kwargs}
    with pytest.raises(TomoclassError, match=message):
        mco_exmx(two_classes[1], spherical_mask(32), args.pop("nclass"), 8, **args)


def test_cli_writes_pytoms_outputs(tmp_path, capsys):
    data = tmp_path / "sim"
    assert (
        main(["simulate", str(data), "-n", "60", "--box", "24", "--snr", "1", "--seed", "3"]) == 0
    )
    out = tmp_path / "mco"
    args = ["mco-exmx", "-p", str(data / "particles.xml"), "-m", str(data / "mask.em"), "-c", "2"]
    assert main([*args, "-d", str(out), "--highest-frequency", "6", "--seed", "1"]) == 0
    for name in ("classifiedParticles.xml", "class_0.em", "class_1_wedgesum.em", "run.json"):
        assert (out / name).exists(), name
    run = json.loads((out / "run.json").read_text())
    assert (out / f"iteration_{len(run['trace'])}" / "classifiedParticles.xml").exists()
    assert main([*args, "-d", str(out)]) == 2  # never overwrites an earlier result
    assert "not empty" in capsys.readouterr().err


def test_annealing_reaches_at_least_the_exmx_score_from_the_same_start():
    """4 classes, SNR 0.3: MCO-AC ends at least as high as EXMX from the same start and is
    reproducible. (Here EXMX finds the classes too; test_annealing.py has a start where
    EXMX provably stays in a local optimum that MCO-AC leaves.)"""
    from tomoclass.features import Preprocessing
    from tomoclass.mco import ac_rounds, random_labels, total_score

    sim = simulate_particles(
        SimulationConfig(n_particles=200, n_classes=4, box=24, snr=0.3, seed=1)
    )
    feats = Preprocessing.for_band(stack_of(sim), spherical_mask(24), 6).features()
    f, w, herm = np.asarray(feats.f), np.asarray(feats.w), feats.band.herm
    start = random_labels(200, 4, 0)
    exmx = exmx_iterations(f, w, herm, start, 4, 50, 0.0)
    ac, swaps = ac_rounds(f, w, herm, start, 4, 2.0, 0.2, local_search=1, seed=0)
    assert total_score(f, w, herm, ac.labels, 4) >= total_score(f, w, herm, exmx.labels, 4) - 1e-6
    assert len(swaps) > 0 and len(ac.trace) == 11  # 10 rounds, then the final descent
    assert adjusted_rand_index(sim.labels, ac.labels) >= adjusted_rand_index(
        sim.labels, exmx.labels
    )
    again, _ = ac_rounds(f, w, herm, start, 4, 2.0, 0.2, local_search=1, seed=0)
    np.testing.assert_array_equal(again.labels, ac.labels)


@pytest.mark.parametrize(
    ("start", "step", "options"),
    [(-1.0, 0.1, {}), (1.0, 0.0, {}), (1.0, -0.1, {}), (1.0, 0.1, {"criterion": "greedy"})],
)
def test_annealing_parameters_are_checked(start, step, options):
    from tomoclass.mco import ac_rounds

    f, w, herm = random_features()
    with pytest.raises(TomoclassError):
        ac_rounds(f, w, herm, np.arange(9) % 2, 2, start, step, **options)


def test_cli_mco_ac_writes_rounds_and_swaps(tmp_path):
    data = tmp_path / "sim"
    assert main(["simulate", str(data), "-n", "60", "--box", "24", "--snr", "1"]) == 0
    out = tmp_path / "ac"
    args = ["mco-ac", "-p", str(data / "particles.xml"), "-m", str(data / "mask.em"), "-c", "2"]
    args += ["--start-temperature", "1", "--annealing-step", "0.5", "--highest-frequency", "6"]
    assert main([*args, "-d", str(out)]) == 0
    assert (out / "round_1" / "classifiedParticles.xml").exists()
    assert (out / "swaps.csv").read_text().startswith("round,particle,from,to,score_lost")
    trace = json.loads((out / "run.json").read_text())["trace"]
    assert [entry["round"] for entry in trace] == [1, 2, "final"]


@pytest.mark.parametrize(
    ("command", "extra", "calls"),
    [("mco-exmx", ["-t", "0", "--start", "random", "--restarts", "1"], 2),
     ("mco-exmx", ["-t", "0", "--start", "random"], "half"),
     ("mco-ac", ["--start-temperature", "1", "--annealing-step", "0.25",
                 "--local-search-increment", "1"], 5)],
    ids=["exmx", "exmx-while-trying-starts", "ac"],
)  # fmt: skip
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, capsys, command,
                                                         extra, calls):  # fmt: skip
    """The resumed run ends with the files of the uninterrupted one, and does only the work
    the checkpoint did not hold: its scoring passes (``class_scores`` calls) are the whole
    run's less those done when the last checkpoint was written, so a resume that starts
    again from iteration 1 (or from the first random start) fails."""
    import tomoclass.mco as mco_module
    from tomoclass.cli.mco import McoCheckpoint

    data = tmp_path / "sim"
    assert main(["simulate", str(data), "-n", "80", "-k", "3", "--box", "16", "--snr", "0.5"]) == 0
    args = [command, "-p", str(data / "particles.xml"), "-m", str(data / "mask.em"), "-c", "3",
            "--highest-frequency", "4", *extra]  # fmt: skip
    real, count, saved = mco_module.class_scores, [0], []

    def counting(*a, **k):
        count[0] += 1
        if count[0] > limit:
            raise KeyboardInterrupt
        return real(*a, **k)

    def saving(self, progress, save=McoCheckpoint.save):
        saved.append(count[0])  # scoring passes done when this checkpoint was written
        save(self, progress)

    monkeypatch.setattr(mco_module, "class_scores", counting)
    monkeypatch.setattr(McoCheckpoint, "save", saving)
    limit = np.inf
    assert main([*args, "-d", str(tmp_path / "whole")]) == 0
    whole_calls, whole_saves = count[0], list(saved)
    if calls == "half":  # of the whole run's: while trying the random starts
        calls = whole_calls // 2
    limit, count[0] = calls, 0
    capsys.readouterr()
    assert main([*args, "-d", str(tmp_path / "cut")]) == 130
    said = capsys.readouterr().err
    assert f"kept in {tmp_path / '.cut.checkpoint'}; the same command with --resume" in said
    assert not (tmp_path / "cut").exists() and (tmp_path / ".cut.checkpoint").exists()
    state = json.loads((tmp_path / ".cut.checkpoint" / "state.json").read_text())
    if "--restarts" not in extra and command == "mco-exmx":
        assert state["step"] == 0 and 1 <= len(state["tried"]) < 3  # died among the starts
    else:
        assert state["step"] >= 2
    kept = max(c for c in whole_saves if c <= calls)
    assert kept > 0
    limit, count[0] = np.inf, 0
    assert main([*args, "-d", str(tmp_path / "cut"), "--resume"]) == 0
    assert count[0] == whole_calls - kept, (count[0], whole_calls, kept)
    for name in ("classifiedParticles.xml", "class_0.em", "iteration_1" if command == "mco-exmx"
                 else "swaps.csv"):  # fmt: skip
        whole, cut = tmp_path / "whole" / name, tmp_path / "cut" / name
        if whole.is_dir():
            assert sorted(p.name for p in whole.iterdir()) == sorted(p.name for p in cut.iterdir())
        else:
            assert whole.read_bytes() == cut.read_bytes(), name
    whole_trace = json.loads((tmp_path / "whole" / "run.json").read_text())["trace"]
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["trace"] == whole_trace
    assert not (tmp_path / ".cut.checkpoint").exists()


def test_resume_with_other_parameters_is_refused(tmp_path, capsys):
    data = tmp_path / "sim"
    main(["simulate", str(data), "-n", "40", "--box", "16"])
    args = ["mco-exmx", "-p", str(data / "particles.xml"), "-m", str(data / "mask.em"), "-c", "2",
            "-d", str(tmp_path / "out"), "--highest-frequency", "4"]  # fmt: skip
    assert main([*args, "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_job_files_written_by_tomoclass_run(tmp_path, capsys):
    data = tmp_path / "sim"
    assert main(["simulate", str(data), "-n", "60", "--box", "16", "--snr", "1"]) == 0
    flags = ["-p", str(data / "particles.xml"), "-m", str(data / "mask.em"), "-c", "2",
             "--highest-frequency", "4"]  # fmt: skip
    exmx, ac = tmp_path / "exmx.xml", tmp_path / "ac.xml"
    assert main(["job", "exmx", *flags, "-d", str(tmp_path / "a"), "-o", str(exmx)]) == 0
    assert main(["job", "ac", *flags, "-d", str(tmp_path / "b"), "-o", str(ac),
                 "--start-temperature", "1", "--annealing-step", "0.5"]) == 0  # fmt: skip
    assert main(["mco-exmx", "-j", str(exmx)]) == 0
    assert main(["mco-ac", "-j", str(ac)]) == 0
    direct = tmp_path / "direct"
    assert main(["mco-exmx", *flags, "-d", str(direct)]) == 0
    assert (tmp_path / "a" / "classifiedParticles.xml").exists()
    assert (tmp_path / "b" / "swaps.csv").exists()
    same = read_particle_list(tmp_path / "a" / "classifiedParticles.xml").class_names()
    assert same == read_particle_list(direct / "classifiedParticles.xml").class_names()
    capsys.readouterr()
    assert main(["mco-ac", "-j", str(exmx)]) == 2
    assert "MCO-EXMX job" in capsys.readouterr().err
    assert main(["mco-exmx", "-p", str(data / "particles.xml")]) == 2
    assert "-j JOB.xml" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["exmx", "ac"])
def test_a_job_shaped_like_pytoms_runs(tmp_path, kind):
    from test_pytom_job import AC_TAIL, JOB, PARTICLE

    data = tmp_path / "sim"
    assert main(["simulate", str(data), "-n", "40", "--box", "16", "--snr", "1"]) == 0
    names = [p.filename for p in read_particle_list(data / "particles.xml")]
    particles = "".join(PARTICLE.format(name=name, klass=0) for name in names)
    text = JOB.format(
        root="MCOACJob" if kind == "ac" else "MCOEXMXJob",
        iterations=10,
        root_extra=' LocalSearchIncrement="2.0"' if kind == "ac" else "",
        particles=particles,
        tail=AC_TAIL if kind == "ac" else "",
    )
    text = text.replace('Binning="2"', 'Binning="1"').replace('HighestFrequency="10.0"',
                                                             'HighestFrequency="5.0"')  # fmt: skip
    job = data / "job.xml"
    job.write_text(text)
    assert main([f"mco-{kind}", "-j", str(job)]) == 0
    result = read_particle_list(data / "results" / "classifiedParticles.xml")
    assert len(result) == 40 and len(set(result.class_names())) == 3


def test_updated_shifts_move_towards_the_true_ones():
    config = SimulationConfig(n_particles=60, n_classes=2, box=24, snr=2.0, seed=8,
                              shift_error=1.0)  # fmt: skip
    noisy = simulate_particles(config)
    exact = simulate_particles(SimulationConfig(n_particles=60, n_classes=2, box=24, snr=2.0,
                                                seed=8))  # fmt: skip
    result = mco_exmx(stack_of(noisy), spherical_mask(24), 2, 6, iterations=10, seed=0,
                      max_shift=3, update_shifts=True)  # fmt: skip
    before = np.linalg.norm(noisy.shifts - exact.shifts, axis=1).mean()
    after = np.linalg.norm(result.shifts - exact.shifts, axis=1).mean()
    assert before > 1.0 and after < 0.5 * before
    with pytest.raises(TomoclassError, match="shift search"):
        mco_exmx(stack_of(noisy), spherical_mask(24), 2, 6, update_shifts=True)
