"""STOPGAP motive lists and wedge lists, written here in STOPGAP's exact layout.

The writers below follow ``sg_motl_write`` (``sg_toolbox/sg_motl_write.m:31-70``) and
``stopgap_star_write`` as ``sg_wedgelist_write`` calls it (precision 4, spacesize 2;
``sg_toolbox/stopgap_star_write.m:45-120``) at STOPGAP commit 8a2d5778.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import asymmetric_phantom
from scipy.spatial.transform import Rotation as ScipyRotation

from tomoclass.cli import main
from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.io import read_particle_list, write_volume
from tomoclass.io.stopgap import is_stopgap_motl, read_stopgap_motl, read_wedge_list
from tomoclass.transform import align, forward
from tomoclass.wedge import TiltSeries

MOTL_FIELDS = [
    ("motl_idx", "int"), ("tomo_num", "int"), ("object", "int"), ("subtomo_num", "int"),
    ("halfset", "str"), ("orig_x", "float"), ("orig_y", "float"), ("orig_z", "float"),
    ("score", "float"), ("x_shift", "float"), ("y_shift", "float"), ("z_shift", "float"),
    ("phi", "float"), ("psi", "float"), ("the", "float"), ("class", "int"),
]  # fmt: skip
"""``sg_toolbox/sg_get_motl_fields.m:7-22``, in canonical order."""


# ------------------------------------------------------------------------------ writers


def motl_text(rows: list[dict], fields=MOTL_FIELDS) -> str:
    """The text ``sg_motl_write`` writes for ``rows`` (sorted by subtomo_num, then class)."""
    rows = sorted(rows, key=lambda r: (r["subtomo_num"], r["class"]))
    formats = []
    for name, kind in fields:
        values = [r[name] for r in rows]
        if kind == "str":
            formats.append(f" %-{max(len(v) for v in values)}c ")
        elif kind == "int":
            digits = math.ceil(math.log10(max(abs(v) for v in values) + 1))
            formats.append(f"% {digits + 1}d ")
        else:
            digits = math.ceil(math.log10(max(abs(v) for v in values) + 1))
            formats.append(f"% {digits + 6}.4f ")
    fmt = "".join(formats)[:-1]
    head = "\ndata_stopgap_motivelist\n\nloop_\n" + "".join(f"_{n}\n" for n, _ in fields)
    body = "".join("\n" + fmt % tuple(r[n] for n, _ in fields) for r in rows)
    return head + body + "\n"


def write_motl(path: Path, rows: list[dict], fields=MOTL_FIELDS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(motl_text(rows, fields))
    return path


def row(**values) -> dict:
    """One motive-list row; defaults for whatever ``values`` does not set."""
    defaults = dict(
        motl_idx=1, tomo_num=1, object=1, subtomo_num=1, halfset="A", orig_x=100.0,
        orig_y=200.0, orig_z=50.0, score=0.5, x_shift=0.0, y_shift=0.0, z_shift=0.0, phi=0.0,
        psi=0.0, the=0.0, class_=1,
    )  # fmt: skip
    defaults.update(values)
    defaults["class"] = defaults.pop("class_")
    return defaults


def wedge_text(rows: list[dict]) -> str:
    """The text ``stopgap_star_write(w, name, 'stopgap_wedgelist', [], 4, 2)`` writes."""
    fields = list(rows[0])
    formats = []
    for name in fields:
        values = [r[name] for r in rows]
        if all(float(v).is_integer() for v in values):
            digits = max(math.floor(math.log10(abs(v) + 1)) + 1 for v in values)
            formats.append(f"% {digits + 1}i")
        else:
            digits = max(math.floor(math.log10(abs(math.floor(v)) + 1)) + 1 for v in values)
            formats.append(f"% {digits + 4 + 2}.4f")
    head = "\ndata_stopgap_wedgelist\n\nloop_\n" + "".join(f"_{n}\n" for n in fields) + "\n"
    lines = (" ".join(f % r[n] for f, n in zip(formats, fields, strict=True)) for r in rows)
    body = "".join(line + "\n" for line in lines)
    return head + body


def wedge_rows(tomo: int, angles, **columns) -> list[dict]:
    """Rows of one tomogram: per-tilt columns given as lists, others repeated."""
    rows = []
    for i, angle in enumerate(angles):
        r = {"tomo_num": tomo, "pixelsize": 1.35, "tomo_x": 4000, "tomo_y": 4000,
             "tomo_z": 1000, "z_shift": 0, "tilt_angle": angle}  # fmt: skip
        for name, value in columns.items():
            r[name] = value[i] if isinstance(value, list) else value
        rows.append(r)
    return rows


def write_wedge(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(wedge_text(rows))
    return path


def subtomograms(folder: Path, prefix: str, numbers, ext: str = ".mrc", n: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        write_volume(folder / f"{prefix}_{number}{ext}", np.zeros((n, n, n), np.float32))


@pytest.fixture
def project(tmp_path) -> Path:
    """A STOPGAP project: ``lists/`` and ``subtomograms/subtomo_<n>.mrc`` for n = 1..3."""
    subtomograms(tmp_path / "subtomograms", "subtomo", [1, 2, 3])
    (tmp_path / "lists").mkdir()
    return tmp_path


def read_quietly(path, **kwargs):
    """``read_stopgap_motl`` with any warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_stopgap_motl(path, **kwargs)


