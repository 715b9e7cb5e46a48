"""Ctrl-C and ``--resume`` (issue 13 item 3): a signal stops a long core call within a
second, the message says how to continue, ``--resume`` without a checkpoint is an error, a
plain rerun says what it discards, and the feature stage is checkpointed (``ccc`` and MCO)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tomoclass import features as features_module
from tomoclass.ccc import correlation_matrix
from tomoclass.cli import main
from tomoclass.errors import TomoclassError
from tomoclass.features import Preprocessing, make_band
from tomoclass.mask import spherical_mask
from tomoclass.mco import mco_exmx
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation

# Ctrl-C as in an interactive shell: a background job of a non-interactive shell (as a CI
# script may start pytest) inherits SIGINT ignored, and Python then installs no handler.
WATCHED = """
import signal
import sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import tomoclass.ccc as target
from tomoclass.cli import main
from tomoclass.errors import TomoclassError
real = target._core.real_ccc_tiles
def announced(*args):
    print("core call", flush=True)
    return real(*args)
target._core.real_ccc_tiles = announced
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def big_list(tmp_path_factory) -> Path:
    """40 particles of 64³: PyTom's real-space CCC of all 820 pairs takes several seconds."""
    sim = simulate_particles(SimulationConfig(n_particles=40, n_classes=2, box=64, snr=0.5,
                                              seed=3))  # fmt: skip
    return write_simulation(sim, tmp_path_factory.mktemp("interrupt") / "sim")


