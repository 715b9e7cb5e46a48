"""PyTom's MCO classification job files (``MCOEXMXJob`` and ``MCOACJob``), read and written.

The layout is PyTom's (``pytom/classification/mcoEXMXStructures.py``,
``mcoACStructures.py`` and ``pytom/alignment/ExMaxAlignment.py``)::

    <MCOEXMXJob NumberIterations="10" DestinationDirectory="./results" NumberClasses="3"
                EndThreshold="0.05" FRMAlignment="False" FRMBandwidth="None">
      <ExpectationMaximisationJob>
        <Description Destination="./results/" NumberIterations="1" ExcludeThreshold="-1"
                     Binning="2" FSCCriterion="0.5" AdaptiveResolution="False"
                     AdaptiveOffset="0.1" AngleFactor="0.5">
          <ParticleList> <Particle .../> ... </ParticleList>
          <Reference File="" Weighting="" PreWedge="" FSCFilter=""/>
          <Mask Filename="./mask.em" isSphere="True" Binning="1"/>
          <Score Type="FLCFScore" Value="NAN" RemoveAutocorr="False"><PeakPrior .../></Score>
          <Angles Type="OneAngleList"><Rotation Z1="0" Z2="0" X="0" Index="0"/></Angles>
          <Preprocessing><Bandpass LowestFrequency="2" HighestFrequency="10" Smooth="0"/>
          </Preprocessing>
          <Symmetry Type="PointSymmetry" NFold="1" Z2="0" X="0" .../>
          <SampleInformation PixelSize="-1" ParticleDiameter="-1"/>
        </Description>
      </ExpectationMaximisationJob>
    </MCOEXMXJob>

An ``MCOACJob`` is the same with the root renamed, a ``LocalSearchIncrement`` attribute on it
and two more children after ``ExpectationMaximisationJob``::

    <AnnealingTemperature Name="SigmaTemperature" Temperature="10.0" TemperatureStep="1.0"/>
    <AnnealingCriterion Name="MetropolisCriterion" AllowClassCollapse="False"/>

(``Name`` is ``SigmaTemperature`` or ``AnnealingTemperature``, ``MetropolisCriterion`` or
``ThresholdAcceptance``.) The root's ``NumberIterations`` is the number of classification
iterations; the ``Description``'s own ``NumberIterations`` belongs to PyTom's alignment and is
written as 1. The inline ``<ParticleList>`` is parsed by :mod:`tomoclass.io.pytom_xml`; a
``<ParticleList Filename="...">`` without particles names a particle-list file instead.
Relative paths are resolved against the job file's folder. Files are parsed with
``defusedxml`` and written atomically; every problem is a :class:`TomoclassError` naming the
job file and the field.
"""

from __future__ import annotations

import math
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

import defusedxml.ElementTree as SafeET

from tomoclass.errors import TomoclassError
from tomoclass.geometry import PointSymmetry
from tomoclass.io.files import PathLike, atomic_output, is_file
from tomoclass.io.pytom_xml import parse_xml, read_pytom_xml, to_xml_string
from tomoclass.particles import ParticleList

KINDS = {"MCOEXMXJob": "exmx", "MCOACJob": "ac"}
"""Root element → job kind."""

TEMPERATURES = {"SigmaTemperature": "sigma", "AnnealingTemperature": "annealing"}
"""PyTom's ``AnnealingTemperature Name`` → temperature type."""

CRITERIA = {"MetropolisCriterion": "metropolis", "ThresholdAcceptance": "threshold"}
"""PyTom's ``AnnealingCriterion Name`` → acceptance criterion."""

_DESCRIPTION = "ExpectationMaximisationJob/Description"


