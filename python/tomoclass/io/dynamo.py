"""Dynamo tables (``.tbl``): one particle per line, whitespace-separated numbers.

Columns used (1-based, as Dynamo counts them): 1 tag, 4-6 shift dx dy dz (voxels),
7-9 Euler angles tdrot tilt narot (degrees), 10 cc (the score), 13 ftype (wedge type),
14-15 ymintilt ymaxtilt (degrees), 20 tomo (tomogram number), 22 class, 24-26 x y z (the
position in the tomogram, voxels). Other columns are kept and written back; new tables get
the conventional 35 columns (2 aligned = 1, 3 averaged = 1, the rest 0 unless set).

Filenames are not part of a table: Dynamo finds the particle with tag t in the table's data
folder as ``particle_<t>.em`` (or ``.mrc``), the tag zero-padded to the same width for every
file of the folder; ``dynamo_table_crop`` pads to 5 digits by default (its ``tag_padding``,
"particle_00012.em": Dynamo wiki, ``dynamo_table_crop`` and "Data folder"). The data folder
is a project setting in Dynamo; tomoclass takes it to be the table's own folder (where
``dynamo_table_crop`` leaves ``crop.tbl``, as its wiki page describes; not checked against
Dynamo's source). RELION's Dynamo import names ``particle_<5 digits>`` too
(``src/jaz/tomography/dynamo/dynamo_particle.cpp`` ``getFormattedTag``, 110–119 at 73f0a3c).
On reading, each particle is the file of its tag in the table's folder (any padding, ``.em``
or ``.mrc``), else ``particle_<5 digits>.em`` there. On writing, tags come from filenames
``particle_<tag>.em`` (or ``.mrc``) when every particle has one and the tags are unique and
>= 1; otherwise they are 1, 2, … in list order. Filenames themselves are not stored:
:func:`write_tbl` links or copies the particles there on request (``particle_files``), and a
conversion to a table without it warns about the particles Dynamo will not find
(:func:`warn_particles_away`).

Rotation: Dynamo's ``dynamo_euler2matrix(tdrot, tilt, narot)`` is
``M = Rz(narot)·Rx(tilt)·Rz(tdrot)``, and the Dynamo wiki (Euler angles convention) defines
the angles as *clockwise* rotations of the template onto the particle, so the template is
turned by ``Mᵀ``: PyTom's ``R = Mᵀ = Rz(−tdrot)·Rx(−tilt)·Rz(−narot)``. Using the ZXZ
identity ``(a, b, c) ≡ (a + 180, −b, c + 180)`` this is, exactly,
``Z1 = 180 − narot, X = tilt, Z2 = 180 − tdrot`` (and back ``tdrot = 180 − Z2``,
``tilt = X``, ``narot = 180 − Z1``); angles are written wrapped to [−180, 180).
A known RELION/Dynamo pair giving identical reconstructions (Dynamo −47.273, 1.1777,
−132.3 = RELION 137.7, 1.1777, 42.727) confirms this against :mod:`tomoclass.io.star`.

Shift: Dynamo's dx, dy, dz is the offset of the particle centre from the box centre (the
particle sits at x + dx in the tomogram), which is PyTom's Shift: copied unchanged.
The position x, y, z is copied unchanged into the pick position, whose origin is the tomo
number as text (Dynamo counts voxels from 1, PyTom tools from 0; tomoclass does not use
pick positions). On writing, an origin that is not a number gets 1, 2, … in order of
first appearance, and an empty origin gets 0.

Wedge: ftype 0 (no wedge information) reads as ``wedge=None``; ftype 1 is a single tilt
about y from ymintilt to ymaxtilt. A tilt by +t (right-handed about +y) samples the Fourier
plane ``kz = kx·tan t``, so the positive side ymaxtilt bounds the half ``kx·kz > 0``, which
is PyTom's Angle1: ``Angle1 = 90 − ymaxtilt`` and ``Angle2 = 90 + ymintilt`` (= 90 − |ymintilt|;
−60..+60 gives 30, 30). Cutoff radius and smoothing are not stored (read as 0). Other
ftypes are refused with a clear error.

Writing: a table holds only that tilt range. A tilt series is written as its tilt range
(ftype 1; the per-tilt angles, exposure and CTF are dropped), a weight volume as ftype 0
(the table cannot refer to a file), and a wedge's cutoff radius and smoothing are dropped:
each with one :class:`~tomoclass.errors.TomoclassWarning` per written file, naming it and
counting the particles. Rotated tilt axes and double-tilt wedges are refused with a clear
error (a table has no way to express them, and a plain tilt range would be a different wedge).
Classes are numbers: a particle without class is written as class 0 (and read back as "0").
"""

