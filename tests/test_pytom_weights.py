"""PyTom XML weights: Wedge3dCTF, GeneralWedge and tomoclass's TiltSeries, on PyTom's own files."""

from __future__ import annotations

import dataclasses
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import PYTOM_FILES, as_pytom_writes, canonical, pytom_bytes

from tomoclass import TomoclassError
from tomoclass.io import write_volume
from tomoclass.io.particle_lists import read_particle_list, write_particle_list
from tomoclass.io.pytom_xml import (
    pytom_wedge,
    read_pytom_xml,
    to_xml_string,
    write_pytom_xml,
)
from tomoclass.particles import Particle, ParticleList
from tomoclass.wedge import (
    SingleTiltWedge,
    TiltSeries,
    WeightVolume,
    tilt_range_wedge,
    weights,
)

WRITTEN = PYTOM_FILES / "written"
STAR2PL = WRITTEN / "star2pl_example_starfile.xml"

SERIES = TiltSeries(
    angles=(-54.0, -36.0, -18.0, 0.0, 18.0, 36.0, 51.5),
    exposure=(18.0, 12.0, 6.0, 0.0, 3.0, 9.0, 15.0),
    defocus=(30000.0, 30500.0, 31000.0, 31500.0, 32000.0, 32500.0, 33000.25),
    voltage=200.0,
    cs=2.7,
    amplitude_contrast=0.1,
    pixel_size=4.4,
    x_tilts=(0.0, 0.5, 0.0, -0.5, 0.0, 0.25, 0.0),
    scale=(1.0, 0.9, 0.8, 1.0, 0.8, 0.9, 1.0),
    bfactor=(0.0, -10.0, -20.0, 0.0, -20.0, -10.0, -5.0),
    name="TS_01",
)


def xml_list(tmp_path: Path, body: str, name: str = "list.xml") -> Path:
    path = tmp_path / name
    path.write_text(f"<ParticleList>{body}</ParticleList>")
    return path


# ------------------------------------------------------------------ PyTom's star2pl output


def test_star2pl_wedge3dctf_read_exactly():
    plist = read_pytom_xml(STAR2PL)
    root = ET.parse(STAR2PL).getroot()
    ctfs = root.findall("Particle/Wedge/Wedge3dCTF")
    assert len(plist) == len(ctfs) == 74
    assert [w.filename for w in plist.wedges()] == [e.get("Filename") for e in ctfs]
    assert [w.ctf_max_resolution for w in plist.wedges()] == [6.7] * 74
    assert all(
        isinstance(w, WeightVolume) and w.kind == "ctf" and not w.premultiplied
        for w in plist.wedges()
    )
    first = plist[0].wedge.filename
    assert first.endswith("20211007_tomo10.mrc_0000000_ctf_2.74A.mrc")  # Warp's own file
    assert os.path.isabs(first)


def test_star2pl_round_trips_byte_for_byte(tmp_path):
    out = tmp_path / "elsewhere" / "copy.xml"
    out.parent.mkdir()
    write_pytom_xml(read_pytom_xml(STAR2PL), out)  # absolute paths: nothing to rebase
    text = out.read_text()
    assert canonical(text) == canonical(STAR2PL.read_text())
    assert as_pytom_writes(text) == pytom_bytes(STAR2PL)


def test_star2pl_list_built_from_scratch_is_written_as_pytom_writes_it():
    plist = read_pytom_xml(STAR2PL)
    fresh = ParticleList([dataclasses.replace(p, _source=None) for p in plist], plist.directory)
    assert canonical(to_xml_string(fresh)) == canonical(STAR2PL.read_text())


# ------------------------------------------------------------------ Wedge3dCTF, GeneralWedge


def test_general_wedge_wrapped_and_bare(tmp_path):
    path = xml_list(
        tmp_path,
        '<Particle Filename="a.em"><Wedge Type="GeneralWedge">'
        '<GeneralWedge Filename="w/a_weight.em"/></Wedge></Particle>'
        '<Particle Filename="b.em"><GeneralWedge Filename="/abs/b_weight.mrc"/></Particle>',
    )
    a, b = read_pytom_xml(path)
    assert a.wedge == WeightVolume("w/a_weight.em", kind="general")
    assert b.wedge == WeightVolume("/abs/b_weight.mrc", kind="general")
    fresh = ParticleList([Particle("a.em", wedge=a.wedge)], tmp_path)
    element = ET.fromstring(to_xml_string(fresh)).find("Particle/Wedge")
    assert element.attrib == {"Type": "GeneralWedge"}
    assert [(e.tag, e.attrib) for e in element] == [("GeneralWedge", {"Filename": "w/a_weight.em"})]
    write_pytom_xml(fresh, tmp_path / "out.xml")
    assert read_pytom_xml(tmp_path / "out.xml").wedges() == [a.wedge]