# ------------------------------------------------------------------------------ layout


def test_writer_layout_is_stopgaps():
    text = motl_text([row(subtomo_num=2, halfset="B", score=0.25), row(orig_x=12.5)])
    lines = text.split("\n")
    assert lines[:5] == ["", "data_stopgap_motivelist", "", "loop_", "_motl_idx"]
    assert lines[19] == "_class" and lines[20] == ""
    assert lines[21].split()[4] == "A" and lines[22].split()[4] == "B"
    assert "12.5000" in lines[21] and "#" not in text
    wedge = wedge_text(wedge_rows(1, [-3, 0, 3], defocus=3.5))
    assert wedge.startswith("\ndata_stopgap_wedgelist\n\nloop_\n_tomo_num\n")
    assert " -3 " in wedge and "3.5000" in wedge and "1.3500" in wedge


# ------------------------------------------------------------------------------ motive lists


def test_fields_are_read_exactly(project):
    rows = [
        row(motl_idx=1, tomo_num=4, object=7, subtomo_num=1, halfset="A", orig_x=101.5,
            orig_y=202.25, orig_z=33.0, score=0.4321, x_shift=1.5, y_shift=-2.25, z_shift=0.75,
            phi=12.5, psi=-33.0, the=71.25, class_=3),
        row(motl_idx=2, tomo_num=5, object=8, subtomo_num=3, halfset="B", orig_x=9.0,
            orig_y=8.0, orig_z=7.0, score=0.1, x_shift=-1.0, y_shift=0.0, z_shift=2.0,
            phi=-170.0, psi=95.5, the=120.0, class_=1),
    ]  # fmt: skip
    motl = write_motl(project / "lists" / "allmotl_1.star", rows)
    plist = read_quietly(motl)
    assert len(plist) == 2
    assert plist.directory == motl.parent
    first, second = plist
    assert first.filename == os.path.join("..", "subtomograms", "subtomo_1.mrc")
    assert second.filename == os.path.join("..", "subtomograms", "subtomo_3.mrc")
    assert plist.paths() == [project / "subtomograms" / "subtomo_1.mrc",
                             project / "subtomograms" / "subtomo_3.mrc"]  # fmt: skip
    assert (first.rotation.z1, first.rotation.x, first.rotation.z2) == (12.5, 71.25, -33.0)
    assert (first.shift.x, first.shift.y, first.shift.z) == (1.5, -2.25, 0.75)
    pick = first.pick_position
    assert (pick.x, pick.y, pick.z, pick.origin) == (101.5, 202.25, 33.0, "4")
    assert first.score == pytest.approx(0.4321) and first.class_name == "3"
    assert second.pick_position.origin == "5" and second.class_name == "1"
    assert first.wedge is None and second.wedge is None
    assert first._source["halfset"] == "A" and second._source["halfset"] == "B"
    assert first._source["object"] == 7 and second._source["motl_idx"] == 2


