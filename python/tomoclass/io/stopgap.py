"""STOPGAP motive lists (``data_stopgap_motivelist``) and wedge lists (``data_stopgap_wedgelist``).

Citations are ``path:line`` in github.com/wan-lab-vanderbilt/STOPGAP at commit
8a2d5778ae09968ce7f688993c143cf1a79fe050 ("Manual p.N": its ``stopgap_0.7.5_manual.pdf``).

Motive list: one loop block of 16 named fields (``sg_toolbox/sg_get_motl_fields.m:7-22``),
matched by name, in any order (``sg_toolbox/sg_motl_read2.m:59-77``). Required here:
motl_idx, tomo_num, subtomo_num, orig_x/y/z, score, x/y/z_shift, phi, psi, the and class;
object and halfset (and any other column) are kept in ``Particle._source`` only.

* Rotation: STOPGAP's ``tom_rotatec([phi, psi, the])`` builds ``M = Rz(psi)·Rx(the)·Rz(phi)``
  (``sg_toolbox/tom/tom_rotatec.c:215-223``; TOM/AV3 ZXZ, Manual p.24) and turns the
  reference onto the particle: alignment rotates the reference by it
  (``src/subtomo/func/flcf_subtomo_scoring_function.m:82``) and averaging turns the
  particle back by ``M⁻¹`` (``src/subtomo/exec/parallel_average.m:122``). PyTom's
  ``R = Rz(z2)·Rx(x)·Rz(z1)`` does the same, so ``z1 = phi``, ``x = the``, ``z2 = psi``.
  Note the file's column order phi, psi, the.
* Shift: x/y/z_shift (voxels) moves the rotated reference by ``+shift``
  (``sg_toolbox/sg_shift_vol.m:61-67``; averaging undoes it with ``−shift``,
  ``parallel_average.m:122``), about the box centre ``floor(N/2)+1`` (1-based), i.e. PyTom's
  ``N // 2``: copied unchanged into ``Shift``.
* Pick position: orig_x/y/z (tomogram voxels at the list's binning, counted from 1 as
  MATLAB does), origin ``str(tomo_num)``. Score: score. Class: ``str(class)``.
* Several rows per motl_idx (a multi-entry list: one row per class,
  ``sg_toolbox/sg_motl_convert_old_to_new.m:37``): STOPGAP averages, for each motl_idx, only
  the row with the highest score (``src/func/load_motivelist.m:32``,
  ``parallel_average.m:59-68``; the first one on ties). tomoclass keeps that row, with a
  warning. Rows with distinct motl_idx stay separate particles even when they share a
  subtomo_num (Manual p.12: e.g. two entries per particle for asymmetric refinement of a C2
  particle; STOPGAP averages both).

Subtomogram files are ``[subtomo_name]_[subtomo_num].mrc`` (no zero padding: the default
``subtomo_digits`` is 1 and ``vol_ext`` is ``.mrc``, ``sg_toolbox/io/subtomo/
sg_get_subtomo_settings.m:24-25``; read path ``src/subtomo/exec/align_subtomos.m:108``), with
``.em`` instead when only the ``.em`` file of the first row's subtomogram exists.
``subtomo_name`` is a path prefix relative to the motive list's folder (e.g.
``../subtomograms/subtomo``). Without it tomoclass looks in ``subtomograms/`` next to the
motive list and in its parent folder (STOPGAP's default ``subtomodir`` under the project
root, whose ``lists/`` holds the motive lists; ``sg_get_subtomo_settings.m:17,19``) for file
names ``P_<subtomo_num of the first row>.mrc`` (or ``.em``): if exactly one prefix ``P``
exists there, it is used, otherwise the reader asks for ``subtomo_name``
(``--subtomo-name`` on the command line).

Wedge list: one row per tilt, per-tomogram values repeated on every row
(``sg_toolbox/sg_wedgelist_write.m:28-47``), grouped by tomo_num in file order
(``sg_toolbox/sg_wedgelist_read.m:43-69``). Each tomogram becomes a
:class:`~tomoclass.wedge.TiltSeries` named ``str(tomo_num)``: tilt_angle (degrees, about y,
required) in file order; exposure (cumulative e/Å² including the tilt's own dose, Manual
p.14), as STOPGAP uses it; defocus in µm (positive underfocus) times 10⁴ to Å
(``sg_toolbox/sg_ctf.m:8``), or the mean of defocus1 and defocus2 when both are present, as
STOPGAP averages them (``src/func/calculate_local_defocii.m:41-42``; STOPGAP itself takes
them only together with astig_ang, ``sg_toolbox/sg_wedgelist_read.m:71-73``); voltage (kV),
cs (mm), amp_contrast. A missing exposure or defocus means no exposure filter or no CTF; a defocus
needs voltage, cs and amp_contrast. The pixel size is left to the particle files
(STOPGAP's pixelsize is unbinned, ``src/io/refresh_wedgelist.m:39-40``). STOPGAP's local
defocus per particle (``calculate_local_defocii.m``) and phase shifts (pshift) are not
modelled; a non-zero pshift gives a warning.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.geometry import Rotation, Shift
from tomoclass.io.files import PathLike, is_file, read_star_blocks
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.wedge import TiltSeries

MOTL_BLOCK = "stopgap_motivelist"
WEDGE_BLOCK = "stopgap_wedgelist"
MOTL_INTEGERS = ("motl_idx", "tomo_num", "subtomo_num", "class")
MOTL_FLOATS = (
    "orig_x", "orig_y", "orig_z", "score", "x_shift", "y_shift", "z_shift", "phi", "psi", "the",
)  # fmt: skip
WEDGE_SINGLE = ("pixelsize", "tomo_x", "tomo_y", "tomo_z", "z_shift", "voltage", "amp_contrast",
                "cs")  # fmt: skip
"""Wedge-list fields with one value per tomogram (``sg_toolbox/sg_get_wedgelist_fields.m:8-23``)."""
WEDGE_PER_TILT = ("tilt_angle", "exposure", "defocus", "defocus1", "defocus2", "pshift")
"""Wedge-list fields read with one value per tilt (``sg_wedgelist_write.m:37``)."""
OPTICS = {"voltage": "voltage", "cs": "cs", "amp_contrast": "amplitude_contrast"}
SUBTOMO_FOLDER = "subtomograms"
_HEAD_BYTES = 65536


# ------------------------------------------------------------------------------ detection


def is_stopgap_motl(path: PathLike) -> bool:
    """Whether the first data block of ``path`` is ``data_stopgap_motivelist`` (reads 64 KiB)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES).decode("latin-1")
    except (OSError, ValueError):
        return False
    for line in head.splitlines():
        words = line.split()
        if words and words[0].startswith("data_"):
            return words[0] == "data_" + MOTL_BLOCK
    return False


