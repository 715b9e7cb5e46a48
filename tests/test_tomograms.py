"""RELION 4/5 ``tomograms.star``: layouts, units, geometry and dose weighting checked against
RELION's own definitions (3dem/relion master 73f0a3c0, ver4.0 27a67bb5)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tomoclass import TomoclassError
from tomoclass.errors import TomoclassWarning
from tomoclass.io.tomograms import projection_tilt_angles, read_tomograms_star
from tomoclass.wedge import TiltSeries, weights

# ------------------------------------------------------------------------------ RELION side


def gl_rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """``t3Matrix::rotation`` (src/jaz/gravis/t3Matrix.h 476-496): the GL rotation formula
    ``n·nᵀ + cos a·(I − n·nᵀ) + sin a·[n]ₓ``, right-handed, degrees."""
    n = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    a = math.radians(degrees)
    cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    nnt = np.outer(n, n)
    return nnt + math.cos(a) * (np.eye(3) - nnt) + math.sin(a) * cross


def translation(t) -> np.ndarray:
    out = np.eye(4)
    out[:3, 3] = t
    return out


def rotation4(axis, degrees: float) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = gl_rotation(axis, degrees)
    return out


def relion_projection(
    z_rot: float,
    y_tilt: float,
    x_tilt: float,
    shift_px=(0.0, 0.0),
    image_centre=(2048.0, 2048.0),
    tomogram_centre=(2000.0, 2000.0, 750.0),
) -> np.ndarray:
    """``Tomogram::setProjectionMatrix`` (tomogram.cpp 17-62):
    ``T(image centre)·T(shift)·Rz(ZRot)·Ry(YTilt)·Rx(XTilt)·T(−tomogram centre)``."""
    return (
        translation([*image_centre, 0.0])
        @ translation([*shift_px, 0.0])
        @ rotation4((0, 0, 1), z_rot)
        @ rotation4((0, 1, 0), y_tilt)
        @ rotation4((1, 0, 0), x_tilt)
        @ translation(-np.asarray(tomogram_centre))
    )


def beam(matrix: np.ndarray) -> np.ndarray:
    """The direction a projection does not see: ``row0 × row1`` (unit)."""
    n = np.cross(matrix[0, :3], matrix[1, :3])
    return n / np.linalg.norm(n)


def assert_same_axis(a: np.ndarray, b: np.ndarray) -> None:
    """Unit vectors (rows) equal up to sign."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    sign = np.sign(np.sum(a * b, axis=1))[:, None]
    np.testing.assert_allclose(a, sign * b, atol=1e-9)


# ------------------------------------------------------------------------------ STAR text


def star_value(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):  # a RELION double vector, 12 significant digits
        return "[" + ",".join(f"{v:.12g}" for v in value) + "]"
    if isinstance(value, int):
        return f"{value:12d}"
    return f"{value:12.6f}"


def loop(name: str, table: dict[str, list]) -> str:
    """One block as RELION's MetaDataTable writes it: ``loop_`` and ``_rlnX #n`` labels."""
    lines = ["", f"data_{name}", "", "loop_ "]
    lines += [f"_{label} #{i} " for i, label in enumerate(table, start=1)]
    rows = zip(*table.values(), strict=True)
    lines += [" ".join(star_value(v) for v in row) + " " for row in rows]
    return "\n".join(lines) + "\n \n"


