"""ParticleList: indexing, class operations, concatenation and arrays (operands never change)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tomoclass import Rotation, Shift, TomoclassError, rotation_matrix
from tomoclass.geometry import zxz_matrices
from tomoclass.particles import Particle, ParticleList, PickPosition
from tomoclass.wedge import SingleTiltWedge


def _plist(classes, directory="/data/run") -> ParticleList:
    particles = [
        Particle(
            f"p{i}.em",
            rotation=Rotation(10.0 * i, 20.0 + i, 5.0 * i),
            shift=Shift(i, -i, 0.5 * i),
            class_name=c,
        )
        for i, c in enumerate(classes)
    ]
    return ParticleList(particles, directory)


def test_particle_defaults_and_label_normalisation():
    p = Particle(Path("a/b.em"), class_name=np.int64(3))
    assert p.filename == "a/b.em"
    assert p.class_name == "3"
    assert p.rotation == Rotation() and p.shift == Shift()
    assert p.pick_position is None and p.wedge is None and p.score is None
    assert Particle("x.em", class_name=2.0).class_name == "2"
    with pytest.raises(TomoclassError, match="class label"):
        Particle("x.em", class_name=2.5)


def test_len_iter_getitem():
    plist = _plist(["1", "2", "1", None])
    assert len(plist) == 4
    assert [p.filename for p in plist] == ["p0.em", "p1.em", "p2.em", "p3.em"]
    assert isinstance(plist[1], Particle) and plist[-1].filename == "p3.em"
    assert plist[np.int64(2)].filename == "p2.em"
    sub = plist[1:3]
    assert isinstance(sub, ParticleList) and [p.filename for p in sub] == ["p1.em", "p2.em"]
    assert sub.directory == plist.directory
    picked = plist[np.array([3, 0])]
    assert [p.filename for p in picked] == ["p3.em", "p0.em"]
    masked = plist[np.array([True, False, False, True])]
    assert [p.filename for p in masked] == ["p0.em", "p3.em"]
    assert len(plist[[]]) == 0
    with pytest.raises(IndexError):
        plist[np.array([True, False])]


def test_split_by_class_in_order_of_first_appearance():
    plist = _plist(["2", "1", "2", None, "1", "3"])
    groups = plist.split_by_class()
    assert list(groups) == ["2", "1", None, "3"]
    assert [p.filename for p in groups["2"]] == ["p0.em", "p2.em"]
    assert [p.filename for p in groups["1"]] == ["p1.em", "p4.em"]
    assert [p.filename for p in groups[None]] == ["p3.em"]
    assert sum(len(g) for g in groups.values()) == len(plist)
    assert plist.class_names() == ["2", "1", "2", None, "1", "3"]


def test_select_keeps_list_order_and_accepts_ints_and_strings():
    plist = _plist(["2", "1", "2", None, "1", "3"])
    assert [p.filename for p in plist.select([1, "3"])] == ["p1.em", "p4.em", "p5.em"]
    assert [p.filename for p in plist.select(2)] == ["p0.em", "p2.em"]
    assert len(plist.select(["7"])) == 0
    assert plist.class_names() == ["2", "1", "2", None, "1", "3"]


def test_with_classes_returns_a_new_list():
    plist = _plist([None, None, None])
    labelled = plist.with_classes([0, np.int32(4), "x"])
    assert labelled.class_names() == ["0", "4", "x"]
    assert plist.class_names() == [None, None, None]
    with pytest.raises(TomoclassError, match="labels"):
        plist.with_classes([1, 2])


def test_concatenation_leaves_operands_unchanged():
    a = _plist(["1", "2"])
    b = _plist(["3"])
    a_before, b_before = list(a), list(b)
    c = a + b
    assert [p.filename for p in c] == ["p0.em", "p1.em", "p0.em"]
    assert c.class_names() == ["1", "2", "3"]
    assert list(a) == a_before and list(b) == b_before
    assert len(a) == 2 and len(b) == 1


def test_concatenation_rebases_relative_filenames(tmp_path):
    a = ParticleList([Particle("x.em")], tmp_path / "a")
    b = ParticleList([Particle("sub/y.em"), Particle("/abs/z.em")], tmp_path / "b")
    c = a + b
    assert c.paths() == [
        tmp_path / "a" / "x.em",
        tmp_path / "b" / "sub" / "y.em",
        Path("/abs/z.em"),
    ]
    assert c[1].filename == str(Path("..") / "b" / "sub" / "y.em")
    assert b[0].filename == "sub/y.em"


def test_paths_resolve_relative_filenames_against_directory(tmp_path):
    plist = ParticleList([Particle("./parts/p.em"), Particle("/abs/q.em")], tmp_path)
    assert plist.paths() == [tmp_path / "parts" / "p.em", Path("/abs/q.em")]
    assert all(p.is_absolute() for p in plist.paths())
    assert ParticleList([Particle("r.em")]).paths() == [Path.cwd() / "r.em"]


def test_rotation_matrices_and_shifts():
    plist = _plist(["1", "2", "3"])
    matrices = plist.rotation_matrices()
    assert matrices.shape == (3, 3, 3) and matrices.dtype == np.float64
    for p, m in zip(plist, matrices, strict=True):
        r = p.rotation
        np.testing.assert_allclose(m, rotation_matrix(r.z1, r.z2, r.x), atol=1e-12)
    np.testing.assert_array_equal(plist.shifts(), [[0, 0, 0], [1, -1, 0.5], [2, -2, 1.0]])
    empty = ParticleList([])
    assert empty.rotation_matrices().shape == (0, 3, 3)
    assert empty.shifts().shape == (0, 3)


def test_wedges_and_pick_positions():
    wedge = SingleTiltWedge(30.0, 40.0)
    plist = ParticleList(
        [
            Particle("a.em", wedge=wedge, pick_position=PickPosition(1, 2, 3, "t.mrc")),
            Particle("b.em"),
        ]
    )
    assert plist.wedges() == [wedge, None]
    assert plist[0].pick_position == PickPosition(1.0, 2.0, 3.0, "t.mrc")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"volumes": np.zeros((3, 8, 8, 8))}, "volumes: float32 is needed, got float64"),
        ({"volumes": np.zeros((3, 8, 8), np.float32)}, "volumes: a stack (N, n, n, n)"),
        ({"volumes": np.zeros((3, 8, 8, 6), np.float32)}, "volumes: a stack (N, n, n, n)"),
        ({"rotations": np.zeros((2, 3, 3))}, "rotations: (3, 3) or (3, 3, 3) matrices needed"),
        ({"rotations": np.repeat(2 * np.eye(3)[None], 3, 0)}, "must be a rotation"),
        ({"rotations": np.repeat(np.diag([1.0, 1, -1])[None], 3, 0)}, "must be a rotation"),
        ({"shifts": np.zeros((3, 2))}, "shifts: (3, 3) finite values are needed"),
        ({"wedges": [None]}, "wedges: a sequence of one per particle (3) is needed"),
    ],
)
def test_a_particle_stack_names_what_is_wrong(change, said):
    """API mistakes are TomoclassErrors naming the parameter, not the core's messages."""
    from tomoclass.features import ParticleStack

    fields = {"volumes": np.zeros((3, 8, 8, 8), np.float32),
              "rotations": np.repeat(np.eye(3)[None], 3, 0), "shifts": np.zeros((3, 3)),
              "wedges": [None] * 3}  # fmt: skip
    with pytest.raises(TomoclassError) as caught:
        ParticleStack(**{**fields, **change})
    assert said in str(caught.value)


def test_zxz_matrices_equal_scipy_and_the_core():
    from scipy.spatial.transform import Rotation as ScipyRotation

    angles = np.random.default_rng(3).uniform(-400, 400, (500, 3))  # z1, z2, x
    ours = zxz_matrices(*angles.T)
    scipy = ScipyRotation.from_euler("zxz", angles[:, [0, 2, 1]], degrees=True).as_matrix()
    np.testing.assert_allclose(ours, scipy, atol=1e-14)
    np.testing.assert_allclose(ours[7], rotation_matrix(*angles[7]), atol=1e-14)


def test_a_command_imports_neither_pandas_nor_scipy_spatial(tmp_path):
    # They take about a second to import, which a command on a PyTom XML list never needs.
    code = f"""
import sys, tomoclass, tomoclass.cli, tomoclass.ccc
from tomoclass.io import read_particle_list, write_particle_list
from tomoclass.particles import Particle, ParticleList
write_particle_list(ParticleList([Particle("a.em"), Particle("b.em")]), r"{tmp_path}/l.xml")
plist = read_particle_list(r"{tmp_path}/l.xml")
plist.rotation_matrices(), plist.paths()
heavy = ("pandas", "starfile", "scipy.spatial", "scipy.linalg")
print(sorted(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
