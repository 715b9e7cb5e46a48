"""RELION STAR and Dynamo tbl: conventions checked against each program's own definitions."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from tomoclass import Rotation, Shift, TomoclassError, rotation_matrix
from tomoclass.errors import TomoclassWarning
from tomoclass.io import convert_particle_list, read_particle_list, write_particle_list
from tomoclass.io.dynamo import dynamo_angles, dynamo_rotation, read_tbl, write_tbl
from tomoclass.io.pytom_xml import write_pytom_xml
from tomoclass.io.star import read_star, relion_rotation, rotations_to_relion, write_star
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.wedge import DoubleTiltWedge, SingleTiltWedge, TiltSeries, WeightVolume


def relion_euler_angles2matrix(rot: float, tilt: float, psi: float) -> np.ndarray:
    """RELION's ``Euler_angles2matrix`` written out from 3dem/relion ``src/euler.cpp``.

    In RELION this ``A`` maps a reference point ``r`` to ``A·r`` in the particle
    (``src/projector.cpp`` samples the reference at ``Aᵀ·p``; ``src/preprocessing.cpp``
    re-centres on ``A·r`` and moves the coordinate by ``−origin``).
    """
    a, b, g = np.radians([rot, tilt, psi])
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array(
        [
            [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
            [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
            [sc, ss, cb],
        ]
    )


def dynamo_euler2matrix(tdrot: float, tilt: float, narot: float) -> np.ndarray:
    """Dynamo's ``dynamo_euler2matrix.m`` (Dynamo MATLAB source) written out element by element.

    The Dynamo wiki ("Euler angles convention") defines the angles as clockwise rotations that
    take the template onto the particle, i.e. the template is turned by this matrix transposed.
    """
    td, ti, na = np.radians([tdrot, tilt, narot])
    ctd, std, cti, sti, cna, sna = (
        np.cos(td),
        np.sin(td),
        np.cos(ti),
        np.sin(ti),
        np.cos(na),
        np.sin(na),
    )
    return np.array(
        [
            [ctd * cna - std * cti * sna, -cna * std - ctd * cti * sna, sna * sti],
            [ctd * sna + cna * std * cti, ctd * cna * cti - std * sna, -cna * sti],
            [std * sti, ctd * sti, cti],
        ]
    )


def matrix(r: Rotation) -> np.ndarray:
    return rotation_matrix(r.z1, r.z2, r.x)


# Euler triples (degrees) including gimbal lock (middle angle 0 or 180, and just off it).
TRIPLES = [
    (0.0, 0.0, 0.0),
    (30.0, 0.0, 50.0),
    (30.0, 1e-5, 50.0),
    (-120.0, 180.0, 10.0),
    (75.0, 179.99999, -33.0),
    (137.7, 1.1777, 42.727),
    (-47.273, 91.0, -132.3),
    (303.99, 75.70, 272.86),
    (10.0, -40.0, 200.0),
]


def _relion_star(tmp_path: Path, angles, origins, pixel_size: float, **extra) -> Path:
    n = len(angles)
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01"] * n,
            "rlnCoordinateX": np.arange(n) * 10.0,
            "rlnCoordinateY": np.arange(n) * 20.0,
            "rlnCoordinateZ": np.arange(n) * 5.0,
            "rlnAngleRot": [a[0] for a in angles],
            "rlnAngleTilt": [a[1] for a in angles],
            "rlnAnglePsi": [a[2] for a in angles],
            "rlnOriginXAngst": [o[0] for o in origins],
            "rlnOriginYAngst": [o[1] for o in origins],
            "rlnOriginZAngst": [o[2] for o in origins],
            "rlnImageName": [f"Subtomograms/TS_01/{i}_subtomo.mrc" for i in range(n)],
            "rlnOpticsGroup": [1] * n,
            "rlnClassNumber": [1 + i % 3 for i in range(n)],
            **extra,
        }
    )
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["og1"], "rlnImagePixelSize": [pixel_size]}
    )
    path = tmp_path / "particles.star"
    starfile.write({"optics": optics, "particles": particles}, path, float_format="%.12g")
    return path


def test_relion_rotation_is_relions_matrix(tmp_path):
    path = _relion_star(tmp_path, TRIPLES, [(0, 0, 0)] * len(TRIPLES), 1.0)
    plist = read_star(path)
    for p, (rot, tilt, psi) in zip(plist, TRIPLES, strict=True):
        np.testing.assert_allclose(
            matrix(p.rotation), relion_euler_angles2matrix(rot, tilt, psi), atol=1e-9
        )
    back = rotations_to_relion(
        np.array([(p.rotation.z1, p.rotation.z2, p.rotation.x) for p in plist])
    )
    for p, angles in zip(plist, back, strict=True):
        np.testing.assert_allclose(
            relion_euler_angles2matrix(*angles), matrix(p.rotation), atol=1e-9
        )
        assert 0.0 <= angles[1] <= 180.0


def test_relion_origin_and_rotation_place_reference_points_like_relion(tmp_path, rng):
    """A reference point r lands at ``A·r − origin/pixel`` (RELION) = ``R·r + shift`` (PyTom)."""
    angles = [tuple(a) for a in rng.uniform(-180, 180, size=(6, 3))]
    origins = [tuple(o) for o in rng.uniform(-20, 20, size=(6, 3))]
    plist = read_star(_relion_star(tmp_path, angles, origins, 2.5))
    for p, a, o in zip(plist, angles, origins, strict=True):
        r = rng.normal(size=3)
        relion = relion_euler_angles2matrix(*a) @ r - np.array(o) / 2.5
        np.testing.assert_allclose(matrix(p.rotation) @ r + p.shift.vector(), relion, atol=1e-9)


def test_dynamo_rotation_is_dynamo_matrix_transposed():
    for tdrot, tilt, narot in TRIPLES:
        r = dynamo_rotation(tdrot, tilt, narot)
        np.testing.assert_allclose(matrix(r), dynamo_euler2matrix(tdrot, tilt, narot).T, atol=1e-12)
        np.testing.assert_allclose(dynamo_euler2matrix(*dynamo_angles(r)).T, matrix(r), atol=1e-12)


def test_known_equivalent_dynamo_and_relion_angles_agree():
    """Dynamo (-47.273, 1.1777, -132.3) and RELION (137.7, 1.1777, 42.727) give the same
    reconstruction (the test pair of alisterburt/eulerangles, used by dynamo2relion)."""
    from_dynamo = matrix(dynamo_rotation(-47.2730, 1.1777, -132.3000))
    from_relion = matrix(relion_rotation(137.7000, 1.1777, 42.7270))
    np.testing.assert_allclose(from_dynamo, from_relion, atol=1e-4)


def test_dynamo_tbl_columns_and_wedge_sides(tmp_path):
    row = np.zeros(35)
    row[[0, 1, 2]] = (12, 1, 1)
    row[3:6] = (1.5, -2.0, 0.25)
    row[6:9] = (30.0, 60.0, 75.0)
    row[9] = 0.42
    row[12:15] = (1, -50, 60)
    row[19], row[21] = 3, 2
    row[23:26] = (100.0, 200.0, 50.0)
    row[30] = 99  # otag: not modelled, must survive
    path = tmp_path / "crop.tbl"
    np.savetxt(path, row[None], fmt="%g")
    (p,) = read_tbl(path)
    assert p.filename == "particle_00012.em"  # dynamo_table_crop's default padding
    assert read_tbl(path).paths() == [tmp_path / "particle_00012.em"]
    assert p.shift == Shift(1.5, -2.0, 0.25)
    np.testing.assert_allclose(matrix(p.rotation), dynamo_euler2matrix(30, 60, 75).T, atol=1e-12)
    assert p.wedge == SingleTiltWedge(angle1=30.0, angle2=40.0)  # Angle1 = 90 - ymaxtilt
    assert p.pick_position == PickPosition(100.0, 200.0, 50.0, "3")
    assert p.class_name == "2" and p.score == pytest.approx(0.42)
    out = tmp_path / "out.tbl"
    write_tbl(read_tbl(path).with_classes([5]), out)
    written = np.loadtxt(out)
    expected = row.copy()
    expected[21] = 5
    np.testing.assert_array_equal(written, expected)


def _pytom_list(directory: Path) -> ParticleList:
    rng = np.random.default_rng(7)
    rotations = [Rotation(z1, z2, x) for z1, x, z2 in TRIPLES] + [
        Rotation(*angles) for angles in rng.uniform(-180, 180, size=(5, 3))
    ]
    particles = [
        Particle(
            f"parts/particle_{i}.em",
            rotation=r,
            shift=Shift(*rng.uniform(-6, 6, size=3)),
            pick_position=PickPosition(*rng.uniform(0, 500, size=3), origin="tomo_7"),
            wedge=SingleTiltWedge(30.0, 40.0),
            score=float(rng.uniform()),
            class_name=str(i % 4),
        )
        for i, r in enumerate(rotations)
    ]
    return ParticleList(particles, directory)


def _assert_same_alignment(a: ParticleList, b: ParticleList, atol: float = 1e-7) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.rotation_matrices(), b.rotation_matrices(), atol=atol)
    np.testing.assert_allclose(a.shifts(), b.shifts(), atol=atol)
    assert a.class_names() == b.class_names()


def test_xml_star_xml_keeps_matrices_shifts_and_classes(tmp_path):
    original = _pytom_list(tmp_path)
    write_pytom_xml(original, tmp_path / "a.xml")
    convert_particle_list(tmp_path / "a.xml", tmp_path / "b.star", pixel_size=2.5)
    star = read_particle_list(tmp_path / "b.star")
    assert starfile.read(tmp_path / "b.star")["optics"]["rlnImagePixelSize"].iloc[0] == 2.5
    _assert_same_alignment(original, star)
    assert star.paths() == original.paths()
    assert star.wedges() == original.wedges()  # in tomoclassWedge: no wedge is lost
    origins = starfile.read(tmp_path / "b.star")["particles"][
        ["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]
    ]
    np.testing.assert_allclose(origins.to_numpy(), -original.shifts() * 2.5, atol=1e-7)
    convert_particle_list(tmp_path / "b.star", tmp_path / "c.xml")
    back = read_particle_list(tmp_path / "c.xml")
    _assert_same_alignment(original, back)
    assert back.wedges() == original.wedges()
    picks = [(p.pick_position.x, p.pick_position.y, p.pick_position.z) for p in back]
    np.testing.assert_allclose(
        picks, [(p.pick_position.x, p.pick_position.y, p.pick_position.z) for p in original]
    )
    assert {p.pick_position.origin for p in back} == {"tomo_7"}
    assert [p.score for p in back] == pytest.approx([p.score for p in original])


def test_xml_tbl_xml_keeps_matrices_shifts_classes_and_wedges(tmp_path):
    original = _pytom_list(tmp_path)
    write_pytom_xml(original, tmp_path / "a.xml")
    convert_particle_list(tmp_path / "a.xml", tmp_path / "b.tbl")
    table = np.loadtxt(tmp_path / "b.tbl")
    assert table.shape == (len(original), 35)
    np.testing.assert_array_equal(table[:, 0], np.arange(1, len(original) + 1))
    convert_particle_list(tmp_path / "b.tbl", tmp_path / "c.xml")
    back = read_particle_list(tmp_path / "c.xml")
    _assert_same_alignment(original, back, atol=1e-12)
    assert back.wedges() == original.wedges()
    assert [p.pick_position.origin for p in back] == ["1"] * len(original)


def test_star_round_trip_keeps_unmodelled_columns_and_optics(tmp_path):
    path = _relion_star(
        tmp_path,
        [(10, 20, 30), (40, 50, 60)],
        [(1, 2, 3), (4, 5, 6)],
        3.0,
        rlnTomoParticleName=["TS_01/1", "TS_01/2"],
        rlnRandomSubset=[1, 2],
    )
    plist = read_star(path)
    out = tmp_path / "out.star"
    write_star(plist.with_classes([4, 5]), out)
    blocks = starfile.read(out)
    assert blocks["optics"]["rlnImagePixelSize"].iloc[0] == 3.0
    assert blocks["optics"]["rlnOpticsGroupName"].iloc[0] == "og1"
    assert list(blocks["particles"]["rlnTomoParticleName"]) == ["TS_01/1", "TS_01/2"]
    assert list(blocks["particles"]["rlnRandomSubset"]) == [1, 2]
    assert list(blocks["particles"]["rlnClassNumber"]) == [4, 5]
    np.testing.assert_allclose(blocks["particles"]["rlnOriginXAngst"], [1, 4], atol=1e-9)
    _assert_same_alignment(plist.with_classes([4, 5]), read_star(out))


def test_relion5_columns(tmp_path):
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_1", "TS_1"],
            "rlnCenteredCoordinateXAngst": [10.0, -20.0],
            "rlnCenteredCoordinateYAngst": [0.0, 5.0],
            "rlnCenteredCoordinateZAngst": [1.0, 2.0],
            "rlnTomoSubtomogramRot": [0.0, 30.0],
            "rlnTomoSubtomogramTilt": [0.0, 0.0],
            "rlnTomoSubtomogramPsi": [0.0, -30.0],  # rot = -psi at tilt 0: the identity
            "rlnAngleRot": [5.0, 6.0],
            "rlnOriginXAngst": [8.0, 0.0],
            "rlnImageName": ["a.mrc", "b.mrc"],
            "rlnOpticsGroup": [1, 1],
        }
    )
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnTomoTiltSeriesPixelSize": [1.35],
            "rlnTomoSubtomogramBinning": [4.0],
        }
    )
    path = tmp_path / "r5.star"
    starfile.write({"optics": optics, "particles": particles}, path)
    plist = read_star(path)
    assert plist[0].shift.x == pytest.approx(-8.0 / 5.4)
    assert plist[0].pick_position is None  # centred Å need the tomogram size
    np.testing.assert_allclose(
        matrix(plist[1].rotation), relion_euler_angles2matrix(6, 0, 0), atol=1e-12
    )
    assert read_star(path, pixel_size=2.0)[0].shift.x == pytest.approx(-4.0)
    out = tmp_path / "out.star"
    write_star(plist, out)
    written = starfile.read(out)["particles"]
    np.testing.assert_allclose(written["rlnCenteredCoordinateXAngst"], [10.0, -20.0])
    assert list(written["rlnTomoName"]) == ["TS_1", "TS_1"]
    assert "rlnTomoSubtomogramRot" not in written


def test_relion5_pre_rotation_is_refused(tmp_path):
    particles = pd.DataFrame(
        {
            "rlnImageName": ["a.mrc", "b.mrc"],
            "rlnTomoSubtomogramRot": [0.0, 10.0],
            "rlnTomoSubtomogramTilt": [0.0, 20.0],
            "rlnTomoSubtomogramPsi": [0.0, 0.0],
        }
    )
    path = tmp_path / "pre.star"
    starfile.write({"particles": particles}, path)
    with pytest.raises(TomoclassError, match="pre-rotation") as err:
        read_star(path)
    assert str(path) in str(err.value) and "particle 1" in str(err.value)


def test_old_single_block_star_with_pixel_origins(tmp_path):
    path = tmp_path / "old.star"
    path.write_text(
        "data_\n\nloop_\n_rlnImageName #1\n_rlnOriginX #2\n_rlnOriginY #3\n_rlnOriginZ #4\n"
        "_rlnAngleTilt #5\n"
        "sub/p1.mrc 1.0 -2.0 0.5 90\n"
    )
    (p,) = read_star(path)
    assert p.shift == Shift(-1.0, 2.0, -0.5)
    np.testing.assert_allclose(matrix(p.rotation), relion_euler_angles2matrix(0, 90, 0), atol=1e-12)
    assert p.class_name is None and p.pick_position is None


def test_star_image_names_are_relative_to_the_relion_project(tmp_path):
    project = tmp_path / "project"
    (project / "Extract" / "job010" / "Subtomograms" / "TS_01").mkdir(parents=True)
    (project / "Extract" / "job010" / "Subtomograms" / "TS_01" / "0_subtomo.mrc").touch()
    star = project / "Extract" / "job010" / "particles.star"
    particles = pd.DataFrame({"rlnImageName": ["Extract/job010/Subtomograms/TS_01/0_subtomo.mrc"]})
    starfile.write({"particles": particles}, star)
    plist = read_star(star)
    assert plist.directory == project
    assert plist.paths()[0].is_file()
    assert read_star(star, directory=tmp_path).directory == tmp_path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is not a star file\n", "particles"),
        ("data_particles\n\nloop_\n_rlnAngleRot #1\n1.0\n", "rlnImageName"),
        ("data_particles\n\nloop_\n_rlnImageName #1\n_rlnAngleRot #2\na.mrc ten\n", "rlnAngleRot"),
        (
            "data_particles\n\nloop_\n_rlnImageName #1\n_rlnAngleRot #2\n_rlnAngleTilt #3\n"
            "a.mrc 1 2\nb.mrc 3\n",
            "rlnAngleTilt",
        ),
    ],
)
def test_bad_star_files_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.star"
    path.write_text(text)
    with pytest.raises(TomoclassError, match=message) as err:
        read_particle_list(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3\n", "columns"),
        (" ".join(["1"] * 35) + "\n" + " ".join(["1"] * 30) + "\n", "malformed"),
        (" ".join(["1"] * 12 + ["2"] + ["1"] * 22) + "\n", "ftype 2"),
        (" ".join(["1"] * 13 + ["10"] + ["1"] * 21) + "\n", "0..90"),
        (" ".join(["x"] * 35) + "\n", "malformed"),
    ],
)
def test_bad_tables_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.tbl"
    path.write_text(text)
    with pytest.raises(TomoclassError, match=message) as err:
        read_particle_list(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", ["missing.star", "missing.tbl", "missing.xml"])
def test_missing_files_name_the_file(tmp_path, name):
    with pytest.raises(TomoclassError, match="no such file") as err:
        read_particle_list(tmp_path / name)
    assert str(tmp_path / name) in str(err.value)


def test_unknown_extension_is_refused_before_anything_is_read_or_written(tmp_path):
    with pytest.raises(TomoclassError, match=r"\.json"):
        read_particle_list(tmp_path / "list.json")
    source = tmp_path / "a.xml"
    write_pytom_xml(_pytom_list(tmp_path), source)
    with pytest.raises(TomoclassError, match="unknown particle-list format"):
        convert_particle_list(source, tmp_path / "list.txt")
    assert not (tmp_path / "list.txt").exists()


def test_star_write_failure_leaves_existing_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.star"
    target.write_text("precious\n")
    plist = _pytom_list(tmp_path)

    def half_written(blocks, path, **options):
        Path(path).write_text("data_optics\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(starfile, "write", half_written)
    with pytest.raises(TomoclassError, match="No space left") as err:
        write_particle_list(plist, target)
    assert str(target) in str(err.value)
    assert target.read_text() == "precious\n"
    assert sorted(os.listdir(tmp_path)) == ["keep.star"]


def test_tbl_write_failure_leaves_existing_file(tmp_path):
    target = tmp_path / "keep.tbl"
    target.write_text("precious\n")
    double = DoubleTiltWedge(SingleTiltWedge(30, 30), SingleTiltWedge(30, 30))
    plist = ParticleList([Particle("a.em"), Particle("b.em", wedge=double)], tmp_path)
    with pytest.raises(TomoclassError, match="particle 1") as err:
        write_particle_list(plist, target)
    assert str(target) in str(err.value)
    assert target.read_text() == "precious\n"
    assert sorted(os.listdir(tmp_path)) == ["keep.tbl"]


def test_tbl_tags_follow_dynamo_filenames(tmp_path):
    plist = ParticleList(
        [Particle("particle_000007.em"), Particle("data/particle_000003.em")], tmp_path
    )
    write_tbl(plist, tmp_path / "t.tbl")
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "t.tbl")[:, 0], [7, 3])
    assert [p.filename for p in read_tbl(tmp_path / "t.tbl")] == [
        "particle_00007.em",
        "particle_00003.em",
    ]


def _tbl_written(plist: ParticleList, path: Path) -> list[warnings.WarningMessage]:
    """Write ``plist`` as a table and return the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_tbl(plist, path)
    return list(caught)


