"""PyTom particle-list XML, read and written without loss.

The layout is PyTom's (``pytom/basic/structures.py``)::

    <ParticleList>
      <Particle Filename="./particle_0.em">
        <Rotation Z1="..." Z2="..." X="..." Paradigm="ZXZ"/>   degrees, PyTom ZXZ
        <Shift X="..." Y="..." Z="..."/>                       voxels
        <PickPosition X="..." Y="..." Z="..." Origin="tomo.mrc" Binning="1" RefMarkIndex="1"/>
        <Wedge Type="SingleTiltWedge"><SingleTiltWedge Angle1 Angle2 CutoffRadius Smooth>
          <TiltAxisRotation Z1 Z2 X/></SingleTiltWedge></Wedge>
        <InfoGUI ProjectDir=""/>
        <Score Type="FLCFScore" Value="..." RemoveAutocorr="False"><PeakPrior .../></Score>
        <Class Name="0"/>
      </Particle>
    </ParticleList>

Wedges are also read as a bare ``<SingleTiltWedge>``, the old ``<WedgeInfo Angle1 Angle2>`` or
``<WedgeInfo Angle>`` (one symmetric angle), and ``DoubleTiltWedge`` holding two
``SingleTiltWedge`` (missing ``TiltAxisRotation`` = identity, missing ``Smooth`` = 0, missing
``CutoffRadius`` = 0). A missing Rotation or Shift is identity / zero, as in PyTom.

Weight volumes (:class:`~tomoclass.wedge.WeightVolume`; file layouts in
:mod:`tomoclass.io.weights`), written inside ``<Wedge Type="...">`` as PyTom does:

* ``<Wedge3dCTF Filename="..." CtfMaxResolution="6.7"/>`` (PyTom's 3-D CTF, e.g. from
  ``star2pl``): ``kind="ctf"``, ``ctf_max_resolution`` kept as read. PyTom's reader requires
  ``CtfMaxResolution`` (``float()`` without a default, structures.py 1602), so it is always
  written, ``0.0`` (PyTom's default) when unknown. tomoclass's own attribute
  ``CtfDataArePremultiplied="1"`` marks RELION 4/5 weights (CTF² of premultiplied data);
  PyTom ignores it, and has no such mode.
* ``<GeneralWedge Filename="..."/>``: ``kind="general"``.

Bare ``<Wedge3dCTF>`` is read too (PyTom's ``Wedge.fromXML`` accepts it, basic 918; its
``Particle.fromXML`` does not look for it, 2079-2087). A relative ``Filename`` is relative to
the list's folder, like the particle's, and is rebased with it when the list is written
elsewhere.

Tilt series (:class:`~tomoclass.wedge.TiltSeries`) have no PyTom element. A particle with one
gets PyTom's best approximation, the ``SingleTiltWedge`` of the series' tilt range
(:func:`~tomoclass.wedge.tilt_range_wedge`, no cutoff, no smoothing), and next to it
tomoclass's own element, which holds every tilt (attributes only where set)::

    <TiltSeries Name="TS_01" Voltage="300.0" Cs="2.7" AmplitudeContrast="0.07" PixelSize="...">
      <Tilt Angle="-60.0" XTilt="..." Exposure="..." Defocus="..." Scale="..." Bfactor="..."/>
      ...
    </TiltSeries>

When reading, a ``<TiltSeries>`` takes precedence over the particle's ``<Wedge>``. PyTom's
``Particle.fromXML`` looks up each child it knows by name, ``xpath('Rotation')``, ``'Shift'``,
``'InfoGUI'``, ``'PickPosition'``, the wedge tags, ``'Class'``, ``'Score'``, and nothing else
(SBC-Utrecht/PyTom 4089d5d ``pytom/basic/structures.py`` 2047-2102, wedge lookup 2079-2089;
``pytom/agnostic/structures.py`` 2066-2121): it uses the ``<Wedge>``, ignores ``<TiltSeries>``,
and drops it if it rewrites the list (``Particle.toXML``, basic 2001-2023).

No loss: each particle keeps its original element. Writing copies it and changes only what
changed: attributes whose parsed value is unchanged keep their text, unknown elements and
attributes stay. Particles that came from elsewhere (STAR, tbl, memory) are written in
PyTom's layout above. Files are parsed with ``defusedxml`` (no entity expansion) and written
atomically.
"""

