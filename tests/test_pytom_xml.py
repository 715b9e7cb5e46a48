"""PyTom particle-list XML: every wedge spelling, lossless round trips, clear errors."""

from __future__ import annotations

import dataclasses
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import PYTOM_FILES, as_pytom_writes, canonical, pytom_bytes

from tomoclass import Rotation, Shift, TomoclassError
from tomoclass.io import pytom_xml
from tomoclass.io.particle_lists import read_particle_list, write_particle_list
from tomoclass.io.pytom_xml import read_pytom_xml, write_pytom_xml
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.wedge import DoubleTiltWedge, SingleTiltWedge

WRITTEN = PYTOM_FILES / "written"
"""Files written by PyTom's own writers (see its README.md)."""

# Shaped like PyTom's tests/testData/pickpos_format.xml, plus every wedge variant PyTom reads,
# unknown elements and attributes, comments, and a particle without Rotation/Shift/Class.
PICKPOS = """<!-- PyTom Version: 1.0 -->
<ParticleList Project="demo">
  <Particle Filename="./testparticles/particle_0.em" Custom="kept">
    <Rotation Z1="303.99" Z2="272.86" X="75.70" Paradigm="ZXZ" Note="n"/>
    <Shift X="-0.0" Y="0.0" Z="-0.0"/>
    <PickPosition X="10.0" Y="20.0" Z="30.0" Origin="tomo1.tomostar" Binning="1" RefMarkIndex="1"/>
    <Wedge Type="SingleTiltWedge">
      <SingleTiltWedge Angle1="30.0" Angle2="30.0" CutoffRadius="50.0" Smooth="0.0">
        <TiltAxisRotation Z1="0.0" Z2="0.0" X="0.0"/>
      </SingleTiltWedge>
    </Wedge>
    <InfoGUI ProjectDir=""/>
    <Score Type="FLCFScore" Value="0.5" RemoveAutocorr="False">
      <PeakPrior Filename="" Radius="0.0" Smooth="-1.0"/>
    </Score>
    <Class Name="0"/>
    <Extra Foo="bar"><Nested Deep="1"/></Extra>
  </Particle>
  <!-- a comment between particles -->
  <Particle Filename="particle_1.em">
    <Rotation Z1="1e1" Z2="-20" X="0.0"/>
    <Shift X="1.5" Y="-2.25" Z="3"/>
    <SingleTiltWedge Angle1="25" Angle2="35" CutoffRadius="0"/>
    <Class Name="A"/>
  </Particle>
  <Particle Filename="particle_2.em">
    <WedgeInfo Angle1="20.0" Angle2="40.0" CutoffRadius="12.0" Smooth="2.0"/>
    <Class Name="1"/>
  </Particle>
  <Particle Filename="particle_3.em">
    <WedgeInfo Angle="30" CutoffRadius="0"/>
    <Class Name="1"/>
  </Particle>
  <Particle Filename="particle_4.em">
    <Rotation Z1="0" Z2="0" X="180.0" Paradigm="ZXZ"/>
    <Wedge Type="DoubleTiltWedge">
      <DoubleTiltWedge>
        <SingleTiltWedge Angle1="30" Angle2="30" CutoffRadius="0" Smooth="0">
          <TiltAxisRotation Z1="0.0" Z2="0.0" X="0.0"/>
        </SingleTiltWedge>
        <SingleTiltWedge Angle1="25" Angle2="25" CutoffRadius="0" Smooth="1">
          <TiltAxisRotation Z1="90.0" Z2="0.0" X="0.0"/>
        </SingleTiltWedge>
      </DoubleTiltWedge>
    </Wedge>
  </Particle>
  <Particle Filename="/abs/particle_5.em">
    <DoubleTiltWedge>
      <SingleTiltWedge Angle1="10" Angle2="10" CutoffRadius="0"/>
      <SingleTiltWedge Angle1="15" Angle2="15" CutoffRadius="0"/>
    </DoubleTiltWedge>
  </Particle>
  <Summary Count="6"/>
</ParticleList>
"""


