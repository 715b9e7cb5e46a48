"""A full disk or an unwritable output folder: one clear error, exit status 2, and the
outputs of an earlier run left exactly as they were (SPEC §7).

A full disk is simulated with ``RLIMIT_FSIZE`` in the child process (a write past the limit
fails with EFBIG, as one on a full disk fails with ENOSPC), from the start or from the call
of a given writer (so that the run reaches it whatever it wrote before). Files must not be
cut short silently: numpy's C writer loses the error of a small buffered write. An
unwritable folder is one without write permission, or (for root, who may write anywhere) a
read-only bind mount.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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


FILLING = """
import resource, sys
import tomoclass.io.files
import {module} as target
from tomoclass.cli import main
real = target.{function}
def filling(*args, **kwargs):
    limit = {limit}
    if {npy!r}:  # save_npy(path, array): full within the last bytes of the file named npy
        if {npy!r} not in str(args[0]):
            return real(*args, **kwargs)
        limit = 128 + args[1].nbytes - 8
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return real(*args, **kwargs)
for module in list(sys.modules.values()):  # also where it was imported by name
    if getattr(module, "{function}", None) is real:
        setattr(module, "{function}", filling)
sys.exit(main(sys.argv[1:]))
"""


def tomoclass_filling_up(args: list[str], module: str, function: str, file_limit: int = 0,
                         npy: str = ""):  # fmt: skip
    """``tomoclass ARGS`` in a child process whose disk fills up (``file_limit`` bytes a file)
    when ``MODULE.FUNCTION`` is called, so that the run gets as far as that writer whatever it
    writes before; with ``npy``, when ``save_npy`` writes a file whose path holds ``npy``, 8
    bytes before that file's end."""
    script = FILLING.format(module=module, function=function, limit=file_limit, npy=npy)
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def whole_npy(folder: Path) -> None:
    """Every ``.npy`` under ``folder`` reads back complete (none cut short by the full disk),
    and no temporary file is left."""
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
    for path in folder.rglob("*.npy"):
        np.load(path)  # a file cut short does not read (its data do not fill its shape)


def finished(folder: Path) -> dict[str, tuple[bytes, int]]:
    """The files of ``folder`` without the checkpoint, which is kept for ``--resume``."""
    return {k: v for k, v in snapshot(folder).items() if not k.startswith(".ccc_checkpoint/")}


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
    # The disk fills up once the checkpoint holds every tile: the CSV and NPY do not fit.
    run = tomoclass_filling_up([*common, "-f", "4"], "tomoclass.ccc", "write_matrix", 1000)
    assert_clear_error(run, "correlation_matrix", "cannot write", "too large")
    assert finished(out) == before
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


def test_ccc_no_csv_on_a_full_disk_keeps_the_earlier_matrix(data, tmp_path):
    """``ccc --no-csv`` (only the ``.npy``, 1728 bytes) with room for 1000 bytes a file: exit
    2, one error naming the matrix, the earlier matrix untouched. numpy's C writer would
    leave a cut-short matrix without an error (its buffered write fails on close)."""
    out = tmp_path / "out"
    out.mkdir()
    common = ["ccc", "-p", str(data), "-m", str(data.parent / "mask.em"), "--tile", "5",
              "--no-csv", "-o", str(out)]  # fmt: skip
    assert main([*common, "-f", "5"]) == 0
    before = snapshot(out)
    run = tomoclass_filling_up([*common, "-f", "4"], "tomoclass.ccc", "write_matrix", 1000)
    assert_clear_error(run, "correlation_matrix.npy", "cannot write", "too large")
    assert finished(out) == before
    whole_npy(out)


def test_landmarks_on_a_full_disk_keep_the_earlier_npz(data, tmp_path):
    """``ccc --landmarks`` writes ``correlation_landmarks.npz``; with room for 300 bytes a
    file: exit 2, one error naming it, the earlier file untouched and still readable."""
    out = tmp_path / "out"
    out.mkdir()
    common = ["ccc", "-p", str(data), "-m", str(data.parent / "mask.em"), "--landmarks", "6",
              "-o", str(out)]  # fmt: skip
    assert main([*common, "-f", "5"]) == 0
    assert (out / "correlation_landmarks.npz").stat().st_size > 300
    before = snapshot(out)
    run = tomoclass_filling_up([*common, "-f", "4"], "tomoclass.ccc", "write_landmarks", 300)
    assert_clear_error(run, "correlation_landmarks.npz", "cannot write")
    assert finished(out) == before
    with np.load(out / "correlation_landmarks.npz") as npz:
        assert npz["block"].shape == (20, 6)


@pytest.mark.parametrize(
    ("command", "block"),
    [("ccc", "tile_0_0.npy"), ("ccc", "features_"), ("mco-exmx", "labels.npy")],
)
def test_a_checkpoint_on_a_full_disk_is_a_clear_error_and_not_cut_short(data, tmp_path, command,
                                                                         block):  # fmt: skip
    """The disk fills up within the last 8 bytes of a checkpoint block (a CCC tile or
    feature block, MCO's labels after the first iteration): exit 2, one error naming that
    block, no output, and no block cut short in the checkpoint folder (a resume would take
    it for finished work)."""
    mask = str(data.parent / "mask.em")
    out = tmp_path / "out"
    if command == "ccc":
        out.mkdir()
        args = ["ccc", "-p", str(data), "-m", mask, "-f", "4", "--tile", "5", "--no-csv",
                "-o", str(out)]  # fmt: skip
        checkpoint = out / ".ccc_checkpoint"
    else:
        args = ["mco-exmx", "-p", str(data), "-m", mask, "-c", "2", "-d", str(out),
                "--highest-frequency", "4", "-n", "3"]  # fmt: skip
        checkpoint = tmp_path / ".out.checkpoint"
    run = tomoclass_filling_up(args, "tomoclass.io.files", "save_npy", npy=block)
    assert_clear_error(run, str(checkpoint), block, "cannot write")
    if command == "ccc":
        assert not [p for p in out.iterdir() if p.name.startswith("correlation_matrix")]
    else:
        assert not out.exists()
    whole_npy(tmp_path)