from __future__ import annotations

import filecmp
import itertools
import math
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.geometry import Rotation, Shift
from tomoclass.io.files import PathLike, atomic_output, output_group
from tomoclass.io.volumes import MRC_EXTENSIONS
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.wedge import SingleTiltWedge, TiltSeries, Wedge, WeightVolume, tilt_range

TAG, DX, TDROT, CC, FTYPE, YMIN, YMAX, TOMO, CLASS, X = 0, 3, 6, 9, 12, 13, 14, 19, 21, 23
"""0-based column indices (Dynamo's column number minus one)."""
COLUMNS = 35
MIN_COLUMNS = 26
TAG_PADDING = 5
"""Digits of a tag in a particle's file name, as ``dynamo_table_crop`` writes them."""
_NAME = re.compile(r"particle_(\d+)\.(em|mrc)")
ParticleFiles = Literal["link", "copy"]
"""How :func:`write_tbl` puts the particles beside the table: symbolic links or copies."""


def _wrap(angle: float) -> float:
    """``angle`` in degrees wrapped to [−180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


def dynamo_rotation(tdrot: float, tilt: float, narot: float) -> Rotation:
    """The PyTom rotation of Dynamo's Euler angles (degrees): ``R = dynamo_euler2matrixᵀ``."""
    return Rotation(z1=_wrap(180.0 - narot), z2=_wrap(180.0 - tdrot), x=tilt)


def dynamo_angles(rotation: Rotation) -> tuple[float, float, float]:
    """Dynamo's ``(tdrot, tilt, narot)`` of a PyTom rotation (inverse of ``dynamo_rotation``)."""
    return _wrap(180.0 - rotation.z2), rotation.x, _wrap(180.0 - rotation.z1)


def particle_filename(tag: int, padding: int = TAG_PADDING, ext: str = ".em") -> str:
    """Dynamo's name for the particle with this tag: ``particle_00012.em``."""
    return f"particle_{tag:0{padding}d}{ext}"


def particle_files(folder: PathLike) -> dict[int, str]:
    """The file of each tag in the data folder ``folder``: ``particle_<tag>.em`` or ``.mrc``
    with any zero padding (the first name in sorted order when a tag has several)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # a folder that cannot be listed holds no particles we could read
        return {}
    found: dict[int, str] = {}
    for name in names:
        match = _NAME.fullmatch(name)
        if match:
            found.setdefault(int(match.group(1)), name)
    return found


# ------------------------------------------------------------------------------ reading


def read_tbl(path: PathLike) -> ParticleList:
    """Read a Dynamo table; particles are the files of their tags in the table's folder
    (module docstring)."""
    name = os.fspath(path)
    table = _load(name)
    folder = Path(name).absolute().parent
    found = particle_files(folder) if len(table) else {}
    particles = []
    for i, row in enumerate(table):
        try:
            particles.append(_particle(row, found))
        except (ValueError, TomoclassError) as err:
            raise TomoclassError(f"{name}: particle {i} (line {i + 1}): {err}") from None
    return ParticleList(particles, folder)


def _load(name: str) -> np.ndarray:
    """The table as an ``(N, ≥26)`` float64 array, or a TomoclassError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty table is a valid table
            table = np.loadtxt(name, ndmin=2, comments=("#", "%"))
    except FileNotFoundError:
        raise TomoclassError(f"{name}: no such file") from None
    except OSError as err:
        raise TomoclassError(f"{name}: cannot read ({err.strerror or err})") from None
    except ValueError as err:
        raise TomoclassError(f"{name}: malformed Dynamo table ({err})") from None
    if table.size == 0:
        return np.zeros((0, COLUMNS))
    if table.shape[1] < MIN_COLUMNS:
        raise TomoclassError(
            f"{name}: {table.shape[1]} columns; a Dynamo table has at least {MIN_COLUMNS}"
        )
    bad = np.argwhere(~np.isfinite(table))
    if bad.size:
        row, column = bad[0]
        raise TomoclassError(f"{name}: line {row + 1}, column {column + 1} is not finite")
    return table