def test_columns_are_matched_by_name(project):
    shuffled = MOTL_FIELDS[::-1]
    motl = write_motl(project / "lists" / "m.star", [row(phi=10.0, psi=20.0, the=30.0)], shuffled)
    p = read_quietly(motl)[0]
    assert (p.rotation.z1, p.rotation.x, p.rotation.z2) == (10.0, 30.0, 20.0)


def test_unknown_columns_survive_in_source(project):
    motl = project / "lists" / "m.star"
    text = motl_text([row()]).replace("_class\n\n", "_class\n_extra\n\n").rstrip("\n") + " 42\n"
    motl.write_text(text)
    assert read_quietly(motl)[0]._source["extra"] == 42


def tom_rotatec_matrix(phi: float, psi: float, the: float) -> np.ndarray:
    """The entries ``tom_rotatec`` computes (``sg_toolbox/tom/tom_rotatec.c:215-223``)."""
    cf, sf = math.cos(math.radians(phi)), math.sin(math.radians(phi))
    cp, sp = math.cos(math.radians(psi)), math.sin(math.radians(psi))
    ct, st = math.cos(math.radians(the)), math.sin(math.radians(the))
    return np.array([
        [cp * cf - ct * sp * sf, -cp * sf - ct * sp * cf, st * sp],
        [sp * cf + ct * cp * sf, -sp * sf + ct * cp * cf, -st * cp],
        [st * sf, st * cf, ct],
    ])  # fmt: skip


def test_rotation_is_stopgaps_zxz(project, rng):
    angles = rng.uniform(-180, 180, (3, 3)).round(4)
    rows = [row(motl_idx=i + 1, subtomo_num=i + 1, phi=phi, psi=psi, the=the)
            for i, (phi, psi, the) in enumerate(angles)]  # fmt: skip
    plist = read_quietly(write_motl(project / "lists" / "m.star", rows))
    matrices = plist.rotation_matrices()
    for matrix, (phi, psi, the) in zip(matrices, angles, strict=True):
        expected = ScipyRotation.from_euler("zxz", [phi, the, psi], degrees=True).as_matrix()
        np.testing.assert_allclose(matrix, expected, atol=1e-12)
        np.testing.assert_allclose(matrix, tom_rotatec_matrix(phi, psi, the), atol=1e-12)
        swapped = ScipyRotation.from_euler("zxz", [psi, the, phi], degrees=True).as_matrix()
        assert not np.allclose(matrix, swapped, atol=1e-3)  # the angles tell phi from psi


def test_shift_is_particle_centre_minus_box_centre(project):
    motl = write_motl(project / "lists" / "m.star", [row(x_shift=2.5, y_shift=-1.25, z_shift=3)])
    np.testing.assert_array_equal(read_quietly(motl).shifts(), [[2.5, -1.25, 3.0]])