# ------------------------------------------------------------------------------ motive lists


def read_stopgap_motl(
    path: PathLike,
    *,
    subtomo_name: str | None = None,
) -> ParticleList:
    """Read a STOPGAP motive list (fields, units and file naming: module docstring).

    ``subtomo_name``: the subtomograms' path prefix relative to the list's folder (found in
    ``subtomograms/`` when None). Particles have ``wedge=None``: their tilt series come from
    a wedge list (:func:`read_wedge_list`, attached by tomo_num in
    :func:`tomoclass.io.read_particle_list`).
    """
    name = os.fspath(path)
    table = _loop_block(name, MOTL_BLOCK)
    if len(table) == 0:
        raise TomoclassError(f"{name}: the motive list has no particles")
    _require(name, table, MOTL_INTEGERS + MOTL_FLOATS)
    integers = {c: _integers(name, table, c) for c in MOTL_INTEGERS}
    floats = {c: _numbers(name, table, c) for c in MOTL_FLOATS}
    kept = _best_rows(name, integers, floats["score"])
    folder = Path(name).absolute().parent
    first = int(integers["subtomo_num"][0])
    if subtomo_name is None:
        prefix, extension = _find_subtomograms(name, folder, first)
    else:
        prefix, extension = subtomo_name, _extension(folder, subtomo_name, first)
    rows = table.to_dict("records")
    particles = []
    for i in kept:
        tomo, number = int(integers["tomo_num"][i]), int(integers["subtomo_num"][i])
        p = Particle(
            filename=f"{prefix}_{number}{extension}",
            rotation=Rotation(
                z1=float(floats["phi"][i]), z2=float(floats["psi"][i]), x=float(floats["the"][i])
            ),
            shift=Shift(*(float(floats[c][i]) for c in ("x_shift", "y_shift", "z_shift"))),
            pick_position=PickPosition(
                *(float(floats[c][i]) for c in ("orig_x", "orig_y", "orig_z")), origin=str(tomo)
            ),
            score=float(floats["score"][i]),
            class_name=str(int(integers["class"][i])),
            _source=rows[i],
        )
        particles.append(p)
    return ParticleList(particles, folder)