def test_bare_wedge3dctf_and_missing_max_resolution(tmp_path):
    path = xml_list(tmp_path, '<Particle Filename="a.em"><Wedge3dCTF Filename="c.mrc"/></Particle>')
    (p,) = read_pytom_xml(path)
    assert p.wedge == WeightVolume("c.mrc", kind="ctf", ctf_max_resolution=None)
    written = ET.fromstring(to_xml_string(ParticleList([dataclasses.replace(p, _source=None)])))
    ctf = written.find("Particle/Wedge/Wedge3dCTF")
    assert written.find("Particle/Wedge").get("Type") == "Wedge3dCTF"
    assert ctf.attrib == {"Filename": "c.mrc", "CtfMaxResolution": "0.0"}  # PyTom requires it


def test_premultiplied_flag(tmp_path):
    path = xml_list(
        tmp_path,
        '<Particle Filename="a.em"><Wedge Type="Wedge3dCTF"><Wedge3dCTF Filename="a_weights.mrc" '
        'CtfMaxResolution="8.5" CtfDataArePremultiplied="1"/></Wedge></Particle>'
        '<Particle Filename="b.em"><Wedge Type="Wedge3dCTF"><Wedge3dCTF Filename="b.mrc" '
        'CtfMaxResolution="8.5" CtfDataArePremultiplied="0"/></Wedge></Particle>',
    )
    a, b = read_pytom_xml(path)
    assert a.wedge == WeightVolume("a_weights.mrc", True, "ctf", 8.5)
    assert b.wedge == WeightVolume("b.mrc", False, "ctf", 8.5)
    fresh = ParticleList([Particle("a.em", wedge=a.wedge), Particle("b.em", wedge=b.wedge)])
    first, second = ET.fromstring(to_xml_string(fresh)).findall("Particle/Wedge/Wedge3dCTF")
    assert first.attrib == {
        "Filename": "a_weights.mrc",
        "CtfMaxResolution": "8.5",
        "CtfDataArePremultiplied": "1",
    }
    assert "CtfDataArePremultiplied" not in second.attrib
    # Edited in place: the flag follows the particle, other attributes stay.
    flipped = [
        dataclasses.replace(a, wedge=dataclasses.replace(a.wedge, premultiplied=False)),
        dataclasses.replace(b, wedge=dataclasses.replace(b.wedge, premultiplied=True)),
    ]
    out = tmp_path / "flipped.xml"
    write_pytom_xml(ParticleList(flipped, tmp_path, read_pytom_xml(path)._source), out)
    first, second = ET.parse(out).getroot().findall("Particle/Wedge/Wedge3dCTF")
    assert "CtfDataArePremultiplied" not in first.attrib
    assert second.get("CtfDataArePremultiplied") == "1"
    assert [w.premultiplied for w in read_pytom_xml(out).wedges()] == [False, True]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('<Wedge Type="Wedge3dCTF"><Wedge3dCTF CtfMaxResolution="6"/></Wedge>', "Filename"),
        ('<Wedge3dCTF Filename="c.mrc" CtfMaxResolution="high"/>', "CtfMaxResolution"),
        ('<Wedge3dCTF Filename="c.mrc" CtfDataArePremultiplied="yes"/>', "CtfDataArePremultiplied"),
        ('<GeneralWedge Filename=""/>', "Filename"),
        ('<TiltSeries Voltage="300"/>', "<Tilt>"),
        ('<TiltSeries><Tilt Angle="0" Exposure="1"/><Tilt Angle="3"/></TiltSeries>', "1 of 2"),
        ('<TiltSeries><Tilt Exposure="1"/></TiltSeries>', "Angle"),
        ('<TiltSeries><Tilt Angle="0" Exposure="-1"/></TiltSeries>', ">= 0"),
        ('<TiltSeries Voltage="x"><Tilt Angle="0"/></TiltSeries>', '"x"'),
    ],
)
def test_bad_weights_name_file_and_particle(tmp_path, body, message):
    path = xml_list(
        tmp_path, f'<Particle Filename="ok.em"/><Particle Filename="a.em">{body}</Particle>'
    )
    with pytest.raises(TomoclassError) as err:
        read_pytom_xml(path)
    assert str(path) in str(err.value) and "particle 1" in str(err.value)
    assert message in str(err.value)