@pytest.fixture
def pickpos(tmp_path) -> Path:
    path = tmp_path / "lists" / "pickpos.xml"
    path.parent.mkdir()
    path.write_text(PICKPOS)
    return path


def test_reads_every_field_and_wedge_variant(pickpos):
    plist = read_pytom_xml(pickpos)
    assert len(plist) == 6
    assert plist.directory == pickpos.parent
    p0, p1, p2, p3, p4, p5 = plist
    assert p0.filename == "./testparticles/particle_0.em"
    assert p0.rotation == Rotation(303.99, 272.86, 75.70)
    assert p0.shift == Shift(0.0, 0.0, 0.0)
    assert p0.pick_position == PickPosition(10.0, 20.0, 30.0, "tomo1.tomostar")
    assert p0.wedge == SingleTiltWedge(30.0, 30.0, cutoff_radius=50.0, smooth=0.0)
    assert p0.score == 0.5 and p0.class_name == "0"
    assert p1.rotation == Rotation(10.0, -20.0, 0.0) and p1.shift == Shift(1.5, -2.25, 3.0)
    assert p1.wedge == SingleTiltWedge(25.0, 35.0)  # bare, no TiltAxisRotation, no Smooth
    assert p1.pick_position is None and p1.score is None and p1.class_name == "A"
    assert p2.wedge == SingleTiltWedge(20.0, 40.0, cutoff_radius=12.0, smooth=2.0)
    assert p2.rotation == Rotation() and p2.shift == Shift()  # missing: identity / zero
    assert p3.wedge == SingleTiltWedge(30.0, 30.0)  # single Angle = symmetric
    assert p4.wedge == DoubleTiltWedge(
        SingleTiltWedge(30.0, 30.0),
        SingleTiltWedge(25.0, 25.0, smooth=1.0, tilt_axis_rotation=Rotation(90.0, 0.0, 0.0)),
    )
    assert p5.wedge == DoubleTiltWedge(SingleTiltWedge(10.0, 10.0), SingleTiltWedge(15.0, 15.0))
    assert p5.class_name is None
    assert plist.paths()[0] == pickpos.parent / "testparticles" / "particle_0.em"
    assert plist.paths()[5] == Path("/abs/particle_5.em")


def test_untouched_list_round_trips_exactly(pickpos, tmp_path):
    plist = read_pytom_xml(pickpos)
    out = pickpos.parent / "copy.xml"
    write_pytom_xml(plist, out)
    assert canonical(out.read_text()) == canonical(PICKPOS)
    again = read_pytom_xml(out)
    assert list(again) == list(plist)
    write_pytom_xml(again, out)  # and once more: stable
    assert canonical(out.read_text()) == canonical(PICKPOS)
    assert 'X="75.70"' in out.read_text()  # original text of unchanged numbers is kept


def test_changes_touch_only_the_changed_attributes(pickpos):
    plist = read_pytom_xml(pickpos)
    changed = plist.with_classes(["7", "A", 1, None, 2, 3])
    p0 = dataclasses.replace(changed[0], shift=Shift(0.0, 4.0, 0.0), score=0.75)
    changed = ParticleList([p0, *list(changed)[1:]], plist.directory, plist._source)
    out = pickpos.parent / "changed.xml"
    write_pytom_xml(changed, out)
    text = out.read_text()
    root = ET.fromstring(text)
    first = root.find("Particle")
    assert first.get("Custom") == "kept"
    assert first.find("Rotation").attrib == {
        "Z1": "303.99",
        "Z2": "272.86",
        "X": "75.70",
        "Paradigm": "ZXZ",
        "Note": "n",
    }
    assert first.find("Shift").attrib == {"X": "-0.0", "Y": "4.0", "Z": "-0.0"}
    assert first.find("Extra/Nested").get("Deep") == "1"
    assert first.find("Score").get("Value") == "0.75"
    assert first.find("Score").get("Type") == "FLCFScore"
    assert first.find("Class").get("Name") == "7"
    particles = root.findall("Particle")
    assert particles[3].find("Class") is None  # class removed
    assert particles[4].find("Class").get("Name") == "2"  # class added
    assert root.find("Summary").get("Count") == "6"
    assert root.get("Project") == "demo"
    back = read_pytom_xml(out)
    assert back.class_names() == ["7", "A", "1", None, "2", "3"]
    assert back[0].shift == Shift(0.0, 4.0, 0.0) and back[0].score == 0.75
    assert [p.wedge for p in back] == plist.wedges()