def test_stopgap_particle_is_aligned_back(tmp_path):
    """A particle made by STOPGAP's model, ``(M·ref)(x − s)`` with ``M = Rz(psi)Rx(the)Rz(phi)``
    from the file's numbers, is brought back onto the reference with the list as read."""
    phi, psi, the, shift = 30.0, -75.0, 50.0, np.array([1.5, -1.0, 0.5])
    rows = [row(phi=phi, psi=psi, the=the, x_shift=shift[0], y_shift=shift[1], z_shift=shift[2])]
    plist = read_stopgap_motl(write_motl(tmp_path / "m.star", rows), subtomo_name="subtomo")
    reference = asymmetric_phantom(24)
    m = ScipyRotation.from_euler("zxz", [phi, the, psi], degrees=True).as_matrix()
    particle = forward(reference, m, shift)
    back = align(particle, plist.rotation_matrices()[0], plist.shifts()[0])
    inner = np.s_[5:-5, 5:-5, 5:-5]
    error = np.abs(back[inner] - reference[inner]).max() / reference.max()
    assert error < 0.03
    unaligned = np.abs(particle[inner] - reference[inner]).max() / reference.max()
    assert unaligned > 0.3  # the test can tell a wrong alignment


# ------------------------------------------------------------------------------ subtomogram names


def test_subtomograms_found_next_to_the_list(tmp_path):
    subtomograms(tmp_path / "subtomograms", "sub", [5])
    plist = read_quietly(write_motl(tmp_path / "m.star", [row(subtomo_num=5)]))
    assert plist[0].filename == os.path.join("subtomograms", "sub_5.mrc")
    assert plist.paths()[0].is_file()


def test_subtomograms_found_as_em(project):
    subtomograms(project / "subtomograms", "emsub", [1, 2], ext=".em")
    (project / "subtomograms" / "subtomo_1.mrc").unlink()
    plist = read_quietly(write_motl(project / "lists" / "m.star", [row(subtomo_num=1)]))
    assert plist[0].filename == os.path.join("..", "subtomograms", "emsub_1.em")


def test_no_subtomograms_asks_for_the_name(tmp_path):
    motl = write_motl(tmp_path / "lists" / "m.star", [row(subtomo_num=7)])
    subtomograms(tmp_path / "subtomograms", "subtomo", [1, 17, 70])  # not 7
    with pytest.raises(TomoclassError, match=r"m\.star.*subtomo_name \(--subtomo-name\)"):
        read_stopgap_motl(motl)


def test_several_subtomogram_names_ask_for_the_name(project):
    subtomograms(project / "subtomograms", "other", [1])
    motl = write_motl(project / "lists" / "m.star", [row(subtomo_num=1)])
    with pytest.raises(TomoclassError, match=r"several subtomogram names.*--subtomo-name"):
        read_stopgap_motl(motl)
    subtomograms(project / "lists" / "subtomograms", "subtomo", [1])
    (project / "subtomograms" / "other_1.mrc").unlink()
    with pytest.raises(TomoclassError, match="several"):  # both folders hold one
        read_stopgap_motl(motl)


def test_subtomo_name_is_used_as_given(project):
    motl = write_motl(project / "lists" / "m.star", [row(subtomo_num=12)])
    plist = read_quietly(motl, subtomo_name="../elsewhere/part")
    assert plist[0].filename == "../elsewhere/part_12.mrc"
    subtomograms(project / "elsewhere", "part", [12], ext=".em")
    assert read_quietly(motl, subtomo_name="../elsewhere/part")[0].filename.endswith("_12.em")


# ------------------------------------------------------------------------------ multi-entry


def test_multi_entry_keeps_the_best_row_per_motl_idx(project):
    rows = [
        row(motl_idx=1, subtomo_num=1, class_=1, score=0.3, phi=10.0),
        row(motl_idx=1, subtomo_num=1, class_=2, score=0.7, phi=20.0),
        row(motl_idx=2, subtomo_num=2, class_=1, score=0.6, phi=30.0),
        row(motl_idx=2, subtomo_num=2, class_=2, score=0.2, phi=40.0),
    ]
    motl = write_motl(project / "lists" / "allmotl_3.star", rows)
    with pytest.warns(TomoclassWarning, match=r"allmotl_3\.star.*4 rows for 2 motl_idx"):
        plist = read_stopgap_motl(motl)
    assert plist.class_names() == ["2", "1"]
    assert [p.rotation.z1 for p in plist] == [20.0, 30.0]
    assert [p.score for p in plist] == [0.7, 0.6]
    assert [p.filename[-13:] for p in plist] == ["subtomo_1.mrc", "subtomo_2.mrc"]


