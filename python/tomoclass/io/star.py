"""RELION STAR particle lists (RELION 4/5 subtomogram style), read and written via ``starfile``.

Columns read (particles block; ``data_particles``, or the file's only block):

* ``rlnImageName``: the subtomogram file (required). Relative names are RELION project
  paths: they are resolved against the STAR file's folder if the first one exists there,
  else against the nearest parent folder where it exists (the RELION project), else the
  STAR file's folder.
* ``rlnCoordinateX/Y/Z`` (pixels) and ``rlnTomoName`` (or ``rlnMicrographName``): the pick
  position. RELION 5's ``rlnCenteredCoordinateX/Y/ZAngst`` cannot become a pick position
  without the tomogram's size: they are accepted, kept, and written back unchanged.
* ``rlnAngleRot/Tilt/Psi``: the rotation (missing angles are 0, as in RELION).
* ``rlnOriginX/Y/ZAngst`` (Å), or RELION 3.0's ``rlnOriginX/Y/Z`` (pixels): the shift.
* ``rlnClassNumber``: the class; ``rlnLCCmax`` (pytom-match-pick): the score.
* ``rlnTomoSubtomogramRot/Tilt/Psi`` (RELION 5 pre-rotation): accepted only if it is the
  identity. RELION 5 extracts such subtomograms already rotated by it, so the volume on disk
  is turned by ``A_subtomogram`` away from the tomogram frame; no single PyTom rotation can
  then both align the volume and orient its missing wedge. Re-extract without pre-rotation.

Angles: RELION's ``Euler_angles2matrix(rot, tilt, psi)`` (``src/euler.cpp``) gives the matrix
``A = Rz(−psi)·Ry(−tilt)·Rz(−rot)`` (right-handed ``R``), and RELION maps a point ``r`` of the
reference (relative to its centre) to ``A·r − origin`` in the particle (``src/projector.cpp``
samples the reference at ``Aᵀ·p``; ``src/preprocessing.cpp`` re-centres on ``A·r`` and moves
coordinates by ``−origin``). PyTom maps it to ``R·r + shift``. Hence ``R = A`` and
``shift = −origin / pixel_size``.

Pixel size (Å per subtomogram voxel) for origins in Å: the ``pixel_size`` argument, else the
optics group's ``rlnImagePixelSize``, else ``rlnTomoTiltSeriesPixelSize`` times
``rlnTomoSubtomogramBinning`` (if given), else 1.0 Å (then Å equal voxels).
Columns tomoclass does not use, and the optics block, are kept and written back.
STAR files have no wedge: particles read from STAR have ``wedge=None``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import starfile
from scipy.spatial.transform import Rotation as ScipyRotation

from tomoclass.errors import TomoclassError
from tomoclass.geometry import Rotation, Shift
from tomoclass.io.files import PathLike, atomic_output, is_file
from tomoclass.particles import Particle, ParticleList, PickPosition

ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
PRE_ROTATION = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
COORDINATES = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
ORIGINS_ANGST = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
ORIGINS_PIXEL = ("rlnOriginX", "rlnOriginY", "rlnOriginZ")
_MODELLED = frozenset(
    {"rlnImageName", "rlnClassNumber", "rlnLCCmax"}.union(
        ANGLES, PRE_ROTATION, COORDINATES, ORIGINS_ANGST, ORIGINS_PIXEL
    )
)
"""Columns whose content lives in Particle fields (rewritten, never copied, on output)."""
_TEXT_COLUMNS = ["rlnImageName", "rlnTomoName", "rlnMicrographName", "rlnTomoParticleName"]


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
    path: PathLike, *, pixel_size: float | None = None, directory: PathLike | None = None
) -> ParticleList:
    """Read a RELION particles STAR file (see the module docstring for columns and units).

    ``pixel_size`` (Å/voxel) overrides the optics block for converting origins to voxels;
    ``directory`` overrides the folder relative image names are resolved against.
    """
    name = os.fspath(path)
    particles, optics = _blocks(name)
    if "rlnImageName" not in particles:
        raise TomoclassError(f"{name}: no rlnImageName column (tomoclass needs subtomograms)")
    _check_no_pre_rotation(name, particles)
    pixels = _pixel_sizes(name, particles, optics, pixel_size)
    rotations = relion_to_rotations(_columns(name, particles, ANGLES, default=0.0))
    shifts = _shifts(name, particles, pixels)
    picks = _pick_positions(name, particles)
    classes = _classes(name, particles)
    scores = _columns(name, particles, ("rlnLCCmax",)) if "rlnLCCmax" in particles else None
    result = []
    for i, row in enumerate(particles.to_dict("records")):
        result.append(
            Particle(
                filename=str(row["rlnImageName"]),
                rotation=Rotation(*(float(v) for v in rotations[i])),
                shift=Shift(*(float(v) for v in shifts[i])),
                pick_position=picks[i],
                score=None if scores is None else float(scores[i, 0]),
                class_name=classes[i],
                _source=row,
            )
        )
    folder = Path(directory) if directory is not None else _image_folder(Path(name), result)
    return ParticleList(result, folder, optics)


def _blocks(name: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The particles block and the optics block (if any) of a STAR file."""
    if not os.path.exists(name):
        raise TomoclassError(f"{name}: no such file")
    if not os.path.isfile(name):
        raise TomoclassError(f"{name}: not a file")
    try:
        blocks = starfile.read(name, always_dict=True, parse_as_string=_TEXT_COLUMNS)
    except Exception as err:  # starfile/pandas raise many types for malformed text
        raise TomoclassError(f"{name}: malformed STAR file ({err})") from None
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    if "particles" in tables:
        particles = tables["particles"]
    elif len(tables) == 1:
        particles = next(iter(tables.values()))
    else:
        raise TomoclassError(f"{name}: no data_particles block in this STAR file")
    optics = tables.get("optics")
    return particles.reset_index(drop=True), optics


