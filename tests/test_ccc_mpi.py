"""``mpiexec -n 2 tomoclass ccc`` gives exactly the single-process matrix (SPEC §4).

Needs ``mpiexec`` on PATH and mpi4py (CI installs mpich and mpi4py): skipped without them,
failed with ``TOMOCLASS_REQUIRE_ALL=1`` (CI).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import HAVE_MPI, MPI_REASON, needs

import tomoclass.ccc as ccc_module
from tomoclass.cli import main
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation

pytestmark = needs(HAVE_MPI, MPI_REASON)

MPI_CCC = ["mpiexec", "-n", "2", sys.executable, "-m", "tomoclass.cli", "ccc"]


@pytest.fixture(scope="module")
def sim_list(tmp_path_factory):
    sim = simulate_particles(SimulationConfig(n_particles=11, n_classes=2, box=16, seed=9))
    return write_simulation(sim, tmp_path_factory.mktemp("ccc_mpi") / "sim")


def test_two_ranks_give_the_single_process_landmark_block(sim_list, tmp_path):
    common = ["-p", str(sim_list), "-m", str(sim_list.parent / "mask.em"), "-f", "5",
              "--tile", "3", "--landmarks", "4", "--seed", "1"]  # fmt: skip
    single, ranks = tmp_path / "single", tmp_path / "mpi"
    single.mkdir()
    ranks.mkdir()
    assert main(["ccc", *common, "-o", str(single)]) == 0
    run = subprocess.run([*MPI_CCC, *common, "-o", str(ranks)], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    name = "correlation_landmarks.npz"
    want, got = np.load(single / name), np.load(ranks / name)
    assert np.array_equal(got["block"], want["block"])
    assert np.array_equal(got["landmarks"], want["landmarks"])


def test_two_ranks_give_the_single_process_cpca(sim_list, tmp_path):
    out = tmp_path / "ccc"
    out.mkdir()
    assert main(["ccc", "-p", str(sim_list), "-m", str(sim_list.parent / "mask.em"), "-f", "5",
                 "-o", str(out)]) == 0  # fmt: skip
    outputs = []
    for ranks in (1, 2):
        folder = tmp_path / f"ranks{ranks}"
        folder.mkdir()
        command = [sys.executable, "-m", "tomoclass.cli", "cpca", "-p", str(sim_list), "-c",
                   str(out / "correlation_matrix.npy"), "-n", "2", "-e", "3",
                   "-o", str(folder / "classes.xml")]  # fmt: skip
        if ranks > 1:
            command = ["mpiexec", "-n", str(ranks), *command]
        run = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        outputs.append({p.name: p.read_bytes() for p in sorted(folder.iterdir())
                        if p.name != "run.json"})  # fmt: skip
    assert outputs[0] == outputs[1]
    assert "classes_class_0.em" in outputs[0]


@pytest.mark.parametrize(
    "extra",
    [["-f", "5"], ["-f", "0.25", "-b", "2"], ["-f", "5", "--mode", "real"]],
    ids=["fourier", "fourier-binned", "real"],
)
def test_two_ranks_give_the_single_process_matrix(extra, sim_list, tmp_path, capsys):
    common = ["-p", str(sim_list), "-m", str(sim_list.parent / "mask.em"), "--tile", "3", *extra]
    single, ranks = tmp_path / "single", tmp_path / "mpi"
    single.mkdir()
    ranks.mkdir()
    assert main(["ccc", *common, "-o", str(single)]) == 0
    run = subprocess.run(
        [*MPI_CCC, *common, "-o", str(ranks)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "2 rank(s)" in run.stdout
    want = np.load(single / "correlation_matrix.npy")
    assert np.array_equal(np.load(ranks / "correlation_matrix.npy"), want)
    assert (ranks / "correlation_matrix.csv").read_bytes() == (
        single / "correlation_matrix.csv"
    ).read_bytes()
    assert not (ranks / ".ccc_checkpoint").exists()


def test_bad_input_under_mpi_exits_2_on_all_ranks(sim_list, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run(
        [
            *MPI_CCC,
            "-p",
            str(sim_list),
            "-m",
            str(sim_list.parent / "mask.em"),
            "-f",
            "8",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "lowpass" in run.stderr and "Traceback" not in run.stderr
    assert not (out / "correlation_matrix.csv").exists()


def test_two_ranks_resume_a_single_process_checkpoint(sim_list, tmp_path, monkeypatch, capsys):
    """An interrupted one-process run, resumed under two ranks, gives the same matrix."""
    common = ["ccc", "-p", str(sim_list), "-m", str(sim_list.parent / "mask.em"), "-f", "5"]
    common += ["--tile", "3"]
    full, out = tmp_path / "full", tmp_path / "out"
    full.mkdir()
    out.mkdir()
    assert main([*common, "-o", str(full)]) == 0
    original, calls = ccc_module._core.ccc_tiles, []

    def interrupting(x, p, w, batch):
        calls.append(batch)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return original(x, p, w, batch)

    monkeypatch.setattr(ccc_module._core, "thread_count", lambda: 1)
    monkeypatch.setattr(ccc_module._core, "ccc_tiles", interrupting)
    assert main([*common, "-o", str(out)]) == 130
    assert len(list((out / ".ccc_checkpoint").glob("tile_*.npy"))) == 2
    run = subprocess.run(
        [*MPI_CCC, *common[1:], "-o", str(out), "--resume"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    want = np.load(full / "correlation_matrix.npy")
    assert np.array_equal(np.load(out / "correlation_matrix.npy"), want)


def test_two_ranks_give_the_single_process_averages(tmp_path):
    """300 particles are three chunks of 128: rank 0 sums two, rank 1 one, added in order."""
    from tomoclass.io import read_particle_list, read_volume, write_particle_list

    sim = simulate_particles(SimulationConfig(n_particles=300, n_classes=2, box=16, seed=3))
    plist = read_particle_list(write_simulation(sim, tmp_path / "sim"))
    classified = tmp_path / "classified.xml"
    write_particle_list(plist.with_classes(sim.labels.tolist()), classified)
    assert main(["average", "-p", str(classified), "-o", str(tmp_path / "one")]) == 0
    command = ["mpiexec", "-n", "2", sys.executable, "-m", "tomoclass.cli", "average"]
    run = subprocess.run(
        [*command, "-p", str(classified), "-o", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    for k in (0, 1):
        one = read_volume(tmp_path / f"one_{k}.em")
        assert np.array_equal(read_volume(tmp_path / f"two_{k}.em"), one)


def test_a_rank_that_dies_stops_the_job_without_output(sim_list, tmp_path):
    """Rank 1 is killed (SIGKILL) in the middle of the tiles: the job ends promptly with an
    error status instead of hanging, and no matrix is written."""
    script = (
        "import os, signal, sys\n"
        "import tomoclass.ccc as ccc\n"
        "from tomoclass.cli import main\n"
        "from tomoclass.parallel import world\n"
        "if world().rank == 1:\n"
        "    ccc._core.ccc_tiles = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, "-c", script, "ccc", "-p", str(sim_list),
         "-m", str(sim_list.parent / "mask.em"), "-f", "5", "--tile", "3", "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    assert not (out / "correlation_matrix.csv").exists()
    assert not (out / "correlation_matrix.npy").exists()
