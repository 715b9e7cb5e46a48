"""A full disk or an unwritable output folder: one clear error, exit status 2, and the
outputs of an earlier run left exactly as they were (SPEC §7).

A full disk is simulated with ``RLIMIT_FSIZE`` in the child process (a write past the limit
fails with EFBIG, as one on a full disk fails with ENOSPC). An unwritable folder is one
without write permission, or (for root, who may write anywhere) a read-only bind mount.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tomoclass.cli import main
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation


def tomoclass(args: list[str], file_limit: int):
    """``tomoclass ARGS`` in a child process whose writes stop at ``file_limit`` bytes a file."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([sys.executable, "-m", "tomoclass.cli", *args], capture_output=True,
                          text=True, timeout=300, preexec_fn=limit)  # fmt: skip


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def assert_clear_error(run, *words: str) -> None:
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tomoclass: error: "), run.stderr
    assert "Traceback" not in run.stderr
    for word in words:
        assert word in lines[0], run.stderr


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """20 particles of 16³, 2 classes."""
    sim = simulate_particles(SimulationConfig(n_particles=20, n_classes=2, box=16, seed=6))
    return write_simulation(sim, tmp_path_factory.mktemp("disk") / "sim")


def test_ccc_on_a_full_disk_keeps_the_earlier_matrix(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    common = ["ccc", "-p", str(data), "-m", str(data.parent / "mask.em"), "--tile", "5",
              "-o", str(out)]  # fmt: skip
    assert main([*common, "-f", "5"]) == 0
    before = snapshot(out)
    run = tomoclass([*common, "-f", "4"], file_limit=1000)  # tiles fit, the CSV and NPY not
    assert_clear_error(run, "correlation_matrix", "cannot write", "too large")
    finished = {k: v for k, v in snapshot(out).items() if not k.startswith(".ccc_checkpoint/")}
    assert finished == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # The finished tiles were kept: once there is room, --resume completes the run.
    assert main([*common, "-f", "4", "--resume"]) == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert main([*common[:-1], str(fresh), "-f", "4"]) == 0
    assert (out / "correlation_matrix.csv").read_bytes() == (
        fresh / "correlation_matrix.csv"
    ).read_bytes()
    assert (out / "correlation_matrix.npy").read_bytes() == (
        fresh / "correlation_matrix.npy"
    ).read_bytes()


def test_cpca_on_a_full_disk_replaces_none_of_its_outputs(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["ccc", "-p", str(data), "-m", str(data.parent / "mask.em"), "-o", str(out),
                 "-f", "5"]) == 0  # fmt: skip
    cpca = ["cpca", "-p", str(data), "-c", str(out / "correlation_matrix.npy"), "-n", "2",
            "-o", str(out / "classes.xml")]  # fmt: skip
    assert main([*cpca, "-e", "2"]) == 0
    before = snapshot(out)
    # The list (written first) fits under the limit, a class average (written next) does not:
    # the new list must not replace the earlier one alone.
    limit = (out / "classes.xml").stat().st_size + 64
    assert (out / "classes_class_0.em").stat().st_size > limit
    run = tomoclass([*cpca, "-e", "3"], file_limit=limit)
    assert_clear_error(run, "classes_class_0", "cannot write")
    assert snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_average_on_a_full_disk_keeps_every_earlier_average(data, tmp_path):
    classified = tmp_path / "classified.xml"
    assert main(["ccc", "-p", str(data), "-m", str(data.parent / "mask.em"), "-o", str(tmp_path),
                 "-f", "5"]) == 0  # fmt: skip
    assert main(["cpca", "-p", str(data), "-c", str(tmp_path / "correlation_matrix.npy"),
                 "-n", "2", "-e", "2", "-o", str(classified)]) == 0  # fmt: skip
    prefix = tmp_path / "avg" / "class"
    prefix.parent.mkdir()
    assert main(["average", "-p", str(classified), "-o", str(prefix)]) == 0
    before = snapshot(prefix.parent)
    run = tomoclass(["average", "-p", str(classified), "-o", str(prefix), "-f", "3"],
                    file_limit=4096)  # fmt: skip
    assert_clear_error(run, "cannot write")
    assert snapshot(prefix.parent) == before


@pytest.mark.parametrize("command", ["mco-exmx", "simulate"])
def test_a_new_folder_on_a_full_disk_is_not_left_half_written(data, tmp_path, command):
    destination = tmp_path / "new"
    if command == "simulate":
        args = ["simulate", str(destination), "-n", "10", "--box", "16"]
    else:
        args = ["mco-exmx", "-p", str(data), "-m", str(data.parent / "mask.em"), "-c", "2",
                "-d", str(destination), "--highest-frequency", "4", "-n", "2"]  # fmt: skip
    run = tomoclass(args, file_limit=2048)
    assert_clear_error(run, "cannot write")
    leftovers = [p.name for p in tmp_path.iterdir() if not p.name.endswith(".checkpoint")]
    assert leftovers == []


def read_only(folder: Path) -> list[str]:
    """Make ``folder`` unwritable for a child process; returns the command prefix that runs
    the child so. Without root, a mode of 0555 does it. Root may write anywhere, so the
    child gets a private mount namespace in which ``folder`` is a read-only bind mount."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    prefix = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"',
              str(folder)]  # fmt: skip
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip(f"running as root without a way to make a folder read-only: {probe.stderr}")
    return prefix


@pytest.mark.parametrize("command", ["ccc", "cpca", "average", "mco-exmx"])
def test_an_unwritable_output_folder_is_a_clear_error(data, tmp_path, command):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "earlier.txt").write_text("an earlier result")
    mask = str(data.parent / "mask.em")
    args = {
        "ccc": ["ccc", "-p", str(data), "-m", mask, "-f", "5", "-o", str(folder)],
        "cpca": ["cpca", "-p", str(data), "-c", str(tmp_path / "m.csv"), "-n", "2",
                 "-o", str(folder / "classes.xml")],
        "average": ["average", "-p", str(data), "-o", str(folder / "avg")],
        "mco-exmx": ["mco-exmx", "-p", str(data), "-m", mask, "-c", "2", "-d",
                     str(folder / "mco"), "--highest-frequency", "4", "-n", "1"],
    }[command]  # fmt: skip
    (tmp_path / "m.csv").write_text("1,0\n0,1\n")
    before = snapshot(folder)
    prefix = read_only(folder)
    run = subprocess.run([*prefix, sys.executable, "-m", "tomoclass.cli", *args],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    folder.chmod(0o755)
    assert_clear_error(run, str(folder), "not writable")
    assert snapshot(folder) == before