from __future__ import annotations

import copy
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from tomoclass.errors import TomoclassError
from tomoclass.geometry import Rotation, Shift
from tomoclass.io.files import PathLike, atomic_output
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.wedge import (
    DoubleTiltWedge,
    SingleTiltWedge,
    TiltSeries,
    Wedge,
    WeightVolume,
    tilt_range,
    tilt_range_wedge,
)

_WEDGE_TAGS = (
    "Wedge",
    "SingleTiltWedge",
    "WedgeInfo",
    "DoubleTiltWedge",
    "GeneralWedge",
    "Wedge3dCTF",
)
"""Where PyTom looks for a particle's wedge, in its order (bare Wedge3dCTF: tomoclass only)."""

_VOLUME_TAGS = {"ctf": "Wedge3dCTF", "general": "GeneralWedge"}
"""PyTom's element of each weight-volume kind."""

PREMULTIPLIED = "CtfDataArePremultiplied"
"""tomoclass's attribute of a weight volume whose data were multiplied by the CTF."""

_SERIES_ATTRIBUTES = (
    ("voltage", "Voltage"),
    ("cs", "Cs"),
    ("amplitude_contrast", "AmplitudeContrast"),
    ("pixel_size", "PixelSize"),
)
"""``<TiltSeries>`` attributes of :class:`TiltSeries` fields, in written order."""

_TILT_ATTRIBUTES = (
    ("angles", "Angle"),
    ("x_tilts", "XTilt"),
    ("exposure", "Exposure"),
    ("defocus", "Defocus"),
    ("scale", "Scale"),
    ("bfactor", "Bfactor"),
)
"""``<Tilt>`` attributes of :class:`TiltSeries` per-tilt fields, in written order."""


class _Invalid(ValueError):
    """A malformed particle element; the reader adds the file and particle index."""


# ---------------------------------------------------------------------------------- reading


def read_pytom_xml(path: PathLike) -> ParticleList:
    """Read a PyTom particle-list XML file; relative filenames are relative to its folder."""
    root = parse_xml(path, ("ParticleList",))
    particles = []
    for index, element in enumerate(root.findall("Particle")):
        try:
            particles.append(_particle(element))
        except (_Invalid, TomoclassError) as err:
            raise TomoclassError(f"{os.fspath(path)}: particle {index}: {err}") from None
    return ParticleList(particles, Path(path).absolute().parent, _template(root))


def parse_xml(path: PathLike, roots: tuple[str, ...]) -> ET.Element:
    """The root element of the XML file ``path`` (comments kept), which must be one of
    ``roots``; refuses DTDs and entities. Every failure is a TomoclassError naming the file."""
    name = os.fspath(path)
    builder = ET.TreeBuilder(insert_comments=True, insert_pis=True)
    # No DTD at all: PyTom never writes one, and one could silently swallow entities.
    parser = SafeET.XMLParser(target=builder, forbid_dtd=True)
    try:
        root = SafeET.parse(name, parser=parser).getroot()
    except FileNotFoundError:
        raise TomoclassError(f"{name}: no such file") from None
    except OSError as err:
        raise TomoclassError(f"{name}: cannot read ({err.strerror or err})") from None
    except ET.ParseError as err:
        raise TomoclassError(f"{name}: malformed XML ({err})") from None
    except DefusedXmlException as err:
        raise TomoclassError(f"{name}: refused unsafe XML ({err})") from None
    if root.tag not in roots:
        expected = " or ".join(f"<{tag}>" for tag in roots)
        raise TomoclassError(f"{name}: root element is <{root.tag}>, expected {expected}")
    return root


def _template(root: ET.Element) -> tuple[ET.Element, int]:
    """The root without its particles, and where the first particle stood."""
    children = list(root)
    firsts = [i for i, child in enumerate(children) if child.tag == "Particle"]
    template = ET.Element(root.tag, dict(root.attrib))
    template.text = root.text
    template.extend(child for child in children if child.tag != "Particle")
    return template, firsts[0] if firsts else len(children)


