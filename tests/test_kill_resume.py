"""A run killed outright (SIGKILL: no cleanup, no ``finally``) and then resumed with
``--resume`` finishes with exactly the result of an uninterrupted run (SPEC §7).

Each killed run is a real process that kills itself at a fixed point of its work (after a
given number of tile batches, or of scoring passes), so the test does not depend on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tomoclass.cli import main
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation

KILLER = """
import os, signal, sys
import tomoclass.{module} as target
from tomoclass.cli import main
real, calls = target.{function}, [0]
def dying(*args, **kwargs):
    calls[0] += 1
    if calls[0] > {after}:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
target.{function} = dying
sys.exit(main(sys.argv[1:]))
"""


def killed(module: str, function: str, after: int, args: list[str]) -> None:
    """Run ``tomoclass ARGS`` in a process that SIGKILLs itself on call ``after + 1`` of
    ``tomoclass.MODULE.FUNCTION``; check that it died that way."""
    script = KILLER.format(module=module, function=function, after=after)
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}  # batches of 2 tiles
    run = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                         text=True, timeout=300, env=env)  # fmt: skip
    assert run.returncode == -signal.SIGKILL, run.stderr


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    sim = simulate_particles(SimulationConfig(n_particles=40, n_classes=3, box=16, snr=0.5,
                                              seed=12))  # fmt: skip
    return write_simulation(sim, tmp_path_factory.mktemp("kill") / "sim")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.mark.parametrize("extra", [[], ["--landmarks", "9"]], ids=["matrix", "landmarks"])
def test_ccc_killed_then_resumed(data, tmp_path, extra):
    args = ["ccc", "-p", str(data), "-m", str(data.parent / "mask.em"), "-f", "4", "--tile", "6",
            *extra]  # fmt: skip
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir()
    cut.mkdir()
    assert main([*args, "-o", str(whole)]) == 0
    killed("ccc", "_core.ccc_tiles", 2, [*args, "-o", str(cut)])
    assert {p.name for p in cut.iterdir()} == {".ccc_checkpoint"}  # no matrix: finished tiles
    saved = len(list((cut / ".ccc_checkpoint").glob("tile_*.npy")))
    assert saved == (2 if extra else 4)  # two batches (of 2 tiles, or 1 row block)
    assert main([*args, "-o", str(cut), "--resume"]) == 0
    assert _files(cut) == _files(whole)


AC = ["--start-temperature", "1", "--annealing-step", "0.25", "--local-search-increment", "1"]


@pytest.mark.parametrize(
    ("command", "extra", "after"),
    [("mco-exmx", ["-t", "0", "-n", "6", "--start", "random", "--restarts", "1"], 2),
     ("mco-ac", AC, 5)],
    ids=["exmx", "ac"],
)  # fmt: skip
def test_mco_killed_then_resumed(data, tmp_path, command, extra, after):
    args = [command, "-p", str(data), "-m", str(data.parent / "mask.em"), "-c", "3",
            "--highest-frequency", "4", *extra]  # fmt: skip
    assert main([*args, "-d", str(tmp_path / "whole")]) == 0
    killed("mco", "class_scores", after, [*args, "-d", str(tmp_path / "cut")])
    assert not (tmp_path / "cut").exists()
    checkpoint = tmp_path / ".cut.checkpoint"
    steps = len(json.loads((tmp_path / "whole" / "run.json").read_text())["trace"])
    assert 0 < json.loads((checkpoint / "state.json").read_text())["step"] < steps - 1
    assert main([*args, "-d", str(tmp_path / "cut"), "--resume"]) == 0
    assert not checkpoint.exists() and not (tmp_path / ".cut.features").exists()
    whole, cut = _files(tmp_path / "whole"), _files(tmp_path / "cut")
    assert whole.keys() == cut.keys()
    for name in whole:
        if name != "run.json":  # holds timings and the destination
            assert cut[name] == whole[name], name