def write_star(path: Path, blocks: dict[str, dict[str, list]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n# version 30001\n" + "".join(loop(k, v) for k, v in blocks.items())
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ RELION 5


def global5(names: list[str], files: list[str], **columns) -> dict[str, list]:
    """A RELION 5 ``data_global`` (columns as the RELION 5 import writes them)."""
    n = len(names)
    table = {
        "rlnTomoName": names,
        "rlnTomoTiltSeriesStarFile": files,
        "rlnVoltage": [300.0] * n,
        "rlnSphericalAberration": [2.7] * n,
        "rlnAmplitudeContrast": [0.1] * n,
        "rlnMicrographOriginalPixelSize": [0.675] * n,
        "rlnTomoHand": [-1.0] * n,
        "rlnTomoTiltSeriesPixelSize": [1.35] * n,
        "rlnTomoSizeX": [4000] * n,
        "rlnTomoSizeY": [4000] * n,
        "rlnTomoSizeZ": [1500] * n,
    }
    table.update(columns)
    return table


def tilts5(name: str, y_tilts, x_tilts=None, **columns) -> dict[str, list]:
    """A RELION 5 per-tilt block (``rlnTomoXTilt`` only if ``x_tilts`` is given)."""
    n = len(y_tilts)
    table: dict[str, list] = {
        "rlnMicrographName": [f"MotionCorr/job002/frames/{name}_{i:03d}.mrc" for i in range(n)],
        "rlnTomoNominalStageTiltAngle": [round(y) for y in y_tilts],
        "rlnMicrographPreExposure": [3.0 * i for i in range(n)],
        "rlnDefocusU": [40000.0] * n,
        "rlnDefocusV": [39000.0] * n,
        "rlnDefocusAngle": [55.0] * n,
    }
    if x_tilts is not None:
        table["rlnTomoXTilt"] = list(x_tilts)
    table["rlnTomoYTilt"] = list(y_tilts)
    table["rlnTomoZRot"] = [85.3] * n
    table["rlnTomoXShiftAngst"] = [12.5] * n
    table["rlnTomoYShiftAngst"] = [-7.25] * n
    table.update(columns)
    return table


def relion5_project(root: Path, tomograms=None, tilt_tables=None) -> Path:
    """A RELION 5 project: ``<root>/tilt_series_metadata/tomograms.star`` whose TS_01 names its
    tilt file relative to the project folder (as RELION does), 007 relative to its own folder."""
    meta = root / "tilt_series_metadata"
    tilt_tables = tilt_tables or {
        "TS_01": tilts5(
            "TS_01",
            y_tilts=[0.02, 3.02, -2.98],
            x_tilts=[0.5, -0.3, 0.0],
            rlnMicrographPreExposure=[0.0, 3.0, 6.0],
            rlnDefocusU=[39000.0, 39200.0, 38800.0],
            rlnDefocusV=[38000.0, 38600.0, 39200.0],
            rlnCtfScalefactor=[1.0, 0.95, 0.9],
            rlnCtfBfactor=[0.0, -20.0, -40.0],
        ),
        "007": tilts5("007", y_tilts=[-1.5, 58.5, -61.5]),
    }
    write_star(meta / "tilt_series" / "TS_01.star", {"TS_01": tilt_tables["TS_01"]})
    write_star(meta / "tilt_series" / "007.star", {"007": tilt_tables["007"]})
    tomograms = tomograms or global5(
        ["TS_01", "007"],
        ["tilt_series_metadata/tilt_series/TS_01.star", "tilt_series/007.star"],
        rlnVoltage=[300.0, 200.0],
        rlnSphericalAberration=[2.7, 2.0],
        rlnAmplitudeContrast=[0.1, 0.07],
    )
    return write_star(meta / "tomograms.star", {"global": tomograms})


def test_relion5_values_and_units(tmp_path):
    series = read_tomograms_star(relion5_project(tmp_path))
    assert list(series) == ["TS_01", "007"]  # "007" stays text, in file order
    ts = series["TS_01"]
    assert ts.name == "TS_01" and ts.pixel_size is None
    assert ts.angles == pytest.approx((0.02, 3.02, -2.98), abs=1e-12)
    assert ts.x_tilts == pytest.approx((0.5, -0.3, 0.0), abs=1e-12)
    assert ts.exposure == pytest.approx((0.0, 3.0, 6.0))  # e/Å², as given
    assert ts.defocus == pytest.approx((38500.0, 38900.0, 39000.0))  # Å, mean of U and V
    assert ts.scale == pytest.approx((1.0, 0.95, 0.9))
    assert ts.bfactor == pytest.approx((0.0, -20.0, -40.0))
    assert (ts.voltage, ts.cs, ts.amplitude_contrast) == (300.0, 2.7, 0.1)
    other = series["007"]
    assert other.angles == pytest.approx((-1.5, 58.5, -61.5))
    assert other.x_tilts is None and other.scale is None and other.bfactor is None
    assert other.defocus == pytest.approx((39500.0,) * 3)
    assert (other.voltage, other.cs, other.amplitude_contrast) == (200.0, 2.0, 0.07)


def test_relion5_normals_are_relion_beam_directions(tmp_path):
    """ZRot turns each image in its plane: the beam direction of RELION's full projection
    (with ZRot and shifts) is the tilt series' normal."""
    ts = read_tomograms_star(relion5_project(tmp_path))["TS_01"]
    directions = [
        beam(relion_projection(85.3, y, x, shift_px=(12.5 / 1.35, -7.25 / 1.35)))
        for y, x in zip(ts.angles, ts.x_tilts or (), strict=True)
    ]
    assert_same_axis(ts.normals(), np.array(directions))


def test_relion5_absolute_tilt_series_path(tmp_path):
    tilt_file = write_star(tmp_path / "elsewhere" / "a.star", {"A": tilts5("A", [10.0, -20.0])})
    tomograms = write_star(
        tmp_path / "project" / "tomograms.star",
        {"global": global5(["A"], [os.fspath(tilt_file.absolute())])},
    )
    assert read_tomograms_star(tomograms)["A"].angles == (10.0, -20.0)


def test_relion5_shared_tilt_series_file(tmp_path):
    """Several tomograms' blocks in one tilt-series file (each found by its name)."""
    tilt_file = write_star(
        tmp_path / "tilts.star", {"A": tilts5("A", [1.0, 2.0]), "B": tilts5("B", [-4.0])}
    )
    tomograms = write_star(
        tmp_path / "tomograms.star", {"global": global5(["A", "B"], [tilt_file.name] * 2)}
    )
    series = read_tomograms_star(tomograms)
    assert series["A"].angles == (1.0, 2.0) and series["B"].angles == (-4.0,)


def test_key_value_global_block(tmp_path):
    """A one-tomogram ``data_global`` written as a key-value list is read too."""
    write_star(tmp_path / "t" / "A.star", {"A": tilts5("A", [5.0])})
    (tmp_path / "tomograms.star").write_text(
        "data_global\n\n_rlnTomoName A\n_rlnTomoTiltSeriesStarFile t/A.star\n"
        "_rlnVoltage 300\n_rlnSphericalAberration 2.7\n_rlnAmplitudeContrast 0.1\n"
    )
    assert read_tomograms_star(tmp_path / "tomograms.star")["A"].angles == (5.0,)


# ------------------------------------------------------------------------------ RELION 4


def global4(names: list[str], **columns) -> dict[str, list]:
    """A RELION 4 ``data_global`` (columns as RELION 4's import writes them)."""
    n = len(names)
    table = {
        "rlnTomoName": names,
        "rlnTomoTiltSeriesName": [f"tilt_series/{name}.st:mrc" for name in names],
        "rlnTomoFrameCount": [3] * n,
        "rlnTomoSizeX": [4000] * n,
        "rlnTomoSizeY": [4000] * n,
        "rlnTomoSizeZ": [1500] * n,
        "rlnTomoHand": [-1.0] * n,
        "rlnOpticsGroupName": ["optics1"] * n,
        "rlnTomoTiltSeriesPixelSize": [1.35] * n,
        "rlnVoltage": [300.0] * n,
        "rlnSphericalAberration": [2.7] * n,
        "rlnAmplitudeContrast": [0.07] * n,
        "rlnTomoImportFractionalDose": [3.0] * n,
    }
    table.update(columns)
    return table


def tilts4(angles: list[tuple[float, float, float]], **columns) -> dict[str, list]:
    """A RELION 4 per-tilt block: projection matrices of ``(ZRot, YTilt, XTilt)`` triples."""
    n = len(angles)
    matrices = [relion_projection(z, y, x, shift_px=(3.5, -2.0)) for z, y, x in angles]
    table: dict[str, list] = {
        label: [m[row] for m in matrices]
        for row, label in enumerate(
            ("rlnTomoProjX", "rlnTomoProjY", "rlnTomoProjZ", "rlnTomoProjW")
        )
    }
    table.update(
        {
            "rlnDefocusU": [30000.0 + 100 * i for i in range(n)],
            "rlnDefocusV": [29000.0 + 100 * i for i in range(n)],
            "rlnDefocusAngle": [10.0] * n,
            "rlnCtfScalefactor": [1.0] * n,
            "rlnMicrographPreExposure": [3.0 * i for i in range(n)],
        }
    )
    table.update(columns)
    return table


ANGLES_1 = [(84.0, y, 0.0) for y in (-60.0, -30.0, 0.0, 30.0, 60.0)]
ANGLES_2 = [(-95.0, -45.0, 2.0), (170.0, 10.0, -3.0), (30.0, 50.0, 5.0)]


def test_relion4_single_file_with_projection_matrices(tmp_path):
    path = write_star(
        tmp_path / "tomograms.star",
        {
            "global": global4(["TS_1", "TS_2"], rlnAmplitudeContrast=[0.07, 0.1]),
            "TS_1": tilts4(ANGLES_1),
            "TS_2": tilts4(ANGLES_2),
        },
    )
    series = read_tomograms_star(path)
    assert list(series) == ["TS_1", "TS_2"]
    for name, angles in (("TS_1", ANGLES_1), ("TS_2", ANGLES_2)):
        ts = series[name]
        assert ts.angles == pytest.approx([y for _, y, _ in angles], abs=1e-9)
        assert ts.x_tilts == pytest.approx([x for _, _, x in angles], abs=1e-9)
        expected = TiltSeries(
            angles=[y for _, y, _ in angles], x_tilts=[x for _, _, x in angles]
        ).normals()
        assert_same_axis(ts.normals(), expected)
        assert_same_axis(ts.normals(), np.array([beam(relion_projection(*a)) for a in angles]))
    ts = series["TS_1"]
    assert ts.exposure == pytest.approx((0.0, 3.0, 6.0, 9.0, 12.0))
    assert ts.defocus == pytest.approx((29500.0, 29600.0, 29700.0, 29800.0, 29900.0))
    assert ts.scale == (1.0,) * 5 and ts.bfactor is None
    assert series["TS_2"].amplitude_contrast == 0.1


def test_relion4_beta_block_names(tmp_path):
    """RELION 4 beta named the blocks ``data_tomo_<row>`` (v4:tomogram_set.cpp 43)."""
    path = write_star(
        tmp_path / "tomograms.star",
        {
            "global": global4(["TS_1", "TS_2"]),
            "tomo_0": tilts4(ANGLES_1),
            "tomo_1": tilts4(ANGLES_2),
        },
    )
    series = read_tomograms_star(path)
    assert series["TS_2"].angles == pytest.approx([-45.0, 10.0, 50.0], abs=1e-9)


def test_matrices_win_over_angles_as_in_relion5(tmp_path):
    """With both, RELION 5 uses the matrices (tomogram_set.cpp 358-391): so does tomoclass."""
    tilts = tilts4(ANGLES_2, rlnTomoXTilt=[0.0] * 3, rlnTomoYTilt=[1.0, 2.0, 3.0])
    path = write_star(tmp_path / "tomograms.star", {"global": global4(["A"]), "A": tilts})
    assert read_tomograms_star(path)["A"].angles == pytest.approx([-45.0, 10.0, 50.0], abs=1e-9)


def test_projection_tilt_angles_recover_relion_angles(rng):
    z = rng.uniform(-180, 180, 300)
    y = rng.uniform(-89.5, 89.5, 300)
    x = rng.uniform(-89.5, 89.5, 300)
    matrices = np.array([relion_projection(*a) for a in zip(z, y, x, strict=True)])
    y_tilt, x_tilt = projection_tilt_angles(matrices[:, 0], matrices[:, 1])
    np.testing.assert_allclose(y_tilt, y, atol=1e-9)
    np.testing.assert_allclose(x_tilt, x, atol=1e-9)
    # A binned (scaled) or mirrored image sees the same plane.
    scaled = projection_tilt_angles(0.25 * matrices[:, 0], -0.25 * matrices[:, 1])
    np.testing.assert_allclose(scaled, (y, x), atol=1e-9)
    assert_same_axis(
        TiltSeries(angles=y_tilt, x_tilts=x_tilt).normals(),
        np.array([beam(m) for m in matrices]),
    )


def test_projection_tilt_angles_edge_cases():
    # Edge-on (YTilt ±90): the x-tilt is undefined and taken as 0, never 180.
    for y in (90.0, -90.0):
        m = relion_projection(0.0, y, 0.0)
        y_tilt, x_tilt = projection_tilt_angles(m[:1], m[1:2])
        assert y_tilt[0] == pytest.approx(y) and abs(x_tilt[0]) < 1e-9
    # ... also when the cross product's z is −0.0 (a file may well say "-0").
    y_tilt, x_tilt = projection_tilt_angles([[-0.0, 0.0, 1.0, 0.0]], [[0.0, 1.0, 0.0, 0.0]])
    assert (y_tilt[0], x_tilt[0]) == (90.0, 0.0)
    assert gl_rotation((0, 1, 0), 30.0) == pytest.approx(
        np.array([[math.cos(math.pi / 6), 0, 0.5], [0, 1, 0], [-0.5, 0, math.cos(math.pi / 6)]])
    )
    with pytest.raises(ValueError, match="parallel"):
        projection_tilt_angles([[1.0, 0.0, 0.0, 5.0]], [[-2.0, 0.0, 0.0, 1.0]])


# ------------------------------------------------------------------------------ dose and CTF


def relion_per_dose_weight(dose: float, b_per_dose: float, k: np.ndarray) -> np.ndarray:
    """``Damage::weightImage`` with BfactorPerElectronDose > 0 (damage.cpp 145-156), k in 1/Å."""
    return np.exp(-b_per_dose * dose / 4.0 * k**2)


def relion_ctf_envelope(bfac: float, k: np.ndarray) -> np.ndarray:
    """``CTF::getCTF`` damping with dose < 0: ``exp(K4·k²)``, ``K4 = −Bfac/4`` (ctf.cpp 236)."""
    return np.exp(-bfac / 4.0 * k**2)


def test_per_electron_bfactor_folds_into_bfactor(tmp_path):
    tilts = {
        "A": tilts5("A", [0.0, 0.0, 0.0], rlnMicrographPreExposure=[0.0, 3.0, 6.5],
                    rlnCtfBfactor=[0.0, 10.0, -5.0]),
        "B": tilts5("B", [0.0, 20.0], rlnMicrographPreExposure=[0.0, 3.0]),
        "C": tilts5("C", [0.0, 20.0], rlnMicrographPreExposure=[0.0, 3.0]),
    }  # fmt: skip
    for name, table in tilts.items():
        write_star(tmp_path / f"{name}.star", {name: table})
    path = write_star(
        tmp_path / "tomograms.star",
        {
            "global": global5(
                ["A", "B", "C"],
                ["A.star", "B.star", "C.star"],
                rlnCtfBfactorPerElectronDose=[4.0, 0.0, -2.0],
            )
        },
    )
    series = read_tomograms_star(path)
    a = series["A"]
    assert a.exposure == (0.0, 0.0, 0.0)
    assert a.bfactor == pytest.approx((0.0, 10.0 + 4.0 * 3.0, -5.0 + 4.0 * 6.5))
    for name in ("B", "C"):  # B <= 0: RELION keeps the Grant & Grigorieff filter
        assert series[name].exposure == (0.0, 3.0) and series[name].bfactor is None

    # tomoclass's envelope exp(−bfactor·s²/4) is RELION's dose weight times its CTF envelope ...
    k = np.linspace(0.0, 0.25, 51)
    for dose, bfac, folded in zip((0.0, 3.0, 6.5), (0.0, 10.0, -5.0), a.bfactor, strict=True):
        relion = relion_per_dose_weight(dose, 4.0, k) * relion_ctf_envelope(bfac, k)
        np.testing.assert_allclose(np.exp(-folded * k**2 / 4.0), relion, rtol=1e-12)
    # ... and the weight tomoclass computes (Rust core, no CTF) is exactly that.
    box, pixel = 32, 2.0
    kx = np.arange(box // 2 + 1)
    k = kx / (box * pixel)  # 1/Å
    for i, (dose, bfac) in enumerate(zip((0.0, 3.0, 6.5), (0.0, 10.0, -5.0), strict=True)):
        one = replace(
            a, angles=(0.0,), exposure=(a.exposure[i],), bfactor=(a.bfactor[i],),
            defocus=None, scale=None, x_tilts=None, pixel_size=pixel,
        )  # fmt: skip
        w = weights(one, box)[0, 0, :]
        relion = relion_per_dose_weight(dose, 4.0, k) * relion_ctf_envelope(bfac, k)
        np.testing.assert_allclose(w, relion, rtol=1e-5)


def test_phase_shift_drops_the_ctf_with_a_warning(tmp_path):
    tilt_tables = {
        "TS_01": tilts5("TS_01", [0.0, 30.0], rlnPhaseShift=[0.0, 90.0]),
        "007": tilts5("007", [0.0], rlnPhaseShift=[0.0]),
    }
    with pytest.warns(TomoclassWarning, match=r"TS_01\.star.*rlnPhaseShift"):
        series = read_tomograms_star(relion5_project(tmp_path, tilt_tables=tilt_tables))
    assert series["TS_01"].defocus is None and series["TS_01"].exposure == (0.0, 3.0)
    assert series["007"].defocus == (39500.0,)


# ------------------------------------------------------------------------------ bad input


def _project_with(tmp_path, *, drop_global=(), drop_tilt=(), global_set=None, tilt_set=None):
    """The RELION 5 project with columns of TS_01's tilts or of data_global dropped or set."""
    tomograms = global5(
        ["TS_01", "007"],
        ["tilt_series_metadata/tilt_series/TS_01.star", "tilt_series/007.star"],
    )
    tilts = {"TS_01": tilts5("TS_01", [0.0, 30.0, -30.0]), "007": tilts5("007", [1.0])}
    for column in drop_global:
        del tomograms[column]
    for column in drop_tilt:
        del tilts["TS_01"][column]
    tomograms.update(global_set or {})
    tilts["TS_01"].update(tilt_set or {})
    return relion5_project(tmp_path, tomograms=tomograms, tilt_tables=tilts)


TS01 = r"tilt_series/TS_01\.star: data_TS_01 \(tomogram 'TS_01' of .*tomograms\.star\)"
GLOBAL_TS01 = r"tomograms\.star: tomogram 'TS_01'"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop_global": ["rlnVoltage"]}, GLOBAL_TS01 + ": data_global has no rlnVoltage"),
        ({"drop_global": ["rlnSphericalAberration"]}, GLOBAL_TS01 + ".*rlnSphericalAberration"),
        ({"drop_global": ["rlnAmplitudeContrast"]}, GLOBAL_TS01 + ".*rlnAmplitudeContrast"),
        ({"drop_tilt": ["rlnMicrographPreExposure"]}, TS01 + ": no rlnMicrographPreExposure"),
        ({"drop_tilt": ["rlnDefocusU"]}, TS01 + ": no rlnDefocusU column"),
        ({"drop_tilt": ["rlnDefocusV"]}, TS01 + ": no rlnDefocusV column"),
        ({"drop_tilt": ["rlnTomoYTilt"]}, TS01 + ": no rlnTomoYTilt column"),
        ({"global_set": {"rlnVoltage": ["abc", "300"]}}, GLOBAL_TS01 + ": rlnVoltage = 'abc'"),
        (
            {"global_set": {"rlnCtfBfactorPerElectronDose": ["x", "1"]}},
            GLOBAL_TS01 + ": rlnCtfBfactorPerElectronDose = 'x' is not a finite number",
        ),
        (
            {"tilt_set": {"rlnDefocusU": [40000.0, "4e4x", 40000.0]}},
            TS01 + ": row 2: rlnDefocusU = '4e4x' is not a finite number",
        ),
        ({"tilt_set": {"rlnTomoXTilt": [0.0, "nan", 0.0]}}, TS01 + ": row 2: rlnTomoXTilt"),
        (
            {"tilt_set": {"rlnTomoYTilt": [0.0, 95.0, -30.0]}},
            TS01 + ": row 2: rlnTomoYTilt = 95 is outside -90..90",
        ),
        ({"tilt_set": {"rlnTomoYTilt": [0.0, 30.0, -90.5]}}, TS01 + ": row 3: .*outside"),
        (
            {"tilt_set": {"rlnMicrographPreExposure": [0.0, -3.0, 6.0]}},
            TS01 + ": tilt series exposure must be >= 0",
        ),
        ({"global_set": {"rlnAmplitudeContrast": [1.5, 0.1]}}, TS01 + ": tilt series optics"),
        (
            {"global_set": {"rlnTomoName": ["TS_01", "TS_01"]}},
            GLOBAL_TS01 + ": listed twice in data_global",
        ),
    ],
)
def test_bad_columns_and_values(tmp_path, change, message):
    path = _project_with(tmp_path, **change)
    with pytest.raises(TomoclassError, match=message):
        read_tomograms_star(path)


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.array([1.0, 0.0, 0.0]), r"row 2: rlnTomoProjY = '\[1,0,0\]' is not four finite"),
        (np.array([1.0, 0.0, 0.0, math.inf]), "row 2: rlnTomoProjY = .* is not four finite"),
        ("[a,b,c,d]", r"row 2: rlnTomoProjY = '\[a,b,c,d\]' is not four finite"),
        (None, "tilt 2: projection rows 0 and 1 are parallel"),
    ],
)
def test_bad_projection_matrices(tmp_path, vector, message):
    tilts = tilts4(ANGLES_2)
    parallel = -2.0 * tilts["rlnTomoProjX"][1] + np.array([0.0, 0.0, 0.0, 7.0])
    tilts["rlnTomoProjY"][1] = parallel if vector is None else vector
    path = write_star(tmp_path / "tomograms.star", {"global": global4(["A"]), "A": tilts})
    with pytest.raises(
        TomoclassError, match=r"tomograms\.star: tomogram 'A' \(data_A\): " + message
    ):
        read_tomograms_star(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(TomoclassError, match=r"nope\.star: no such file"):
        read_tomograms_star(tmp_path / "nope.star")
    with pytest.raises(TomoclassError, match="not a file"):
        read_tomograms_star(tmp_path)
    bad = tmp_path / "bad.star"
    bad.write_text("data_global\n\nloop_\n_rlnTomoName #1\n_rlnVoltage #2\nA 300 1 2\nB 300 1 2\n")
    with pytest.raises(TomoclassError, match=r"bad\.star: malformed STAR file"):
        read_tomograms_star(bad)
    particles = write_star(tmp_path / "particles.star", {"particles": {"rlnImageName": ["a.mrc"]}})
    with pytest.raises(TomoclassError, match=r"particles\.star: no data_global block"):
        read_tomograms_star(particles)
    not_star = tmp_path / "notes.txt"
    not_star.write_text("just some text\n")
    with pytest.raises(TomoclassError, match=r"notes\.txt: no data_global block"):
        read_tomograms_star(not_star)
    no_name = write_star(tmp_path / "no_name.star", {"global": {"rlnVoltage": [300.0]}})
    with pytest.raises(TomoclassError, match=r"no_name\.star: data_global has no rlnTomoName"):
        read_tomograms_star(no_name)
    empty = tmp_path / "empty.star"
    empty.write_text("data_global\n\nloop_\n_rlnTomoName #1\n_rlnVoltage #2\n")
    with pytest.raises(TomoclassError, match=r"empty\.star: data_global lists no tomograms"):
        read_tomograms_star(empty)


def test_relion4_missing_tomogram_block(tmp_path):
    path = write_star(
        tmp_path / "tomograms.star",
        {"global": global4(["TS_1", "TS_2"]), "TS_1": tilts4(ANGLES_1)},
    )
    with pytest.raises(TomoclassError, match=r"tomograms\.star: tomogram 'TS_2': no data_TS_2"):
        read_tomograms_star(path)


def test_relion5_missing_tilt_series_file_names_both(tmp_path):
    path = relion5_project(tmp_path)
    os.remove(tmp_path / "tilt_series_metadata" / "tilt_series" / "007.star")
    with pytest.raises(
        TomoclassError,
        match=r"tomograms\.star: tomogram '007': its tilt-series file tilt_series/007\.star "
        r"\(rlnTomoTiltSeriesStarFile\) is not found in .*tilt_series_metadata or any folder",
    ):
        read_tomograms_star(path)


def test_relion5_tilt_series_file_without_the_block(tmp_path):
    path = relion5_project(tmp_path)
    write_star(tmp_path / "tilt_series_metadata" / "tilt_series" / "007.star",
               {"TS_99": tilts5("TS_99", [0.0])})  # fmt: skip
    with pytest.raises(
        TomoclassError,
        match=r"tomograms\.star: tomogram '007': its tilt-series file .*tilt_series/007\.star "
        r"has no data_007 block",
    ):
        read_tomograms_star(path)


def test_relion5_malformed_tilt_series_file(tmp_path):
    path = relion5_project(tmp_path)
    (tmp_path / "tilt_series_metadata" / "tilt_series" / "TS_01.star").write_text(
        "data_TS_01\n\nloop_\n_rlnTomoYTilt #1\n1 2 3\n4 5 6\n"
    )
    with pytest.raises(
        TomoclassError,
        match=r"tomograms\.star: tomogram 'TS_01': .*tilt_series/TS_01\.star: malformed STAR",
    ):
        read_tomograms_star(path)


def test_empty_tilt_block(tmp_path):
    path = relion5_project(tmp_path)
    (tmp_path / "tilt_series_metadata" / "tilt_series" / "007.star").write_text(
        "data_007\n\nloop_\n_rlnTomoYTilt #1\n_rlnMicrographPreExposure #2\n"
    )
    with pytest.raises(TomoclassError, match=r"007\.star: data_007 \(tomogram '007' .*no tilts"):
        read_tomograms_star(path)


def test_blank_lines_after_loop_are_read_in_tomogram_files(tmp_path):
    path = relion5_project(tmp_path)
    want = read_tomograms_star(path)
    for star in [path, *(tmp_path / "tilt_series_metadata" / "tilt_series").glob("*.star")]:
        star.write_text(re.sub(r"loop_ *\n", "loop_\n\n  \n", star.read_text()))
    assert "loop_\n\n" in path.read_text()
    assert read_tomograms_star(path) == want