def test_entries_sharing_a_subtomogram_stay_apart(project):
    # Manual p.12: asymmetric refinement of a C2 particle, distinct motl_idx per entry.
    rows = [row(motl_idx=1, subtomo_num=1, phi=0.0), row(motl_idx=2, subtomo_num=1, phi=180.0)]
    plist = read_quietly(write_motl(project / "lists" / "m.star", rows))
    assert [p.rotation.z1 for p in plist] == [0.0, 180.0]
    assert plist[0].filename == plist[1].filename


def test_motl_idx_naming_two_subtomograms_is_an_error(project):
    rows = [row(motl_idx=1, subtomo_num=1), row(motl_idx=1, subtomo_num=2)]
    with pytest.raises(TomoclassError, match=r"m\.star: rows 1, 2 share motl_idx 1"):
        read_stopgap_motl(write_motl(project / "lists" / "m.star", rows))


# ------------------------------------------------------------------------------ wedge lists


def test_wedge_list_groups_by_tomogram(tmp_path):
    rows = wedge_rows(3, [0, 3, -3], exposure=[3.0, 6.0, 9.0], defocus=[3.5, 3.6, 3.4],
                      voltage=300, amp_contrast=0.07, cs=2.7)  # fmt: skip
    rows += wedge_rows(10, [-60.0, 60.0], exposure=[2.5, 5.0], defocus=[2.0, 2.25],
                       voltage=200, amp_contrast=0.1, cs=0.01)  # fmt: skip
    series = read_wedge_list(write_wedge(tmp_path / "wedgelist.star", rows))
    assert list(series) == ["3", "10"]
    assert series["3"] == TiltSeries(
        angles=(0.0, 3.0, -3.0), exposure=(3.0, 6.0, 9.0), defocus=(35000.0, 36000.0, 34000.0),
        voltage=300.0, cs=2.7, amplitude_contrast=0.07, pixel_size=None, name="3",
    )  # fmt: skip
    ten = series["10"]
    assert ten.angles == (-60.0, 60.0) and ten.exposure == (2.5, 5.0)
    assert ten.defocus == pytest.approx((20000.0, 22500.0))
    assert (ten.voltage, ten.cs, ten.amplitude_contrast, ten.name) == (200.0, 0.01, 0.1, "10")


def test_wedge_list_averages_defocus1_and_defocus2(tmp_path):
    rows = wedge_rows(1, [-3, 3], defocus1=[3.0, 2.0], defocus2=[4.0, 2.5], astig_ang=[45, 40],
                      voltage=300, amp_contrast=0.07, cs=2.7)  # fmt: skip
    series = read_wedge_list(write_wedge(tmp_path / "w.star", rows))["1"]
    assert series.defocus == pytest.approx((35000.0, 22500.0))


def test_wedge_list_without_exposure_or_defocus(tmp_path):
    series = read_wedge_list(write_wedge(tmp_path / "w.star", wedge_rows(2, [-45, 0, 45])))["2"]
    assert series.angles == (-45.0, 0.0, 45.0)
    assert series.exposure is None and series.defocus is None and series.pixel_size is None