# ------------------------------------------------------------------ TiltSeries


def test_tilt_series_round_trip(tmp_path):
    plist = ParticleList([Particle("a.em", wedge=SERIES), Particle("b.em", wedge=SERIES)], tmp_path)
    out = tmp_path / "series.xml"
    write_pytom_xml(plist, out)
    back = read_pytom_xml(out)
    assert back.wedges() == [SERIES, SERIES]
    assert list(back) == list(plist)
    write_pytom_xml(back, tmp_path / "again.xml")  # from the read elements: unchanged
    assert canonical((tmp_path / "again.xml").read_text()) == canonical(out.read_text())


def test_tilt_series_layout_gives_pytom_its_wedge(tmp_path):
    plist = ParticleList([Particle("a.em", wedge=SERIES)], tmp_path)
    particle = ET.fromstring(to_xml_string(plist)).find("Particle")
    assert [c.tag for c in particle] == ["Rotation", "Shift", "Wedge", "TiltSeries", "InfoGUI"]
    # What PyTom's Particle.fromXML finds first: the single-tilt wedge of the tilt range.
    wedge = particle.find("Wedge")
    assert wedge.get("Type") == "SingleTiltWedge"
    single = wedge.find("SingleTiltWedge")
    assert single.attrib == {
        "Angle1": "38.5",  # 90 - 51.5
        "Angle2": "36.0",  # 90 - 54
        "CutoffRadius": "0.0",
        "Smooth": "0.0",
    }
    assert single.find("TiltAxisRotation").attrib == {"Z1": "0.0", "Z2": "0.0", "X": "0.0"}
    series = particle.find("TiltSeries")
    assert series.attrib == {
        "Name": "TS_01",
        "Voltage": "200.0",
        "Cs": "2.7",
        "AmplitudeContrast": "0.1",
        "PixelSize": "4.4",
    }
    tilts = series.findall("Tilt")
    assert len(tilts) == 7
    assert tilts[6].attrib == {
        "Angle": "51.5",
        "XTilt": "0.0",
        "Exposure": "15.0",
        "Defocus": "33000.25",
        "Scale": "1.0",
        "Bfactor": "-5.0",
    }


def test_minimal_tilt_series_writes_only_what_is_set(tmp_path):
    series = TiltSeries(angles=(-30.0, 0.0, 30.0))
    particle = ET.fromstring(to_xml_string(ParticleList([Particle("a.em", wedge=series)])))
    element = particle.find("Particle/TiltSeries")
    assert element.attrib == {"Voltage": "300.0", "Cs": "2.7", "AmplitudeContrast": "0.07"}
    assert [t.attrib for t in element] == [{"Angle": "-30.0"}, {"Angle": "0.0"}, {"Angle": "30.0"}]
    path = tmp_path / "min.xml"
    write_pytom_xml(ParticleList([Particle("a.em", wedge=series)], tmp_path), path)
    assert read_pytom_xml(path)[0].wedge == series


def test_tilt_series_takes_precedence_over_the_wedge(tmp_path):
    path = xml_list(
        tmp_path,
        '<Particle Filename="a.em">'
        '<Wedge Type="SingleTiltWedge"><SingleTiltWedge Angle1="10" Angle2="10" CutoffRadius="0"/>'
        '</Wedge><TiltSeries Name="t"><Tilt Angle="-40" Exposure="3"/>'
        '<Tilt Angle="40" Exposure="6"/></TiltSeries></Particle>',
    )
    (p,) = read_pytom_xml(path)
    assert p.wedge == TiltSeries(angles=(-40.0, 40.0), exposure=(3.0, 6.0), name="t")