def test_tbl_tilt_series_is_written_as_its_range_with_one_warning(tmp_path):
    series = TiltSeries(angles=(-48.0, 0.0, 57.0), exposure=(6.0, 0.0, 3.0), defocus=(3e4,) * 3)
    plist = ParticleList([Particle("a.em", wedge=series)] * 3, tmp_path)
    out = tmp_path / "series.tbl"
    (warning,) = _tbl_written(plist, out)
    assert issubclass(warning.category, TomoclassWarning)
    message = str(warning.message)
    assert str(out) in message and "3 particles with a tilt series" in message
    assert "exposure and CTF are dropped" in message
    np.testing.assert_array_equal(np.loadtxt(out)[:, 12:15], [[1, -48, 57]] * 3)
    assert read_tbl(out).wedges() == [SingleTiltWedge(angle1=33.0, angle2=42.0)] * 3


def test_tbl_weight_volume_is_written_as_no_wedge_with_one_warning(tmp_path):
    volume = WeightVolume("ctf/a.mrc", ctf_max_resolution=6.7)
    plist = ParticleList([Particle("a.em", wedge=volume), Particle("b.em")], tmp_path)
    out = tmp_path / "volume.tbl"
    (warning,) = _tbl_written(plist, out)
    assert issubclass(warning.category, TomoclassWarning)
    message = str(warning.message)
    assert str(out) in message and "1 particle with a weight volume" in message
    assert "ftype 0" in message and "cannot hold it" in message
    np.testing.assert_array_equal(np.loadtxt(out)[:, 12:15], [[0, 0, 0]] * 2)
    assert read_tbl(out).wedges() == [None, None]