def _best_rows(name: str, integers: dict[str, np.ndarray], scores: np.ndarray) -> list[int]:
    """Row indices to keep: per motl_idx (in order of first appearance) its top-score row."""
    groups: dict[int, list[int]] = {}
    for i, idx in enumerate(integers["motl_idx"].tolist()):
        groups.setdefault(int(idx), []).append(i)
    kept = []
    for idx, rows in groups.items():
        numbers = {int(integers["subtomo_num"][i]) for i in rows}
        if len(numbers) > 1:
            raise TomoclassError(
                f"{name}: rows {', '.join(str(i + 1) for i in rows)} share motl_idx {idx} but "
                f"name different subtomograms (subtomo_num {sorted(numbers)})"
            )
        kept.append(max(rows, key=lambda i: (scores[i], -i)))
    if len(kept) < len(scores):
        warnings.warn(
            f"{name}: multi-entry motive list ({len(scores)} rows for {len(kept)} motl_idx); "
            "tomoclass uses the highest-scoring row of each motl_idx, as STOPGAP does when "
            "averaging",
            TomoclassWarning,
            stacklevel=3,
        )
    return kept


def _extension(folder: Path, prefix: str, number: int) -> str:
    """``.mrc``, or ``.em`` when only the ``.em`` file of subtomogram ``number`` exists."""
    stem = folder / f"{prefix}_{number}"
    if not is_file(f"{stem}.mrc") and is_file(f"{stem}.em"):
        return ".em"
    return ".mrc"


def _find_subtomograms(name: str, folder: Path, number: int) -> tuple[str, str]:
    """The one ``(prefix, extension)`` with ``prefix_<number>.mrc|.em`` in ``subtomograms/``
    next to the list or in its parent; the prefix is relative to the list's ``folder``."""
    pattern = re.compile(rf"(.+)_{number}(\.mrc|\.em)$")
    found: dict[str, set[str]] = {}
    searched = []
    for place in dict.fromkeys((folder / SUBTOMO_FOLDER, folder.parent / SUBTOMO_FOLDER)):
        searched.append(os.path.relpath(place, folder))
        try:
            entries = sorted(os.listdir(place))
        except OSError:
            continue
        for entry in entries:
            match = pattern.match(entry)
            if match and is_file(place / entry):
                prefix = os.path.relpath(place / match.group(1), folder)
                found.setdefault(prefix, set()).add(match.group(2))
    hint = "pass subtomo_name (--subtomo-name), the prefix relative to the list's folder"
    if len(found) != 1:
        what = (
            f"several subtomogram names ({', '.join(sorted(found))})"
            if found
            else f"no subtomogram <name>_{number}.mrc (or .em) in {' or '.join(searched)}"
        )
        raise TomoclassError(f"{name}: {what} for subtomo_num {number}; {hint}")
    prefix, extensions = next(iter(found.items()))
    return prefix, ".mrc" if ".mrc" in extensions else ".em"


# ------------------------------------------------------------------------------ wedge lists


def read_wedge_list(path: PathLike) -> dict[str, TiltSeries]:
    """Read a STOPGAP wedge list: one tilt series per tomogram, keyed by ``str(tomo_num)``.

    Angles in degrees, exposure in e/Å², defocus in Å (from µm), voltage kV, cs mm (module
    docstring). Missing exposure or defocus columns give None (no exposure filter, no CTF).
    """
    name = os.fspath(path)
    table = _loop_block(name, WEDGE_BLOCK)
    if len(table) == 0:
        raise TomoclassError(f"{name}: the wedge list has no rows")
    _require(name, table, ("tomo_num", "tilt_angle"))
    tomos = _integers(name, table, "tomo_num")
    columns = {c: _numbers(name, table, c) for c in (*WEDGE_SINGLE, *WEDGE_PER_TILT) if c in table}
    if "defocus1" in columns and "defocus2" in columns:
        columns["defocus"] = (columns["defocus1"] + columns["defocus2"]) / 2.0
    if "defocus" in columns:
        missing = [c for c in OPTICS if c not in columns]
        if missing:
            raise TomoclassError(
                f"{name}: the wedge list has a defocus but no {', '.join(missing)} "
                "(needed for the CTF)"
            )
    if np.any(columns.get("pshift", 0.0) != 0.0):
        warnings.warn(
            f"{name}: phase shifts (pshift) are not modelled; the CTF ignores them",
            TomoclassWarning,
            stacklevel=2,
        )
    result: dict[str, TiltSeries] = {}
    for tomo in dict.fromkeys(tomos.tolist()):
        rows = np.flatnonzero(tomos == tomo)
        result[str(int(tomo))] = _tilt_series(name, int(tomo), rows, columns)
    return result