def test_ctrl_c_stops_a_long_core_call_within_a_second(big_list, tmp_path):
    """SIGINT while the core computes one tile of 820 real-space pairs (seconds of work on
    one thread): the process exits with 130 well within a second, saying nothing was written."""
    args = ["ccc", "-p", str(big_list), "-m", str(big_list.parent / "mask.em"), "-f", "16",
            "--mode", "real", "--tile", "40", "-o", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}
    run = subprocess.Popen([sys.executable, "-c", WATCHED, *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert run.stdout.readline() == "core call\n"
    time.sleep(0.5)  # well inside the call
    sent = time.perf_counter()
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    waited = time.perf_counter() - sent
    assert run.returncode == 130, err
    assert waited < 1.0, f"exited {waited:.2f} s after Ctrl-C"
    assert "interrupted; no output was written" in err and "Traceback" not in err


def _ccc_args(sim_list: Path, out: Path, *extra: str) -> list[str]:
    return ["ccc", "-p", str(sim_list), "-m", str(sim_list.parent / "mask.em"), "-f", "4",
            "-o", str(out), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def small_list(tmp_path_factory) -> Path:
    sim = simulate_particles(SimulationConfig(n_particles=12, n_classes=2, box=16, snr=0.5,
                                              seed=5))  # fmt: skip
    return write_simulation(sim, tmp_path_factory.mktemp("small") / "sim")


def _interrupt_tiles(monkeypatch, after: int) -> None:
    """Ctrl-C on call ``after + 1`` of the tile kernel."""
    import tomoclass.ccc as ccc_module

    real, calls = ccc_module._core.ccc_tiles, [0]

    def interrupted(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ccc_module._core, "ccc_tiles", interrupted)
    monkeypatch.setattr(ccc_module._core, "thread_count", lambda: 1)  # batches of 2 tiles


def test_resume_messages(small_list, tmp_path, monkeypatch, capsys):
    """The interrupt names the checkpoint and --resume; --resume with no checkpoint is an
    error that leaves the earlier matrix alone; a plain rerun says what it discards."""
    out = tmp_path / "out"
    assert main(_ccc_args(small_list, out, "--tile", "3")) == 0
    before = (out / "correlation_matrix.npy").read_bytes()
    capsys.readouterr()
    assert main(_ccc_args(small_list, out, "--tile", "3", "--resume")) == 2
    err = capsys.readouterr().err
    assert f"{out / '.ccc_checkpoint'}: no checkpoint to resume from" in err
    assert (out / "correlation_matrix.npy").read_bytes() == before

    with monkeypatch.context() as patch:
        _interrupt_tiles(patch, 1)
        assert main(_ccc_args(small_list, out, "--tile", "3")) == 130
    err = capsys.readouterr().err
    assert f"kept in {out / '.ccc_checkpoint'}; the same command with --resume" in err
    assert main(_ccc_args(small_list, out, "--tile", "3")) == 0
    err = capsys.readouterr().err
    assert "discarding the checkpoint of an earlier, unfinished run" in err
    assert "--resume would have continued it" in err
    assert not (out / ".ccc_checkpoint").exists()


class FeatureSpy:
    """Counts the core's feature calls (one per chunk); Ctrl-C on call ``stop_at``."""

    def __init__(self, monkeypatch, stop_at: int | None = None) -> None:
        self.calls, self.stop_at = 0, stop_at
        real = features_module.Preprocessing._core_call

        def spy(function, *args):
            if getattr(function, "__name__", "") == "features":
                self.calls += 1
                if self.calls == self.stop_at:
                    raise KeyboardInterrupt
            return real(function, *args)

        monkeypatch.setattr(features_module.Preprocessing, "_core_call", staticmethod(spy))


def _prep(sim_list: Path) -> Preprocessing:
    from tomoclass.io import read_particle_list

    plist = read_particle_list(sim_list)
    return Preprocessing(plist, sim_list.parent / "mask.em", make_band(16, 4), chunk=3)


def test_ccc_resumes_the_feature_stage(small_list, tmp_path, monkeypatch):
    """Interrupted while computing features (4 chunks of 3 particles, Ctrl-C in the third),
    the resumed run computes only the 2 chunks not kept, and gives the same matrix."""
    full = correlation_matrix(_prep(small_list))
    folder = tmp_path / "checkpoint"
    with monkeypatch.context() as patch:
        FeatureSpy(patch, stop_at=3)
        with pytest.raises(KeyboardInterrupt):
            correlation_matrix(_prep(small_list), checkpoint=folder)
    assert len(list(folder.glob("features_*_f.npy"))) == 2
    spy = FeatureSpy(monkeypatch)
    resumed = correlation_matrix(_prep(small_list), checkpoint=folder, resume=True)
    assert spy.calls == 2
    np.testing.assert_array_equal(resumed, full)


def test_mco_keeps_and_reuses_feature_blocks(small_list, tmp_path, monkeypatch):
    """MCO's features go to its checkpoint block by block: an interrupted run's blocks are
    taken by the next, which computes only the rest and ends as an uninterrupted run."""
    whole = mco_exmx(_prep(small_list), None, 2, None, seed=1, start="random", restarts=1)
    folder = tmp_path / "features"
    with monkeypatch.context() as patch:
        FeatureSpy(patch, stop_at=4)
        with pytest.raises(KeyboardInterrupt):
            mco_exmx(_prep(small_list), None, 2, None, seed=1, start="random", restarts=1,
                     feature_checkpoint=folder)  # fmt: skip
    spy = FeatureSpy(monkeypatch)
    again = mco_exmx(_prep(small_list), None, 2, None, seed=1, start="random", restarts=1,
                     feature_checkpoint=folder)  # fmt: skip
    assert spy.calls == 1
    np.testing.assert_array_equal(again.labels, whole.labels)


def test_mco_cli_resume_without_checkpoint_is_an_error(small_list, tmp_path, capsys):
    args = ["mco-exmx", "-p", str(small_list), "-m", str(small_list.parent / "mask.em"),
            "-c", "2", "-d", str(tmp_path / "run"), "-f", "4", "--resume"]  # fmt: skip
    assert main(args) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_feature_blocks_of_other_inputs_are_refused(small_list, tmp_path, monkeypatch):
    """Blocks kept for one mask are not taken for another: the run is refused."""
    folder = tmp_path / "features"
    with monkeypatch.context() as patch:
        FeatureSpy(patch, stop_at=3)
        with pytest.raises(KeyboardInterrupt):
            mco_exmx(_prep(small_list), None, 2, None, feature_checkpoint=folder)
    from tomoclass.io import read_particle_list

    other = Preprocessing(read_particle_list(small_list), spherical_mask(16, 4.0),
                          make_band(16, 4), chunk=3)  # fmt: skip
    with pytest.raises(TomoclassError, match="other parameters"):
        mco_exmx(other, None, 2, None, feature_checkpoint=folder)
