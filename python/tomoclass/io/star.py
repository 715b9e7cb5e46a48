"""RELION STAR particle lists (RELION 3.0/Warp single block; RELION 4/5 with optics groups and
``data_general``), read and written via ``starfile``.

Columns read (particles block; ``data_particles``, or the file's only block):

* ``rlnImageName``: the subtomogram file (required). Relative names are RELION project
  paths: they are resolved against the STAR file's folder if the first one exists there,
  else against the nearest parent folder where it exists (the RELION project), else the
  STAR file's folder. ``rlnCtfImage`` names are resolved against the same folder.
* ``rlnCoordinateX/Y/Z`` (pixels) and ``rlnTomoName`` (or ``rlnMicrographName``): the pick
  position. RELION 5's ``rlnCenteredCoordinateX/Y/ZAngst`` cannot become a pick position
  without the tomogram's size: they are accepted, kept, and written back unchanged.
* ``rlnAngleRot/Tilt/Psi``: the rotation (missing angles are 0, as in RELION).
* ``rlnOriginX/Y/ZAngst`` (Å), or RELION 3.0's ``rlnOriginX/Y/Z`` (pixels): the shift.
* ``rlnClassNumber``: the class, in RELION's numbering (classes count from 1); a
  ``tomoclassClassName`` column, when present, holds tomoclass's own class names.
  ``rlnLCCmax`` (pytom-match-pick): the score.
* ``rlnCtfImage``: the particle's 3-D CTF or weights (:class:`~tomoclass.wedge.WeightVolume`;
  layouts in :mod:`tomoclass.io.weights`). The optics group's
  ``rlnCtfDataAreCtfPremultiplied`` 1 (RELION 4/5 pseudo-subtomograms, 3dem/relion
  ``src/jaz/tomography/programs/subtomo.cpp`` 415-421) says the data were multiplied by the
  CTF and the file holds the sum of CTF²; otherwise (Warp, RELION 3.0) the file holds the CTF
  the data carry. ``rlnCtfMaxResolution`` is kept for PyTom.
* ``tomoclassWedge`` and ``tomoclassTiltSeries`` (with the block ``data_tomoclass_tilt_series``):
  the analytic wedges and tilt series tomoclass writes for lists that came with them (see
  :func:`wedge_spec`), so that XML → STAR → XML loses no wedge. RELION ignores these.
* ``rlnTomoSubtomogramRot/Tilt/Psi`` (RELION 5 pre-rotation): accepted only if it is the
  identity. RELION 5 extracts such subtomograms already rotated by it, so the volume on disk
  is turned by ``A_subtomogram`` away from the tomogram frame; no single PyTom rotation can
  then both align the volume and orient its missing wedge. Re-extract without pre-rotation.

Refused with one clear error: RELION 5's 2-D tilt-series stacks (``data_general``
``rlnTomoSubTomosAre2DStacks 1``, ``*_stack2d.mrcs``; ``subtomo.cpp`` 283 and 830-834:
extract 3-D pseudo-subtomograms instead) and 2-D single-particle images
(``rlnImageDimensionality 2``, or image names ``N@stack.mrcs``).

Angles: RELION's ``Euler_angles2matrix(rot, tilt, psi)`` (``src/euler.cpp``) gives the matrix
``A = Rz(−psi)·Ry(−tilt)·Rz(−rot)`` (right-handed ``R``), and RELION maps a point ``r`` of the
reference (relative to its centre) to ``A·r − origin`` in the particle (``src/projector.cpp``
samples the reference at ``Aᵀ·p``; ``src/jaz/tomography/particle_set.cpp`` 355-368 places a
particle at ``coordinate − origin / pixel size``). PyTom maps it to ``R·r + shift``. Hence
``R = A`` and ``shift = −origin / pixel_size``. (PyTom's own ``star2pl``/``pl2star`` use
``+origin``, ``pytom/basic/files.py`` 1238-1244 and 1191-1194: the opposite of RELION's.)

Pixel size (Å per subtomogram voxel) for origins in Å and tilt series: the ``pixel_size``
argument, else the particle's ``rlnPixelSize`` (Warp, RELION 3.0), else
``rlnDetectorPixelSize · 10⁴ / rlnMagnification`` (RELION 3.0), else the optics group's
``rlnImagePixelSize``, else ``rlnTomoTiltSeriesPixelSize`` times ``rlnTomoSubtomogramBinning``
(if given), else 1.0 Å (then Å equal voxels, with a warning if any origin is not 0).
Columns tomoclass does not use, and the optics and general blocks, are kept and written back.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import starfile
from scipy.spatial.transform import Rotation as ScipyRotation

from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.geometry import Rotation, Shift
from tomoclass.io.files import PathLike, atomic_output, is_file, read_star_blocks
from tomoclass.io.volumes import common_voxel_size
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.wedge import DoubleTiltWedge, SingleTiltWedge, TiltSeries, Wedge, WeightVolume

ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
PRE_ROTATION = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
COORDINATES = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
ORIGINS_ANGST = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
ORIGINS_PIXEL = ("rlnOriginX", "rlnOriginY", "rlnOriginZ")
CLASS_NAME = "tomoclassClassName"
WEDGE = "tomoclassWedge"
TILT_SERIES = "tomoclassTiltSeries"
TILT_BLOCK = "tomoclass_tilt_series"
"""The block of the tilt series that particles' ``tomoclassTiltSeries`` name (one row a tilt)."""
_TILT_COLUMNS = {
    "angles": "tomoclassTiltAngle", "x_tilts": "tomoclassTiltXAngle",
    "exposure": "tomoclassExposure", "defocus": "tomoclassDefocus",
    "scale": "tomoclassScale", "bfactor": "tomoclassBfactor",
}  # fmt: skip
_TILT_GLOBALS = {
    "voltage": "rlnVoltage", "cs": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast", "pixel_size": "tomoclassPixelSize",
}  # fmt: skip
_MODELLED = frozenset(
    {"rlnImageName", "rlnClassNumber", "rlnLCCmax", "rlnCtfImage", CLASS_NAME, WEDGE,
     TILT_SERIES}.union(ANGLES, PRE_ROTATION, COORDINATES, ORIGINS_ANGST, ORIGINS_PIXEL)
)  # fmt: skip
"""Columns whose content lives in Particle fields (rewritten, never copied, on output)."""
_TEXT_COLUMNS = ["rlnImageName", "rlnTomoName", "rlnMicrographName", "rlnTomoParticleName",
                 "rlnCtfImage", CLASS_NAME, WEDGE, TILT_SERIES]  # fmt: skip


