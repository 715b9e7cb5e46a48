"""RELION 4 and 5 ``tomograms.star`` tables, read as one :class:`~tomoclass.wedge.TiltSeries` per
tomogram.

Line numbers cite 3dem/relion ``master`` 73f0a3c0 (RELION 5) and ``ver4.0`` 27a67bb5 (marked
``v4:``); ``tomogram_set.cpp`` and ``tomogram.cpp`` are in ``src/jaz/tomography``,
``damage.cpp`` in ``src/jaz/optics``.

Layout. RELION 5: a ``data_global`` table with one row per tomogram; its
``rlnTomoTiltSeriesStarFile`` names a STAR file holding the block ``data_<rlnTomoName>``, one row
per tilt (``tomogram_set.cpp`` 79-97). That name is a RELION project path: tomoclass looks for
it in the folder of ``tomograms.star``, then in each folder above (absolute names as they are).
RELION 4: one file, ``data_global`` followed by one ``data_<rlnTomoName>`` block per tomogram
(v4:``tomogram_set.cpp`` 21-66; RELION 5 still reads it, ``tomogram_set.cpp`` 41-77). A file is
taken as RELION 4's when ``data_global`` has no ``rlnTomoTiltSeriesStarFile`` column; its blocks
are found by name (or, for RELION 4 beta files, as ``data_tomo_<row>``, v4:43).

Global columns (one value per tomogram): ``rlnTomoName`` → ``name`` (the dict key);
``rlnVoltage`` (kV), ``rlnSphericalAberration`` (mm) and ``rlnAmplitudeContrast`` (required,
``tomogram_set.cpp`` 325-327); ``rlnCtfBfactorPerElectronDose`` (Å² per e/Å², optional,
188-191). ``pixel_size`` is None: the particles' own pixel size is set later by
:func:`tomoclass.io.star.read_star`, as subtomograms are often binned relative to
``rlnTomoTiltSeriesPixelSize``. Sizes, hand, pixel sizes and file names are not used.

Per-tilt columns:

* ``rlnTomoYTilt`` (degrees, within −90..90) → ``angles``; ``rlnTomoXTilt`` → ``x_tilts`` (None
  without the column; RELION's default is 0, ``tomogram_set.cpp`` 397-402). RELION projects
  with ``P = T(image centre + shift)·Rz(ZRot)·Ry(YTilt)·Rx(XTilt)·T(−tomogram centre)``,
  right-handed rotations in degrees (``tomogram.cpp`` 17-62; ``src/jaz/gravis/t3Matrix.h``
  476-496), so the beam direction in the tomogram is ``(Ry·Rx)ᵀ·z``, which is
  :meth:`TiltSeries.normals`. ``rlnTomoZRot`` turns the image within its own plane: it does not
  change the Fourier plane a tilt samples and is not read (nor are the shifts).
* ``rlnTomoProjX/Y/Z/W`` (RELION 4): the rows of the 4×4 matrix taking bin-1 tomogram pixels to
  image pixels, written ``[a,b,c,d]`` (v4:``tomogram_set.cpp`` 149-168 and 363-366;
  v4:``src/metadata_table.cpp`` 288-310). When all four columns are present they define the
  geometry, even next to the angles, as in RELION 5 (``tomogram_set.cpp`` 358-391). The beam
  direction is the one the image does not see: the normalised cross product ``n`` of the first
  three components of rows 0 and 1 (so a scale, a mirror or an in-plane rotation drops out).
  Its sign is chosen so that ``n_z ≥ 0``; then ``YTilt = asin(−n_x)`` and
  ``XTilt = atan2(n_y, n_z)``, both within −90..90, give back
  ``n = (−sin Y, sin X·cos Y, cos X·cos Y)`` (:func:`projection_tilt_angles`). ``x_tilts`` is
  then always given.
* ``rlnMicrographPreExposure`` (e/Å², the dose before the tilt; required,
  ``tomogram_set.cpp`` 93-96 and 450, v4:187) → ``exposure``: the Grant & Grigorieff filter
  (``damage.cpp`` 157-175).
* ``rlnDefocusU/V`` (Å, positive underfocus; required, ``tomogram_set.cpp`` 413-414) →
  ``defocus``, their mean. tomoclass averages the astigmatism (``rlnDefocusAngle`` is not
  used) and ignores RELION's per-particle defocus, which adds the particle's depth along the
  beam to both (``tomogram.cpp`` 267-290). The phase error this leaves is ``π·λ·Δz·s²``: at
  300 kV (λ = 0.0197 Å) and 20 Å resolution 0.155 rad per 100 nm of depth, 0.23 rad for
  Δz = ±150 nm (0.10 rad at 30 Å); staying below 0.1 rad at 20 Å needs |Δz| < 65 nm. In a
  tilted image the depth includes the distance from the tilt axis times ``sin θ``.
* ``rlnCtfScalefactor`` → ``scale`` (None: 1) and ``rlnCtfBfactor`` (Å²) → ``bfactor`` (None:
  0), as RELION 5 applies them (``tomogram_set.cpp`` 421-437): the CTF times ``scale`` and
  ``exp(−B·k²/4)``, k in 1/Å (``src/ctf.h`` 232 and 246, ``src/ctf.cpp`` 236). RELION 4 did not
  read ``rlnCtfBfactor`` (v4:``tomogram_set.cpp`` 180-185); tomoclass reads it as RELION 5 does.
* ``rlnPhaseShift`` (degrees, ``tomogram_set.cpp`` 439-446): tomoclass's CTF has no phase
  shift. A tomogram with a non-zero one is read without defocus (no CTF weight, exposure and
  B-factor kept), with a :class:`~tomoclass.errors.TomoclassWarning`.

Dose weighting with ``rlnCtfBfactorPerElectronDose`` ``Bₑ > 0``: RELION replaces the Grant &
Grigorieff filter by ``exp(−Bₑ·dose·k²/4)``, k in 1/Å (``damage.cpp`` 145-156, called from
``tomogram.cpp`` 223-228). :class:`TiltSeries` has no such mode, but its envelope
``exp(−bfactor·s²/4)`` is the same function of the frequency: tomoclass adds ``Bₑ·dose`` to each
tilt's ``bfactor`` and sets its ``exposure`` to 0, which gives RELION's weight exactly.

Bad input (a missing or malformed file, no ``data_global``, a missing tomogram block or
tilt-series file, a missing required column, a value that is not a finite number, a tilt angle
outside −90..90) raises one :class:`~tomoclass.errors.TomoclassError` naming the file and the
tomogram.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.io.files import PathLike, is_file, read_star_blocks
from tomoclass.wedge import TiltSeries

PROJECTION = ("rlnTomoProjX", "rlnTomoProjY", "rlnTomoProjZ", "rlnTomoProjW")
"""RELION 4's projection-matrix rows, each a 4-vector ``[a,b,c,d]``."""
_TEXT_COLUMNS = ["rlnTomoName", "rlnTomoTiltSeriesStarFile", *PROJECTION]