def _integer(value: float, what: str) -> int:
    if not float(value).is_integer():
        raise ValueError(f"{what} {value} is not an integer")
    return int(value)


def _particle(row: np.ndarray, found: dict[int, str]) -> Particle:
    """The particle of a table row; its file is ``found[tag]``, else Dynamo's default name."""
    tag = _integer(row[TAG], "tag")
    return Particle(
        filename=found.get(tag) or particle_filename(tag),
        rotation=dynamo_rotation(*row[TDROT : TDROT + 3].tolist()),
        shift=Shift(*row[DX : DX + 3].tolist()),
        pick_position=PickPosition(
            *row[X : X + 3].tolist(), origin=str(_integer(row[TOMO], "tomo"))
        ),
        wedge=_wedge(row),
        score=float(row[CC]),
        class_name=str(_integer(row[CLASS], "class")),
        _source=row.copy(),
    )


def _wedge(row: np.ndarray) -> Wedge | None:
    ftype = _integer(row[FTYPE], "ftype")
    if ftype == 0:
        return None
    if ftype == 1:
        return SingleTiltWedge(angle1=90.0 - float(row[YMAX]), angle2=90.0 + float(row[YMIN]))
    raise ValueError(
        f"Dynamo wedge type ftype {ftype} is not supported (tomoclass reads 0: none, "
        "1: single tilt about y)"
    )


# ------------------------------------------------------------------------------ writing


def write_tbl(
    plist: ParticleList, path: PathLike, *, particle_files: ParticleFiles | None = None
) -> None:
    """Write ``plist`` as a Dynamo table atomically (columns and conventions: module docstring).

    Dynamo reads the particles from the table's folder (``particle_<tag>.em``). With
    ``particle_files`` ``"link"`` (symbolic links to the particle files) or ``"copy"``, the
    particles not there yet are put there, together with the table (a missing particle file
    or a file of another particle in the way is an error, and nothing is written).
    """
    name = os.fspath(path)
    rows, losses = _rows(name, plist)
    text = "".join(" ".join(_format(v) for v in row) + "\n" for row in rows)
    missing = [] if particle_files is None else _missing_particles(plist, Path(name))
    if particle_files is not None:
        _check_placeable(missing, particle_files)
    with output_group():
        with atomic_output(name) as tmp, open(tmp, "w", encoding="ascii") as f:
            f.write(text)
        for source, target in missing:
            _place(source, target, particle_files)
    if losses:
        warnings.warn(_loss_message(name, losses), TomoclassWarning, stacklevel=2)


def warn_particles_away(plist: ParticleList, path: PathLike) -> None:
    """One warning if Dynamo will not find particles of ``plist`` beside the table ``path``
    (see :func:`write_tbl`'s ``particle_files``)."""
    missing = _missing_particles(plist, Path(path))
    if not missing:
        return
    source, target = missing[0]
    text = (
        f"{os.fspath(path)}: Dynamo reads particle <tag> from particle_<tag>.em (or .mrc) "
        f"in its data folder, which tomoclass takes to be the table's; {len(missing)} of "
        f"{len(plist)} particles are not there (the first: {source} as {target.name})"
    )
    taken = [target for _, target in missing if target.exists()]
    if taken:
        text += (
            f", and {len(taken)} of those names hold another file, which Dynamo (and "
            f"tomoclass reading this table) would take instead (the first: {taken[0]}); "
            "write the table elsewhere"
        )
    else:
        text += "; --link-particles or --copy-particles (particle_files) puts them there"
    warnings.warn(text, TomoclassWarning, stacklevel=3)