# ------------------------------------------------------------------------------ angles


def relion_to_rotations(angles: np.ndarray) -> np.ndarray:
    """PyTom ``(z1, z2, x)`` for RELION ``(rot, tilt, psi)`` rows, degrees; ``R = A``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: the matrix is still exact
        a_transposed = ScipyRotation.from_euler("ZYZ", np.reshape(angles, (-1, 3)), degrees=True)
        z1, x, z2 = a_transposed.inv().as_euler("zxz", degrees=True).T
    return np.column_stack([z1, z2, x])


def rotations_to_relion(rotations: np.ndarray) -> np.ndarray:
    """RELION ``(rot, tilt, psi)`` rows (tilt in 0..180) for PyTom ``(z1, z2, x)`` rows."""
    z1, z2, x = np.reshape(rotations, (-1, 3)).T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        r = ScipyRotation.from_euler("zxz", np.column_stack([z1, x, z2]), degrees=True)
        return r.inv().as_euler("ZYZ", degrees=True)


def relion_rotation(rot: float, tilt: float, psi: float) -> Rotation:
    """The PyTom rotation of one RELION Euler triple (degrees)."""
    z1, z2, x = relion_to_rotations(np.array([rot, tilt, psi]))[0]
    return Rotation(float(z1), float(z2), float(x))


# ------------------------------------------------------------------------------ reading


def read_star(
    path: PathLike,
    *,
    pixel_size: float | None = None,
    directory: PathLike | None = None,
    tomograms: Mapping[str, TiltSeries] | None = None,
) -> ParticleList:
    """Read a RELION particles STAR file (see the module docstring for columns and units).

    ``pixel_size`` (Å/voxel) overrides the file's for converting origins to voxels;
    ``directory`` overrides the folder relative image names are resolved against.
    ``tomograms`` (tilt series by tomogram name, e.g. from a RELION ``tomograms.star``) gives
    each particle without ``rlnCtfImage`` the tilt series of its ``rlnTomoName`` (or
    ``rlnMicrographName``), with the particle's pixel size.
    """
    name = os.fspath(path)
    blocks = _blocks(name)
    particles, optics = blocks["particles"], blocks.get("optics")
    _check_subtomograms(name, particles, optics, blocks.get("general"))
    _check_no_pre_rotation(name, particles)
    pixels = _pixel_sizes(name, particles, optics, pixel_size)
    rotations = relion_to_rotations(_columns(name, particles, ANGLES, default=0.0))
    shifts = _shifts(name, particles, pixels)
    picks = _pick_positions(name, particles)
    classes = _classes(name, particles)
    wedges = _wedges(name, particles, optics, blocks.get(TILT_BLOCK))
    if tomograms is not None:
        wedges = _attach_tomograms(name, particles, wedges, tomograms, pixels, optics)
    scores = _columns(name, particles, ("rlnLCCmax",)) if "rlnLCCmax" in particles else None
    result = []
    for i, row in enumerate(particles.to_dict("records")):
        result.append(
            Particle(
                filename=str(row["rlnImageName"]),
                rotation=Rotation(*(float(v) for v in rotations[i])),
                shift=Shift(*(float(v) for v in shifts[i])),
                pick_position=picks[i],
                wedge=wedges[i],
                score=None if scores is None else float(scores[i, 0]),
                class_name=classes[i],
                _source=row,
            )
        )
    folder = Path(directory) if directory is not None else _image_folder(Path(name), result)
    kept = {key: blocks[key] for key in ("optics", "general") if key in blocks}
    return ParticleList(result, folder, kept)


def _blocks(name: str) -> dict[str, Any]:
    """The STAR file's blocks by name, the particles block as ``"particles"``."""
    blocks = read_star_blocks(name, _TEXT_COLUMNS)
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    candidates = {k: v for k, v in tables.items() if k not in ("optics", "general", TILT_BLOCK)}
    if "particles" in tables:
        particles = tables["particles"]
    elif len(candidates) == 1:
        particles = next(iter(candidates.values()))
    else:
        raise TomoclassError(f"{name}: no data_particles block in this STAR file")
    if "rlnImageName" not in particles:
        raise TomoclassError(f"{name}: no rlnImageName column (tomoclass needs subtomograms)")
    found = {"particles": particles.reset_index(drop=True)}
    for key in ("optics", TILT_BLOCK):
        if key in tables:
            found[key] = tables[key]
    if "general" in blocks:
        found["general"] = blocks["general"]
    return found


