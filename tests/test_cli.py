"""The command line: real runs, exit status 2 and one clear line for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tomoclass.cli import main
from tomoclass.io import read_particle_list


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
