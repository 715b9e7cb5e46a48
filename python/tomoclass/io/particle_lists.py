"""Particle lists in any supported format, chosen by the file extension.

``.xml``: PyTom particle list (:mod:`tomoclass.io.pytom_xml`), ``.star``: RELION
(:mod:`tomoclass.io.star`), ``.tbl``: Dynamo table (:mod:`tomoclass.io.dynamo`).
Writers build the whole file in memory and replace the destination atomically, so a failed
write leaves any existing file untouched. ``pixel_size`` (Å per voxel) only matters for STAR,
whose shifts are in Å.
"""

from __future__ import annotations

import os
from pathlib import Path

from tomoclass.errors import TomoclassError
from tomoclass.io.dynamo import read_tbl, write_tbl
from tomoclass.io.files import PathLike
from tomoclass.io.pytom_xml import read_pytom_xml, write_pytom_xml
from tomoclass.io.star import read_star, write_star
from tomoclass.particles import ParticleList

FORMATS = (".xml", ".star", ".tbl")


def _format(path: PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise TomoclassError(
            f"{os.fspath(path)}: unknown particle-list format {suffix or '(no extension)'!r}; "
            "use .xml (PyTom), .star (RELION) or .tbl (Dynamo)"
        )
    return suffix


def read_particle_list(path: PathLike, *, pixel_size: float | None = None) -> ParticleList:
    """Read a particle list; the format follows the extension (.xml, .star, .tbl)."""
    kind = _format(path)
    if kind == ".xml":
        return read_pytom_xml(path)
    if kind == ".star":
        return read_star(path, pixel_size=pixel_size)
    return read_tbl(path)


def write_particle_list(
    plist: ParticleList, path: PathLike, *, pixel_size: float | None = None
) -> None:
    """Write a particle list atomically; the format follows the extension (.xml, .star, .tbl)."""
    kind = _format(path)
    if kind == ".xml":
        write_pytom_xml(plist, path)
    elif kind == ".star":
        write_star(plist, path, pixel_size=pixel_size)
    else:
        write_tbl(plist, path)


def convert_particle_list(src: PathLike, dst: PathLike, *, pixel_size: float | None = None) -> None:
    """Read ``src`` and write it as ``dst`` (formats by extension).

    ``pixel_size`` (Å/voxel) is used for a STAR source or destination; when neither file
    says it, shifts convert at 1 Å per voxel.
    """
    _format(dst)  # refuse an unknown destination before reading anything
    write_particle_list(read_particle_list(src, pixel_size=pixel_size), dst, pixel_size=pixel_size)