def test_wedge_list_is_attached_by_tomogram(project):
    wedge = write_wedge(project / "lists" / "wedgelist.star",
                        wedge_rows(1, [-30, 30]) + wedge_rows(2, [-50, 40]))  # fmt: skip
    rows = [row(motl_idx=1, subtomo_num=1, tomo_num=2), row(motl_idx=2, subtomo_num=2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plist = read_particle_list(write_motl(project / "lists" / "m.star", rows), wedge_list=wedge)
    assert [p.wedge.angles for p in plist] == [(-50.0, 40.0), (-30.0, 30.0)]
    assert [p.wedge.name for p in plist] == ["2", "1"]


def test_missing_tomogram_in_wedge_list(project):
    wedge = write_wedge(project / "lists" / "wedgelist.star", wedge_rows(1, [-30, 30]))
    rows = [row(motl_idx=1, subtomo_num=1), row(motl_idx=2, subtomo_num=2, tomo_num=9)]
    motl = write_motl(project / "lists" / "m.star", rows)
    with pytest.raises(TomoclassError, match=r"wedgelist\.star: no tilt series for particle 1 "
                       r"\(tomogram '9', \.\./subtomograms/subtomo_2\.mrc"):  # fmt: skip
        read_particle_list(motl, wedge_list=wedge)


def test_phase_shift_is_warned_about(tmp_path):
    rows = wedge_rows(1, [-3, 3], pshift=[0.0, 45.0])
    with pytest.warns(TomoclassWarning, match=r"w\.star.*pshift"):
        read_wedge_list(write_wedge(tmp_path / "w.star", rows))


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"voltage": [300, 200]}, r"tomogram 1: voltage differs"),
        ({"defocus": 3.0}, r"defocus but no voltage, cs, amp_contrast"),
        ({"exposure": [1.0, -1.0]}, r"tomogram 1: .*exposure"),
    ],
)
def test_bad_wedge_list(tmp_path, columns, message):
    rows = wedge_rows(1, [-3, 3], **columns)
    with pytest.raises(TomoclassError, match=r"w\.star.*" + message):
        read_wedge_list(write_wedge(tmp_path / "w.star", rows))


def test_non_numeric_wedge_value(tmp_path):
    text = wedge_text(wedge_rows(1, [-3, 3], cs=2.5))
    path = tmp_path / "w.star"
    at = text.rindex("2.5000")
    path.write_text(text[:at] + "x" + text[at + 6 :])
    with pytest.raises(TomoclassError, match=r"w\.star: row 2: cs 'x' is not a finite number"):
        read_wedge_list(path)


def test_tilt_angle_out_of_range(tmp_path):
    rows = wedge_rows(1, [-30, 30]) + wedge_rows(4, [0, 95.5])
    with pytest.raises(TomoclassError, match=r"w\.star: tomogram 4: tilt angle 95\.5"):
        read_wedge_list(write_wedge(tmp_path / "w.star", rows))


def test_wedge_list_needs_tilt_angles(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "tilt_angle"} for r in wedge_rows(1, [-3, 3])]
    with pytest.raises(TomoclassError, match=r"w\.star: missing column\(s\) tilt_angle"):
        read_wedge_list(write_wedge(tmp_path / "w.star", rows))


# ------------------------------------------------------------------------------ detection


def test_is_stopgap_motl(tmp_path):
    assert is_stopgap_motl(write_motl(tmp_path / "m.star", [row()]))
    assert not is_stopgap_motl(write_wedge(tmp_path / "w.star", wedge_rows(1, [0])))
    relion = tmp_path / "relion.star"
    relion.write_text("# RELION\ndata_particles\n\nloop_\n_rlnImageName #1\na.mrc\n")
    assert not is_stopgap_motl(relion)
    garbage = tmp_path / "garbage.star"
    garbage.write_bytes(bytes(range(256)) * 10)
    assert not is_stopgap_motl(garbage)
    assert not is_stopgap_motl(tmp_path / "missing.star")
    assert not is_stopgap_motl(tmp_path)


# ------------------------------------------------------------------------------ bad input


def test_missing_file(tmp_path):
    with pytest.raises(TomoclassError, match=r"nope\.star: no such file"):
        read_stopgap_motl(tmp_path / "nope.star")
    with pytest.raises(TomoclassError, match=r"nope\.star: no such file"):
        read_wedge_list(tmp_path / "nope.star")


