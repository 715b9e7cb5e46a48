"""The voxel size carried from the particles to the class averages, and one warning line for
particles of different voxel sizes or MRC particles without one (issue 13 item 4)."""

from __future__ import annotations

import json
import shutil

import mrcfile
import pytest

from tomoclass.average import class_averages
from tomoclass.cli import main
from tomoclass.io import read_particle_list, read_voxel_size
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation


@pytest.fixture(scope="module")
def mrc_list(tmp_path_factory):
    """20 particles as MRC files of 8 Å voxels (the simulation's default) in a PyTom list."""
    sim = simulate_particles(SimulationConfig(n_particles=20, box=16, snr=1.0, seed=3))
    return write_simulation(sim, tmp_path_factory.mktemp("sim"), fmt="mrc")


def _copy_with_sizes(mrc_list, folder, sizes):
    """A copy of the simulated data set in ``folder`` with particle ``i`` at voxel size
    ``sizes[i]``; returns the copy's list."""
    shutil.copytree(mrc_list.parent, folder)
    listed = folder / mrc_list.name
    for path, size in zip(read_particle_list(listed).paths(), sizes, strict=True):
        with mrcfile.open(path, mode="r+") as mrc:
            mrc.voxel_size = size
    return listed


def test_simulated_mrc_files_carry_the_pixel_size(mrc_list, tmp_path, capsys):
    assert read_voxel_size(read_particle_list(mrc_list).paths()[0]) == pytest.approx(8.0)
    assert read_voxel_size(mrc_list.parent / "mask.mrc") == pytest.approx(8.0)
    folder = tmp_path / "five"
    assert main(["simulate", str(folder), "-n", "4", "--box", "16", "--format", "mrc",
                 "--pixel-size", "5"]) == 0  # fmt: skip
    assert read_voxel_size(folder / "particles" / "particle_000000.mrc") == pytest.approx(5.0)
    assert main(["simulate", str(tmp_path / "em"), "-n", "4", "--box", "16",
                 "--pixel-size", "5"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tomoclass: error: --pixel-size: EM files hold no voxel size; add --format mrc"]
    assert not (tmp_path / "em").exists()


def test_averages_carry_the_voxel_size_times_the_binning(mrc_list, tmp_path, capsys):
    averages = class_averages(read_particle_list(mrc_list), binning=2)
    assert averages[0].voxel_size == pytest.approx(16.0)
    prefix = tmp_path / "avg"
    assert main(["average", "-p", str(mrc_list), "-b", "2", "-o", f"{prefix}.mrc"]) == 0
    assert read_voxel_size(tmp_path / "avg_0.mrc") == pytest.approx(16.0)
    record = json.loads((tmp_path / "avg_resolution.json").read_text())
    assert record["voxel_size"] == pytest.approx(16.0)
    assert "warning" not in capsys.readouterr().err


def test_cpca_averages_carry_the_voxel_size(mrc_list, tmp_path):
    mask = str(mrc_list.parent / "mask.mrc")
    assert main(["ccc", "-p", str(mrc_list), "-m", mask, "-f", "4", "-o", str(tmp_path)]) == 0
    assert main(["cpca", "-p", str(mrc_list), "-c", str(tmp_path / "correlation_matrix.csv"),
                 "-e", "2", "-n", "2", "-o", str(tmp_path / "classified.xml"),
                 "-a", str(tmp_path / "avg.mrc")]) == 0  # fmt: skip
    assert read_voxel_size(tmp_path / "avg_0.mrc") == pytest.approx(8.0)


@pytest.mark.parametrize("command", ["classify", "mco-exmx"])
def test_runs_of_mrc_particles_write_mrc_averages_with_the_size(command, mrc_list, tmp_path):
    """Averages keep their particles' format: MRC particles give class_<k>.mrc carrying the
    voxel size (EM has no place for it), also in classify and mco-*, which name no prefix."""
    mask, out = str(mrc_list.parent / "mask.mrc"), tmp_path / "run"
    flags = ["-n", "2", "--restarts", "1", "-o"] if command == "classify" else ["-c", "2", "-d"]
    assert main([command, "-p", str(mrc_list), "-m", mask, "-f", "4", *flags, str(out)]) == 0
    assert read_voxel_size(out / "class_0.mrc") == pytest.approx(8.0)
    assert not list(out.glob("class_*.em"))


def test_mixed_voxel_sizes_warn_and_give_no_size(mrc_list, tmp_path, capsys):
    listed = _copy_with_sizes(mrc_list, tmp_path / "mixed", [8.0] * 12 + [4.0] * 8)
    assert main(["average", "-p", str(listed), "-o", str(tmp_path / "avg.mrc")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    said = f"tomoclass: warning: {listed}: the particles have different voxel sizes "
    assert err[0].startswith(said + "(12 of 8 Å, 8 of 4 Å; the first of another size: ")
    assert "particle_000012.mrc" in err[0]
    assert read_voxel_size(tmp_path / "avg_0.mrc") is None  # not the first particle's 8 Å
    record = json.loads((tmp_path / "avg_resolution.json").read_text())
    assert record["voxel_size"] is None
    assert all(c["angstrom"] is None for c in record["classes"].values())


def test_mrc_particles_without_voxel_size_warn(mrc_list, tmp_path, capsys):
    listed = _copy_with_sizes(mrc_list, tmp_path / "blank", [0.0] * 5 + [8.0] * 15)
    first = read_particle_list(listed).paths()[0]
    assert main(["average", "-p", str(listed), "-o", str(tmp_path / "avg.mrc")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tomoclass: warning: {listed}: 5 of 20 MRC particles have no voxel size in "
                   f"their header (it is 0; the first: {first}); the "
                   "class averages and resolutions get the others' voxel size"]  # fmt: skip
    assert read_voxel_size(tmp_path / "avg_0.mrc") == pytest.approx(8.0)


def test_help_gives_the_angstrom_rule(capsys):
    for command in ("average", "classify", "mco-exmx", "merge"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "n·s/r Å" in " ".join(capsys.readouterr().out.split())


def test_star_of_mrc_particles_takes_their_voxel_size(mrc_list, tmp_path, capsys):
    """A PyTom list of 8 Å MRC particles converted to STAR gets rlnImagePixelSize 8 and its
    origins in Å at 8 Å per voxel; particles that give no size (EM) get one warning line."""
    import numpy as np
    import starfile

    out = tmp_path / "p.star"
    assert main(["convert", str(mrc_list), str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    blocks = starfile.read(out, always_dict=True)
    assert blocks["optics"]["rlnImagePixelSize"].tolist() == [pytest.approx(8.0)]
    shifts = read_particle_list(mrc_list).shifts()
    origins = blocks["particles"][["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]]
    np.testing.assert_allclose(origins.to_numpy(), -8.0 * shifts, atol=1e-6)
    sim = simulate_particles(SimulationConfig(n_particles=4, box=16, seed=1))
    em_list = write_simulation(sim, tmp_path / "em")
    assert main(["convert", str(em_list), str(tmp_path / "e.star")]) == 0
    assert "no pixel size is known" in capsys.readouterr().err


def test_em_averages_of_sized_particles_say_the_size_is_lost(mrc_list, tmp_path, capsys):
    assert main(["average", "-p", str(mrc_list), "-o", str(tmp_path / "avg.em")]) == 0
    assert "EM files hold no voxel size, so the averages lose their 8 Å" in capsys.readouterr().err
    assert (tmp_path / "avg_0.em").is_file()