def read_tomograms_star(path: PathLike) -> dict[str, TiltSeries]:
    """The tilt series of every tomogram of a RELION 4 or 5 ``tomograms.star``, by
    ``rlnTomoName`` (columns, units and conventions: the module docstring)."""
    name = os.fspath(path)
    blocks = _read_blocks(name)
    table = blocks.get("global")
    if table is None:
        raise TomoclassError(f"{name}: no data_global block (not a RELION tomograms.star)")
    if "rlnTomoName" not in table:
        raise TomoclassError(f"{name}: data_global has no rlnTomoName column")
    if len(table) == 0:
        raise TomoclassError(f"{name}: data_global lists no tomograms")
    relion5 = "rlnTomoTiltSeriesStarFile" in table
    files: dict[str, dict[str, pd.DataFrame]] = {}
    result: dict[str, TiltSeries] = {}
    for row_number, row in enumerate(table.to_dict("records")):
        tomo = _text(row["rlnTomoName"])
        if not tomo:
            raise TomoclassError(f"{name}: data_global row {row_number + 1}: empty rlnTomoName")
        where = f"{name}: tomogram {tomo!r}"
        if tomo in result:
            raise TomoclassError(f"{where}: listed twice in data_global")
        if relion5:
            source = _tilt_series_file(name, tomo, row["rlnTomoTiltSeriesStarFile"])
            if source not in files:
                try:
                    files[source] = _read_blocks(source)
                except TomoclassError as err:
                    raise TomoclassError(f"{where}: {err}") from None
            tilts = files[source].get(tomo)
            if tilts is None:
                raise TomoclassError(
                    f"{where}: its tilt-series file {source} has no data_{tomo} block"
                )
            tilt_where = f"{source}: data_{tomo} (tomogram {tomo!r} of {name})"
        else:
            tilts = blocks.get(tomo, blocks.get(f"tomo_{row_number}"))
            if tilts is None or tomo == "global":
                raise TomoclassError(
                    f"{where}: no data_{tomo} block (a RELION 4 tomograms.star holds one per "
                    "tomogram; RELION 5's names a tilt-series file in rlnTomoTiltSeriesStarFile)"
                )
            tilt_where = f"{where} (data_{tomo})"
        result[tomo] = _tilt_series(where, tilt_where, tomo, row, tilts)
    return result