@dataclass
class MCOJob:
    """One MCO classification job as PyTom describes it.

    ``kind`` is ``"exmx"`` or ``"ac"``; the five annealing fields are set for ``"ac"`` only.
    ``mask`` and ``destination`` are absolute; ``particles`` keeps its filenames relative to
    its own ``directory``. Frequencies are in PyTom's units (Fourier pixels), as given.
    Two jobs are equal when their fields are and their particles resolve to the same files
    with the same alignment, wedge, score and class.
    """

    kind: str
    particles: ParticleList
    mask: Path
    destination: Path
    classes: int
    iterations: int
    end_threshold: float
    binning: int
    lowest_frequency: float
    highest_frequency: float
    start_temperature: float | None = None
    annealing_step: float | None = None
    local_search_increment: int | None = None
    temperature: str | None = None
    criterion: str | None = None
    symmetry: PointSymmetry = field(default_factory=PointSymmetry)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MCOJob):
            return NotImplemented
        names = [name for name in self.__dataclass_fields__ if name != "particles"]
        return all(getattr(self, n) == getattr(other, n) for n in names) and _resolved(
            self.particles
        ) == _resolved(other.particles)


def _resolved(plist: ParticleList) -> list:
    """The particles with absolute filenames, for comparing lists from different folders."""
    return [replace(p, filename=str(path)) for p, path in zip(plist, plist.paths(), strict=True)]


# ---------------------------------------------------------------------------------- reading


def read_mco_job(path: PathLike) -> MCOJob:
    """Read a PyTom ``MCOEXMXJob`` or ``MCOACJob`` file; relative paths start at its folder."""
    name = os.fspath(path)
    folder = Path(path).absolute().parent
    root = parse_xml(name, tuple(KINDS))
    description = _child(root, _DESCRIPTION, name)
    bandpass = _child(description, "Preprocessing/Bandpass", name)
    job = MCOJob(
        kind=KINDS[root.tag],
        particles=_particles(_child(description, "ParticleList", name), folder, name),
        mask=_path(folder, _text(_child(description, "Mask", name), "Filename", name)),
        destination=_path(folder, _text(root, "DestinationDirectory", name)),
        classes=_integer(root, "NumberClasses", name),
        iterations=_integer(root, "NumberIterations", name),
        end_threshold=_real(root, "EndThreshold", name),
        binning=_integer(description, "Binning", name),
        lowest_frequency=_real(bandpass, "LowestFrequency", name),
        highest_frequency=_real(bandpass, "HighestFrequency", name),
        symmetry=_symmetry(description.find("Symmetry"), name),
    )
    if job.kind == "ac":
        job = _with_annealing(job, root, name)
    _validate(job, name)
    return job


def _with_annealing(job: MCOJob, root: ET.Element, name: str) -> MCOJob:
    """``job`` with the MCO-AC fields read from ``root``."""
    temperature = _child(root, "AnnealingTemperature", name)
    criterion = _child(root, "AnnealingCriterion", name)
    return replace(
        job,
        start_temperature=_real(temperature, "Temperature", name),
        annealing_step=_real(temperature, "TemperatureStep", name),
        local_search_increment=_integer(root, "LocalSearchIncrement", name),
        temperature=_choice(temperature, "Name", TEMPERATURES, name),
        criterion=_choice(criterion, "Name", CRITERIA, name),
    )