def test_tbl_drops_cutoff_and_smoothing_with_one_warning(tmp_path):
    plist = ParticleList(
        [
            Particle("a.em", wedge=SingleTiltWedge(30, 40, cutoff_radius=12.0)),
            Particle("b.em", wedge=SingleTiltWedge(30, 40, smooth=2.0)),
            Particle("c.em", wedge=SingleTiltWedge(30, 40)),
        ],
        tmp_path,
    )
    out = tmp_path / "edge.tbl"
    (warning,) = _tbl_written(plist, out)
    message = str(warning.message)
    assert str(out) in message and "2 particles with a wedge cutoff radius or smoothing" in message
    assert read_tbl(out).wedges() == [SingleTiltWedge(30, 40)] * 3


def test_tbl_gives_one_warning_for_every_loss_and_none_without(tmp_path):
    series = TiltSeries(angles=(-60.0, 60.0))
    plist = ParticleList(
        [
            Particle("a.em", wedge=series),
            Particle("b.em", wedge=WeightVolume("w.mrc", kind="general")),
            Particle("c.em", wedge=WeightVolume("v.mrc")),
            Particle("d.em", wedge=SingleTiltWedge(30, 30, smooth=1.0)),
            Particle("e.em", wedge=SingleTiltWedge(30, 30)),
        ],
        tmp_path,
    )
    out = tmp_path / "all.tbl"
    (warning,) = _tbl_written(plist, out)
    message = str(warning.message)
    assert message.count(str(out)) == 1
    counts = ["1 particle with a tilt series", "2 particles with a weight volume"]
    counts.append("1 particle with a wedge cutoff radius")
    assert all(count in message for count in counts)
    assert _tbl_written(read_tbl(out), tmp_path / "again.tbl") == []  # a table loses nothing
    plain = ParticleList([Particle("a.em", wedge=SingleTiltWedge(30, 40)), Particle("b.em")])
    assert _tbl_written(plain, tmp_path / "plain.tbl") == []