def _tilt_series(name: str, tomo: int, rows: np.ndarray, columns: dict) -> TiltSeries:
    """The tilt series of tomogram ``tomo`` from its ``rows`` of the wedge list's ``columns``."""
    where = f"{name}: tomogram {tomo}"
    single = {}
    for column in WEDGE_SINGLE:
        if column in columns:
            values = columns[column][rows]
            if np.any(values != values[0]):
                raise TomoclassError(
                    f"{where}: {column} differs between its rows ({sorted(set(values.tolist()))})"
                    "; it is one value per tomogram"
                )
            single[column] = float(values[0])
    angles = columns["tilt_angle"][rows]
    bad = angles[np.abs(angles) > 90.0]
    if bad.size:
        raise TomoclassError(f"{where}: tilt angle {bad[0]:g} is outside -90..90 degrees")
    optics = {field: single[column] for column, field in OPTICS.items() if column in single}
    try:
        return TiltSeries(
            angles=tuple(angles.tolist()),
            exposure=_per_tilt(columns, "exposure", rows),
            defocus=_per_tilt(columns, "defocus", rows, scale=1e4),
            pixel_size=None,
            name=str(tomo),
            **optics,
        )
    except TomoclassError as err:
        raise TomoclassError(f"{where}: {err}") from None


def _per_tilt(
    columns: dict, column: str, rows: np.ndarray, scale: float = 1.0
) -> tuple[float, ...] | None:
    """``column``'s values at ``rows`` times ``scale``, or None when the column is absent."""
    if column not in columns:
        return None
    return tuple((columns[column][rows] * scale).tolist())


# ------------------------------------------------------------------------------ STAR tables


def _loop_block(name: str, block: str) -> pd.DataFrame:
    """The loop block ``data_<block>`` of a STAR file, or a TomoclassError naming the file."""
    blocks = read_star_blocks(name, ["halfset"])
    table = blocks.get(block)
    if table is None:
        raise TomoclassError(f"{name}: no data_{block} block in this STAR file")
    if not isinstance(table, pd.DataFrame):
        raise TomoclassError(f"{name}: data_{block} is not a loop_ table")
    return table.reset_index(drop=True)


def _require(name: str, table: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table]
    if missing:
        hint = ""
        if "motl_idx" in missing and len(missing) == 1:
            hint = " (an old 15-field STOPGAP list? sg_motl_convert_old_to_new adds it)"
        raise TomoclassError(f"{name}: missing column(s) {', '.join(missing)}{hint}")


def _numbers(name: str, table: pd.DataFrame, column: str) -> np.ndarray:
    """``column`` as finite float64 values; an error names the first bad row (1-based)."""
    raw = table[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        shown = _shown(raw.iloc[i])
        raise TomoclassError(f"{name}: row {i + 1}: {column} {shown} is not a finite number")
    return values


def _integers(name: str, table: pd.DataFrame, column: str) -> np.ndarray:
    """``column`` as int64 values; an error names the first row that is not an integer."""
    values = _numbers(name, table, column)
    bad = np.flatnonzero(values != np.round(values))
    if bad.size:
        i = int(bad[0])
        raise TomoclassError(f"{name}: row {i + 1}: {column} {values[i]:g} is not an integer")
    return values.astype(np.int64)


def _shown(value: Any) -> str:
    """A cell value as an error message shows it (starfile reads a missing cell as NaN)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "nan (or missing)"
    return repr(value) if isinstance(value, str) else str(value)