def test_changing_a_tilt_series_replaces_both_elements(tmp_path):
    path = tmp_path / "s.xml"
    write_pytom_xml(ParticleList([Particle("a.em", wedge=SERIES)] * 3, tmp_path), path)
    plist = read_pytom_xml(path)
    other = TiltSeries(angles=(-10.0, 20.0), name="short")
    edited = plist.with_wedges([SingleTiltWedge(20, 30), None, other])
    write_pytom_xml(edited, path)
    particles = ET.parse(path).getroot().findall("Particle")
    assert particles[0].find("TiltSeries") is None
    assert particles[1].find("TiltSeries") is None and particles[1].find("Wedge") is None
    assert [c.tag for c in particles[2]][2:4] == ["Wedge", "TiltSeries"]
    assert particles[2].find("Wedge/SingleTiltWedge").get("Angle1") == "70.0"
    assert read_pytom_xml(path).wedges() == [SingleTiltWedge(20, 30), None, other]


@pytest.mark.parametrize(
    ("angles", "expected"),
    [
        ((-60.0, 0.0, 60.0), SingleTiltWedge(30.0, 30.0)),
        ((-50.0, 65.0), tilt_range_wedge(-50.0, 65.0)),
        ((0.0,), SingleTiltWedge(90.0, 90.0)),  # one image: only the plane kz = 0
        ((-60.0, -10.0), SingleTiltWedge(90.0, 30.0)),  # clipped: PyTom's angles are 0..90
        ((5.0, 40.0), SingleTiltWedge(50.0, 90.0)),
    ],
)
def test_pytom_wedge_of_a_tilt_series(angles, expected):
    assert pytom_wedge(TiltSeries(angles=angles)) == expected


# ------------------------------------------------------------------ rebasing weight volumes


def test_relative_weight_volume_is_rebased_with_the_list(tmp_path):
    source = tmp_path / "project" / "lists"
    (source / "weights").mkdir(parents=True)
    n = 8
    rng = np.random.default_rng(3)
    full = rng.uniform(0.0, 1.0, size=(n, n, n)).astype(np.float32)
    full = 0.5 * (full + np.roll(full[::-1, ::-1, ::-1], 1, axis=(0, 1, 2)))  # W(-k) = W(k)
    write_volume(source / "weights" / "w.mrc", full)
    path = xml_list(
        source,
        '<Particle Filename="p.em"><Wedge Type="GeneralWedge">'
        '<GeneralWedge Filename="weights/w.mrc" Note="kept"/></Wedge></Particle>'
        '<Particle Filename="q.em"><Wedge Type="Wedge3dCTF">'
        '<Wedge3dCTF Filename="/abs/ctf.mrc" CtfMaxResolution="7.25"/></Wedge></Particle>',
    )
    plist = read_pytom_xml(path)
    out = tmp_path / "other" / "deeper" / "moved.xml"
    out.parent.mkdir(parents=True)
    write_particle_list(plist, out)
    moved = read_particle_list(out)
    expected = os.path.join("..", "..", "project", "lists", "weights", "w.mrc")
    assert moved[0].wedge == WeightVolume(expected, kind="general")
    assert moved[1].wedge == plist[1].wedge  # absolute: unchanged
    element = ET.parse(out).getroot().find("Particle/Wedge/GeneralWedge")
    assert element.attrib == {"Filename": expected, "Note": "kept"}  # updated in place
    np.testing.assert_array_equal(
        weights(moved[0].wedge, n, directory=moved.directory),
        weights(plist[0].wedge, n, directory=plist.directory),
    )


def test_rebased_and_concatenated_lists_move_weight_volume_names(tmp_path):
    volume = WeightVolume("ctf/a.mrc", premultiplied=True, ctf_max_resolution=5.0)
    plist = ParticleList(
        [
            Particle("a.em", wedge=volume),
            Particle("/abs/b.em", wedge=WeightVolume("c.mrc", kind="general")),
            Particle("/abs/c.em", wedge=WeightVolume("/abs/c_ctf.mrc")),
            Particle("d.em", wedge=SERIES),
        ],
        tmp_path / "a",
    )
    rebased = plist.rebased(tmp_path / "b" / "c")
    up = os.path.join("..", "..", "a")
    assert rebased[0].wedge == dataclasses.replace(
        volume, filename=os.path.join(up, "ctf", "a.mrc")
    )
    assert rebased[1].filename == "/abs/b.em"
    assert rebased[1].wedge == WeightVolume(os.path.join(up, "c.mrc"), kind="general")
    assert rebased[2] == plist[2]
    assert rebased[3].wedge == SERIES
    joined = ParticleList([], tmp_path) + plist
    assert joined[0].wedge.filename == os.path.join("a", "ctf", "a.mrc")
    assert plist[0].wedge == volume  # operands never change