def _check_subtomograms(name: str, particles: pd.DataFrame, optics, general) -> None:
    """Refuse 2-D tilt-series stacks and 2-D particle images with one clear error."""
    stacks = general.get("rlnTomoSubTomosAre2DStacks") if isinstance(general, dict) else None
    images = [str(v) for v in particles["rlnImageName"].tolist()]
    if str(stacks) == "1" or any(v.endswith("_stack2d.mrcs") for v in images):
        raise TomoclassError(
            f"{name}: RELION 2-D tilt-series stacks (rlnTomoSubTomosAre2DStacks 1) are not "
            "subtomograms; extract 3-D pseudo-subtomograms (relion_tomo_subtomo without "
            "--stack2d) and classify those"
        )
    dimensions = set()
    if optics is not None and "rlnImageDimensionality" in optics:
        dimensions = set(pd.to_numeric(optics["rlnImageDimensionality"], errors="coerce"))
    if 2 in dimensions or any("@" in v for v in images):
        raise TomoclassError(
            f"{name}: 2-D particle images (rlnImageDimensionality 2 or N@stack names), not "
            "subtomograms; tomoclass classifies 3-D subtomograms"
        )


def _columns(
    name: str,
    table: pd.DataFrame,
    columns: tuple[str, ...],
    default: float | None = None,
    item: str = "particle",
) -> np.ndarray:
    """``(N, k)`` float64 values of ``columns``; missing ones are ``default`` (None: required).
    An error names the ``item`` by the table's index (the row in its block)."""
    out = np.empty((len(table), len(columns)))
    for j, column in enumerate(columns):
        if column not in table:
            if default is None:
                raise TomoclassError(f"{name}: no {column} column")
            out[:, j] = default
            continue
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise TomoclassError(
                f"{name}: {item} {table.index[bad[0]]}: {column} = "
                f"{table[column].iloc[bad[0]]!r} is not a finite number"
            )
        out[:, j] = values
    return out


def _check_no_pre_rotation(name: str, table: pd.DataFrame) -> None:
    """Reject RELION 5 subtomogram pre-rotations other than the identity."""
    if not any(column in table for column in PRE_ROTATION):
        return
    angles = _columns(name, table, PRE_ROTATION, default=0.0)
    matrices = ScipyRotation.from_euler("ZYZ", angles, degrees=True).as_matrix()
    bad = np.flatnonzero(np.abs(matrices - np.eye(3)).max(axis=(1, 2)) > 1e-6)
    if bad.size:
        raise TomoclassError(
            f"{name}: particle {bad[0]} has a subtomogram pre-rotation "
            "(rlnTomoSubtomogramRot/Tilt/Psi); tomoclass needs subtomograms in the "
            "tomogram's orientation: re-extract them without pre-rotation"
        )