def _edit(text: str) -> dict:
    """Text edits of a good two-row motive list, each making it bad."""
    header, body = text.split("_class\n")
    return {
        "extra field": header + "_class\n" + body.rstrip("\n") + " 99\n",
        "no block": text.replace("data_stopgap_motivelist", "data_particles"),
        "not numeric": text.replace("30.0000", "  abc  ", 1),
        "short row": header + "_class\n" + body.rstrip("\n").rsplit(" ", 1)[0] + "\n",
        "no rows": header + "_class\n",
        "nan": text.replace("0.5000", "nan", 1),
    }


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("extra field", r"malformed STAR file"),
        ("no block", r"no data_stopgap_motivelist block"),
        ("not numeric", r"row 1: phi 'abc' is not a finite number"),
        ("short row", r"row 2: class nan \(or missing\) is not a finite number"),
        ("no rows", r"the motive list has no particles"),
        ("nan", r"row 1: score .* is not a finite number"),
    ],
)
def test_bad_motl(tmp_path, case, message):
    good = motl_text([row(phi=30.0), row(motl_idx=2, subtomo_num=2, phi=30.0)])
    motl = tmp_path / "bad.star"
    motl.write_text(_edit(good)[case])
    with pytest.raises(TomoclassError, match=r"bad\.star: " + message):
        read_stopgap_motl(motl, subtomo_name="s")


@pytest.mark.parametrize(
    ("dropped", "message"),
    [
        ("psi", r"missing column\(s\) psi$"),
        ("subtomo_num", r"missing column\(s\) subtomo_num$"),
        ("motl_idx", r"missing column\(s\) motl_idx \(an old 15-field .*convert_old_to_new"),
    ],
)
def test_missing_column(tmp_path, dropped, message):
    fields = [f for f in MOTL_FIELDS if f[0] != dropped]
    motl = write_motl(tmp_path / "bad.star", [row()], fields)
    with pytest.raises(TomoclassError, match=r"bad\.star: " + message):
        read_stopgap_motl(motl, subtomo_name="s")


def test_non_integer_class(tmp_path):
    motl = tmp_path / "bad.star"
    motl.write_text(motl_text([row(class_=2)]).replace(" 2\n", " 2.5\n"))
    with pytest.raises(TomoclassError, match=r"bad\.star: row 1: class 2\.5 is not an integer"):
        read_stopgap_motl(motl, subtomo_name="s")


def test_malformed_text(tmp_path):
    motl = tmp_path / "bad.star"
    motl.write_text("data_stopgap_motivelist\n\n")
    with pytest.raises(TomoclassError, match=r"bad\.star: "):
        read_stopgap_motl(motl)
    motl.write_text("data_stopgap_motivelist\n_motl_idx 1\n")
    with pytest.raises(TomoclassError, match=r"bad\.star: data_stopgap_motivelist is not a loop"):
        read_stopgap_motl(motl)


def test_directory_is_not_a_list(tmp_path):
    with pytest.raises(TomoclassError, match="not a file"):
        read_stopgap_motl(tmp_path)


def test_cli_wedge_list_gives_a_motive_list_its_tilt_series(project, tmp_path, capsys):
    wedge = write_wedge(project / "lists" / "wedgelist.star",
                        wedge_rows(1, [-30, 0, 30]) + wedge_rows(2, [-50, 40]))  # fmt: skip
    rows = [row(motl_idx=1, subtomo_num=1, tomo_num=2), row(motl_idx=2, subtomo_num=2)]
    motl = write_motl(project / "lists" / "m.star", rows)
    out = tmp_path / "out.xml"
    assert main(["convert", str(motl), str(out), "--wedge-list", str(wedge)]) == 0
    assert "warning" not in capsys.readouterr().err
    back = read_particle_list(out)
    assert [w.angles for w in back.wedges()] == [(-50.0, 40.0), (-30.0, 0.0, 30.0)]
