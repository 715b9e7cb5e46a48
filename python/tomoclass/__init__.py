"""tomoclass: classification of aligned subtomograms, PyTom-compatible, with a Rust core."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from tomoclass.errors import TomoclassError
from tomoclass.geometry import Rotation, Shift, rotation_matrix

try:
    __version__ = version("tomoclass")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["Rotation", "Shift", "TomoclassError", "__version__", "rotation_matrix"]