def _pixel_sizes(
    name: str, table: pd.DataFrame, optics: pd.DataFrame | None, override: float | None
) -> np.ndarray:
    """Å per subtomogram voxel for each particle row (see the module docstring)."""
    if override is not None:
        if not (math.isfinite(override) and override > 0):
            raise TomoclassError(f"pixel_size must be a positive number, got {override}")
        return np.full(len(table), float(override))
    if "rlnPixelSize" in table:
        return _positive(name, _columns(name, table, ("rlnPixelSize",))[:, 0], "rlnPixelSize")
    if "rlnDetectorPixelSize" in table and "rlnMagnification" in table:
        detector, magnification = _columns(
            name, table, ("rlnDetectorPixelSize", "rlnMagnification")
        ).T
        sizes = detector * 1e4 / np.where(magnification > 0, magnification, np.nan)
        return _positive(name, sizes, "rlnDetectorPixelSize·10⁴/rlnMagnification")
    groups = _group_pixel_sizes(name, optics)
    if not groups:
        if any(c in table for c in ORIGINS_ANGST) and np.any(
            _columns(name, table, ORIGINS_ANGST, default=0.0)
        ):
            warnings.warn(
                f"{name}: no pixel size in the file, origins in Å are read as voxels of 1 Å; "
                "give the pixel size (--pixel-size)",
                TomoclassWarning,
                stacklevel=4,
            )
        return np.ones(len(table))
    if "rlnOpticsGroup" not in table:
        return np.full(len(table), next(iter(groups.values())))
    sizes = []
    for i, group in enumerate(table["rlnOpticsGroup"].tolist()):
        if group not in groups:
            raise TomoclassError(f"{name}: particle {i}: optics group {group!r} is not defined")
        sizes.append(groups[group])
    return np.array(sizes, dtype=np.float64)


def _positive(name: str, sizes: np.ndarray, what: str) -> np.ndarray:
    bad = np.flatnonzero(~(sizes > 0))
    if bad.size:
        raise TomoclassError(f"{name}: particle {bad[0]}: pixel size {what} is not > 0")
    return sizes


def _group_pixel_sizes(name: str, optics: pd.DataFrame | None) -> dict[Any, float]:
    """Optics group number → subtomogram pixel size in Å (empty if the block has none)."""
    if optics is None or "rlnOpticsGroup" not in optics:
        return {}
    if "rlnImagePixelSize" in optics:
        sizes = _columns(name, optics, ("rlnImagePixelSize",))[:, 0]
    elif "rlnTomoTiltSeriesPixelSize" in optics:
        sizes = _columns(name, optics, ("rlnTomoTiltSeriesPixelSize",))[:, 0]
        sizes = sizes * _columns(name, optics, ("rlnTomoSubtomogramBinning",), default=1.0)[:, 0]
    else:
        return {}
    if np.any(sizes <= 0):
        raise TomoclassError(f"{name}: optics block has a pixel size <= 0")
    return dict(zip(optics["rlnOpticsGroup"].tolist(), sizes.tolist(), strict=True))


def _shifts(name: str, table: pd.DataFrame, pixels: np.ndarray) -> np.ndarray:
    """PyTom shifts (voxels): ``−origin``, origins in Å divided by the pixel size."""
    if any(column in table for column in ORIGINS_ANGST):
        return 0.0 - _columns(name, table, ORIGINS_ANGST, default=0.0) / pixels[:, None]
    return 0.0 - _columns(name, table, ORIGINS_PIXEL, default=0.0)


def _pick_positions(name: str, table: pd.DataFrame) -> list[PickPosition | None]:
    if not all(column in table for column in COORDINATES):
        return [None] * len(table)
    xyz = _columns(name, table, COORDINATES)
    origins = _tomogram_names(table)
    return [PickPosition(*map(float, p), origin=o) for p, o in zip(xyz, origins, strict=True)]


def _tomogram_names(table: pd.DataFrame) -> list[str]:
    """Each row's tomogram: ``rlnTomoName``, else ``rlnMicrographName`` (Warp), else ''."""
    column = next((c for c in ("rlnTomoName", "rlnMicrographName") if c in table), None)
    return [""] * len(table) if column is None else [str(v) for v in table[column].tolist()]


