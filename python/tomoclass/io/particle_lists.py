"""Particle lists in any supported format, chosen by the file extension, and where each
particle's missing wedge comes from when the list does not say.

``.xml``: PyTom particle list (:mod:`tomoclass.io.pytom_xml`), ``.star``: RELION
(:mod:`tomoclass.io.star`) or a STOPGAP motive list (:mod:`tomoclass.io.stopgap`, told by
its ``data_stopgap_motivelist`` block), ``.tbl``: Dynamo table (:mod:`tomoclass.io.dynamo`).
Writers build the whole file in memory and replace the destination atomically, so a failed
write leaves any existing file untouched. ``pixel_size`` (Å per voxel) only matters for STAR,
whose shifts are in Å.

Particles the list gives no sampling are given one, in this order, by:
``tomograms`` (a RELION 4/5 ``tomograms.star``: the tilt series of the particle's tomogram),
``wedge_list`` (a STOPGAP wedge list: the tilt series of the particle's tomogram number) and
``tilt_range`` (one tilt range for all). Particles the list does give a sampling keep it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.io.dynamo import ParticleFiles, read_tbl, warn_particles_away, write_tbl
from tomoclass.io.files import PathLike
from tomoclass.io.pytom_xml import read_pytom_xml, write_pytom_xml
from tomoclass.particles import Particle, ParticleList
from tomoclass.wedge import TiltSeries, Wedge, tilt_range_wedge

FORMATS = (".xml", ".star", ".tbl")


def _format(path: PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise TomoclassError(
            f"{os.fspath(path)}: unknown particle-list format {suffix or '(no extension)'!r}; "
            "use .xml (PyTom), .star (RELION or STOPGAP) or .tbl (Dynamo)"
        )
    return suffix


def read_particle_list(
    path: PathLike,
    *,
    pixel_size: float | None = None,
    tomograms: PathLike | None = None,
    wedge_list: PathLike | None = None,
    tilt_range: tuple[float, float] | None = None,
    subtomo_name: str | None = None,
) -> ParticleList:
    """Read a particle list; the format follows the extension (.xml, .star, .tbl).

    ``tomograms``, ``wedge_list`` and ``tilt_range`` give particles without a sampling one
    (see the module docstring); ``subtomo_name`` is the subtomogram name prefix of a STOPGAP
    motive list (relative to its folder; by default found in ``subtomograms/``).
    """
    kind = _format(path)
    if kind == ".xml":
        plist = read_pytom_xml(path)
    elif kind == ".tbl":
        plist = read_tbl(path)
    else:
        plist, tomograms = _read_star_list(path, pixel_size, tomograms, subtomo_name)
    return fill_sampling(plist, tomograms=tomograms, wedge_list=wedge_list, tilt_range=tilt_range)


def _read_star_list(
    path: PathLike, pixel_size: float | None, tomograms: PathLike | None, subtomo_name: str | None
) -> tuple[ParticleList, PathLike | None]:
    """A RELION or STOPGAP STAR list, and the ``tomograms`` still to apply (None once used).
    Their readers import pandas (half a second), so only STAR lists pay for it."""
    from tomoclass.io.star import read_star
    from tomoclass.io.stopgap import is_stopgap_motl, read_stopgap_motl
    from tomoclass.io.tomograms import read_tomograms_star

    if is_stopgap_motl(path):
        plist = read_stopgap_motl(path, subtomo_name=subtomo_name)
    elif tomograms is None:
        plist = read_star(path, pixel_size=pixel_size)
    else:  # attached with each particle's pixel size from the STAR file
        plist = read_star(path, pixel_size=pixel_size, tomograms=read_tomograms_star(tomograms))
        if not any(isinstance(w, TiltSeries) for w in plist.wedges()):
            _unused(tomograms, len(plist))
        tomograms = None
    return plist, tomograms


def fill_sampling(
    plist: ParticleList,
    *,
    tomograms: PathLike | None = None,
    wedge_list: PathLike | None = None,
    tilt_range: tuple[float, float] | None = None,
) -> ParticleList:
    """``plist`` with each particle that has no sampling given one by ``tomograms``,
    ``wedge_list`` or ``tilt_range``, in that order (see the module docstring)."""
    if tomograms is not None:
        from tomoclass.io.star import lookup_tomogram
        from tomoclass.io.tomograms import read_tomograms_star

        series = read_tomograms_star(tomograms)
        plist = _fill(plist, tomograms, lambda p: lookup_tomogram(series, tomogram_of(p)))
    if wedge_list is not None:
        from tomoclass.io.stopgap import read_wedge_list

        by_number = read_wedge_list(wedge_list)
        plist = _fill(plist, wedge_list, lambda p: by_number.get(tomogram_of(p)))
    if tilt_range is not None:
        wedge = tilt_range_wedge(*tilt_range)
        if any(w is None for w in plist.wedges()):
            _warn_tilt_sign(*tilt_range)
        plist = _fill(plist, "--tilt-range", lambda p: wedge)
    return plist


def _warn_tilt_sign(lo: float, hi: float) -> None:
    """One warning line for an asymmetric tilt range: programs disagree on the sign of a
    tilt (PyTom's reconstruction is RELION's mirrored), and a wedge on the wrong side
    would show in nothing but the classes."""
    if lo == -hi:
        return
    warnings.warn(
        f"--tilt-range {lo:g}:{hi:g} is asymmetric and read with RELION's tilt sign; for a "
        f"tomogram PyTom reconstructed (its tilt sign is the opposite) give --tilt-range "
        f"{-hi:g}:{-lo:g}",
        TomoclassWarning,
        stacklevel=4,
    )


def tomogram_of(p: Particle) -> str:
    """The tomogram a particle comes from: its pick position's origin (PyTom, STOPGAP and
    Dynamo's tomogram number), else its STAR row's ``rlnTomoName`` or ``rlnMicrographName``."""
    if p.pick_position is not None and p.pick_position.origin:
        return p.pick_position.origin
    row = p._source if isinstance(p._source, Mapping) else {}
    for column in ("rlnTomoName", "rlnMicrographName"):
        if row.get(column):
            return str(row[column])
    return ""


def _fill(plist: ParticleList, source, choose: Callable[[Particle], Wedge | None]) -> ParticleList:
    """Give each particle without a sampling ``choose(particle)``; an error names the first
    particle ``source`` has nothing for."""
    wedges = plist.wedges()
    if all(w is not None for w in wedges):
        _unused(source, len(plist))
        return plist
    filled = []
    for i, (p, wedge) in enumerate(zip(plist, wedges, strict=True)):
        if wedge is None:
            wedge = choose(p)
            if wedge is None:
                raise TomoclassError(
                    f"{os.fspath(source)}: no tilt series for particle {i} "
                    f"(tomogram {tomogram_of(p)!r}, {p.filename})"
                )
        filled.append(wedge)
    return plist.with_wedges(filled)


def _unused(source, count: int) -> None:
    warnings.warn(
        f"{os.fspath(source)}: not used: all {count} particles already carry their sampling",
        TomoclassWarning,
        stacklevel=4,
    )


def _destination(path: PathLike, particle_files: ParticleFiles | None) -> str:
    """The format of the list ``path`` will be written in; an error for an unknown one, or
    for ``particle_files`` with anything but a Dynamo table."""
    kind = _format(path)
    if particle_files is not None and kind != ".tbl":
        raise TomoclassError(
            f"{os.fspath(path)}: only a Dynamo table (.tbl) keeps its particles beside it "
            "(--link-particles, --copy-particles)"
        )
    return kind


def write_particle_list(
    plist: ParticleList,
    path: PathLike,
    *,
    pixel_size: float | None = None,
    columns: Mapping[str, Sequence] | None = None,
    particle_files: ParticleFiles | None = None,
) -> None:
    """Write a particle list atomically; the format follows the extension (.xml, .star, .tbl).

    ``columns`` (name → one value per particle) are added to a STAR file; the other formats
    have no place for them. ``particle_files`` (``"link"`` or ``"copy"``, Dynamo tables
    only) puts the particles beside the table, where Dynamo reads them (:func:`write_tbl`)."""
    kind = _destination(path, particle_files)
    if kind == ".xml":
        write_pytom_xml(plist, path)
    elif kind == ".star":
        from tomoclass.io.star import write_star

        write_star(plist, path, pixel_size=pixel_size, columns=columns)
    else:
        write_tbl(plist, path, particle_files=particle_files)


def convert_particle_list(
    src: PathLike,
    dst: PathLike,
    *,
    pixel_size: float | None = None,
    particle_files: ParticleFiles | None = None,
    **sampling,
) -> None:
    """Read ``src`` and write it as ``dst`` (formats by extension).

    ``pixel_size`` (Å/voxel) is used for a STAR source or destination; when neither file
    says it, shifts convert at 1 Å per voxel. ``particle_files``: for a Dynamo table
    ``dst``, link or copy the particles beside it (:func:`write_particle_list`); without it,
    one warning if they are not there.
    ``sampling``: the options of :func:`read_particle_list` that give particles their
    missing wedge.
    """
    kind = _destination(dst, particle_files)  # refuse a wrong one before reading anything
    plist = read_particle_list(src, pixel_size=pixel_size, **sampling)
    if len(plist) == 0:
        raise TomoclassError(f"{os.fspath(src)}: the particle list is empty")
    write_particle_list(plist, dst, pixel_size=pixel_size, particle_files=particle_files)
    if kind == ".tbl" and particle_files is None:
        warn_particles_away(plist, dst)