def _particle(element: ET.Element) -> Particle:
    """The particle an element describes (its unknown content stays in ``_source``)."""
    filename = element.get("Filename")
    if filename is None:
        raise _Invalid("<Particle> has no Filename attribute")
    return Particle(
        filename=filename,
        rotation=_rotation(element.find("Rotation")),
        shift=_shift(element.find("Shift")),
        pick_position=_pick_position(element.find("PickPosition")),
        wedge=_sampling(element),
        score=_score(element.find("Score")),
        class_name=_class_name(element.find("Class")),
        _source=element,
    )


def _number(element: ET.Element, name: str, default: float | None = None) -> float:
    """Attribute ``name`` as a finite float; ``default`` if absent (None: required)."""
    text = element.get(name)
    if text is None:
        if default is None:
            raise _Invalid(f"<{element.tag}> has no {name} attribute")
        return default
    try:
        value = float(text)
    except ValueError:
        raise _Invalid(f'<{element.tag} {name}="{text}">: not a number') from None
    if not math.isfinite(value):
        raise _Invalid(f'<{element.tag} {name}="{text}">: not a finite number')
    return value


def _rotation(element: ET.Element | None) -> Rotation:
    if element is None:
        return Rotation()
    paradigm = element.get("Paradigm", "ZXZ")
    if paradigm != "ZXZ":
        raise _Invalid(f'<Rotation Paradigm="{paradigm}">: only ZXZ is supported')
    return Rotation(_number(element, "Z1"), _number(element, "Z2"), _number(element, "X"))


def _shift(element: ET.Element | None) -> Shift:
    if element is None:
        return Shift()
    return Shift(_number(element, "X"), _number(element, "Y"), _number(element, "Z"))


def _pick_position(element: ET.Element | None) -> PickPosition | None:
    if element is None:
        return None
    xyz = (_number(element, axis) for axis in "XYZ")
    return PickPosition(*xyz, origin=element.get("Origin", ""))


def _score(element: ET.Element | None) -> float | None:
    if element is None or element.get("Value") is None:
        return None
    return _number(element, "Value")


def _class_name(element: ET.Element | None) -> str | None:
    return None if element is None else element.get("Name")


def _sampling(particle: ET.Element) -> Wedge | None:
    """The particle's ``<TiltSeries>`` if it has one, else its wedge."""
    series = particle.find("TiltSeries")
    if series is not None:
        return _tilt_series(series)
    return _wedge(_find_wedge(particle))


def _find_wedge(particle: ET.Element) -> ET.Element | None:
    """The particle's wedge element, looked up as PyTom does."""
    for tag in _WEDGE_TAGS:
        found = particle.find(tag)
        if found is not None:
            return found
    return None


def _elements(parent: ET.Element) -> list[ET.Element]:
    """Child elements, without comments and processing instructions."""
    return [child for child in parent if isinstance(child.tag, str)]


def _wedge(element: ET.Element | None) -> Wedge | None:
    """Any of PyTom's wedge spellings; an unknown type is an error naming it."""
    if element is None:
        return None
    kind, body = element.tag, element
    if element.tag == "Wedge":
        inner = _elements(element)
        if not inner:
            raise _Invalid("<Wedge> holds no wedge element")
        body = inner[0]
        kind = element.get("Type", body.tag)
    if kind in ("SingleTiltWedge", "WedgeInfo"):
        return _single_tilt_wedge(body)
    if kind == "DoubleTiltWedge":
        return _double_tilt_wedge(body)
    if kind == "Wedge3dCTF":
        return _weight_volume(body, "ctf")
    if kind == "GeneralWedge":
        return _weight_volume(body, "general")
    raise _Invalid(
        f"unknown wedge type {kind!r} (tomoclass reads SingleTiltWedge, WedgeInfo, "
        "DoubleTiltWedge, Wedge3dCTF, GeneralWedge)"
    )


def _single_tilt_wedge(element: ET.Element) -> SingleTiltWedge:
    if element.get("Angle1") is None and element.get("Angle") is not None:
        angle1 = angle2 = _number(element, "Angle")
    else:
        angle1, angle2 = _number(element, "Angle1"), _number(element, "Angle2")
    axis = element.find("TiltAxisRotation")
    tilt_axis = Rotation()
    if axis is not None:
        tilt_axis = Rotation(*(_number(axis, name, 0.0) for name in ("Z1", "Z2", "X")))
    return SingleTiltWedge(
        angle1=angle1,
        angle2=angle2,
        cutoff_radius=_number(element, "CutoffRadius", 0.0),
        smooth=_number(element, "Smooth", 0.0),
        tilt_axis_rotation=tilt_axis,
    )


