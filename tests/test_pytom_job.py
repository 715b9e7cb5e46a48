"""PyTom MCO job files: PyTom-shaped jobs read, round trips, and errors naming file and field."""

from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tomoclass import TomoclassError
from tomoclass.geometry import PointSymmetry
from tomoclass.io.pytom_job import MCOJob, read_mco_job, write_mco_job
from tomoclass.io.pytom_xml import write_pytom_xml
from tomoclass.particles import Particle, ParticleList

# Shaped as PyTom's MCOEXMXJob.toXML / ExMaxJob.toXML write it (mcoEXMXStructures.py,
# ExMaxAlignment.py): root attributes, one ExpectationMaximisationJob/Description holding the
# inline ParticleList, Reference, Mask, Score, Angles, Preprocessing, Symmetry and
# SampleInformation. {root}, {root_extra} and {tail} turn it into an MCOACJob.
PARTICLE = """\
        <Particle Filename="{name}">
          <Rotation Z1="10.0" Z2="20.0" X="30.0" Paradigm="ZXZ"/>
          <Shift X="1.0" Y="-2.0" Z="0.5"/>
          <PickPosition X="1.0" Y="2.0" Z="3.0" Origin="tomo.em" Binning="1" RefMarkIndex="1"/>
          <Wedge Type="SingleTiltWedge">
            <SingleTiltWedge Angle1="30.0" Angle2="30.0" CutoffRadius="0.0" Smooth="0.0">
              <TiltAxisRotation Z1="0.0" Z2="0.0" X="0.0"/>
            </SingleTiltWedge>
          </Wedge>
          <InfoGUI ProjectDir=""/>
          <Score Type="FLCFScore" Value="0.25" RemoveAutocorr="False">
            <PeakPrior Filename="" Radius="0.0" Smooth="-1.0"/>
          </Score>
          <Class Name="{klass}"/>
        </Particle>
"""

JOB = """<{root} NumberIterations="{iterations}" DestinationDirectory="results" NumberClasses="3"
    EndThreshold="0.05" FRMAlignment="False" FRMBandwidth="None"{root_extra}>
  <ExpectationMaximisationJob>
    <Description Destination="results/" NumberIterations="1" ExcludeThreshold="-1" Binning="2"
        FSCCriterion="0.5" AdaptiveResolution="False" AdaptiveOffset="0.1" AngleFactor="0.5">
      <ParticleList>
{particles}      </ParticleList>
      <Reference File="" Weighting="" PreWedge="" FSCFilter=""/>
      <Mask isSphere="True" Filename="./mask.em" Binning="1"/>
      <Score Type="FLCFScore" Value="NAN" RemoveAutocorr="False">
        <PeakPrior Filename="" Radius="0.0" Smooth="-1.0"/>
      </Score>
      <Angles Type="OneAngleList">
        <Rotation Z1="0" Z2="0" X="0" Paradigm="ZXZ" Index="0"/>
      </Angles>
      <Preprocessing>
        <Bandpass LowestFrequency="2.0" HighestFrequency="10.0" Smooth="0.0"/>
      </Preprocessing>
      <Symmetry Type="PointSymmetry" NFold="1" Z2="0.0" X="0.0" SearchAngle="0"
          SearchAxisZ2="0.0" SearchAxisX="0.0"/>
      <SampleInformation PixelSize="4.2" ParticleDiameter="250.0"/>
    </Description>
  </ExpectationMaximisationJob>
{tail}</{root}>
"""

AC_TAIL = """\
  <AnnealingTemperature Name="SigmaTemperature" Temperature="10.0" TemperatureStep="1.0"/>
  <AnnealingCriterion Name="MetropolisCriterion" AllowClassCollapse="False"/>
"""