def _classes(name: str, table: pd.DataFrame) -> list[str | None]:
    """tomoclass's class names if the file keeps them, else RELION's class numbers."""
    if "rlnClassNumber" not in table:
        return [None] * len(table)
    numbers = _columns(name, table, ("rlnClassNumber",))[:, 0]
    relion = [str(int(v)) if v.is_integer() else repr(float(v)) for v in numbers]
    if CLASS_NAME not in table:
        return relion
    kept = table[CLASS_NAME].tolist()
    return [None if _blank(k) else str(k) for k in kept]


def _blank(value: Any) -> bool:
    """An empty cell: missing, NaN, '' or the ``None`` tomoclass writes."""
    return (
        value is None or (isinstance(value, float) and math.isnan(value)) or value in ("", "None")
    )


def _wedges(name: str, table: pd.DataFrame, optics, tilt_block) -> list[Wedge | None]:
    """Each row's sampling: ``rlnCtfImage``, else tomoclass's wedge or tilt-series columns."""
    wedges: list[Wedge | None] = [None] * len(table)
    if "rlnCtfImage" in table:
        premultiplied = _premultiplied(name, table, optics)
        paths = table["rlnCtfImage"].tolist()
        rows = [i for i, path in enumerate(paths) if not _blank(path)]
        limits = [None] * len(table)
        if "rlnCtfMaxResolution" in table:  # blank in rows without a CTF volume
            given = _columns(name, table.iloc[rows], ("rlnCtfMaxResolution",))[:, 0]
            for i, value in zip(rows, given, strict=True):
                limits[i] = float(value)
        for i in rows:
            wedges[i] = WeightVolume(str(paths[i]), bool(premultiplied[i]), "ctf", limits[i])
    if WEDGE in table:
        for i, spec in enumerate(table[WEDGE].tolist()):
            if wedges[i] is None and not _blank(spec):
                try:
                    wedges[i] = parse_wedge_spec(str(spec))
                except (TomoclassError, ValueError) as err:
                    raise TomoclassError(f"{name}: particle {i}: {WEDGE}: {err}") from None
    if TILT_SERIES in table:
        series = _tilt_series_block(name, tilt_block)
        for i, key in enumerate(table[TILT_SERIES].tolist()):
            if wedges[i] is None and not _blank(key):
                if str(key) not in series:
                    raise TomoclassError(
                        f"{name}: particle {i}: tilt series {key!r} is not in data_{TILT_BLOCK}"
                    )
                wedges[i] = series[str(key)]
    return wedges


def _premultiplied(name: str, table: pd.DataFrame, optics) -> np.ndarray:
    """Per row: whether its optics group says the data are CTF-premultiplied."""
    column = "rlnCtfDataAreCtfPremultiplied"
    if optics is None or column not in optics:
        return np.zeros(len(table), bool)
    group_ids = optics["rlnOpticsGroup"].tolist() if "rlnOpticsGroup" in optics else [1]
    values = (_columns(name, optics, (column,))[:, 0] == 1).tolist()
    flags = dict(zip(group_ids, values, strict=False))
    groups = table["rlnOpticsGroup"].tolist() if "rlnOpticsGroup" in table else None
    if groups is None:
        return np.full(len(table), next(iter(flags.values())))
    return np.array([flags.get(g, False) for g in groups])


def _tilt_series_block(name: str, block) -> dict[str, TiltSeries]:
    """The tilt series of tomoclass's ``data_tomoclass_tilt_series`` block by key."""
    if not isinstance(block, pd.DataFrame) or TILT_SERIES not in block:
        raise TomoclassError(f"{name}: {TILT_SERIES} column but no data_{TILT_BLOCK} block")
    out = {}
    for key, rows in block.groupby(block[TILT_SERIES].astype(str), sort=False):
        values = {}
        for field, column in _TILT_COLUMNS.items():
            if column in rows and not rows[column].isna().all():  # another series' column
                column_values = _columns(name, rows, (column,), item="tilt row")[:, 0]
                values[field] = tuple(column_values.tolist())
        for field, column in _TILT_GLOBALS.items():
            if column in rows and not rows[column].isna().all():
                values[field] = float(_columns(name, rows.iloc[:1], (column,))[0, 0])
        try:
            out[key] = TiltSeries(name=key, **values)
        except TypeError as err:  # a missing angle column
            raise TomoclassError(f"{name}: data_{TILT_BLOCK}: {err}") from None
    return out


