"""Merging over-sampled classes: recovery of the truth, explicit groups, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tomoclass import TomoclassError
from tomoclass.average import class_averages
from tomoclass.cli import main
from tomoclass.io import read_particle_list, write_particle_list
from tomoclass.mask import spherical_mask
from tomoclass.merge import merge_plan, parse_groups
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, read_truth, simulate_particles, write_simulation


@pytest.fixture(scope="module")
def oversampled():
    """240 particles of 3 true classes (box 24, SNR 0.3), each class split at random into
    2 or 3 sub-classes: 8 look-alike classes in all."""
    sim = simulate_particles(
        SimulationConfig(n_particles=240, n_classes=3, box=24, snr=0.3, seed=2)
    )
    rng = np.random.default_rng(0)
    parts = {0: 3, 1: 3, 2: 2}
    offsets = {0: 0, 1: 3, 2: 6}
    labels = np.array([offsets[t] + rng.integers(parts[t]) for t in sim.labels])
    stack = sim.particle_stack()
    return sim, stack, labels


def test_merging_into_three_clusters_recovers_the_truth(oversampled):
    sim, stack, labels = oversampled
    averages = class_averages(stack, labels=labels)
    plan = merge_plan(averages, spherical_mask(24), 6, n_clusters=3)
    merged = [plan.mapping[str(v)] for v in labels]
    assert adjusted_rand_index(sim.labels, merged) >= 0.9
    assert sorted(set(plan.mapping.values())) == ["0", "1", "2"]


def test_groups_relabel_exactly_as_given(oversampled):
    _, stack, labels = oversampled
    averages = class_averages(stack, labels=labels)
    plan = merge_plan(averages, spherical_mask(24), 6, groups="0,2,3;1,4;5,6")
    want = {"0": "0", "2": "0", "3": "0", "1": "1", "4": "1", "5": "2", "6": "2", "7": "3"}
    assert plan.mapping == want


def test_threshold_zero_keeps_and_large_threshold_joins_everything(oversampled):
    _, stack, labels = oversampled
    averages = class_averages(stack, labels=labels)
    keep = merge_plan(averages, spherical_mask(24), 6, threshold=0.0)
    assert len(set(keep.mapping.values())) == 8
    join = merge_plan(averages, spherical_mask(24), 6, threshold=2.0)
    assert set(join.mapping.values()) == {"0"}


@pytest.mark.parametrize(
    ("text", "message"), [("0,1;1,2", "more than once"), ("0,9", "no class 9")]
)
def test_bad_groups(text, message):
    with pytest.raises(TomoclassError, match=message):
        parse_groups(text, ["0", "1", "2"])


def test_cli_oversample_then_merge(tmp_path, capsys):
    """EXMX into 6 classes of 3 true ones (box 24, SNR 0.5), then merge to 3."""
    sim = simulate_particles(
        SimulationConfig(n_particles=180, n_classes=3, box=24, snr=0.5, seed=6)
    )
    data = tmp_path / "sim"
    write_simulation(sim, data)
    mco = tmp_path / "mco"
    mask = str(data / "mask.em")
    assert main(["mco-exmx", "-p", str(data / "particles.xml"), "-m", mask, "-c", "6",
                 "-d", str(mco), "--highest-frequency", "6", "-n", "20"]) == 0  # fmt: skip
    merged = tmp_path / "merged.xml"
    args = ["merge", "-p", str(mco / "classifiedParticles.xml"), "-o", str(merged)]
    assert main([*args, "--n-clusters", "3", "-f", "6"]) == 0
    for name in ("merged_dendrogram.png", "merged_class_0.em", "merged_merge.json"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "merged_dendrogram.png").read_bytes()[:4] == b"\x89PNG"
    truth = read_truth(data / "truth.csv")
    plist = read_particle_list(merged)
    names = [str(p.relative_to(data)) for p in plist.paths()]
    assert adjusted_rand_index([truth[n] for n in names], plist.class_names()) >= 0.9
    capsys.readouterr()
    assert main([*args[:3], "-o", str(tmp_path / "x.xml"), "--n-clusters", "9"]) == 2
    assert "n-clusters" in capsys.readouterr().err
    assert main([*args[:3], "-o", str(tmp_path / "x.xml"), "--groups", "0,0"]) == 2
    assert not (tmp_path / "x.xml").exists()
    unclassified = tmp_path / "plain.xml"
    write_particle_list(read_particle_list(data / "particles.xml"), unclassified)
    assert main(["merge", "-p", str(unclassified), "-o", str(tmp_path / "y.xml"),
                 "--n-clusters", "2"]) == 2  # fmt: skip
    assert "no classes" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["mco-exmx", "cpca"])
def test_oversample_runs_the_whole_workflow(tmp_path, command):
    data = tmp_path / "sim"
    assert main(["simulate", str(data), "-n", "90", "-k", "2", "--box", "16", "--snr", "1"]) == 0
    if command == "cpca":
        assert main(["ccc", "-p", str(data / "particles.xml"), "-m", str(data / "mask.em"),
                     "-f", "4", "-o", str(tmp_path)]) == 0  # fmt: skip
        args = ["cpca", "-p", str(data / "particles.xml"), "-c",
                str(tmp_path / "correlation_matrix.npy"), "-n", "2",
                "-o", str(tmp_path / "out.xml"), "--oversample", "3"]  # fmt: skip
        listed, picture = tmp_path / "out.xml", tmp_path / "merge_dendrogram.png"
    else:
        args = ["mco-exmx", "-p", str(data / "particles.xml"), "-m", str(data / "mask.em"),
                "-c", "2", "-d", str(tmp_path / "mco"), "--highest-frequency", "4",
                "--oversample", "3"]  # fmt: skip
        listed = tmp_path / "mco" / "classifiedParticles.xml"
        picture = tmp_path / "mco" / "merge_dendrogram.png"
    assert main(args) == 0
    assert sorted(set(read_particle_list(listed).class_names())) == ["0", "1"]
    assert picture.read_bytes()[:4] == b"\x89PNG"


def test_existing_averages_are_reused(tmp_path, monkeypatch, oversampled):
    import importlib

    from tomoclass.average import write_averages

    # tomoclass.average is also the public function; the module is reached by its import name.
    average_module = importlib.import_module("tomoclass.average")

    sim, stack, labels = oversampled
    list_path = write_simulation(sim, tmp_path / "sim")
    classified = tmp_path / "over.xml"
    write_particle_list(read_particle_list(list_path).with_classes(labels.tolist()), classified)
    write_averages(class_averages(stack, labels=labels), tmp_path / "avg")
    computed = []
    real = average_module.class_averages
    monkeypatch.setattr(average_module, "class_averages",
                        lambda *a, **k: computed.append(1) or real(*a, **k))  # fmt: skip
    args = ["merge", "-p", str(classified), "--n-clusters", "3", "-f", "6"]
    assert main([*args, "-o", str(tmp_path / "a.xml"), "-a", str(tmp_path / "avg")]) == 0
    assert len(computed) == 1  # only the merged classes' new averages
    assert main([*args, "-o", str(tmp_path / "b.xml")]) == 0
    assert len(computed) == 3  # without -a the 8 averages are computed first
    assert (tmp_path / "a.xml").read_bytes() == (tmp_path / "b.xml").read_bytes()