def _symmetry(element: ET.Element | None, name: str) -> PointSymmetry:
    """PyTom's ``<Symmetry Type="PointSymmetry" NFold Z2 X SearchAngle SearchAxisZ2
    SearchAxisX>`` (``pytom/basic/structures.py``: ``PointSymmetry.toXML`` 4408, read by
    ``Symmetry.fromXML`` 4306-4314 and ``PointSymmetry.fromXML`` 4423-4440; placed in the
    job's ``Description`` by ``pytom/alignment/ExMaxAlignment.py`` 273-275 and 323). No
    element means no symmetry (PyTom's jobs always have one: ``mcoEXMXStructures.py``
    171-172 turns None into ``PointSymmetry(1)``). The older attribute names
    ``NumberSymmetries``, ``Psi`` and ``Theta`` are read too, as ``fromXML`` does; a
    symmetry search (``SearchAngle`` ≠ 0) and ``HelicalSymmetry`` are refused."""
    if element is None:
        return PointSymmetry()
    kind = element.get("Type", "PointSymmetry")
    if kind != "PointSymmetry":
        raise TomoclassError(f'{name}: <Symmetry Type="{kind}">: only PointSymmetry is supported')
    old = element.get("NFold") is None and element.get("NumberSymmetries") is not None
    nfold, z2, x = ("NumberSymmetries", "Psi", "Theta") if old else ("NFold", "Z2", "X")
    search = element.get("SearchAngle", "0").strip().strip("[]")
    if any(part.strip() not in ("0", "0.0", "") for part in search.split(",")):
        raise TomoclassError(
            f'{name}: <Symmetry SearchAngle="{search}">: a symmetry search is not supported'
        )
    try:
        return PointSymmetry(_integer(element, nfold, name), _real(element, z2, name),
                             _real(element, x, name))  # fmt: skip
    except TomoclassError as exc:
        raise TomoclassError(f"{name}: <Symmetry>: {exc}") from None


def _child(parent: ET.Element, where: str, name: str) -> ET.Element:
    """The element at ``where`` below ``parent``; its absence is an error."""
    found = parent.find(where)
    if found is None:
        raise TomoclassError(f"{name}: <{parent.tag}> has no <{where}> element")
    return found


def _text(element: ET.Element, attribute: str, name: str) -> str:
    """A required attribute's text."""
    value = element.get(attribute)
    if value is None:
        raise TomoclassError(f"{name}: <{element.tag}> has no {attribute} attribute")
    return value


def _real(element: ET.Element, attribute: str, name: str) -> float:
    """A required attribute as a finite float."""
    text = _text(element, attribute, name)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise TomoclassError(f'{name}: <{element.tag} {attribute}="{text}">: not a finite number')
    return value


def _integer(element: ET.Element, attribute: str, name: str) -> int:
    """A required attribute as an int; PyTom writes some as floats ("20.0"), which is accepted."""
    value = _real(element, attribute, name)
    if not value.is_integer():
        text = element.get(attribute)
        raise TomoclassError(f'{name}: <{element.tag} {attribute}="{text}">: not a whole number')
    return int(value)


def _choice(element: ET.Element, attribute: str, choices: dict[str, str], name: str) -> str:
    """A required attribute that must be one of ``choices`` (PyTom name → tomoclass name)."""
    text = _text(element, attribute, name)
    if text not in choices:
        raise TomoclassError(
            f'{name}: <{element.tag} {attribute}="{text}">: expected one of {", ".join(choices)}'
        )
    return choices[text]


def _path(folder: Path, text: str) -> Path:
    """``text`` as an absolute, normalised path (relative ones start at ``folder``)."""
    return Path(os.path.normpath(folder / text))


def _particles(element: ET.Element, folder: Path, name: str) -> ParticleList:
    """The job's particles: inline, or from the list file its ``Filename`` names."""
    if element.find("Particle") is None and element.get("Filename"):
        listed = _path(folder, element.get("Filename", ""))
        if not is_file(listed):
            raise TomoclassError(f"{name}: <ParticleList Filename>: no such file {listed}")
        try:
            return read_pytom_xml(listed)
        except TomoclassError as err:
            raise TomoclassError(f"{name}: <ParticleList Filename>: {err}") from None
    return _inline_particles(element, folder, name)


