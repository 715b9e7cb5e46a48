"""Dynamo reads a table's particles from ``particle_<tag>.em`` beside it: tomoclass reads
them so, warns when a table it writes has them elsewhere, and links or copies them there on
request (issue 13 item 5)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tomoclass.cli import main
from tomoclass.io import read_particle_list, read_volume, write_particle_list, write_volume
from tomoclass.io.dynamo import read_tbl
from tomoclass.particles import ParticleList
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    """Four simulated particles as EM and as MRC files, with their PyTom lists."""
    sim = simulate_particles(SimulationConfig(n_particles=4, box=16, seed=5))
    folder = tmp_path_factory.mktemp("sims")
    return {fmt: write_simulation(sim, folder / fmt, fmt=fmt) for fmt in ("em", "mrc")}


def _out(tmp_path):
    out = tmp_path / "dynamo"
    out.mkdir()
    return out


def test_a_table_away_from_its_particles_gets_one_warning(sims, tmp_path, capsys):
    out = _out(tmp_path)
    assert main(["convert", str(sims["em"]), str(out / "crop.tbl")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    first = read_particle_list(sims["em"]).paths()[0]
    assert err == [f"tomoclass: warning: {out / 'crop.tbl'}: Dynamo reads particle <tag> from "
                   "particle_<tag>.em (or .mrc) in its data folder, which tomoclass takes to be "
                   "the table's; 4 of 4 particles are not there "
                   f"(the first: {first} as particle_00001.em); --link-particles or "
                   "--copy-particles (particle_files) puts them there"]  # fmt: skip


def test_a_table_among_other_particles_files_says_they_would_be_read(sims, tmp_path, capsys):
    """Written into a folder whose particle_<n> files are other particles (the simulator
    counts from 0, Dynamo's tags from 1), the table would read the wrong particle for
    every row: the warning says so instead of offering to link."""
    folder = read_particle_list(sims["em"]).paths()[0].parent
    table = folder / "crop.tbl"
    try:
        assert main(["convert", str(sims["em"]), str(table)]) == 0
        err = capsys.readouterr().err
        assert "of those names hold another file, which Dynamo (and tomoclass reading" in err
        assert "--link-particles" not in err
    finally:
        table.unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["link", "copy"])
def test_particles_linked_or_copied_beside_the_table(how, sims, tmp_path, capsys):
    out = _out(tmp_path)
    assert main(["convert", str(sims["em"]), str(out / "crop.tbl"), f"--{how}-particles"]) == 0
    assert "warning" not in capsys.readouterr().err
    sources = read_particle_list(sims["em"]).paths()
    names = [f"particle_0000{t}.em" for t in range(1, 5)]
    assert sorted(os.listdir(out)) == ["crop.tbl", *names]
    for name, source in zip(names, sources, strict=True):
        assert os.path.islink(out / name) == (how == "link")
        assert os.path.samefile(out / name, source) == (how == "link")
        assert (out / name).read_bytes() == source.read_bytes()
    back = read_tbl(out / "crop.tbl")
    for path, source in zip(back.paths(), sources, strict=True):
        np.testing.assert_array_equal(read_volume(path), read_volume(source))
    assert main(["convert", str(out / "crop.tbl"), str(out / "classes.tbl")]) == 0
    assert "warning" not in capsys.readouterr().err  # the particles are there already


def test_mrc_particles_are_linked_as_mrc(sims, tmp_path):
    out = _out(tmp_path)
    assert main(["convert", str(sims["mrc"]), str(out / "t.tbl"), "--link-particles"]) == 0
    assert (out / "particle_00004.mrc").is_symlink()
    assert read_tbl(out / "t.tbl").paths()[3] == out / "particle_00004.mrc"


def test_a_table_reads_its_particles_at_any_padding(tmp_path):
    row = np.zeros(35)
    row[0], row[1], row[2] = 12, 1, 1
    np.savetxt(tmp_path / "crop.tbl", row[None], fmt="%g")
    write_volume(tmp_path / "particle_000012.mrc", np.zeros((4, 4, 4), np.float32))
    assert read_tbl(tmp_path / "crop.tbl").paths() == [tmp_path / "particle_000012.mrc"]


def _refused(args, capsys, *said):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tomoclass: error: ")
    assert all(text in err[0] for text in said)


def test_another_particle_in_the_way_is_an_error_and_nothing_is_written(sims, tmp_path, capsys):
    out = _out(tmp_path)
    (out / "particle_00002.em").write_bytes(b"another particle")
    args = ["convert", str(sims["em"]), str(out / "crop.tbl"), "--link-particles"]
    _refused(args, capsys, f"{out / 'particle_00002.em'}: exists and is not ")
    assert os.listdir(out) == ["particle_00002.em"]


def test_particle_files_only_for_a_table_and_from_existing_files(sims, tmp_path, capsys):
    out = _out(tmp_path)
    star = out / "l.star"
    _refused(["convert", str(sims["em"]), str(star), "--copy-particles"], capsys,
             f"{star}: only a Dynamo table (.tbl) keeps its particles beside it")  # fmt: skip
    gone = tmp_path / "gone.xml"  # the same names, in a folder without the particles
    write_particle_list(ParticleList(list(read_particle_list(sims["em"])), tmp_path), gone)
    missing = tmp_path / "particles" / "particle_000000.em"
    _refused(["convert", str(gone), str(out / "t.tbl"), "--link-particles"], capsys,
             f"{missing}: no such particle file to link")  # fmt: skip
    assert os.listdir(out) == []