def _missing_particles(plist: ParticleList, table: Path) -> list[tuple[Path, Path]]:
    """``(particle file, name Dynamo reads it by)`` of each particle whose file is not the
    file of its tag in the folder of the table ``table`` (names padded alike:
    :data:`TAG_PADDING` digits, more if a tag needs them)."""
    tags = _tags(plist)
    folder = table.absolute().parent
    present = particle_files(folder) if len(plist) else {}
    padding = max([TAG_PADDING, *(len(str(t)) for t in tags)])
    missing = []
    for source, tag in zip(plist.paths(), tags, strict=True):
        there = folder / present[tag] if tag in present else None
        if there is None or not _same_file(there, source):
            ext = ".mrc" if source.suffix.lower() in MRC_EXTENSIONS else ".em"
            missing.append((source, there or folder / particle_filename(tag, padding, ext)))
    return missing


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` is ``b`` (a link to it) or a copy of it (the same bytes)."""
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _check_placeable(missing: list[tuple[Path, Path]], how: ParticleFiles) -> None:
    """A clear error, before anything is written, for a particle file that does not exist or
    a file of another particle where its link or copy would go."""
    if how not in ("link", "copy"):
        raise TomoclassError(f"particle_files must be 'link' or 'copy', got {how!r}")
    for source, target in missing:
        if not os.path.isfile(source):
            raise TomoclassError(f"{source}: no such particle file to {how}")
        if os.path.lexists(target):
            raise TomoclassError(
                f"{target}: exists and is not {source}; Dynamo would read it for that "
                f"particle, so nothing was written (move it away, or write the table elsewhere)"
            )


def _place(source: Path, target: Path, how: ParticleFiles) -> None:
    """A symbolic link ``target`` to ``source`` (absolute), or a copy of it, atomically."""
    with atomic_output(target) as tmp:
        if how == "copy":
            shutil.copyfile(source, tmp)
        else:
            os.remove(tmp)
            os.symlink(os.path.abspath(source), tmp)


_LOSSES = {
    "series": "{} with a tilt series written as its tilt range (ftype 1): the per-tilt "
    "angles, exposure and CTF are dropped",
    "volume": "{} with a weight volume (3-D CTF or weights file) written as ftype 0, no wedge: "
    "Dynamo's table cannot hold it",
    "edge": "{} with a wedge cutoff radius or smoothing written without them",
}
"""What each kind of loss drops (``{}``: the particles)."""


def _loss_message(name: str, losses: dict[str, int]) -> str:
    """One warning for all the sampling information a table could not hold."""
    parts = [
        text.format(f"{losses[kind]} particle{'s' if losses[kind] != 1 else ''}")
        for kind, text in _LOSSES.items()
        if losses.get(kind)
    ]
    return f"{name}: a Dynamo table holds only a tilt range; " + "; ".join(parts)


def _rows(name: str, plist: ParticleList) -> tuple[np.ndarray, dict[str, int]]:
    """The table's rows, and how many particles lost each kind of sampling information."""
    sources = [p._source for p in plist if isinstance(p._source, np.ndarray)]
    width = max([COLUMNS, *(len(s) for s in sources)])
    tags = _tags(plist)
    tomos = _tomo_numbers(plist)
    rows = np.zeros((len(plist), width))
    losses: dict[str, int] = {}
    for i, p in enumerate(plist):
        try:
            rows[i] = _row(p, width, tags[i], tomos, losses)
        except TomoclassError as err:
            raise TomoclassError(f"{name}: particle {i}: {err}") from None
    return rows, losses


def _tags(plist: ParticleList) -> list[int]:
    """Tags from ``particle_<tag>`` filenames if all have one, unique and >= 1; else 1..N."""
    matches = [_NAME.fullmatch(os.path.basename(p.filename.replace("\\", "/"))) for p in plist]
    tags = [int(m.group(1)) for m in matches if m is not None]
    if len(tags) == len(plist) and len(set(tags)) == len(tags) and min(tags, default=1) >= 1:
        return tags
    return list(range(1, len(plist) + 1))


def _tomo_numbers(plist: ParticleList) -> dict[str, int]:
    """Tomogram number of each pick-position origin: its value if numeric, else 1, 2, …."""
    origins = ["" if p.pick_position is None else p.pick_position.origin for p in plist]
    numbers = {o: int(o) for o in origins if o.strip().isdigit()}
    numbers[""] = 0
    free = (n for n in itertools.count(1) if n not in numbers.values())
    for origin in origins:
        if origin not in numbers:
            numbers[origin] = next(free)
    return numbers


def _row(
    p: Particle, width: int, tag: int, tomos: dict[str, int], losses: dict[str, int]
) -> np.ndarray:
    """One table row: the source row updated where the particle changed, or a new row;
    ``losses`` counts what a written wedge loses."""
    source = p._source if isinstance(p._source, np.ndarray) else None
    before = _particle(source, {}) if source is not None else None
    row = np.zeros(width)
    if source is None:
        row[1] = row[2] = 1.0  # aligned, averaged
    else:
        row[: len(source)] = source
    row[TAG] = tag
    if before is None or before.rotation != p.rotation:
        row[TDROT : TDROT + 3] = dynamo_angles(p.rotation)
    if before is None or before.shift != p.shift:
        row[DX : DX + 3] = (p.shift.x, p.shift.y, p.shift.z)
    if before is None or before.pick_position != p.pick_position:
        pick = p.pick_position or PickPosition(0.0, 0.0, 0.0)
        row[X : X + 3] = (pick.x, pick.y, pick.z)
        row[TOMO] = tomos[pick.origin]
    if before is None or before.wedge != p.wedge:
        columns, loss = _wedge_columns(p.wedge)
        row[FTYPE : YMAX + 1] = columns
        if loss is not None:
            losses[loss] = losses.get(loss, 0) + 1
    if before is None or before.score != p.score:
        row[CC] = 0.0 if p.score is None else p.score
    if before is None or before.class_name != p.class_name:
        row[CLASS] = _class_number(p.class_name)
    return row


def _wedge_columns(wedge: Wedge | None) -> tuple[tuple[float, float, float], str | None]:
    """``(ftype, ymintilt, ymaxtilt)`` of a wedge, and the kind of information it loses
    (a key of ``_LOSSES``, or None)."""
    if wedge is None:
        return (0.0, 0.0, 0.0), None
    if isinstance(wedge, WeightVolume):
        return (0.0, 0.0, 0.0), "volume"
    rotated = isinstance(wedge, SingleTiltWedge) and wedge.tilt_axis_rotation != Rotation()
    if rotated or not isinstance(wedge, (SingleTiltWedge, TiltSeries)):
        raise TomoclassError(
            "a Dynamo table holds only single-tilt wedges about y (ftype 1); "
            "double-tilt wedges and rotated tilt axes cannot be written to it"
        )
    lo, hi = tilt_range(wedge)  # type: ignore[misc]
    if isinstance(wedge, TiltSeries):
        return (1.0, lo, hi), "series"
    return (1.0, lo, hi), "edge" if wedge.cutoff_radius or wedge.smooth else None


def _class_number(label: str | None) -> int:
    if label is None:
        return 0
    try:
        value = float(label)
    except ValueError:
        value = math.nan
    if not value.is_integer():
        raise TomoclassError(f"class {label!r} is not an integer (Dynamo column 22)")
    return int(value)


def _format(value: float) -> str:
    """Integers without a decimal point, other numbers in the shortest exact form."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
