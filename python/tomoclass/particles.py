"""Particle lists: which subtomograms to classify, with their alignment, wedge and class.

Conventions are PyTom's (see :mod:`tomoclass.geometry`): ``rotation`` is the ZXZ rotation in
degrees that turns the reference into the particle, ``shift`` the +offset of the particle
centre from the box centre ``n // 2`` in voxels ``(x, y, z)``. A pick position is the particle's
place in its tomogram, in tomogram voxels. Lists are read and written by :mod:`tomoclass.io`
(PyTom XML, RELION STAR, Dynamo tbl).

A ``filename`` is kept exactly as the list file wrote it; a relative one is resolved against
``ParticleList.directory``, the folder of the list file (see :meth:`ParticleList.paths`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tomoclass.errors import TomoclassError
from tomoclass.geometry import Rotation, Shift, zxz_matrices
from tomoclass.wedge import Wedge

Label = int | str | None
"""A class label as callers give it: an int, a string, or None for "no class"."""


@dataclass(frozen=True, slots=True)
class PickPosition:
    """Where a particle was picked: tomogram voxels ``(x, y, z)`` and the tomogram's name."""

    x: float
    y: float
    z: float
    origin: str = ""

    def __post_init__(self) -> None:
        for name in ("x", "y", "z"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True, slots=True)
class Particle:
    """One aligned subtomogram.

    ``filename`` is the volume file as written in the list (relative to the list's folder
    unless absolute). ``wedge`` is None when the list file says nothing about the wedge,
    ``score`` the alignment score if any, ``class_name`` the class label as a string.
    ``_source`` keeps the record this particle was read from (an XML element, a STAR row or
    a tbl row) so that writing to the same format keeps what tomoclass does not model.
    """

    filename: str
    rotation: Rotation = field(default_factory=Rotation)
    shift: Shift = field(default_factory=Shift)
    pick_position: PickPosition | None = None
    wedge: Wedge | None = None
    score: float | None = None
    class_name: str | None = None
    _source: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "filename", os.fspath(self.filename))
        object.__setattr__(self, "class_name", class_label(self.class_name))


def class_label(label: Any) -> str | None:
    """A class label as stored: ints (and integral floats) become their decimal string."""
    if label is None or isinstance(label, str):
        return label
    if isinstance(label, (bool, np.bool_)):
        raise TomoclassError(f"class label must be an int or a string, got {label!r}")
    if isinstance(label, (int, np.integer)):
        return str(int(label))
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    raise TomoclassError(f"class label must be an int or a string, got {label!r}")