def _double_tilt_wedge(element: ET.Element) -> DoubleTiltWedge:
    singles = element.findall("SingleTiltWedge")
    nested = element.find("DoubleTiltWedge")
    if len(singles) != 2 and nested is not None:
        singles = nested.findall("SingleTiltWedge")
    if len(singles) != 2:
        raise _Invalid(f"DoubleTiltWedge needs two <SingleTiltWedge>, found {len(singles)}")
    return DoubleTiltWedge(_single_tilt_wedge(singles[0]), _single_tilt_wedge(singles[1]))


def _flag(element: ET.Element, name: str) -> bool:
    """A boolean attribute (``1``/``true`` or ``0``/``false``; absent = false)."""
    text = element.get(name)
    if text is None or text.strip().lower() in ("0", "false"):
        return False
    if text.strip().lower() in ("1", "true"):
        return True
    raise _Invalid(f'<{element.tag} {name}="{text}">: expected 1 or 0')


def _weight_volume(element: ET.Element, kind: str) -> WeightVolume:
    """``<Wedge3dCTF>`` (``kind`` ``"ctf"``) or ``<GeneralWedge>`` (``"general"``)."""
    filename = element.get("Filename")
    if not filename:
        raise _Invalid(f"<{element.tag}> has no Filename attribute")
    resolution = None
    if kind == "ctf" and element.get("CtfMaxResolution") is not None:
        resolution = _number(element, "CtfMaxResolution")
    return WeightVolume(
        filename,
        premultiplied=_flag(element, PREMULTIPLIED),
        kind=kind,
        ctf_max_resolution=resolution,
    )


def _tilt_series(element: ET.Element) -> TiltSeries:
    """tomoclass's ``<TiltSeries>``: one ``<Tilt>`` per image, optional per-tilt values."""
    tilts = element.findall("Tilt")
    if not tilts:
        raise _Invalid("<TiltSeries> holds no <Tilt> element")
    values: dict[str, Any] = {}
    for field, name in _TILT_ATTRIBUTES:
        given = sum(tilt.get(name) is not None for tilt in tilts)
        if field != "angles" and given == 0:
            continue
        if 0 < given < len(tilts):
            raise _Invalid(f"<TiltSeries>: {name} is given for {given} of {len(tilts)} tilts")
        values[field] = tuple(_number(tilt, name) for tilt in tilts)
    for field, name in _SERIES_ATTRIBUTES:
        if element.get(name) is not None:
            values[field] = _number(element, name)
    return TiltSeries(name=element.get("Name", ""), **values)


# ---------------------------------------------------------------------------------- writing


def write_pytom_xml(plist: ParticleList, path: PathLike) -> None:
    """Write ``plist`` as PyTom XML at ``path`` atomically (never a half-written file).

    Relative filenames are rewritten relative to the new file's folder when it differs.
    """
    plist = plist.rebased(Path(path).absolute().parent)
    text = to_xml_string(plist)
    bad = _NOT_XML_CHAR.search(text)
    if bad is not None:
        start = text.rfind("\n", 0, bad.start()) + 1
        line = text[start : text.find("\n", bad.start())].strip()
        raise TomoclassError(
            f"{os.fspath(path)}: cannot write U+{ord(bad.group()):04X} in {line[:120]!r}:"
            " XML 1.0 has no such character (rename the file or change the text that holds it)"
        )
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


# Characters outside XML 1.0's ``Char`` production (control characters, surrogates, U+FFFE,
# U+FFFF): ElementTree writes them, but no parser reads the file back.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def to_xml_string(plist: ParticleList) -> str:
    """The XML text of a particle list (indented two spaces, as PyTom writes it)."""
    root = _root(plist)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def _root(plist: ParticleList) -> ET.Element:
    source = plist._source
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], ET.Element):
        root, at = copy.deepcopy(source[0]), source[1]
    else:
        root, at = ET.Element("ParticleList"), 0
    for offset, particle in enumerate(plist):
        root.insert(at + offset, particle_element(particle))
    return root