def _attach_tomograms(name, table, wedges, tomograms: Mapping[str, TiltSeries], pixels, optics):
    """Give rows without a sampling the tilt series of their tomogram (by name)."""
    names = _tomogram_names(table)
    premultiplied = _premultiplied(name, table, optics)
    if any(w is None and p for w, p in zip(wedges, premultiplied, strict=True)):
        warnings.warn(
            f"{name}: particles with CTF-premultiplied data but no rlnCtfImage get the tilt "
            "series of --tomograms as if their data carried the CTF once; give their "
            "_weights.mrc in rlnCtfImage for the exact weights",
            TomoclassWarning,
            stacklevel=3,
        )
    out = list(wedges)
    for i, wedge in enumerate(wedges):
        if wedge is not None:
            continue
        series = lookup_tomogram(tomograms, names[i])
        if series is None:
            raise TomoclassError(
                f"{name}: particle {i}: tomogram {names[i]!r} is not in the tomograms file"
            )
        out[i] = replace(series, pixel_size=float(pixels[i]))
    return out


def lookup_tomogram(tomograms: Mapping[str, TiltSeries], tomogram: str) -> TiltSeries | None:
    """The tilt series of ``tomogram``: by exact name, else by its name without a known
    extension (Warp's ``TS_1.tomostar``, ``TS_1.mrc`` → ``TS_1``)."""
    if tomogram in tomograms:
        return tomograms[tomogram]
    stem = re.sub(r"\.(tomostar|mrc|st|rec|mrcs)$", "", tomogram)
    return tomograms.get(stem)


# ------------------------------------------------------------------------------ wedge columns


def _axis(wedge: SingleTiltWedge) -> tuple[float, ...]:
    axis = wedge.tilt_axis_rotation
    return (wedge.angle1, wedge.angle2, wedge.cutoff_radius, wedge.smooth, axis.z1, axis.z2, axis.x)


def wedge_spec(wedge: SingleTiltWedge | DoubleTiltWedge) -> str:
    """An analytic wedge as the text of a ``tomoclassWedge`` cell: ``single:A1,A2,CUT,SMOOTH,
    Z1,Z2,X`` (angles and tilt-axis rotation in degrees, radii in Fourier voxels) or
    ``double:`` two such lists separated by ``;``."""
    parts = [wedge] if isinstance(wedge, SingleTiltWedge) else [wedge.first, wedge.second]
    text = ";".join(",".join(repr(float(v)) for v in _axis(w)) for w in parts)
    return ("single:" if len(parts) == 1 else "double:") + text


def parse_wedge_spec(text: str) -> SingleTiltWedge | DoubleTiltWedge:
    """The wedge of a ``tomoclassWedge`` cell (see :func:`wedge_spec`)."""
    kind, _, body = text.partition(":")
    singles = []
    for part in body.split(";"):
        values = [float(v) for v in part.split(",")]
        if len(values) != 7:
            raise ValueError(f"{text!r}: expected 7 numbers per wedge")
        singles.append(SingleTiltWedge(*values[:4], Rotation(*values[4:])))
    if kind == "single" and len(singles) == 1:
        return singles[0]
    if kind == "double" and len(singles) == 2:
        return DoubleTiltWedge(*singles)
    raise ValueError(f"{text!r}: not a single: or double: wedge")


def _image_folder(star: Path, particles: list[Particle]) -> Path:
    """The folder relative image names start from (see the module docstring)."""
    folder = star.absolute().parent
    relative = [p.filename for p in particles if not os.path.isabs(p.filename)]
    if not relative:
        return folder
    for candidate in (folder, *folder.parents):
        if is_file(candidate / relative[0]):
            return candidate
    return folder


# ------------------------------------------------------------------------------ writing