def projection_tilt_angles(proj_x: np.ndarray, proj_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(YTilt, XTilt)`` in degrees (each within −90..90) of projection matrices given by their
    rows 0 and 1 (``(T, ≥3)``; only the first three components are used), such that
    ``TiltSeries(angles=YTilt, x_tilts=XTilt).normals()`` is the beam direction
    ``row0 × row1`` up to sign. Raises ValueError if the two rows are parallel."""
    u = np.atleast_2d(np.asarray(proj_x, dtype=np.float64))[:, :3]
    v = np.atleast_2d(np.asarray(proj_y, dtype=np.float64))[:, :3]
    n = np.cross(u, v)
    length = np.linalg.norm(n, axis=1)
    scale = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
    bad = np.flatnonzero(~(length > 1e-9 * scale))
    if bad.size:
        raise ValueError(f"tilt {bad[0] + 1}: projection rows 0 and 1 are parallel or zero")
    n = n / length[:, None]
    n = np.where(n[:, 2:3] < 0, -n, n) + 0.0  # n_z >= 0; + 0.0 turns −0.0 into 0.0
    y_tilt = np.degrees(np.arcsin(np.clip(-n[:, 0], -1.0, 1.0)))
    x_tilt = np.degrees(np.arctan2(n[:, 1], n[:, 2]))
    return y_tilt, x_tilt


# ------------------------------------------------------------------------------ helpers


def _read_blocks(name: str) -> dict[str, pd.DataFrame]:
    """The STAR file's blocks by name (``data_`` removed), each a table."""
    blocks = read_star_blocks(name, _TEXT_COLUMNS)
    return {
        str(key): value if isinstance(value, pd.DataFrame) else pd.DataFrame([value])
        for key, value in blocks.items()
    }


def _text(value) -> str:
    """A STAR text value as a string ('' for a missing one)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _tilt_series_file(name: str, tomo: str, value) -> str:
    """The tilt-series STAR file a RELION 5 row names: absolute, or relative to the folder of
    ``tomograms.star`` or of a folder above it (RELION's project folder)."""
    text = _text(value)
    if not text:
        raise TomoclassError(f"{name}: tomogram {tomo!r}: empty rlnTomoTiltSeriesStarFile")
    given = Path(text)
    folder = Path(name).absolute().parent
    candidates = [given] if given.is_absolute() else [f / given for f in (folder, *folder.parents)]
    for candidate in candidates:
        if is_file(candidate):
            return os.path.normpath(candidate)
    where = "" if given.is_absolute() else f" in {folder} or any folder above it"
    raise TomoclassError(
        f"{name}: tomogram {tomo!r}: its tilt-series file {text} (rlnTomoTiltSeriesStarFile) "
        f"is not found{where}"
    )


def _global_number(where: str, row: dict, column: str) -> float:
    """A finite number from the tomogram's ``data_global`` row (the column is required)."""
    if column not in row:
        raise TomoclassError(f"{where}: data_global has no {column} column (required)")
    value = _number(row[column])
    if not math.isfinite(value):
        raise TomoclassError(f"{where}: {column} = {row[column]!r} is not a finite number")
    return value


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _column(where: str, tilts: pd.DataFrame, column: str, required: bool = True):
    """The finite float64 values of a per-tilt column (None if absent and not required)."""
    if column not in tilts:
        if required:
            raise TomoclassError(f"{where}: no {column} column (required)")
        return None
    values = np.array([_number(v) for v in tilts[column]], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise TomoclassError(
            f"{where}: row {bad[0] + 1}: {column} = {tilts[column].iloc[bad[0]]!r} "
            "is not a finite number"
        )
    return values


def _vectors(where: str, tilts: pd.DataFrame, column: str) -> np.ndarray:
    """``(T, 4)`` values of a RELION vector column (``[a,b,c,d]``, as RELION parses it)."""
    rows = []
    for i, value in enumerate(tilts[column]):
        parts = [p for p in str(value).replace("[", ",").replace("]", ",").split(",") if p]
        numbers = [_number(p) for p in parts]
        if len(numbers) != 4 or not all(math.isfinite(x) for x in numbers):
            raise TomoclassError(
                f"{where}: row {i + 1}: {column} = {value!r} is not four finite numbers [a,b,c,d]"
            )
        rows.append(numbers)
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _geometry(where: str, tilts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """``(YTilt, XTilt or None)`` in degrees, from the projection matrices if all four rows are
    given (as RELION 5 does), else from the angle columns."""
    if all(column in tilts for column in PROJECTION):
        try:
            return projection_tilt_angles(
                _vectors(where, tilts, PROJECTION[0]), _vectors(where, tilts, PROJECTION[1])
            )
        except ValueError as err:
            raise TomoclassError(f"{where}: {err}") from None
    if "rlnTomoYTilt" not in tilts:
        raise TomoclassError(
            f"{where}: no rlnTomoYTilt column (required without the projection matrices "
            "rlnTomoProjX..W)"
        )
    y_tilt = _column(where, tilts, "rlnTomoYTilt")
    outside = np.flatnonzero(np.abs(y_tilt) > 90.0)
    if outside.size:
        raise TomoclassError(
            f"{where}: row {outside[0] + 1}: rlnTomoYTilt = {y_tilt[outside[0]]:g} is outside "
            "-90..90 degrees"
        )
    return y_tilt, _column(where, tilts, "rlnTomoXTilt", required=False)


def _tilt_series(
    where: str, tilt_where: str, tomo: str, row: dict, tilts: pd.DataFrame
) -> TiltSeries:
    """One tomogram's tilt series from its ``data_global`` row and its per-tilt table."""
    voltage = _global_number(where, row, "rlnVoltage")
    cs = _global_number(where, row, "rlnSphericalAberration")
    amplitude_contrast = _global_number(where, row, "rlnAmplitudeContrast")
    per_dose = 0.0
    if "rlnCtfBfactorPerElectronDose" in row:
        per_dose = _global_number(where, row, "rlnCtfBfactorPerElectronDose")
    if len(tilts) == 0:
        raise TomoclassError(f"{tilt_where}: no tilts")
    angles, x_tilts = _geometry(tilt_where, tilts)
    exposure = _column(tilt_where, tilts, "rlnMicrographPreExposure")
    defocus = (
        _column(tilt_where, tilts, "rlnDefocusU") + _column(tilt_where, tilts, "rlnDefocusV")
    ) / 2.0
    scale = _column(tilt_where, tilts, "rlnCtfScalefactor", required=False)
    bfactor = _column(tilt_where, tilts, "rlnCtfBfactor", required=False)
    phase_shift = _column(tilt_where, tilts, "rlnPhaseShift", required=False)
    if phase_shift is not None and np.any(phase_shift != 0):
        warnings.warn(
            f"{tilt_where}: rlnPhaseShift is not 0 and tomoclass's CTF has no phase shift: "
            "this tomogram's tilts are weighted without their CTF",
            TomoclassWarning,
            stacklevel=3,
        )
        defocus = None
    if per_dose > 0:  # RELION's test; 0 or less: the Grant & Grigorieff filter
        bfactor = (0.0 if bfactor is None else bfactor) + per_dose * exposure
        exposure = np.zeros_like(exposure)
    try:
        return TiltSeries(
            angles=tuple(angles),
            exposure=tuple(exposure),
            defocus=None if defocus is None else tuple(defocus),
            voltage=voltage,
            cs=cs,
            amplitude_contrast=amplitude_contrast,
            pixel_size=None,
            x_tilts=None if x_tilts is None else tuple(x_tilts),
            scale=None if scale is None else tuple(scale),
            bfactor=None if bfactor is None else tuple(bfactor),
            name=tomo,
        )
    except TomoclassError as err:
        raise TomoclassError(f"{tilt_where}: {err}") from None