def particle_element(p: Particle) -> ET.Element:
    """``p`` as a ``<Particle>`` element: its original one updated, or a new one."""
    if isinstance(p._source, ET.Element):
        element = copy.deepcopy(p._source)
        before: Particle | None = _particle(p._source)
    else:
        element, before = ET.Element("Particle", Filename=p.filename), None
    for name, update in _UPDATES:
        if before is None and name == "score":
            _append(element, "InfoGUI", ProjectDir="")
        value = getattr(p, name)
        if before is None or getattr(before, name) != value:
            update(element, value)
    return element


def _set_number(element: ET.Element, name: str, value: float) -> None:
    """Set a numeric attribute, keeping the old text if it already parses to ``value``."""
    old = element.get(name)
    try:
        if old is not None and float(old) == float(value):
            return
    except ValueError:
        pass
    element.set(name, repr(float(value)))


def _child(element: ET.Element, tag: str, **attrib: str) -> ET.Element:
    """The first ``tag`` child, appended (with ``attrib``) if there is none."""
    found = element.find(tag)
    return found if found is not None else _append(element, tag, **attrib)


def _append(element: ET.Element, tag: str, **attrib: str) -> ET.Element:
    return ET.SubElement(element, tag, attrib)


def _remove(element: ET.Element, tag: str) -> None:
    found = element.find(tag)
    if found is not None:
        element.remove(found)


def _update_filename(element: ET.Element, filename: str) -> None:
    element.set("Filename", filename)


def _update_rotation(element: ET.Element, rotation: Rotation) -> None:
    target = _child(element, "Rotation")
    for name, value in (("Z1", rotation.z1), ("Z2", rotation.z2), ("X", rotation.x)):
        _set_number(target, name, value)
    if target.get("Paradigm") is None:
        target.set("Paradigm", "ZXZ")


def _update_shift(element: ET.Element, shift: Shift) -> None:
    target = _child(element, "Shift")
    for name, value in (("X", shift.x), ("Y", shift.y), ("Z", shift.z)):
        _set_number(target, name, value)


def _update_pick_position(element: ET.Element, pick: PickPosition | None) -> None:
    if pick is None:
        _remove(element, "PickPosition")
        return
    target = element.find("PickPosition")
    if target is None:
        target = _append(element, "PickPosition")
        extra = {"Binning": "1", "RefMarkIndex": "1"}
    else:
        extra = {}
    for name, value in (("X", pick.x), ("Y", pick.y), ("Z", pick.z)):
        _set_number(target, name, value)
    target.set("Origin", pick.origin)
    for name, value in extra.items():
        target.set(name, value)


def _update_wedge(element: ET.Element, wedge: Wedge | None) -> None:
    """Replace the wedge and tilt-series elements (in their old place), or update a weight
    volume's element in place when it already is one of the same kind."""
    old = _find_wedge(element)
    series = element.find("TiltSeries")
    if series is None and old is not None and isinstance(wedge, WeightVolume):
        if _update_volume(old, wedge):
            return
    olds = [e for e in (old, series) if e is not None]
    children = list(element)
    index = min((children.index(e) for e in olds), default=len(children))
    for e in olds:
        element.remove(e)
    for offset, new in enumerate(wedge_elements(wedge)):
        element.insert(index + offset, new)


def _update_volume(old: ET.Element, volume: WeightVolume) -> bool:
    """Update ``old`` (a wedge element) to ``volume`` if it is PyTom's element of the same
    kind, keeping its other attributes; False if it is not."""
    body = old
    if old.tag == "Wedge":
        inner = _elements(old)
        if not inner:
            return False
        body = inner[0]
    tag = _VOLUME_TAGS[volume.kind]
    if old.get("Type", body.tag) != tag or body.tag != tag:
        return False
    body.set("Filename", volume.filename)
    if volume.kind == "ctf":
        _set_number(body, "CtfMaxResolution", volume.ctf_max_resolution or 0.0)
    if volume.premultiplied:
        if body.get(PREMULTIPLIED, "").strip().lower() not in ("1", "true"):
            body.set(PREMULTIPLIED, "1")
    elif PREMULTIPLIED in body.attrib:
        del body.attrib[PREMULTIPLIED]
    return True


def _update_score(element: ET.Element, score: float | None) -> None:
    if score is None:
        _remove(element, "Score")
        return
    target = element.find("Score")
    if target is None:
        target = _append(element, "Score", Type="FLCFScore", Value="", RemoveAutocorr="False")
        _append(target, "PeakPrior", Filename="", Radius="0.0", Smooth="-1.0")
    _set_number(target, "Value", score)