class ParticleList(Sequence[Particle]):
    """An ordered, immutable sequence of particles and the folder their filenames are relative to.

    ``directory`` is the folder of the list file (the current folder for lists built in
    memory). Indexing with an int gives a :class:`Particle`; a slice, an index array or a
    boolean mask gives a new ``ParticleList``. Operations never modify a list in place.
    """

    __slots__ = ("_particles", "_source", "directory")

    def __init__(
        self,
        particles: Iterable[Particle] = (),
        directory: str | os.PathLike[str] | None = None,
        _source: Any = None,
    ) -> None:
        self._particles: tuple[Particle, ...] = tuple(particles)
        for p in self._particles:
            if not isinstance(p, Particle):
                raise TypeError(f"ParticleList holds Particle objects, got {type(p).__name__}")
        self.directory: Path = Path(directory if directory is not None else os.getcwd()).absolute()
        self._source = _source

    def _derive(self, particles: Iterable[Particle]) -> ParticleList:
        """A list of other particles with this list's folder and file-level record."""
        return ParticleList(particles, self.directory, self._source)

    def __len__(self) -> int:
        return len(self._particles)

    def __iter__(self) -> Iterator[Particle]:
        return iter(self._particles)

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, (int, np.integer)):
            return self._particles[int(key)]
        if isinstance(key, slice):
            return self._derive(self._particles[key])
        index = np.asarray(key)
        if index.dtype == np.bool_:
            if index.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {index.shape} for {len(self)} particles")
            index = np.flatnonzero(index)
        elif index.size and not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"cannot index a ParticleList with {index.dtype} values")
        return self._derive(self._particles[i] for i in index.reshape(-1).tolist())

    def __add__(self, other: ParticleList) -> ParticleList:
        """Concatenation; ``other``'s relative filenames are re-expressed relative to ``self``."""
        if not isinstance(other, ParticleList):
            return NotImplemented
        source = self._source if self._source is not None else other._source
        moved = other.rebased(self.directory)
        return ParticleList((*self._particles, *moved._particles), self.directory, source)

    def __repr__(self) -> str:
        return f"ParticleList({len(self)} particles, directory={str(self.directory)!r})"

    def paths(self) -> list[Path]:
        """Absolute, normalised particle file paths (relative filenames start at ``directory``)."""
        folder = os.fspath(self.directory)  # string joins: pathlib's are slow at 10⁵ particles
        return [Path(os.path.normpath(os.path.join(folder, p.filename))) for p in self._particles]

    def class_names(self) -> list[str | None]:
        """Each particle's class label (None where it has none)."""
        return [p.class_name for p in self._particles]

    def split_by_class(self) -> dict[str | None, ParticleList]:
        """One list per class label, in order of first appearance (PyTom's ``splitByClass``).

        Particles without a class are grouped under the key None.
        """
        groups: dict[str | None, list[Particle]] = {}
        for p in self._particles:
            groups.setdefault(p.class_name, []).append(p)
        return {name: self._derive(members) for name, members in groups.items()}

    def select(self, classes: Label | Iterable[Label]) -> ParticleList:
        """The particles whose class is one of ``classes`` (ints or strings), in list order."""
        if classes is None or isinstance(classes, (str, int, np.integer)):
            classes = [classes]
        wanted = {class_label(c) for c in classes}
        return self._derive(p for p in self._particles if p.class_name in wanted)

    def with_classes(self, labels: Iterable[Label]) -> ParticleList:
        """A copy with ``class_name`` set from ``labels`` (one int/str/None per particle)."""
        labels = list(labels)
        if len(labels) != len(self):
            raise TomoclassError(f"labels: got {len(labels)} labels for {len(self)} particles")
        return self._derive(
            replace(p, class_name=class_label(label))
            for p, label in zip(self._particles, labels, strict=True)
        )

    def with_shifts(self, shifts: np.ndarray) -> ParticleList:
        """A copy with the shifts set from ``shifts`` ``(N, 3)``, voxels ``(x, y, z)``."""
        values = np.asarray(shifts, dtype=np.float64)
        if values.shape != (len(self), 3):
            raise TomoclassError(f"shifts: got shape {values.shape} for {len(self)} particles")
        return self._derive(
            replace(p, shift=Shift(*(float(v) for v in row)))
            for p, row in zip(self._particles, values, strict=True)
        )

    def with_scores(self, scores: Iterable[float | None]) -> ParticleList:
        """A copy with ``score`` set from ``scores`` (one per particle)."""
        values = list(scores)
        if len(values) != len(self):
            raise TomoclassError(f"scores: got {len(values)} for {len(self)} particles")
        return self._derive(
            replace(p, score=None if v is None else float(v))
            for p, v in zip(self._particles, values, strict=True)
        )

    def with_wedges(self, wedges: Iterable[Wedge | None]) -> ParticleList:
        """A copy with each particle's sampling set from ``wedges`` (one per particle)."""
        wedges = list(wedges)
        if len(wedges) != len(self):
            raise TomoclassError(f"wedges: got {len(wedges)} for {len(self)} particles")
        return self._derive(
            replace(p, wedge=w) for p, w in zip(self._particles, wedges, strict=True)
        )

    def rotation_matrices(self) -> np.ndarray:
        """``(N, 3, 3)`` float64 matrices ``Rz(z2)·Rx(x)·Rz(z1)`` acting on ``(x, y, z)``."""
        if not self._particles:
            return np.zeros((0, 3, 3))
        angles = np.array([(p.rotation.z1, p.rotation.z2, p.rotation.x) for p in self._particles])
        return zxz_matrices(*angles.T)

    def shifts(self) -> np.ndarray:
        """``(N, 3)`` float64 shifts in voxels, columns ``(x, y, z)``."""
        rows = [(p.shift.x, p.shift.y, p.shift.z) for p in self._particles]
        return np.array(rows, dtype=np.float64).reshape(len(rows), 3)

    def wedges(self) -> list[Wedge | None]:
        """Each particle's wedge (None where the list file gives none)."""
        return [p.wedge for p in self._particles]

    def rebased(self, directory: str | os.PathLike[str]) -> ParticleList:
        """The same particles with relative filenames re-expressed relative to ``directory``.

        Absolute filenames stay as they are. Returns ``self`` when the folder is the same.
        """
        target = Path(directory).absolute()
        if os.path.normpath(target) == os.path.normpath(self.directory):
            return self
        return ParticleList(
            (_relocated(p, self.directory, target) for p in self._particles),
            target,
            self._source,
        )


def _relocated(p: Particle, old: Path, new: Path) -> Particle:
    """``p`` with relative filenames (its own and its weight volume's) rewritten from folder
    ``old`` to folder ``new``."""
    from tomoclass.wedge import WeightVolume

    def moved(filename: str) -> str:
        if os.path.isabs(filename):
            return filename
        full = os.path.normpath(old / filename)
        try:
            return os.path.relpath(full, new)
        except ValueError:  # another drive on Windows: no relative path exists
            return full

    wedge = p.wedge
    if isinstance(wedge, WeightVolume):
        wedge = replace(wedge, filename=moved(wedge.filename))
    return replace(p, filename=moved(p.filename), wedge=wedge)