def test_changed_wedge_and_rotation_are_rewritten(pickpos):
    plist = read_pytom_xml(pickpos)
    new_wedge = SingleTiltWedge(35.0, 25.0, cutoff_radius=10.0)
    p3 = dataclasses.replace(plist[3], wedge=new_wedge, rotation=Rotation(1.0, 2.0, 3.0))
    p0 = dataclasses.replace(plist[0], wedge=None, pick_position=None)
    edited = ParticleList(
        [p0, *list(plist)[1:3], p3, *list(plist)[4:]], plist.directory, plist._source
    )
    out = pickpos.parent / "edited.xml"
    write_pytom_xml(edited, out)
    back = read_pytom_xml(out)
    assert back[0].wedge is None and back[0].pick_position is None
    assert back[3].wedge == new_wedge and back[3].rotation == Rotation(1.0, 2.0, 3.0)
    element = ET.parse(out).getroot().findall("Particle")[3]
    assert element.find("WedgeInfo") is None
    assert element.find("Wedge").get("Type") == "SingleTiltWedge"
    assert element.find("Rotation").get("Paradigm") == "ZXZ"


def test_new_particles_use_pytoms_layout(tmp_path):
    wedge = DoubleTiltWedge(
        SingleTiltWedge(30, 30), SingleTiltWedge(20, 20, tilt_axis_rotation=Rotation(90, 0, 0))
    )
    plist = ParticleList(
        [
            Particle(
                "a.em",
                Rotation(1, 2, 3),
                Shift(4, 5, 6),
                PickPosition(7, 8, 9, "t.mrc"),
                SingleTiltWedge(30, 40),
                0.25,
                "2",
            ),
            Particle("b.em", wedge=wedge),
        ],
        tmp_path,
    )
    out = tmp_path / "new.xml"
    write_pytom_xml(plist, out)
    root = ET.parse(out).getroot()
    first, second = root.findall("Particle")
    assert [c.tag for c in first] == [
        "Rotation",
        "Shift",
        "PickPosition",
        "Wedge",
        "InfoGUI",
        "Score",
        "Class",
    ]
    assert first.find("Rotation").attrib == {
        "Z1": "1.0",
        "Z2": "2.0",
        "X": "3.0",
        "Paradigm": "ZXZ",
    }
    assert first.find("PickPosition").attrib == {
        "X": "7.0",
        "Y": "8.0",
        "Z": "9.0",
        "Origin": "t.mrc",
        "Binning": "1",
        "RefMarkIndex": "1",
    }
    assert first.find("Wedge/SingleTiltWedge/TiltAxisRotation") is not None
    assert first.find("Score/PeakPrior") is not None
    assert [c.tag for c in second] == ["Rotation", "Shift", "Wedge", "InfoGUI"]
    assert second.find("Wedge").get("Type") == "DoubleTiltWedge"
    assert len(second.findall("Wedge/DoubleTiltWedge/SingleTiltWedge")) == 2
    assert list(read_pytom_xml(out)) == list(plist)


