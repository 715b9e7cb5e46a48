"""Shared fixtures (small, seeded volumes with structure in every direction) and the helpers
that compare tomoclass's XML with the files PyTom wrote."""

from __future__ import annotations

import importlib.util
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

PYTOM_FILES = Path(__file__).resolve().parents[2] / "shared" / "pytom-files"
"""Real files PyTom ships and wrote (its README says what each is)."""

REQUIRE_ALL = "TOMOCLASS_REQUIRE_ALL"
"""Set to 1 (CI does): a test that cannot run here fails instead of being skipped."""

HAVE_MPI = shutil.which("mpiexec") is not None and importlib.util.find_spec("mpi4py") is not None
MPI_REASON = "needs mpiexec on PATH and mpi4py (pip install mpich mpi4py)"


def needs(available: bool, reason: str) -> pytest.MarkDecorator:
    """Mark a test that needs something this machine may lack (``reason`` says what): it is
    skipped without it, but fails with ``TOMOCLASS_REQUIRE_ALL=1``, so that CI cannot pass
    without running it."""
    return pytest.mark.needs(available, reason)


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "needs(available, reason): skip, or fail under TOMOCLASS_REQUIRE_ALL=1"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Skip or fail a test marked :func:`needs` whose requirement is missing (before any of
    its fixtures are made)."""
    for mark in item.iter_markers("needs"):
        available, reason = mark.args
        if available:
            continue
        if os.environ.get(REQUIRE_ALL) == "1":
            pytest.fail(f"{reason}; {REQUIRE_ALL}=1 requires this test to run, not to be skipped",
                        pytrace=False)  # fmt: skip
        pytest.skip(reason)


def asymmetric_phantom(n: int) -> np.ndarray:
    """A smooth, chiral blob set off-centre: no rotation maps it onto itself."""
    c = n // 2
    z, y, x = np.indices((n, n, n), dtype=np.float64) - c
    body = np.exp(-((x - 1) ** 2 / 18 + y**2 / 8 + (z + 1) ** 2 / 12))
    arm = 0.7 * np.exp(-((x - 4) ** 2 + (y - 3) ** 2 + (z - 2) ** 2) / 4)
    knob = 0.4 * np.exp(-((x + 2) ** 2 + (y + 4) ** 2 + (z - 3) ** 2) / 3)
    return (body + arm + knob).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)


@pytest.fixture
def phantom() -> np.ndarray:
    return asymmetric_phantom(24)


def canonical(text: str) -> str:
    """C14N form without whitespace-only text and without comments."""
    return ET.canonicalize(xml_data=text, strip_text=True)


def as_pytom_writes(text: str) -> str:
    """tomoclass's output in PyTom's bytes: tomoclass drops the comment before the root,
    writes ``" />"`` for ``"/>"`` (ElementTree) and ends with a newline."""
    return text.replace(" />", "/>").removesuffix("\n")


def pytom_bytes(path: Path) -> str:
    """PyTom's file without the ``<!-- PyTom Version -->`` line tomoclass does not keep."""
    first, rest = path.read_text().split("\n", 1)
    assert first == "<!-- PyTom Version: 1.0 -->"
    return rest