@pytest.mark.parametrize(
    "wedge",
    [
        SingleTiltWedge(30, 30, tilt_axis_rotation=Rotation(90, 0, 0)),
        DoubleTiltWedge(SingleTiltWedge(30, 30), SingleTiltWedge(30, 30)),
    ],
)
def test_tbl_refuses_rotated_and_double_tilt_wedges(tmp_path, wedge):
    plist = ParticleList([Particle("a.em", wedge=TiltSeries(angles=(-60.0, 60.0)))] * 2)
    plist = plist + ParticleList([Particle("b.em", wedge=wedge)])
    out = tmp_path / "refused.tbl"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before any warning
        with pytest.raises(TomoclassError, match="particle 2") as err:
            write_tbl(plist, out)
    assert str(out) in str(err.value) and "rotated tilt axes" in str(err.value)
    assert not out.exists()


def test_empty_lists_round_trip(tmp_path):
    for name in ("e.star", "e.tbl"):
        write_particle_list(ParticleList([], tmp_path), tmp_path / name)
        assert len(read_particle_list(tmp_path / name)) == 0


def test_star_leaves_out_fields_some_particles_lack(tmp_path):
    plist = ParticleList(
        [
            Particle("a.em", pick_position=PickPosition(1, 2, 3, "t"), score=0.5, class_name="1"),
            Particle("b.em", shift=Shift(-0.0, 1.0, 0.0)),
        ],
        tmp_path,
    )
    write_star(plist, tmp_path / "mixed.star")
    text = (tmp_path / "mixed.star").read_text()
    assert "<NA>" not in text and "\t-0\t" not in text
    table = starfile.read(tmp_path / "mixed.star")["particles"]
    assert "rlnCoordinateX" not in table and "rlnLCCmax" not in table
    assert list(table["rlnClassNumber"]) == [1, 0]
    assert read_star(tmp_path / "mixed.star").class_names() == ["1", "0"]