def test_writing_elsewhere_rebases_relative_filenames(pickpos, tmp_path):
    plist = read_pytom_xml(pickpos)
    out = tmp_path / "other" / "deeper" / "moved.xml"
    out.parent.mkdir(parents=True)
    write_particle_list(plist, out)
    moved = read_particle_list(out)
    assert moved.paths() == plist.paths()
    assert moved[0].filename == os.path.join("..", "..", "lists", "testparticles", "particle_0.em")
    assert moved[5].filename == "/abs/particle_5.em"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('<Particle Filename="a.em"><Wedge Type="Cone"><Cone/></Wedge></Particle>', "'Cone'"),
        ('<Particle Filename="a.em"><GeneralWedge/></Particle>', "Filename"),
        ('<Particle><Rotation Z1="0" Z2="0" X="0"/></Particle>', "Filename"),
        ('<Particle Filename="a.em"><Rotation Z1="ten" Z2="0" X="0"/></Particle>', '"ten"'),
        ('<Particle Filename="a.em"><Shift X="0" Y="nan" Z="0"/></Particle>', "finite"),
        ('<Particle Filename="a.em"><WedgeInfo Angle1="x" Angle2="1"/></Particle>', "Angle1"),
        ('<Particle Filename="a.em"><WedgeInfo Angle1="95" Angle2="1"/></Particle>', "0..90"),
        (
            '<Particle Filename="a.em"><Rotation Z1="0" Z2="0" X="0" Paradigm="ZYZ"/></Particle>',
            "ZYZ",
        ),
        (
            '<Particle Filename="a.em"><DoubleTiltWedge><SingleTiltWedge Angle="1"/>'
            "</DoubleTiltWedge></Particle>",
            "two",
        ),
    ],
)
def test_bad_particles_name_file_and_index(tmp_path, body, message):
    path = tmp_path / "bad.xml"
    path.write_text(f'<ParticleList><Particle Filename="ok.em"/>{body}</ParticleList>')
    with pytest.raises(TomoclassError) as err:
        read_pytom_xml(path)
    assert str(path) in str(err.value)
    assert "particle 1" in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<ParticleList><Particle Filename='a.em'></ParticleList>", "malformed XML"),
        ("", "malformed XML"),
        ("<Other/>", "<Other>"),
        (
            '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY e "boom">]>'
            "<ParticleList>&e;</ParticleList>",
            "unsafe",
        ),
    ],
)
def test_bad_files_name_the_file(tmp_path, text, message):
    path = tmp_path / "broken.xml"
    path.write_text(text)
    with pytest.raises(TomoclassError, match=message) as err:
        read_particle_list(path)
    assert str(path) in str(err.value)


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nothing.xml"
    with pytest.raises(TomoclassError, match="no such file") as err:
        read_particle_list(path)
    assert str(path) in str(err.value)


def test_nothing_written_when_building_fails(pickpos, monkeypatch):
    plist = read_pytom_xml(pickpos)
    before = pickpos.read_bytes()
    calls = []

    def failing(p):
        calls.append(p)
        if len(calls) == 3:
            raise TomoclassError("boom")
        return original(p)

    original = pytom_xml.particle_element
    monkeypatch.setattr(pytom_xml, "particle_element", failing)
    with pytest.raises(TomoclassError, match="boom"):
        write_pytom_xml(plist, pickpos)
    assert pickpos.read_bytes() == before
    assert sorted(os.listdir(pickpos.parent)) == ["pickpos.xml"]


def test_nothing_written_when_the_rename_fails(pickpos, monkeypatch):
    plist = read_pytom_xml(pickpos)
    before = pickpos.read_bytes()

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(TomoclassError) as err:
        write_pytom_xml(plist.with_classes(["9"] * 6), pickpos)
    assert str(pickpos) in str(err.value)
    assert pickpos.read_bytes() == before
    assert sorted(os.listdir(pickpos.parent)) == ["pickpos.xml"]


def test_unwritable_destination_is_a_clear_error(pickpos, tmp_path):
    """A missing folder is made; a file where the folder should be is an error naming it."""
    made = tmp_path / "new-folder" / "out.xml"
    write_particle_list(read_pytom_xml(pickpos), made)
    assert len(read_pytom_xml(made)) == len(read_pytom_xml(pickpos))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "out.xml"
    with pytest.raises(TomoclassError) as err:
        write_particle_list(read_pytom_xml(pickpos), target)
    assert str(target) in str(err.value)