def write_star(
    plist: ParticleList,
    path: PathLike,
    *,
    pixel_size: float | None = None,
    columns: Mapping[str, Sequence] | None = None,
) -> None:
    """Write ``plist`` as a RELION 4 style particles STAR file with an optics block, atomically.

    Origins are written in Å with ``pixel_size`` (Å/voxel), else the pixel size of the list's
    own optics block, else 1.0. Relative filenames (also of weight volumes) are rewritten
    relative to the new file's folder. Columns and blocks kept from a STAR source are written
    back. Classes are written in RELION's numbering (see :func:`relion_class_numbers`) and,
    when that changes them, also by name (``tomoclassClassName``). Weight volumes go to
    ``rlnCtfImage`` (premultiplied ones flagged in the optics group), analytic wedges and tilt
    series to tomoclass's columns (see the module docstring); a particle without one gets
    ``None`` there. Pick positions and scores are written only if every particle has one.
    ``columns``: more per-particle columns (name → one value per particle), e.g. a
    classification's scores.
    """
    name = os.fspath(path)
    plist = plist.rebased(Path(name).absolute().parent)
    optics = _optics(name, plist, pixel_size)
    blocks: dict[str, Any] = {}
    if isinstance(plist._source, Mapping) and "general" in plist._source:
        blocks["general"] = plist._source["general"]
    blocks["optics"] = optics
    if len(plist):
        picks = all(p.pick_position is not None for p in plist)
        scores = all(p.score is not None for p in plist)
        table = pd.DataFrame([_row(p, picks, scores) for p in plist])
        first = optics["rlnOpticsGroup"].iloc[0]
        groups = table.get("rlnOpticsGroup", pd.Series(first, index=table.index))
        table["rlnOpticsGroup"] = groups.fillna(first).astype(optics["rlnOpticsGroup"].dtype)
        pixels = _pixel_sizes(name, table, optics, pixel_size)
        origins = -plist.shifts() * pixels[:, None] + 0.0  # + 0.0: no "-0" in the file
        table[list(ORIGINS_ANGST)] = origins
        table = _with_classes(plist, table)
        for column, values in (columns or {}).items():
            if len(values) != len(plist):
                raise TomoclassError(f"{column}: {len(values)} values for {len(plist)} particles")
            table[column] = list(values)
        table, tilts = _with_wedges(name, plist, table, optics)
        if tilts is not None:
            blocks[TILT_BLOCK] = tilts
    else:
        table = pd.DataFrame(columns=["rlnImageName", *ANGLES, *ORIGINS_ANGST, "rlnOpticsGroup"])
    blocks["particles"] = table
    with atomic_output(name) as tmp:
        starfile.write(blocks, tmp, float_format="%.12g")


def _optics(name: str, plist: ParticleList, pixel_size: float | None) -> pd.DataFrame:
    """The list's own optics block (pixel size overridden if given) or a minimal new one,
    flagged ``rlnCtfDataAreCtfPremultiplied`` when the particles' weights say so."""
    source = plist._source.get("optics") if isinstance(plist._source, Mapping) else None
    if isinstance(source, pd.DataFrame) and "rlnOpticsGroup" in source:
        optics = source.copy()
        if pixel_size is not None:
            optics["rlnImagePixelSize"] = float(pixel_size)
        return optics
    size = _files_voxel_size(plist) if pixel_size is None else float(pixel_size)
    if size is None:
        if np.any(plist.shifts()):
            warnings.warn(
                f"{name}: no pixel size is known (the particle files give none; give "
                "--pixel-size): the origins are written in Å at 1 Å per voxel",
                TomoclassWarning,
                stacklevel=4,
            )
        size = 1.0
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnImagePixelSize": [size]}
    )
    flags = {w.premultiplied for w in plist.wedges() if isinstance(w, WeightVolume)}
    if len(flags) > 1:
        raise TomoclassError(
            f"{name}: particles with CTF-premultiplied data and without it cannot share one "
            "optics group; write them to separate files"
        )
    if flags == {True}:
        optics["rlnCtfDataAreCtfPremultiplied"] = 1
    return optics


def _files_voxel_size(plist: ParticleList) -> float | None:
    """The voxel size (Å) the particle files agree on (MRC headers), if they can be read."""
    try:
        return common_voxel_size(plist.paths()) if len(plist) else None
    except TomoclassError:  # files not there (yet): nothing to take it from
        return None


def _row(p: Particle, picks: bool, scores: bool) -> dict[str, Any]:
    """One STAR row: kept columns in their old order, modelled columns from the particle.

    Coordinates (``picks``) and ``rlnLCCmax`` (``scores``) are written only when every
    particle has them, so that no row has empty fields.
    """
    new: dict[str, Any] = {"rlnImageName": p.filename}
    if picks and p.pick_position is not None:
        pick = p.pick_position
        new.update(zip(COORDINATES, (pick.x, pick.y, pick.z), strict=True))
        new["rlnTomoName"] = pick.origin
    rotation = (p.rotation.z1, p.rotation.z2, p.rotation.x)
    angles = rotations_to_relion(np.array(rotation))[0] + 0.0  # + 0.0: no "-0" in the file
    new.update(zip(ANGLES, angles.tolist(), strict=True))
    new.update(dict.fromkeys(ORIGINS_ANGST, 0.0))  # placeholders, filled in with pixel sizes
    if scores and p.score is not None:
        new["rlnLCCmax"] = p.score
    old: Mapping[str, Any] = p._source if isinstance(p._source, Mapping) else {}
    kept = (k for k in old if k in new or k not in _MODELLED)
    row = {k: new.pop(k) if k in new else old[k] for k in kept}
    row.update(new)
    return row