def _columns(
    name: str, table: pd.DataFrame, columns: tuple[str, ...], default: float | None = None
) -> np.ndarray:
    """``(N, k)`` float64 values of ``columns``; missing ones are ``default`` (None: required)."""
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
                f"{name}: particle {bad[0]}: {column} = {table[column].iloc[bad[0]]!r} "
                "is not a finite number"
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
    """Å per subtomogram voxel for each particle row."""
    if override is not None:
        if not (math.isfinite(override) and override > 0):
            raise TomoclassError(f"pixel_size must be a positive number, got {override}")
        return np.full(len(table), float(override))
    groups = _group_pixel_sizes(name, optics)
    if not groups:
        return np.ones(len(table))
    if "rlnOpticsGroup" not in table:
        return np.full(len(table), next(iter(groups.values())))
    sizes = []
    for i, group in enumerate(table["rlnOpticsGroup"].tolist()):
        if group not in groups:
            raise TomoclassError(f"{name}: particle {i}: optics group {group!r} is not defined")
        sizes.append(groups[group])
    return np.array(sizes, dtype=np.float64)


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
        return -_columns(name, table, ORIGINS_ANGST, default=0.0) / pixels[:, None]
    return -_columns(name, table, ORIGINS_PIXEL, default=0.0)


def _pick_positions(name: str, table: pd.DataFrame) -> list[PickPosition | None]:
    if not all(column in table for column in COORDINATES):
        return [None] * len(table)
    xyz = _columns(name, table, COORDINATES)
    tomo = next((c for c in ("rlnTomoName", "rlnMicrographName") if c in table), None)
    origins = [""] * len(table) if tomo is None else [str(v) for v in table[tomo].tolist()]
    return [PickPosition(*map(float, p), origin=o) for p, o in zip(xyz, origins, strict=True)]


def _classes(name: str, table: pd.DataFrame) -> list[str | None]:
    if "rlnClassNumber" not in table:
        return [None] * len(table)
    numbers = _columns(name, table, ("rlnClassNumber",))[:, 0]
    return [str(int(v)) if v.is_integer() else repr(float(v)) for v in numbers]


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


def write_star(plist: ParticleList, path: PathLike, *, pixel_size: float | None = None) -> None:
    """Write ``plist`` as a RELION 4 style particles STAR file with an optics block, atomically.

    Origins are written in Å with ``pixel_size`` (Å/voxel), else the pixel size of the list's
    own optics block, else 1.0. Relative filenames are rewritten relative to the new file's
    folder. Columns kept from a STAR source are written back. Class names must be integers
    (RELION's ``rlnClassNumber``); particles without a class get 0. Pick positions and scores
    are written only if every particle has one.
    """
    name = os.fspath(path)
    plist = plist.rebased(Path(name).absolute().parent)
    optics = _optics(plist, pixel_size)
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
        table = _with_classes(name, plist, table)
    else:
        table = pd.DataFrame(columns=["rlnImageName", *ANGLES, *ORIGINS_ANGST, "rlnOpticsGroup"])
    with atomic_output(name) as tmp:
        starfile.write({"optics": optics, "particles": table}, tmp, float_format="%.12g")


def _optics(plist: ParticleList, pixel_size: float | None) -> pd.DataFrame:
    """The list's own optics block (pixel size overridden if given) or a minimal new one."""
    source = plist._source
    if isinstance(source, pd.DataFrame) and "rlnOpticsGroup" in source:
        optics = source.copy()
        if pixel_size is not None:
            optics["rlnImagePixelSize"] = float(pixel_size)
        return optics
    size = 1.0 if pixel_size is None else float(pixel_size)
    return pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnImagePixelSize": [size]}
    )


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


def _with_classes(name: str, plist: ParticleList, table: pd.DataFrame) -> pd.DataFrame:
    """Add ``rlnClassNumber`` when any particle has a class (None → 0)."""
    labels = plist.class_names()
    if all(label is None for label in labels):
        return table.drop(columns=["rlnClassNumber"], errors="ignore")
    numbers = []
    for i, label in enumerate(labels):
        try:
            numbers.append(0 if label is None else _integer(label))
        except ValueError:
            raise TomoclassError(
                f"{name}: particle {i}: class {label!r} is not an integer (rlnClassNumber)"
            ) from None
    table["rlnClassNumber"] = numbers
    return table


def _integer(label: str) -> int:
    value = float(label)
    if not value.is_integer():
        raise ValueError(label)
    return int(value)
