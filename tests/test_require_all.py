"""``needs`` (tests/conftest.py): a test that cannot run here (no ``mpiexec``, no browser) is
skipped, but fails when ``TOMOCLASS_REQUIRE_ALL=1``, which CI sets, so CI cannot pass
without running it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REQUIRE_ALL

SAMPLE = """
import pytest
from conftest import needs


@pytest.fixture
def costly():
    raise AssertionError("a fixture of a test that cannot run was made")


@needs(False, "needs a unicorn")
def test_unicorn(costly):
    pass


@needs(True, "needs nothing missing")
def test_runs():
    pass
"""


@pytest.mark.parametrize("required", [False, True], ids=["local", "ci"])
def test_a_test_that_cannot_run_is_skipped_or_fails_under_require_all(tmp_path, required):
    """Without the variable: 1 passed, 1 skipped, exit 0. With it: the test errors with its
    reason and the variable named, exit 1. Either way before its fixtures are made."""
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path)
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ALL}
    if required:
        env[REQUIRE_ALL] = "1"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                          str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert "a fixture of a test that cannot run was made" not in run.stdout
    if required:
        assert run.returncode == 1, run.stdout
        assert f"needs a unicorn; {REQUIRE_ALL}=1 requires this test to run" in run.stdout
        assert "1 passed, 1 error" in run.stdout
    else:
        assert run.returncode == 0, run.stdout
        assert "SKIPPED" in run.stdout and "needs a unicorn" in run.stdout
        assert "1 passed, 1 skipped" in run.stdout


def test_ci_requires_every_test():
    """The CI script runs the tests with the variable set."""
    script = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert f"export {REQUIRE_ALL}=1" in script