def test_every_kind_of_sampling_survives_star_and_xml_in_one_list(tmp_path):
    """A list mixing weight volumes, analytic wedges, tilt series with and without per-tilt
    values, and no sampling: STAR → XML → STAR keeps each particle's, blank cells and all."""
    wedges = [
        WeightVolume("ctf/a.mrc", ctf_max_resolution=6.7),
        SingleTiltWedge(30, 40, smooth=2.0),
        TiltSeries(
            (-30.0, 0.0, 30.0),
            exposure=(3.0, 0.0, 6.0),
            defocus=(3e4, 3e4, 3e4),
            pixel_size=4.0,
            name="TS_01",
        ),
        TiltSeries((-40.0, 40.0), name="TS_02"),
        None,
    ]
    plist = ParticleList([Particle(f"p{i}.mrc", wedge=w) for i, w in enumerate(wedges)], tmp_path)
    write_particle_list(plist, tmp_path / "mixed.star")
    back = read_particle_list(tmp_path / "mixed.star")
    assert back.wedges() == wedges
    write_particle_list(back, tmp_path / "mixed.xml")
    write_particle_list(read_particle_list(tmp_path / "mixed.xml"), tmp_path / "again.star")
    assert read_particle_list(tmp_path / "again.star").wedges() == wedges


def test_a_bad_number_in_a_ctf_volumes_row_names_the_particle(tmp_path):
    (tmp_path / "p.star").write_text(
        "data_particles\n\nloop_\n_rlnImageName #1\n_rlnCtfImage #2\n_rlnCtfMaxResolution #3\n"
        "a.mrc ctf_a.mrc 6.7\nb.mrc None nan\nc.mrc ctf_c.mrc abc\n"
    )
    with pytest.raises(TomoclassError, match=r"particle 2: rlnCtfMaxResolution = 'abc'"):
        read_star(tmp_path / "p.star")
