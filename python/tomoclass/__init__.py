"""tomoclass: classification of aligned subtomograms, PyTom-compatible, with a Rust core.

Conventions (PyTom's): volumes are float32 ``[z, y, x]``; coordinates and shifts ``(x, y, z)``
in voxels; rotations ZXZ in degrees, ``R = Rz(Z2)·Rx(X)·Rz(Z1)``, about voxel ``n // 2``;
frequencies in Fourier voxels of the (binned) box.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from tomoclass.average import class_averages
from tomoclass.ccc import correlation_matrix
from tomoclass.classify import classify
from tomoclass.cpca import cpca
from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.features import ParticleStack, Preprocessing
from tomoclass.fourier import band_mask, bin_volume, irfftn, rfftn
from tomoclass.geometry import PointSymmetry, Rotation, Shift, rotation_matrix
from tomoclass.io import (
    convert_particle_list,
    read_particle_list,
    read_volume,
    write_particle_list,
    write_volume,
)
from tomoclass.mask import spherical_mask
from tomoclass.mco import mco_ac, mco_exmx
from tomoclass.metrics import adjusted_rand_index
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation
from tomoclass.transform import align, forward
from tomoclass.wedge import (
    DoubleTiltWedge,
    SingleTiltWedge,
    TiltSeries,
    WeightVolume,
    tilt_range_wedge,
    weights,
)

average = class_averages
"""``tomoclass.average(particles, …)``: the wedge-weighted average of every class."""

try:
    __version__ = version("tomoclass")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "DoubleTiltWedge",
    "Particle",
    "ParticleList",
    "ParticleStack",
    "PickPosition",
    "PointSymmetry",
    "Preprocessing",
    "Rotation",
    "Shift",
    "SimulationConfig",
    "SingleTiltWedge",
    "TiltSeries",
    "TomoclassError",
    "TomoclassWarning",
    "WeightVolume",
    "__version__",
    "adjusted_rand_index",
    "align",
    "average",
    "band_mask",
    "bin_volume",
    "class_averages",
    "classify",
    "convert_particle_list",
    "correlation_matrix",
    "cpca",
    "forward",
    "irfftn",
    "mco_ac",
    "mco_exmx",
    "read_particle_list",
    "read_volume",
    "rfftn",
    "rotation_matrix",
    "simulate_particles",
    "spherical_mask",
    "tilt_range_wedge",
    "weights",
    "write_particle_list",
    "write_simulation",
    "write_volume",
]
