"""File input and output: volumes (EM, MRC) and particle lists."""

from __future__ import annotations

from tomoclass.io.em import EMHeader, read_em, read_em_header, write_em
from tomoclass.io.particle_lists import (
    convert_particle_list,
    read_particle_list,
    write_particle_list,
)
from tomoclass.io.volumes import (
    check_finite,
    read_volume,
    read_voxel_size,
    volume_shape,
    write_volume,
)

__all__ = [
    "EMHeader",
    "check_finite",
    "convert_particle_list",
    "read_em",
    "read_em_header",
    "read_particle_list",
    "read_volume",
    "read_voxel_size",
    "volume_shape",
    "write_em",
    "write_particle_list",
    "write_volume",
]