def relion_class_numbers(labels: list[str | None]) -> list[int]:
    """RELION's ``rlnClassNumber`` (from 1; 0 for no class) of tomoclass class names.

    Integer names keep their order and are shifted up so that the smallest is at least 1
    (tomoclass's classes 0, 1, 2 become 1, 2, 3; RELION's own 1, 2, 3 stay); otherwise the
    classes are numbered 1, 2, … in order of first appearance.
    """
    named = list(dict.fromkeys(label for label in labels if label is not None))
    try:
        values = {label: _integer(label) for label in named}
        shift = max(0, 1 - min(values.values(), default=1))
        numbers = {label: v + shift for label, v in values.items()}
    except ValueError:
        numbers = {label: k + 1 for k, label in enumerate(named)}
    return [0 if label is None else numbers[label] for label in labels]


def _with_classes(plist: ParticleList, table: pd.DataFrame) -> pd.DataFrame:
    """Add ``rlnClassNumber`` (and ``tomoclassClassName`` if the numbers differ from the
    names) when any particle has a class."""
    labels = plist.class_names()
    table = table.drop(columns=["rlnClassNumber", CLASS_NAME], errors="ignore")
    if all(label is None for label in labels):
        return table
    numbers = relion_class_numbers(labels)
    table["rlnClassNumber"] = numbers
    if any(label is not None and label != str(n) for label, n in zip(labels, numbers, strict=True)):
        table[CLASS_NAME] = ["None" if label is None else label for label in labels]
    return table


def _integer(label: str) -> int:
    value = float(label)
    if not value.is_integer():
        raise ValueError(label)
    return int(value)


def _with_wedges(name: str, plist: ParticleList, table: pd.DataFrame, optics: pd.DataFrame):
    """``table`` with each particle's sampling in ``rlnCtfImage``, ``tomoclassWedge`` or
    ``tomoclassTiltSeries`` (``None`` where a particle has another kind or none), and the
    tilt-series block (or None)."""
    wedges = plist.wedges()
    table = table.drop(columns=["rlnCtfImage", WEDGE, TILT_SERIES], errors="ignore")
    volumes = [w if isinstance(w, WeightVolume) else None for w in wedges]
    if any(volumes):
        _check_premultiplied(name, table, optics, volumes)
        table["rlnCtfImage"] = ["None" if v is None else v.filename for v in volumes]
        limits = [v.ctf_max_resolution for v in volumes if v is not None]
        if all(limit is not None for limit in limits) and "rlnCtfMaxResolution" not in table:
            table["rlnCtfMaxResolution"] = [
                np.nan if v is None else v.ctf_max_resolution for v in volumes
            ]
    analytic = [w if isinstance(w, (SingleTiltWedge, DoubleTiltWedge)) else None for w in wedges]
    if any(analytic):
        table[WEDGE] = ["None" if w is None else wedge_spec(w) for w in analytic]
    series = [w if isinstance(w, TiltSeries) else None for w in wedges]
    if not any(series):
        return table, None
    keys = _series_keys(series)
    table[TILT_SERIES] = ["None" if s is None else keys[s] for s in series]
    return table, _tilt_rows(keys)


def _check_premultiplied(name, table, optics, volumes) -> None:
    """Every weight volume's premultiplied flag must be its optics group's."""
    flags = _premultiplied(name, table, optics)
    for i, volume in enumerate(volumes):
        if volume is not None and volume.premultiplied != bool(flags[i]):
            raise TomoclassError(
                f"{name}: particle {i}: its weights say the data are "
                f"{'' if volume.premultiplied else 'not '}CTF-premultiplied, its optics group "
                "says otherwise"
            )


def _series_keys(series: list[TiltSeries | None]) -> dict[TiltSeries, str]:
    """A unique key per distinct tilt series: its name, numbered if names repeat."""
    keys: dict[TiltSeries, str] = {}
    for s in series:
        if s is not None and s not in keys:
            base = s.name or "series"
            key, k = base, 1
            while key in keys.values():
                key, k = f"{base}#{k}", k + 1
            keys[s] = key
    return keys


def _tilt_rows(keys: dict[TiltSeries, str]) -> pd.DataFrame:
    """The ``data_tomoclass_tilt_series`` block: one row per tilt of every series."""
    rows = []
    for series, key in keys.items():
        for t in range(len(series.angles)):
            row: dict[str, Any] = {TILT_SERIES: key}
            for field, column in _TILT_COLUMNS.items():
                values = getattr(series, field)
                row[column] = np.nan if values is None else values[t]
            for field, column in _TILT_GLOBALS.items():
                value = getattr(series, field)
                row[column] = np.nan if value is None else value
            rows.append(row)
    table = pd.DataFrame(rows)
    return table.dropna(axis=1, how="all")
