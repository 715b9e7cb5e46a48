"""Files PyTom ships and writes (``../shared/pytom-files``, PyTom 4089d5d): what tomoclass makes
of each, as that folder's README says it should."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import starfile
from conftest import PYTOM_FILES

from tomoclass.cli import main
from tomoclass.errors import TomoclassWarning
from tomoclass.io import read_particle_list, read_volume, volumes, write_particle_list
from tomoclass.io.pytom_xml import read_pytom_xml
from tomoclass.wedge import SingleTiltWedge, WeightVolume

TESTDATA, WRITTEN = PYTOM_FILES / "testdata", PYTOM_FILES / "written"
EXAMPLE = TESTDATA / "example_starfile.star"


def read_quietly(path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_particle_list(path, **options)


def test_warp_style_star_origins_use_the_particles_pixel_size():
    """``rlnPixelSize`` 10.96 Å: shifts are −origin / 10.96 (at most 4.50 voxels, not 49.3)."""
    plist = read_quietly(EXAMPLE)
    assert len(plist) == 74
    np.testing.assert_allclose(plist.shifts()[0], (-5.480818 / 10.96, -6.343918 / 10.96,
                                                -6.042518 / 10.96), rtol=1e-6)  # fmt: skip
    assert np.abs(plist.shifts()).max() == pytest.approx(49.319 / 10.96, abs=1e-3)


def test_warp_style_star_ctf_volumes_become_the_particles_weights():
    plist = read_quietly(EXAMPLE)
    for p in plist:
        assert isinstance(p.wedge, WeightVolume)
        assert p.wedge.kind == "ctf" and not p.wedge.premultiplied
        assert p.wedge.filename == p.filename.replace("_2.74A.mrc", "_ctf_2.74A.mrc")
        assert p.wedge.ctf_max_resolution == 6.7
    assert set(plist.class_names()) == {"1"}  # RELION's number, kept as the name


def test_pytom_star2pl_shifts_have_the_opposite_sign_of_relions():
    """PyTom's ``star2pl`` writes ``+origin``; RELION places a particle at coordinate −
    origin (particle_set.cpp), which tomoclass follows: the same particles, negated shifts."""
    ours = read_quietly(EXAMPLE)
    pytom = read_pytom_xml(WRITTEN / "star2pl_example_starfile.xml")
    np.testing.assert_allclose(pytom.shifts(), -ours.shifts(), atol=1e-6)
    np.testing.assert_allclose(pytom.rotation_matrices(), ours.rotation_matrices(), atol=1e-5)
    assert [p.wedge.filename for p in pytom] == [p.wedge.filename for p in ours]


def test_pl2star_output_with_a_blank_line_after_loop_is_read():
    plist = read_quietly(WRITTEN / "pl2star_example_starfile.star")
    original = read_quietly(EXAMPLE)
    assert len(plist) == len(original)
    np.testing.assert_allclose(plist.shifts(), original.shifts(), atol=1e-5)  # 4 decimals
    assert [p.wedge.filename for p in plist] == [p.wedge.filename for p in original]


def test_relion3_subtomogram_star_is_read():
    plist = read_quietly(TESTDATA / "subtomo_format.star")
    assert len(plist) == 1037
    assert plist[0].filename.startswith("tomo200528_100.mrc/")
    assert all(isinstance(w, WeightVolume) for w in plist.wedges())


def test_two_dimensional_relion_star_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "out.xml"
    assert main(["convert", str(TESTDATA / "relion_with_optics_group.star"), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tomoclass: error: ") and err.count("\n") == 1
    assert "relion_with_optics_group.star" in err and "2-D" in err
    assert not out.exists()


def test_mrc_from_pytom_write_mrc_is_read_with_one_warning(monkeypatch):
    monkeypatch.setattr(volumes, "_warned_no_map_id", [])  # said once per run
    with pytest.warns(TomoclassWarning, match="MAP") as caught:
        mask = read_volume(TESTDATA / "human_ribo_mask_32_8_5.mrc")
        again = read_volume(TESTDATA / "human_ribo_mask_32_8_5.mrc")
    assert len(caught) == 1
    np.testing.assert_array_equal(mask, again)
    assert mask.shape == (32, 32, 32) and 0 <= mask.min() and mask.max() <= 1
    assert mask[16, 16, 16] == pytest.approx(1.0) and mask[0, 0, 0] == pytest.approx(0.0)


@pytest.mark.parametrize(("name", "dtype"), [("int2.em", np.int16), ("int4.em", np.int32)])
def test_integer_em_files(name, dtype):
    data = read_volume(TESTDATA / name)
    raw = np.fromfile(TESTDATA / name, dtype="<" + np.dtype(dtype).str[1:], offset=512)
    assert data.shape == (1, 64, 64)
    np.testing.assert_array_equal(data.ravel(), raw.astype(np.float32))


def test_pickpos_format_list_is_read_exactly():
    plist = read_quietly(TESTDATA / "pickpos_format.xml")
    first = plist[0]
    assert first.rotation.z1 == pytest.approx(303.99186654901735)
    assert first.wedge == SingleTiltWedge(30.0, 30.0, 50.0, 0.0)
    assert first.pick_position.origin == "tomo1.tomostar" and first.class_name == "0"


def test_class_a_survives_star_and_relion_numbers_start_at_1(tmp_path):
    """PyTom's list with classes 0, 1 and ``A``: STAR gets rlnClassNumber ≥ 1 and the names
    in tomoclassClassName, and reading it back gives the names."""
    plist = read_quietly(WRITTEN / "pytom_written.xml")
    assert "A" in plist.class_names()
    star = tmp_path / "out.star"
    write_particle_list(plist, star)
    table = starfile.read(star, always_dict=True)["particles"]
    assert table["rlnClassNumber"].tolist() == [1, 2, 3, 4] * 3
    assert table["tomoclassClassName"].astype(str).tolist() == ["0", "1", "2", "A"] * 3
    back = read_particle_list(star)
    assert back.class_names() == plist.class_names()
    assert back.wedges() == plist.wedges()