@pytest.mark.parametrize("bad", ["\ufffe", "\uffff", "\x01", "\x1b"])
def test_characters_xml_cannot_hold_are_refused_before_writing(pickpos, bad):
    """A name XML 1.0 cannot hold would make a list no parser reads back: refused, file kept."""
    plist = read_pytom_xml(pickpos)
    before = pickpos.read_bytes()
    renamed = ParticleList(
        [dataclasses.replace(plist[0], filename=f"p{bad}.em"), *plist[1:]], plist.directory
    )
    with pytest.raises(TomoclassError, match=f"{pickpos}: cannot write U\\+{ord(bad[0]):04X}"):
        write_pytom_xml(renamed, pickpos)
    assert pickpos.read_bytes() == before
    assert sorted(os.listdir(pickpos.parent)) == ["pickpos.xml"]
    # Tab, newline and characters beyond the BMP are XML: written and read back unchanged.
    write_pytom_xml(ParticleList([Particle("a\tb\U0001f9ec.em")], pickpos.parent), pickpos)
    assert read_pytom_xml(pickpos)[0].filename == "a\tb\U0001f9ec.em"


def test_empty_list_round_trips(tmp_path):
    path = tmp_path / "empty.xml"
    write_pytom_xml(ParticleList([], tmp_path), path)
    assert len(read_pytom_xml(path)) == 0
    assert canonical(path.read_text()) == "<ParticleList></ParticleList>"


# ------------------------------------------------------------------ files PyTom wrote


@pytest.mark.parametrize("name", ["pytom_written.xml", "pytom_written_double.xml"])
def test_pytom_written_lists_round_trip_byte_for_byte(tmp_path, name):
    shutil.copy(WRITTEN / name, tmp_path / name)
    out = tmp_path / "copy.xml"
    write_pytom_xml(read_pytom_xml(tmp_path / name), out)
    assert canonical(out.read_text()) == canonical((WRITTEN / name).read_text())
    assert as_pytom_writes(out.read_text()) == pytom_bytes(WRITTEN / name)


def test_pytom_written_list_read_exactly():
    plist = read_pytom_xml(WRITTEN / "pytom_written.xml")
    assert len(plist) == 12
    assert [p.filename for p in plist] == [f"./parts/p_{i}.em" for i in range(12)]
    wedges = [
        SingleTiltWedge(30.0, 30.0),
        SingleTiltWedge(30.0, 40.0, cutoff_radius=12.0, smooth=2.0),
        SingleTiltWedge(20.5, 45.25, tilt_axis_rotation=Rotation(90.0, 0.0, 0.0)),
        SingleTiltWedge(0.0, 0.0),
    ]
    assert plist.wedges() == wedges * 3
    assert plist.class_names() == ["0", "1", "2", "A"] * 3
    assert plist[0].score == 0.005265304565574724  # an nxcfScore is a score too
    assert plist[0].rotation == Rotation(157.55155196652015, 304.49545252357075, 139.62342424413484)
    assert plist[0].shift == Shift(-2.2264795968931854, -1.1366769629293063, -2.479116387491156)
    assert plist[0].pick_position == PickPosition(
        410.6142091913831, 398.5347143760231, 93.58699056874416, "tomo_0.mrc"
    )


def test_pytom_written_double_tilt_list_read_exactly():
    plist = read_pytom_xml(WRITTEN / "pytom_written_double.xml")
    expected = DoubleTiltWedge(
        SingleTiltWedge(30.0, 30.0),
        SingleTiltWedge(25.0, 35.0, tilt_axis_rotation=Rotation(90.0, 0.0, 0.0)),
    )
    assert plist.wedges() == [expected] * 3
    assert [p.rotation for p in plist] == [Rotation(z1, 20.0, 30.0) for z1 in (0.0, 10.0, 20.0)]
    assert plist.class_names() == ["0", "1", "2"]
    assert [p.score for p in plist] == [None] * 3  # PyTom's agnostic writer: no Score


def test_pytom_written_list_written_elsewhere_is_rebased(tmp_path):
    plist = read_pytom_xml(WRITTEN / "pytom_written.xml")
    out = tmp_path / "moved.xml"
    write_pytom_xml(plist, out)
    moved = read_pytom_xml(out)
    assert moved.paths() == plist.paths() == [WRITTEN / "parts" / f"p_{i}.em" for i in range(12)]
    assert moved.wedges() == plist.wedges()