def job_text(kind: str = "exmx", names: tuple[str, ...] = ("parts/p0.em", "parts/p1.em")) -> str:
    particles = "".join(PARTICLE.format(name=name, klass=i % 2) for i, name in enumerate(names))
    ac = kind == "ac"
    return JOB.format(
        root="MCOACJob" if ac else "MCOEXMXJob",
        iterations=10,
        root_extra=' LocalSearchIncrement="5.0"' if ac else "",
        particles=particles,
        tail=AC_TAIL if ac else "",
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A job folder with the mask and two particle files the job text names."""
    (tmp_path / "parts").mkdir()
    for name in ("mask.em", "parts/p0.em", "parts/p1.em"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def write_job(folder: Path, text: str, name: str = "job.xml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------- PyTom-shaped jobs


def test_reads_pytom_exmx_job(folder: Path) -> None:
    job = read_mco_job(write_job(folder, job_text("exmx")))
    assert job.kind == "exmx"
    assert job.mask == folder / "mask.em"
    assert job.destination == folder / "results"
    assert (job.classes, job.iterations, job.end_threshold, job.binning) == (3, 10, 0.05, 2)
    assert (job.lowest_frequency, job.highest_frequency) == (2.0, 10.0)
    assert job.particles.paths() == [folder / "parts/p0.em", folder / "parts/p1.em"]
    assert job.particles.class_names() == ["0", "1"]
    assert job.particles[0].rotation.z1 == 10.0 and job.particles[0].shift.y == -2.0
    assert job.particles[1].wedge is not None and job.particles[1].score == 0.25
    for name in ("start_temperature", "annealing_step", "local_search_increment"):
        assert getattr(job, name) is None
    assert job.temperature is None and job.criterion is None


def test_reads_pytom_ac_job(folder: Path) -> None:
    job = read_mco_job(write_job(folder, job_text("ac")))
    assert job.kind == "ac"
    assert (job.start_temperature, job.annealing_step, job.local_search_increment) == (
        10.0,
        1.0,
        5,
    )
    assert (job.temperature, job.criterion) == ("sigma", "metropolis")
    assert job.classes == 3 and len(job.particles) == 2


def test_reads_annealing_temperature_and_threshold_acceptance(folder: Path) -> None:
    text = (
        job_text("ac")
        .replace('Name="SigmaTemperature"', 'Name="AnnealingTemperature"')
        .replace('Name="MetropolisCriterion"', 'Name="ThresholdAcceptance"')
    )
    job = read_mco_job(write_job(folder, text))
    assert (job.temperature, job.criterion) == ("annealing", "threshold")


def with_list_file(text: str, filename: str) -> str:
    """``text`` with its inline particle list replaced by a reference to ``filename``."""
    start, end = text.index("<ParticleList>"), text.index("</ParticleList>")
    return text[:start] + f'<ParticleList Filename="{filename}"/>' + text[end + 15 :]


def test_reads_referenced_particle_list_file(folder: Path) -> None:
    plist = ParticleList([Particle("p0.em"), Particle("p1.em")], folder / "parts")
    write_pytom_xml(plist, folder / "parts" / "list.xml")
    job = read_mco_job(write_job(folder, with_list_file(job_text(), "parts/list.xml")))
    assert job.particles.paths() == [folder / "parts/p0.em", folder / "parts/p1.em"]


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("kind", ["exmx", "ac"])
def test_write_read_round_trip(folder: Path, kind: str) -> None:
    job = read_mco_job(write_job(folder, job_text(kind)))
    other = folder / "elsewhere"
    other.mkdir()
    out = other / "copy.xml"
    write_mco_job(job, out)
    again = read_mco_job(out)
    assert again == job
    assert again.particles.paths() == job.particles.paths()
    assert [p.filename for p in again.particles] == ["../parts/p0.em", "../parts/p1.em"]


def test_symmetry_read_written_and_read_back(folder: Path) -> None:
    """PyTom's Symmetry element: NFold, Z2, X (and its older NumberSymmetries, Psi, Theta);
    none at all means no symmetry."""
    text = job_text().replace('NFold="1" Z2="0.0" X="0.0"', 'NFold="3" Z2="10.0" X="20.0"')
    job = read_mco_job(write_job(folder, text))
    assert job.symmetry == PointSymmetry(3, 10.0, 20.0)
    write_mco_job(job, folder / "again.xml")
    assert read_mco_job(folder / "again.xml").symmetry == PointSymmetry(3, 10.0, 20.0)
    written = ET.parse(folder / "again.xml").getroot().find(".//Symmetry")
    assert (written.get("NFold"), written.get("Z2"), written.get("X")) == ("3", "10.0", "20.0")
    old = job_text().replace('NFold="1" Z2="0.0" X="0.0"',
                             'NumberSymmetries="2" Psi="0" Theta="5"')  # fmt: skip
    assert read_mco_job(write_job(folder, old, "old.xml")).symmetry == PointSymmetry(2, 0.0, 5.0)
    bare = re.sub(r"<Symmetry[^>]*/>", "", job_text())
    assert read_mco_job(write_job(folder, bare, "bare.xml")).symmetry == PointSymmetry()


@pytest.mark.parametrize("kind", ["exmx", "ac"])
def test_round_trip_from_memory(folder: Path, kind: str) -> None:
    plist = ParticleList([Particle("parts/p0.em", class_name=0), Particle("parts/p1.em")], folder)
    annealing: dict[str, object] = {}
    if kind == "ac":
        annealing = dict(
            start_temperature=3.5,
            annealing_step=0.25,
            local_search_increment=4,
            temperature="annealing",
            criterion="threshold",
        )
    job = MCOJob(
        kind=kind,
        particles=plist,
        mask=folder / "mask.em",
        destination=folder / "out",
        classes=4,
        iterations=7,
        end_threshold=0.1,
        binning=1,
        lowest_frequency=0.0,
        highest_frequency=12.5,
        **annealing,  # type: ignore[arg-type]
    )
    path = folder / "job.xml"
    write_mco_job(job, path)
    assert read_mco_job(path) == job


def test_written_job_has_pytom_layout(folder: Path) -> None:
    job = read_mco_job(write_job(folder, job_text("ac")))
    write_mco_job(job, folder / "out.xml")
    root = ET.parse(folder / "out.xml").getroot()
    assert root.tag == "MCOACJob"
    for name in ("NumberIterations", "DestinationDirectory", "NumberClasses", "EndThreshold"):
        assert root.get(name) is not None
    assert root.get("FRMAlignment") == "False" and root.get("FRMBandwidth") == "None"
    assert float(root.get("LocalSearchIncrement", "")) == 5.0
    description = root.find("ExpectationMaximisationJob/Description")
    assert description is not None
    for name in ("Destination", "NumberIterations", "ExcludeThreshold", "Binning"):
        assert description.get(name) is not None
    children = [child.tag for child in description]
    assert children == [
        "ParticleList",
        "Reference",
        "Mask",
        "Score",
        "Angles",
        "Preprocessing",
        "Symmetry",
        "SampleInformation",
    ]
    assert description.find("Angles").get("Type") == "OneAngleList"  # type: ignore[union-attr]
    assert description.find("Symmetry").get("NFold") == "1"  # type: ignore[union-attr]
    temperature = root.find("AnnealingTemperature")
    assert temperature is not None and temperature.get("Name") == "SigmaTemperature"
    criterion = root.find("AnnealingCriterion")
    assert criterion is not None and criterion.get("Name") == "MetropolisCriterion"


# ----------------------------------------------------------------------------------- errors


def drop(text: str, fragment: str) -> str:
    assert fragment in text
    return text.replace(fragment, "", 1)


BAD_READS = [
    ("exmx", lambda t: drop(t, ' NumberClasses="3"'), "NumberClasses"),
    ("exmx", lambda t: drop(t, ' EndThreshold="0.05"'), "EndThreshold"),
    ("exmx", lambda t: drop(t, 'DestinationDirectory="results"'), "DestinationDirectory"),
    ("exmx", lambda t: drop(t, ' NumberIterations="10"'), "NumberIterations"),
    ("exmx", lambda t: drop(t, ' Binning="2"'), "Binning"),
    ("exmx", lambda t: drop(t, ' Filename="./mask.em"'), "Filename"),
    ("exmx", lambda t: drop(t, ' LowestFrequency="2.0"'), "LowestFrequency"),
    ("exmx", lambda t: t.replace("<Bandpass", "<Other"), "Bandpass"),
    ("exmx", lambda t: t.replace("<Mask ", "<Masks "), "Mask"),
    ("exmx", lambda t: t.replace("Description", "Describe"), "Description"),
    ("exmx", lambda t: t.replace('NumberClasses="3"', 'NumberClasses="1"'), "NumberClasses"),
    ("exmx", lambda t: t.replace('NumberClasses="3"', 'NumberClasses="2.5"'), "NumberClasses"),
    ("exmx", lambda t: t.replace('EndThreshold="0.05"', 'EndThreshold="1.5"'), "EndThreshold"),
    ("exmx", lambda t: t.replace('EndThreshold="0.05"', 'EndThreshold="-0.1"'), "EndThreshold"),
    ("exmx", lambda t: t.replace('EndThreshold="0.05"', 'EndThreshold="abc"'), "EndThreshold"),
    ("exmx", lambda t: t.replace("./mask.em", "./nomask.em"), "Mask"),
    ("exmx", lambda t: t.replace("parts/p1.em", "parts/gone.em"), "Particle"),
    ("exmx", lambda t: t.replace('Filename="parts/p1.em"', ""), "Filename"),
    ("exmx", lambda t: t.replace("</MCOEXMXJob>", ""), "malformed XML"),
    ("exmx", lambda t: t.replace("MCOEXMXJob", "ParticleList"), "MCOEXMXJob"),
    ("ac", lambda t: drop(t, ' LocalSearchIncrement="5.0"'), "LocalSearchIncrement"),
    ("ac", lambda t: t.replace('Temperature="10.0"', 'Temperature="-1.0"'), "Temperature"),
    ("ac", lambda t: t.replace('TemperatureStep="1.0"', 'TemperatureStep="-1"'), "TemperatureStep"),
    ("ac", lambda t: drop(t, ' TemperatureStep="1.0"'), "TemperatureStep"),
    ("ac", lambda t: t.replace("SigmaTemperature", "HotTemperature"), "HotTemperature"),
    ("ac", lambda t: t.replace("MetropolisCriterion", "Coinflip"), "Coinflip"),
    ("ac", lambda t: t.replace("<AnnealingCriterion", "<Criterion"), "AnnealingCriterion"),
    ("ac", lambda t: t.replace("<AnnealingTemperature", "<Temp"), "AnnealingTemperature"),
    ("exmx", lambda t: t.replace('NFold="1"', 'NFold="0"'), "symmetry order must be"),
    ("exmx", lambda t: t.replace('NFold="1"', 'NFold="two"'), "NFold"),
    ("exmx", lambda t: t.replace('Type="PointSymmetry"', 'Type="HelicalSymmetry"'), "Helical"),
    ("exmx", lambda t: t.replace('SearchAngle="0"', 'SearchAngle="[10,2]"'), "SearchAngle"),
]


@pytest.mark.parametrize(("kind", "spoil", "field"), BAD_READS)
def test_bad_job_names_file_and_field(folder: Path, kind: str, spoil, field: str) -> None:
    path = write_job(folder, spoil(job_text(kind)), "bad job.xml")
    with pytest.raises(TomoclassError) as caught:
        read_mco_job(path)
    message = str(caught.value)
    assert os.fspath(path) in message
    assert field in message


def test_missing_job_file(tmp_path: Path) -> None:
    with pytest.raises(TomoclassError, match="no such file"):
        read_mco_job(tmp_path / "absent.xml")


def test_unsafe_xml_refused(folder: Path) -> None:
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaa">]><MCOEXMXJob A="&a;"/>'
    with pytest.raises(TomoclassError, match="unsafe"):
        read_mco_job(write_job(folder, bomb))


def test_missing_referenced_particle_list(folder: Path) -> None:
    path = write_job(folder, with_list_file(job_text(), "nolist.xml"))
    with pytest.raises(TomoclassError, match="ParticleList Filename") as caught:
        read_mco_job(path)
    assert os.fspath(path) in str(caught.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"classes": 1}, "NumberClasses"),
        ({"end_threshold": 2.0}, "EndThreshold"),
        ({"start_temperature": -1.0}, "Temperature"),
        ({"annealing_step": -0.5}, "TemperatureStep"),
        ({"temperature": "warm"}, "temperature"),
        ({"criterion": "greedy"}, "criterion"),
        ({"local_search_increment": None}, "LocalSearchIncrement"),
        ({"mask": Path("/nonexistent/mask.em")}, "Mask"),
        ({"kind": "cpca"}, "kind"),
    ],
)
def test_failed_write_writes_nothing(folder: Path, change: dict, field: str) -> None:
    job = read_mco_job(write_job(folder, job_text("ac")))
    target = folder / "out" / "job.xml"
    target.parent.mkdir()
    with pytest.raises(TomoclassError) as caught:
        write_mco_job(dataclasses.replace(job, **change), target)
    assert os.fspath(target) in str(caught.value) and field in str(caught.value)
    assert list(target.parent.iterdir()) == []


def test_failed_write_keeps_existing_file(folder: Path) -> None:
    path = write_job(folder, job_text("exmx"))
    before = path.read_bytes()
    job = read_mco_job(path)
    with pytest.raises(TomoclassError, match="NumberClasses"):
        write_mco_job(dataclasses.replace(job, classes=0), path)
    assert path.read_bytes() == before


def test_exmx_job_with_annealing_fields_is_refused(folder: Path) -> None:
    job = read_mco_job(write_job(folder, job_text("exmx")))
    with pytest.raises(TomoclassError, match="MCOEXMXJob has no Temperature"):
        write_mco_job(dataclasses.replace(job, start_temperature=1.0), folder / "x.xml")
    assert not (folder / "x.xml").exists()


def test_unwritable_destination(folder: Path) -> None:
    job = read_mco_job(write_job(folder, job_text("exmx")))
    blocker = folder / "a_file"
    blocker.write_text("not a folder")
    target = blocker / "dir" / "job.xml"  # a missing folder is made, but not under a file
    with pytest.raises(TomoclassError, match="cannot write"):
        write_mco_job(job, target)