def _update_class(element: ET.Element, name: str | None) -> None:
    if name is None:
        _remove(element, "Class")
    else:
        _child(element, "Class").set("Name", name)


_UPDATES: tuple[tuple[str, Callable[[ET.Element, Any], None]], ...] = (
    ("filename", _update_filename),
    ("rotation", _update_rotation),
    ("shift", _update_shift),
    ("pick_position", _update_pick_position),
    ("wedge", _update_wedge),
    ("score", _update_score),
    ("class_name", _update_class),
)
"""Each modelled field and how to write it, in PyTom's child order."""


def wedge_elements(wedge: Wedge | None) -> list[ET.Element]:
    """The particle children that hold ``wedge``: its ``<Wedge>`` and, for a tilt series,
    tomoclass's ``<TiltSeries>``."""
    if wedge is None:
        return []
    if isinstance(wedge, TiltSeries):
        return [wedge_element(wedge), tilt_series_element(wedge)]
    return [wedge_element(wedge)]


def wedge_element(wedge: Wedge) -> ET.Element:
    """``<Wedge Type=...>`` in PyTom's layout (a tilt series as its :func:`pytom_wedge`)."""
    if isinstance(wedge, TiltSeries):
        wedge = pytom_wedge(wedge)
    if isinstance(wedge, WeightVolume):
        tag = _VOLUME_TAGS[wedge.kind]
        outer = ET.Element("Wedge", Type=tag)
        inner = ET.SubElement(outer, tag, Filename=wedge.filename)
        if wedge.kind == "ctf":
            inner.set("CtfMaxResolution", repr(float(wedge.ctf_max_resolution or 0.0)))
        if wedge.premultiplied:
            inner.set(PREMULTIPLIED, "1")
        return outer
    if isinstance(wedge, DoubleTiltWedge):
        outer = ET.Element("Wedge", Type="DoubleTiltWedge")
        inner = ET.SubElement(outer, "DoubleTiltWedge")
        inner.extend([_single_element(wedge.first), _single_element(wedge.second)])
        return outer
    outer = ET.Element("Wedge", Type="SingleTiltWedge")
    outer.append(_single_element(wedge))
    return outer


def _single_element(wedge: SingleTiltWedge) -> ET.Element:
    element = ET.Element(
        "SingleTiltWedge",
        Angle1=repr(float(wedge.angle1)),
        Angle2=repr(float(wedge.angle2)),
        CutoffRadius=repr(float(wedge.cutoff_radius)),
        Smooth=repr(float(wedge.smooth)),
    )
    axis = wedge.tilt_axis_rotation
    angles = {"Z1": axis.z1, "Z2": axis.z2, "X": axis.x}
    ET.SubElement(element, "TiltAxisRotation", {k: repr(float(v)) for k, v in angles.items()})
    return element


def pytom_wedge(series: TiltSeries) -> SingleTiltWedge:
    """The wedge PyTom can read for a tilt series: that of its tilt range about y.

    A range on one side of 0 would need a PyTom angle above 90; it is clipped to 90, the
    closest wedge PyTom holds (a single image at 0° gives 90, 90: only the plane kz = 0).
    """
    lo, hi = tilt_range(series)  # type: ignore[misc]
    if lo < hi and lo <= 0.0 <= hi:
        return tilt_range_wedge(lo, hi)
    return SingleTiltWedge(min(90.0, max(0.0, 90.0 - hi)), min(90.0, max(0.0, 90.0 + lo)))


def tilt_series_element(series: TiltSeries) -> ET.Element:
    """tomoclass's ``<TiltSeries>`` element (see the module docstring)."""
    attrib = {"Name": series.name} if series.name else {}
    for field, name in _SERIES_ATTRIBUTES:
        value = getattr(series, field)
        if value is not None:
            attrib[name] = repr(float(value))
    element = ET.Element("TiltSeries", attrib)
    columns = [(name, getattr(series, field)) for field, name in _TILT_ATTRIBUTES]
    for t in range(len(series.angles)):
        tilt = {name: repr(float(values[t])) for name, values in columns if values is not None}
        ET.SubElement(element, "Tilt", tilt)
    return element