def _inline_particles(element: ET.Element, folder: Path, name: str) -> ParticleList:
    """Parse an inline ``<ParticleList>`` with the particle-list reader, relative to ``folder``.

    The reader takes a file, so the element goes through a temporary copy; error messages are
    re-addressed to the job file.
    """
    text = ET.tostring(element, encoding="unicode")
    with tempfile.TemporaryDirectory(prefix="tomoclass-job-") as scratch:
        copy = os.path.join(scratch, "particles.xml")
        with open(copy, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            plist = read_pytom_xml(copy)
        except TomoclassError as err:
            message = str(err).replace(copy, f"{name}: <ParticleList>", 1)
            raise TomoclassError(message) from None
    return ParticleList(plist, folder, plist._source)


# ------------------------------------------------------------------------------- validating


def _validate(job: MCOJob, name: str) -> None:
    """Refuse a job tomoclass cannot run; messages name file ``name`` and the field."""
    if job.kind not in KINDS.values():
        raise TomoclassError(f"{name}: job kind must be 'exmx' or 'ac', got {job.kind!r}")
    if job.classes < 2:
        raise TomoclassError(f"{name}: NumberClasses must be at least 2, got {job.classes}")
    if job.iterations < 0:
        raise TomoclassError(f"{name}: NumberIterations must be >= 0, got {job.iterations}")
    if not 0 <= job.end_threshold <= 1:
        raise TomoclassError(f"{name}: EndThreshold must be within 0..1, got {job.end_threshold}")
    if job.binning < 1:
        raise TomoclassError(f"{name}: Binning must be at least 1, got {job.binning}")
    if not 0 <= job.lowest_frequency < job.highest_frequency:
        raise TomoclassError(
            f"{name}: Bandpass needs 0 <= LowestFrequency < HighestFrequency, got "
            f"{job.lowest_frequency} and {job.highest_frequency}"
        )
    _validate_annealing(job, name)
    _validate_files(job, name)


def _validate_annealing(job: MCOJob, name: str) -> None:
    """The five MCO-AC fields: all set and valid for "ac", all None for "exmx"."""
    fields = {
        "Temperature": job.start_temperature,
        "TemperatureStep": job.annealing_step,
        "LocalSearchIncrement": job.local_search_increment,
        "AnnealingTemperature Name": job.temperature,
        "AnnealingCriterion Name": job.criterion,
    }
    if job.kind == "exmx":
        given = [field for field, value in fields.items() if value is not None]
        if given:
            raise TomoclassError(f"{name}: an MCOEXMXJob has no {', '.join(given)}")
        return
    missing = [field for field, value in fields.items() if value is None]
    if missing:
        raise TomoclassError(f"{name}: an MCOACJob needs {', '.join(missing)}")
    if job.start_temperature < 0:  # type: ignore[operator]
        raise TomoclassError(f"{name}: Temperature must be >= 0, got {job.start_temperature}")
    if job.annealing_step <= 0:  # type: ignore[operator]
        raise TomoclassError(f"{name}: TemperatureStep must be > 0, got {job.annealing_step}")
    if job.local_search_increment < 1:  # type: ignore[operator]
        raise TomoclassError(
            f"{name}: LocalSearchIncrement must be at least 1, got {job.local_search_increment}"
        )
    if job.temperature not in TEMPERATURES.values():
        raise TomoclassError(f"{name}: temperature must be 'sigma' or 'annealing'")
    if job.criterion not in CRITERIA.values():
        raise TomoclassError(f"{name}: criterion must be 'metropolis' or 'threshold'")


def _validate_files(job: MCOJob, name: str) -> None:
    """The mask and every particle file must exist."""
    if not is_file(job.mask):
        raise TomoclassError(f"{name}: <Mask Filename>: no such file {job.mask}")
    if not job.particles:
        raise TomoclassError(f"{name}: <ParticleList> holds no particles")
    for index, particle in enumerate(job.particles.paths()):
        if not is_file(particle):
            raise TomoclassError(
                f"{name}: <Particle Filename> of particle {index}: no such file {particle}"
            )


# ---------------------------------------------------------------------------------- writing


def write_mco_job(job: MCOJob, path: PathLike) -> None:
    """Write ``job`` as a PyTom job file at ``path`` atomically (nothing written on error).

    Mask and destination are written as absolute paths; relative particle filenames are
    re-expressed relative to the job file's folder. PyTom's alignment-only settings get
    neutral values (no reference, no rotation search, symmetry 1, no adaptive resolution).
    """
    name = os.fspath(path)
    _validate(job, name)
    root = job_element(job, Path(path).absolute().parent)
    ET.indent(root, space="  ")
    text = ET.tostring(root, encoding="unicode") + "\n"
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def job_element(job: MCOJob, folder: Path) -> ET.Element:
    """``job`` as an ``<MCOEXMXJob>`` or ``<MCOACJob>`` element for a file in ``folder``."""
    tag = "MCOACJob" if job.kind == "ac" else "MCOEXMXJob"
    root = ET.Element(
        tag,
        NumberIterations=str(job.iterations),
        DestinationDirectory=os.path.abspath(job.destination),
        NumberClasses=str(job.classes),
        EndThreshold=repr(float(job.end_threshold)),
        FRMAlignment="False",
        FRMBandwidth="None",
    )
    ET.SubElement(root, "ExpectationMaximisationJob").append(_description(job, folder))
    if job.kind == "ac":
        root.set("LocalSearchIncrement", repr(float(job.local_search_increment or 0)))
        ET.SubElement(
            root,
            "AnnealingTemperature",
            Name=_pytom_name(TEMPERATURES, job.temperature),
            Temperature=repr(float(job.start_temperature or 0.0)),
            TemperatureStep=repr(float(job.annealing_step or 0.0)),
        )
        ET.SubElement(
            root,
            "AnnealingCriterion",
            Name=_pytom_name(CRITERIA, job.criterion),
            AllowClassCollapse="False",
        )
    return root


def _pytom_name(names: dict[str, str], ours: str | None) -> str:
    """PyTom's class name for a tomoclass temperature type or criterion."""
    return next(theirs for theirs, value in names.items() if value == ours)


def _description(job: MCOJob, folder: Path) -> ET.Element:
    """The ``<Description>`` of PyTom's ExpectationMaximisationJob, in PyTom's child order."""
    element = ET.Element(
        "Description",
        Destination=os.path.join(os.path.abspath(job.destination), ""),
        NumberIterations="1",
        ExcludeThreshold="-1",
        Binning=str(job.binning),
        FSCCriterion="0.5",
        AdaptiveResolution="False",
        AdaptiveOffset="0.1",
        AngleFactor="0.5",
    )
    element.append(SafeET.fromstring(to_xml_string(job.particles.rebased(folder))))
    ET.SubElement(element, "Reference", File="", Weighting="", PreWedge="", FSCFilter="")
    ET.SubElement(element, "Mask", Filename=os.path.abspath(job.mask), isSphere="True", Binning="1")
    score = ET.SubElement(element, "Score", Type="FLCFScore", Value="NAN", RemoveAutocorr="False")
    ET.SubElement(score, "PeakPrior", Filename="", Radius="0.0", Smooth="-1.0")
    angles = ET.SubElement(element, "Angles", Type="OneAngleList")
    ET.SubElement(angles, "Rotation", Z1="0.0", Z2="0.0", X="0.0", Paradigm="ZXZ", Index="0")
    preprocessing = ET.SubElement(element, "Preprocessing")
    ET.SubElement(
        preprocessing,
        "Bandpass",
        LowestFrequency=repr(float(job.lowest_frequency)),
        HighestFrequency=repr(float(job.highest_frequency)),
        Smooth="0.0",
    )
    ET.SubElement(
        element,
        "Symmetry",
        Type="PointSymmetry",
        NFold=str(job.symmetry.nfold),
        Z2=repr(float(job.symmetry.z2)),
        X=repr(float(job.symmetry.x)),
        SearchAngle="0",
        SearchAxisZ2="0.0",
        SearchAxisX="0.0",
    )
    ET.SubElement(element, "SampleInformation", PixelSize="-1.0", ParticleDiameter="-1.0")
    return element
