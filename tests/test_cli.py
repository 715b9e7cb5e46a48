"""The command line: real runs, exit status 2 and one clear line for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tomoclass.cli import main
from tomoclass.io import read_particle_list
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "simulate" in out and "convert" in out


def test_simulate_then_convert(tmp_path, capsys):
    folder = tmp_path / "sim"
    assert main(["simulate", str(folder), "-n", "12", "--box", "16", "--seed", "4"]) == 0
    assert (folder / "truth.csv").exists() and (folder / "mask.em").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sim.partial")]
    star = tmp_path / "list.star"
    assert main(["convert", str(folder / "particles.xml"), str(star)]) == 0
    assert len(read_particle_list(star)) == 12
    assert "wrote" in capsys.readouterr().out


def test_simulate_refuses_a_used_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("earlier result")
    assert main(["simulate", str(tmp_path), "-n", "4", "--box", "16"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and str(tmp_path) in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_bad_parameter_writes_nothing(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "new"), "--snr", "0"]) == 2
    assert "snr" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_missing_input_exits_2_without_traceback(tmp_path):
    missing = tmp_path / "nothere.xml"
    run = subprocess.run(
        [sys.executable, "-m", "tomoclass.cli", "convert", str(missing), str(tmp_path / "x.tbl")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert str(missing) in run.stderr and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1
    assert not (tmp_path / "x.tbl").exists()


def test_same_long_names_in_every_command():
    """The number of classes is --nclass, the band limit --lowpass (-f), a run's output
    --output, in every command that has them; PyTom's short flags stay."""
    from tomoclass.cli import build_parser

    parse = build_parser().parse_args
    mco = parse(["mco-exmx", "-p", "a.xml", "-m", "m.em", "--nclass", "3", "--lowpass", "8",
                 "--output", "out"])  # fmt: skip
    assert (mco.classes, mco.highest_frequency, str(mco.destination)) == (3, 8.0, "out")
    short = parse(["mco-ac", "-p", "a.xml", "-m", "m.em", "-c", "3", "-f", "8", "-d", "out"])
    assert (short.classes, short.highest_frequency, str(short.destination)) == (3, 8.0, "out")
    cpca = parse(["cpca", "-p", "a", "-c", "m.csv", "--nclass", "2", "--output", "o.xml"])
    assert cpca.nclass == 2
    assert parse(["classify", "-p", "a", "-m", "m", "--nclass", "2", "--lowpass", "8",
                  "--output", "o"]).lowpass == 8.0  # fmt: skip
    assert parse(["simulate", "d", "--nclass", "3"]).classes == 3
    job = parse(["job", "exmx", "-o", "job.xml", "-f", "6", "--nclass", "2", "-p", "a.xml",
                 "-m", "m.em", "-d", "out"])  # fmt: skip
    assert (str(job.output), job.highest_frequency, job.classes) == ("job.xml", 6.0, 2)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["classify", "-p", "a.xml", "-c", "3"], "classify has no -c: in classify the number of "
         "classes is -n/--nclass"),
        (["ccc", "-p", "a.xml", "-n", "3"], "ccc has no -n: ccc computes the correlations only"),
        (["mco-exmx", "-k", "3"], "the number of classes is -c/--nclass (-n is the iterations)"),
    ],
)  # fmt: skip
def test_a_flag_of_another_command_says_where_the_value_belongs(args, said, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert said in capsys.readouterr().err


def test_cpca_number_for_the_matrix_says_it_is_the_matrix(tmp_path, capsys):
    sim = simulate_particles(SimulationConfig(n_particles=20, box=16, seed=1))
    listed = write_simulation(sim, tmp_path / "sim")
    assert main(["cpca", "-p", str(listed), "-c", "4", "-n", "2",
                 "-o", str(tmp_path / "c.xml")]) == 2  # fmt: skip
    assert (
        "-c/--ccc is the correlation matrix file in cpca, got 4; the number of classes is "
        "-n/--nclass" in capsys.readouterr().err
    )


EMPTY_LIST_COMMANDS = {
    "ccc": ["ccc", "-p", "{l}", "-m", "{m}", "-f", "4", "-o", "{o}"],
    "cpca": ["cpca", "-p", "{l}", "-c", "{o}/m.csv", "-n", "2", "-o", "{o}/c.xml"],
    "classify": ["classify", "-p", "{l}", "-m", "{m}", "-n", "2", "-f", "4", "-o", "{o}/cl"],
    "mco-exmx": ["mco-exmx", "-p", "{l}", "-m", "{m}", "-c", "2", "-d", "{o}/mco"],
    "average": ["average", "-p", "{l}", "-o", "{o}/avg"],
    "merge": ["merge", "-p", "{l}", "--n-clusters", "1", "-o", "{o}/merged.xml"],
    "select": ["select", "-p", "{l}", "--classes", "1", "-o", "{o}/s.xml"],
    "split": ["split", "-p", "{l}", "-o", "{o}/part"],
    "convert": ["convert", "{l}", "{o}/c.star"],
}


@pytest.mark.parametrize("command", EMPTY_LIST_COMMANDS)
def test_an_empty_list_is_an_error_naming_it(command, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    empty = data / "empty.xml"
    empty.write_text("<ParticleList/>\n")
    sim = simulate_particles(SimulationConfig(n_particles=4, box=16, seed=1))
    mask = write_simulation(sim, data / "sim").parent / "mask.em"
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.csv").write_text("1,0\n0,1\n")
    args = [a.format(l=empty, m=mask, o=out) for a in EMPTY_LIST_COMMANDS[command]]
    assert main(args) == 2
    assert f"{empty}: the particle list is empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["m.csv"]


def test_suspicious_lists_and_masks_get_one_warning_line_each(tmp_path, capsys):
    import numpy as np

    from tomoclass.io import write_particle_list, write_volume
    from tomoclass.particles import Particle, ParticleList

    sim = simulate_particles(SimulationConfig(n_particles=6, box=16, seed=2))
    listed = write_simulation(sim, tmp_path / "sim")
    plist = read_particle_list(listed)
    twice = tmp_path / "sim" / "twice.xml"
    write_particle_list(ParticleList([*plist, plist[2]], plist.directory), twice)
    assert main(["average", "-p", str(twice), "-o", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert err.count("tomoclass: warning:") == 1
    assert "1 particles are listed more than once (the first: " in err
    assert "particle_000002" in err
    same = tmp_path / "sim" / "same.xml"
    unrotated = [Particle(p.filename, wedge=p.wedge) for p in plist]
    write_particle_list(ParticleList(unrotated, plist.directory), same)
    assert main(["average", "-p", str(same), "-o", str(tmp_path / "b")]) == 0
    assert "every particle has the same rotation" in capsys.readouterr().err
    for volume, said in ((np.ones((16,) * 3, np.float32), "the mask keeps 100% of the box"),
                         (np.pad(np.ones((1, 1, 1), np.float32), ((8, 7),) * 3),
                          "the mask keeps only 0.02% of the box")):  # fmt: skip
        mask = tmp_path / "mask.em"
        write_volume(mask, volume)
        assert main(["ccc", "-p", str(listed), "-m", str(mask), "-f", "4",
                     "-o", str(tmp_path), "--no-csv"]) == 0  # fmt: skip
        err = capsys.readouterr().err
        assert err.count(said) == 1, err


COMMANDS = ("ccc", "cpca", "classify", "mco-exmx", "mco-ac", "job", "average", "merge",
            "select", "split", "convert", "simulate", "demo", "report")  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_none_default_and_says_what_is_written_where(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "default: None" not in text
    assert "made if missing" in text or "missing folders are made" in text or command == "report"


def test_mco_help_marks_what_a_run_needs_without_a_job_file(capsys):
    with pytest.raises(SystemExit):
        main(["mco-exmx", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("particle list", "real-space mask volume", "number of classes"):
        assert f"{flag} (required without -j)" in text


def test_job_without_its_settings_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["job", "ac", "-o", str(tmp_path / "job.xml")])
    assert info.value.code == 2
    assert "required: -p/--particles, -m/--mask" in capsys.readouterr().err
    assert not (tmp_path / "job.xml").exists()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    sim = simulate_particles(SimulationConfig(n_particles=16, n_classes=2, box=16, snr=1.0,
                                              seed=2))  # fmt: skip
    return write_simulation(sim, tmp_path_factory.mktemp("tiny") / "sim")


def test_every_command_makes_missing_output_folders(tiny, tmp_path):
    """Outputs in folders that do not exist yet (two levels deep) are made, in every
    command; mco-ac runs with its documented default temperatures."""
    pl, mask, new = str(tiny), str(tiny.parent / "mask.em"), tmp_path / "a" / "b"
    ccc = new / "ccc"
    runs = [
        ["ccc", "-p", pl, "-m", mask, "-f", "4", "-o", str(ccc)],
        ["cpca", "-p", pl, "-c", str(ccc / "correlation_matrix.npy"), "-n", "2",
         "-o", str(new / "cpca" / "c.xml"), "-t", str(new / "tables"),
         "-a", str(new / "avg" / "a")],
        ["classify", "-p", pl, "-m", mask, "-n", "2", "-f", "4", "--restarts", "1",
         "-o", str(new / "classify")],
        ["mco-exmx", "-p", pl, "-m", mask, "-c", "2", "-f", "4", "-d", str(new / "exmx")],
        ["mco-ac", "-p", pl, "-m", mask, "-c", "2", "-f", "4", "-d", str(new / "ac")],
        ["job", "ac", "-p", pl, "-m", mask, "-c", "2", "-d", "x", "-o", str(new / "job" / "j.xml")],
        ["average", "-p", str(new / "cpca" / "c.xml"), "-o", str(new / "average" / "avg")],
        ["merge", "-p", str(new / "cpca" / "c.xml"), "--n-clusters", "1",
         "-o", str(new / "merge" / "m.xml")],
        ["select", "-p", str(new / "cpca" / "c.xml"), "--classes", "0",
         "-o", str(new / "select" / "s.xml")],
        ["split", "-p", str(new / "cpca" / "c.xml"), "-o", str(new / "split" / "s")],
        ["convert", pl, str(new / "convert" / "p.star")],
        ["simulate", str(new / "simulate"), "-n", "4", "--box", "16"],
    ]  # fmt: skip
    for args in runs:
        assert main(args) == 0, args
    made = {"ccc": "correlation_matrix.npy", "cpca": "c.xml", "tables": "run.json",
            "avg": "a_0.em", "classify": "run.json", "exmx": "run.json", "ac": "swaps.csv",
            "job": "j.xml", "average": "avg_resolution.json", "merge": "m_merge.json",
            "select": "s.xml", "split": "s_0.xml", "convert": "p.star",
            "simulate": "particles.xml"}  # fmt: skip
    for folder, name in made.items():
        assert (new / folder / name).is_file(), folder


def test_an_asymmetric_tilt_range_warns_about_the_tilt_sign(tiny, tmp_path, capsys):
    """RELION and PyTom give tilts opposite signs: an asymmetric range says how it is read
    and what a PyTom user gives instead; a symmetric one says nothing."""
    from tomoclass.io import write_particle_list
    from tomoclass.particles import Particle, ParticleList

    plist = read_particle_list(tiny)
    bare = tiny.parent / "bare.xml"  # the particles without their wedges
    write_particle_list(ParticleList([Particle(p.filename) for p in plist], plist.directory),
                        bare)  # fmt: skip
    out = tmp_path / "c.star"
    assert main(["convert", str(bare), str(out), "--tilt-range", "-50:60"]) == 0
    err = capsys.readouterr().err
    assert "--tilt-range -50:60 is asymmetric and read with RELION's tilt sign" in err
    assert "give --tilt-range -60:50" in err
    assert main(["convert", str(bare), str(tmp_path / "d.star"), "--tilt-range", "-60:60"]) == 0
    assert "tilt sign" not in capsys.readouterr().err


def test_long_steps_speak_on_a_terminal(tiny, tmp_path, monkeypatch, capsys):
    """On a terminal cpca says before its eigen step what it computes, and draws a bar for
    the class averages (logs stay free of both)."""
    ccc = tmp_path / "ccc"
    assert main(["ccc", "-p", str(tiny), "-m", str(tiny.parent / "mask.em"), "-f", "4",
                 "-o", str(ccc)]) == 0  # fmt: skip
    args = ["cpca", "-p", str(tiny), "-c", str(ccc / "correlation_matrix.npy"), "-n", "2"]
    assert main([*args, "-o", str(tmp_path / "log.xml")]) == 0
    assert "CPCA:" not in capsys.readouterr().err
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*args, "-o", str(tmp_path / "tty.xml")]) == 0
    err = capsys.readouterr().err
    assert "CPCA: top eigenvectors of the 16-particle matrix, then k-means …" in err
    assert "averages:" in err and "/16" in err  # a bar over the 16 particles
