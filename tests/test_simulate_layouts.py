"""The simulator's warp and relion layouts: the files Warp and RELION 5 write, data that carry
the weights tomoclass reads from them, tilt series acquired dose-symmetrically."""

from __future__ import annotations

import csv
import math
import re
import warnings
from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from tomoclass.cli import main
from tomoclass.errors import TomoclassWarning
from tomoclass.features import Preprocessing
from tomoclass.fourier import rfftn
from tomoclass.io import read_particle_list, read_volume
from tomoclass.io.tomograms import read_tomograms_star
from tomoclass.io.weights import read_weight_volume
from tomoclass.mco import leave_one_out_scores
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import (
    AMPLITUDE_CONTRAST,
    SimulationConfig,
    dose_symmetric_order,
    layout_filenames,
    simulate_particles,
    star_order,
    tilt_scheme,
    write_simulation,
)
from tomoclass.transform import forward
from tomoclass.wedge import TiltSeries, WeightVolume, weights

BOX, HALF = 20, 20 // 2 + 1
WARP_COLUMNS = [
    "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnAngleRot", "rlnAngleTilt",
    "rlnAnglePsi", "rlnMicrographName", "rlnMagnification", "rlnDetectorPixelSize",
    "rlnCtfMaxResolution", "rlnImageName", "rlnCtfImage", "rlnPixelSize", "rlnVoltage",
    "rlnSphericalAberration",
]  # fmt: skip
OPTICS_COLUMNS = [
    "rlnOpticsGroup", "rlnOpticsGroupName", "rlnCtfDataAreCtfPremultiplied",
    "rlnImageDimensionality", "rlnTomoTiltSeriesPixelSize", "rlnTomoSubtomogramBinning",
    "rlnImagePixelSize", "rlnImageSize", "rlnVoltage", "rlnSphericalAberration",
    "rlnAmplitudeContrast",
]  # fmt: skip
PARTICLE_COLUMNS = [
    "rlnTomoName", "rlnTomoParticleName", "rlnCenteredCoordinateXAngst",
    "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst", "rlnAngleRot", "rlnAngleTilt",
    "rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst", "rlnImageName",
    "rlnCtfImage", "rlnOpticsGroup",
]  # fmt: skip
TILT_COLUMNS = [
    "rlnTomoNominalStageTiltAngle", "rlnMicrographPreExposure", "rlnTomoXTilt", "rlnTomoYTilt",
    "rlnTomoZRot", "rlnTomoXShiftAngst", "rlnTomoYShiftAngst", "rlnDefocusU", "rlnDefocusV",
    "rlnDefocusAngle", "rlnCtfScalefactor",
]  # fmt: skip


def _write(folder: Path, layout: str, **kwargs):
    """A small simulation written in ``layout``; noise negligible unless ``snr`` is given."""
    settings = {"n_particles": 12, "box": BOX, "seed": 4, "snr": 1e12}
    settings["max_shift"] = 0.0 if layout == "warp" else 2.0
    settings.update(kwargs)
    sim = simulate_particles(SimulationConfig(**settings))
    return sim, write_simulation(sim, folder, layout=layout)


@pytest.fixture(scope="module")
def warp(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("warp"), "warp")


@pytest.fixture(scope="module")
def warp_no_dose(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("warp0"), "warp", dose_per_tilt=0.0)


@pytest.fixture(scope="module")
def relion(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("relion"), "relion")


def _mrc(path: Path) -> tuple[int, np.ndarray, float, tuple[int, int, int]]:
    """Mode, data, voxel size x and header (nx, ny, nz) of an MRC file."""
    with mrcfile.open(path) as mrc:
        header = (int(mrc.header.nx), int(mrc.header.ny), int(mrc.header.nz))
        return int(mrc.header.mode), mrc.data.copy(), float(mrc.voxel_size.x), header


# ------------------------------------------------------------------------ tilt series


def test_tilts_are_acquired_dose_symmetrically_in_groups_of_two():
    angles, exposure = tilt_scheme(-60, 60, 3.0, 3.0)
    assert angles.tolist() == [3.0 * k for k in range(-20, 21)]
    acquired = angles[np.argsort(exposure)]
    assert acquired[:10].tolist() == [0, 3, -3, -6, 6, 9, -9, -12, 12, 15]
    assert sorted(exposure.tolist()) == [3.0 * k for k in range(41)]
    # an asymmetric range: once -48 is taken the positive side goes on alone
    angles, exposure = tilt_scheme(-50, 60, 3.0, 2.0)
    acquired = angles[np.argsort(exposure)]
    assert acquired.min() == -48 and acquired[-4:].tolist() == [51, 54, 57, 60]
    assert np.diff(np.sort(exposure)).tolist() == [2.0] * (len(angles) - 1)
    angles = np.arange(-9, 13) * 3.0  # groups of 3: 0, 3, 6 | -3, -6, -9 | 9, 12, 15 | ...
    acquired = angles[np.argsort(dose_symmetric_order(angles, group=3))]
    assert acquired[:10].tolist() == [0, 3, 6, -3, -6, -9, 9, 12, 15, -12]


def test_relion_tilt_series_files_hold_the_simulated_scheme(relion):
    sim, star = relion
    folder = star.parent
    tilts = starfile.read(folder / "tilt_series/TS_01.star", always_dict=True)["TS_01"]
    assert list(tilts.columns) == TILT_COLUMNS
    assert tilts["rlnTomoYTilt"].tolist() == sorted(tilts["rlnTomoYTilt"])  # stack order
    by_dose = tilts.sort_values("rlnMicrographPreExposure")
    assert by_dose["rlnTomoYTilt"].tolist()[:6] == [0, 3, -3, -6, 6, 9]
    assert by_dose["rlnMicrographPreExposure"].tolist()[:3] == [0, 3, 6]
    read = read_tomograms_star(folder / "tomograms.star")
    assert list(read) == ["TS_01", "TS_02", "TS_03", "TS_04"]
    for series in sim.tilt_series:
        got = read[series.name]
        assert (got.angles, got.exposure, got.defocus) == (
            series.angles,
            series.exposure,
            series.defocus,
        )
    assert read["TS_03"].defocus[0] == 45000.0  # 4.5 µm, Å
    table = starfile.read(folder / "tomograms.star", always_dict=True)["global"]
    assert table["rlnTomoTiltSeriesStarFile"].tolist()[1] == "tilt_series/TS_02.star"


# ------------------------------------------------------------------------ file layouts


def test_warp_files_are_laid_out_as_warptools_writes_them(warp):
    sim, star = warp
    folder = star.parent
    text = star.read_text()
    assert text.startswith("\ndata_\n\nloop_\n_rlnCoordinateX #1\n")
    assert re.findall(r"(?m)^data_.*$", text) == ["data_"]  # one bare block, no optics
    assert re.findall(r"(?m)^_(\w+) #\d+$", text) == WARP_COLUMNS
    table = starfile.read(star, always_dict=True)[""]
    assert len(table) == 12
    counters: dict[str, int] = {}
    for row in table.to_dict("records"):
        ts = row["rlnMicrographName"].removesuffix(".tomostar")
        p = counters.setdefault(ts, 0)
        counters[ts] += 1
        assert row["rlnImageName"] == f"subtomo/{ts}/{ts}_{p:07d}_8.00A.mrc"
        assert row["rlnCtfImage"] == f"subtomo/{ts}/{ts}_{p:07d}_ctf_8.00A.mrc"
    assert counters == {"TS_01": 3, "TS_02": 3, "TS_03": 3, "TS_04": 3}
    assert re.search(r"(?m)^ +\S+ +\S+ +\S+ .* TS_01\.tomostar  10000\.0  8\.00000 ", text)
    mode, data, voxel, _ = _mrc(folder / table["rlnImageName"][0])
    assert (mode, data.dtype, data.shape, voxel) == (12, np.float16, (BOX,) * 3, 8.0)
    mode, ctf, voxel, header = _mrc(folder / table["rlnCtfImage"][0])
    assert (mode, ctf.dtype, ctf.shape, voxel) == (12, np.float16, (BOX, BOX, HALF), 8.0)
    assert header == (HALF, BOX, BOX)  # x, the fastest axis, is halved
    # DC at index 0: every tilt sees it with CTF = Q0, weighted by cos θ
    cosines = np.cos(np.radians(sim.tilt_series[0].angles))
    assert ctf[0, 0, 0] == pytest.approx(AMPLITUDE_CONTRAST * cosines.mean(), rel=2e-3)
    ts = [s.name for s in sim.tilt_series]
    for name in table["rlnCtfImage"]:
        t = ts.index(name.split("/")[1])
        ctf = _mrc(folder / name)[1].astype(np.float32)
        # nonzero only where tomoclass's own model of the tilt series samples (x, y, z axes)
        covered = weights(TiltSeries(sim.tilt_series[t].angles), BOX)
        assert ctf.min() >= 0 and (ctf[covered == 0] == 0).all()
        assert (ctf[covered > 0] != 0).mean() > 0.5  # not only the DC survives MakeSparse
    assert len(list(folder.glob("subtomo/*/*.mrc"))) == 24


def test_relion_files_are_laid_out_as_relion_tomo_subtomo_writes_them(relion):
    sim, star = relion
    folder = star.parent
    blocks = starfile.read(star, always_dict=True)
    assert list(blocks) == ["general", "optics", "particles"]
    assert blocks["general"] == {"rlnTomoSubTomosAre2DStacks": 0}
    optics, particles = blocks["optics"], blocks["particles"]
    assert list(optics.columns) == OPTICS_COLUMNS
    assert list(particles.columns) == PARTICLE_COLUMNS
    assert optics["rlnOpticsGroupName"].tolist() == ["TS_01", "TS_02", "TS_03", "TS_04"]
    assert set(optics["rlnCtfDataAreCtfPremultiplied"]) == {1}
    assert set(optics["rlnImageDimensionality"]) == {3}
    assert set(optics["rlnImageSize"]) == {BOX} and set(optics["rlnImagePixelSize"]) == {8.0}
    for row in particles.to_dict("records"):
        tomo, name = row["rlnTomoName"], row["rlnTomoParticleName"]
        assert re.fullmatch(rf"{tomo}/[1-3]", name)
        assert row["rlnImageName"] == f"Subtomograms/{name}_data.mrc"
        assert row["rlnCtfImage"] == f"Subtomograms/{name}_weights.mrc"
        assert row["rlnOpticsGroup"] == int(tomo[-2:])
    mode, data, voxel, _ = _mrc(folder / particles["rlnImageName"][0])
    assert (mode, data.dtype, data.shape, voxel) == (2, np.float32, (BOX,) * 3, 8.0)
    mode, both, voxel, header = _mrc(folder / particles["rlnCtfImage"][0])
    assert (mode, both.dtype, both.shape) == (2, np.float32, (2 * BOX, BOX, HALF))
    assert header == (HALF, BOX, 2 * BOX) and voxel == pytest.approx(1 / 8.0)
    tilts = len(sim.tilt_series[0].angles)  # particle 0 of the STAR is in TS_01
    ctf2, multiplicity = both[:BOX], both[BOX:]
    assert multiplicity[0, 0, 0] == tilts  # DC at index 0, seen by every tilt
    assert ctf2[0, 0, 0] == pytest.approx(tilts * AMPLITUDE_CONTRAST**2, rel=1e-5)
    for name in particles["rlnCtfImage"]:
        multiplicity = read_volume(folder / name)[BOX:]
        tomo = name.split("/")[1]
        series = next(s for s in sim.tilt_series if s.name == tomo)
        # min(multiplicity, 1) is tomoclass's coverage weight of the tilt angles
        covered = weights(TiltSeries(series.angles), BOX)
        np.testing.assert_allclose(np.minimum(multiplicity, 1), covered, atol=1e-6)
    # TS_03 tilts from -60 to 45: kx > 0, kz < 0 at 59° is sampled, its mirror in z is not
    ts03 = read_volume(folder / "Subtomograms/TS_03/1_weights.mrc")[BOX:]
    assert ts03[BOX - 5, 0, 3] > 0.5 and ts03[5, 0, 3] == 0


@pytest.mark.parametrize(("layout", "block"), [("warp", ""), ("relion", "particles")])
def test_truth_mask_and_references(layout, block, request):
    sim, star = request.getfixturevalue(layout)
    folder = star.parent
    table = starfile.read(star, always_dict=True)[block]
    with open(folder / "truth.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["filename"] for r in rows] == table["rlnImageName"].tolist()
    names = [data for data, _ in layout_filenames(sim, layout)]
    for r, i in zip(rows, star_order(sim), strict=True):
        assert r["filename"] == names[i] and int(r["class"]) == sim.labels[i]
        assert r["tomogram"] == f"TS_{sim.tomograms[i] + 1:02d}"
    assert _mrc(folder / "mask.mrc")[1:3] == (pytest.approx(read_volume(folder / "mask.mrc")), 8.0)
    reference = read_volume(folder / "class_1_reference.mrc")
    np.testing.assert_array_equal(reference, sim.references[1])


# ------------------------------------------------------------ data against their weights


@pytest.mark.parametrize("which", ["warp_no_dose", "relion"])
def test_data_carry_the_weights_tomoclass_reads(which, request):
    """``filter·F ≈ W·S`` on every sampled voxel, with the weight and filter tomoclass reads and
    ``S`` the class map moved by the rotation and shift read from the STAR file."""
    sim, star = request.getfixturevalue(which)
    premultiplied = which == "relion"
    plist = read_particle_list(star)
    index = {data: i for i, (data, _) in enumerate(layout_filenames(sim, which.split("_")[0]))}
    rotations, shifts = plist.rotation_matrices(), plist.shifts()
    for k, (p, path) in enumerate(zip(plist, plist.paths(), strict=True)):
        assert isinstance(p.wedge, WeightVolume) and p.wedge.premultiplied == premultiplied
        weight, data_filter = read_weight_volume(plist.directory / p.wedge.filename, BOX, p.wedge)
        assert (data_filter is None) == (not premultiplied)
        i = index[p.filename]
        np.testing.assert_allclose(shifts[k], sim.shifts[i], atol=1e-5)
        spectrum = rfftn(read_volume(path))
        if data_filter is not None:
            spectrum = spectrum * data_filter
        label = sim.labels[i]
        expected = weight * rfftn(forward(sim.references[label], rotations[k], shifts[k]))
        scale = np.abs(expected).max()
        sampled = weight > 0
        tolerance = 1e-4 if premultiplied else 2e-3  # Warp writes float16
        # W·(filter·F) against W²·S: every formula takes the data times their weight, and
        # RELION's 1/√C2 would magnify float32 rounding where C2 is tiny
        difference = weight * (spectrum - expected)
        assert np.abs(difference)[sampled].max() < tolerance * np.abs(weight * expected).max()
        # where Warp's MakeSparse zeroed the CTF the data keep < 1% of the signal
        assert np.abs(spectrum[~sampled]).max() < (1e-6 if premultiplied else 2e-2) * scale


def test_warp_weights_the_dose_once_its_data_twice(warp):
    """Warp's 3-D CTF holds its dose weight once; the data also carry the real damage."""
    sim, _ = warp
    for t in sim.transfers("warp"):
        ctf = t.weights.astype(np.float32)
        kept = ctf > 0.05
        ratio = t.signal[kept] / ctf[kept]
        assert ratio.max() < 1.01 and ratio.min() < 0.8


def test_weights_follow_tomoclass_tilt_model_where_one_tilt_samples(tmp_path):
    """With tilts 30° apart, voxels at ≥ 4 voxels from the tilt axis see one tilt: there
    RELION's CTF²·multiplicity and Warp's CTF are tomoclass's ``TiltSeries`` weight, read
    from ``tomograms.star`` (angles, pre-exposure, defocus, optics)."""
    settings = {"n_particles": 4, "box": 24, "tilt_step": 30.0, "dose_per_tilt": 20.0}
    sim, star = _write(tmp_path / "relion", "relion", **settings)
    series = read_tomograms_star(star.parent / "tomograms.star")
    k = np.fft.fftfreq(24, 1 / 24)
    rho = np.hypot(k[:, None, None], np.arange(13)[None, None, :])  # from the y axis
    single = np.broadcast_to(rho >= 4, (24, 24, 13))
    for tomo, relion_t, warp_t in zip(
        sim.tilt_series, sim.transfers("relion"), sim.transfers("warp"), strict=True
    ):
        read = replace(series[tomo.name], pixel_size=8.0)
        model = weights(read, 24)
        ctf2, multiplicity = relion_t.weights[:24], relion_t.weights[24:]
        np.testing.assert_allclose((ctf2 * multiplicity)[single], (model**2)[single], atol=2e-6)
        cosines = tuple(math.cos(math.radians(a)) for a in read.angles)
        warp_model = weights(replace(read, scale=cosines), 24)
        ctf = warp_t.weights.astype(np.float32)
        clear = single & (warp_model > 0.02)
        assert clear.sum() > 100
        np.testing.assert_allclose(ctf[clear], warp_model[clear], rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("layout", ["warp", "relion"])
def test_noise_has_the_requested_snr(layout):
    """SNR: mean variance of the noise-free data over the mean variance of their noise."""
    shift = 0.0 if layout == "warp" else 2.0
    sim = simulate_particles(
        SimulationConfig(n_particles=24, box=16, snr=0.5, max_shift=shift, seed=3)
    )
    noisy = np.concatenate([v for _, v in sim.layout_chunks(layout)])
    clean = np.concatenate([v for _, v in sim.layout_chunks(layout, noise=False)])
    noise = noisy - clean
    snr = clean.var(axis=(1, 2, 3)).mean() / noise.var(axis=(1, 2, 3)).mean()
    assert snr == pytest.approx(0.5, rel=0.05)
    # the noise is shaped by the weights: none beyond the Nyquist sphere
    spectrum = np.abs(rfftn(noise[0]))
    k = np.fft.fftfreq(16, 1 / 16)
    radius = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + np.arange(9) ** 2)
    assert spectrum[radius > 8].max() < 1e-3 * spectrum.max()


# ------------------------------------------------------------------------ command line


def test_cli_writes_the_warp_layout(tmp_path, capsys):
    folder = tmp_path / "sim"
    assert main(["simulate", str(folder), "--layout", "warp", "-n", "8", "--box", "16"]) == 0
    assert "particles.star" in capsys.readouterr().out
    plist = read_particle_list(folder / "particles.star")
    assert len(plist) == 8 and all(isinstance(p.wedge, WeightVolume) for p in plist)
    assert np.abs(plist.shifts()).max() == 0  # centred: the warp layout's default
    assert (folder / "truth.csv").exists() and (folder / "mask.mrc").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sim.partial")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--layout", "warp", "--max-shift", "1"], "max-shift"),
        (["--layout", "warp", "--shift-error", "0.5"], "shift-error"),
        (["--layout", "relion", "--format", "em"], "--format em"),
        (["--pixel-size", "4"], "--pixel-size"),
        (["--layout", "relion", "--pixel-size", "0"], "pixel-size"),
        (["--layout", "relion", "--defocus", "3,-1"], "defoci"),
        (["--layout", "warp", "--tilt-ranges", "1:2"], "tilt range"),
    ],
)
def test_cli_refuses_bad_layout_input(tmp_path, capsys, options, message):
    folder = tmp_path / "new"
    assert main(["simulate", str(folder), "-n", "4", "--box", "16", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tomoclass: error: ") and err.count("\n") == 1 and message in err
    assert not folder.exists()


# ------------------------------------------------ lists that carry no weights of their own


def _without_ctf_images(relion, folder: Path, premultiplied: int) -> Path:
    """The relion layout's particles.star without rlnCtfImage, written to ``folder``."""
    _, star = relion
    blocks = starfile.read(star, always_dict=True)
    blocks["particles"] = blocks["particles"].drop(columns=["rlnCtfImage"])
    blocks["optics"]["rlnCtfDataAreCtfPremultiplied"] = premultiplied
    names = blocks["particles"]["rlnImageName"]
    blocks["particles"]["rlnImageName"] = [str(star.parent / name) for name in names]
    folder.mkdir()
    starfile.write(blocks, folder / "particles.star")
    return folder / "particles.star"


def test_cli_tomograms_give_star_particles_their_tilt_series(relion, tmp_path, capsys):
    sim, star = relion
    bare = _without_ctf_images(relion, tmp_path / "bare", premultiplied=0)
    mask = star.parent / "mask.mrc"
    ccc = ["ccc", "-p", str(bare), "-m", str(mask), "-f", "4", "--no-csv"]
    for name in ("plain", "tilt-range", "tomograms"):
        (tmp_path / name).mkdir()
    assert main([*ccc, "-o", str(tmp_path / "plain")]) == 0
    err = capsys.readouterr().err  # one line naming the list and the flags that help
    assert err.count("\n") == 1 and str(bare) in err
    assert "--tilt-range" in err and "--tomograms" in err and "--wedge-list" in err
    for options in (
        ["--tilt-range", "-60:60"],
        ["--tomograms", str(star.parent / "tomograms.star")],
    ):
        assert main([*ccc, "-o", str(tmp_path / options[0][2:]), *options]) == 0
        assert capsys.readouterr().err == ""
    out = tmp_path / "with_series.xml"
    tomograms = star.parent / "tomograms.star"
    assert main(["convert", str(bare), str(out), "--tomograms", str(tomograms)]) == 0
    assert capsys.readouterr().err == ""
    plist = read_particle_list(out)
    by_name = {s.name: s for s in sim.tilt_series}
    for p, row in zip(plist, starfile.read(bare)["particles"].itertuples(), strict=True):
        assert isinstance(p.wedge, TiltSeries) and p.wedge.name == row.rlnTomoName
        np.testing.assert_allclose(sorted(p.wedge.angles), sorted(by_name[p.wedge.name].angles))
        assert p.wedge.pixel_size == pytest.approx(sim.config.pixel_size)


def test_tomograms_for_premultiplied_data_warn(relion, tmp_path):
    _, star = relion
    bare = _without_ctf_images(relion, tmp_path / "premultiplied", premultiplied=1)
    with pytest.warns(UserWarning, match="CTF-premultiplied data but no rlnCtfImage"):
        plist = read_particle_list(bare, tomograms=star.parent / "tomograms.star")
    assert all(isinstance(w, TiltSeries) for w in plist.wedges())


def test_relion_2d_stacks_are_one_clear_error(relion, tmp_path, capsys):
    """RELION 5 ``--stack2d`` output: told by data_general or by the stack names."""
    _, star = relion
    blocks = starfile.read(star, always_dict=True)
    for case in ("general", "names"):
        changed = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in blocks.items()}
        if case == "general":
            changed["general"] = {"rlnTomoSubTomosAre2DStacks": 1}
        else:
            names = changed["particles"]["rlnImageName"].str.replace("_data.mrc", "_stack2d.mrcs")
            changed["particles"]["rlnImageName"] = names
        path = star.parent / f"stacks_{case}.star"
        starfile.write(changed, path)
        out = tmp_path / f"{case}.xml"
        assert main(["convert", str(path), str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and "pseudo-subtomograms" in err
        assert not out.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tilt-range", "60:-60"], "tilt range"),
        (["--tilt-range", "sixty"], "-60:60"),
        (["--tomograms", "nowhere.star"], "nowhere.star"),
        (["--wedge-list", "nowhere.star"], "nowhere.star"),
    ],
)
def test_bad_sampling_options_exit_2_and_write_nothing(relion, tmp_path, capsys, options, message):
    bare = _without_ctf_images(relion, tmp_path / "bad", premultiplied=0)
    out = tmp_path / "out.xml"
    out.write_text("earlier")
    code = None
    try:
        code = main(["convert", str(bare), str(out), *options])
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert out.read_text() == "earlier"


def test_relion_weights_raise_the_leave_one_out_limit(tmp_path):
    """On a RELION-layout set the weights tomoclass reads separate the classes better than no
    weights (taking the CTF² sum itself as the weight gives 0.42 here, below no weights)."""
    sim, star = _write(tmp_path, "relion", n_particles=120, box=24, seed=0, snr=0.05)
    truth = sim.labels[star_order(sim)]
    plist = read_particle_list(star)
    limits = []
    for sampled in (plist, plist.with_wedges([None] * len(plist))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TomoclassWarning)  # the unsampled list warns
            features = Preprocessing.for_band(sampled, star.parent / "mask.mrc", 6).features()
        scores = leave_one_out_scores(features.f, features.w, features.band.herm, truth, 2)
        limits.append(adjusted_rand_index(truth, scores.argmax(1)))
    assert limits[0] >= limits[1] + 0.08, limits


def test_missing_ctf_volume_or_tomogram_is_one_error_naming_the_particle(relion, tmp_path, capsys):
    """A rlnCtfImage that does not exist, and a tomograms.star without the particle's
    tomogram: exit 2, one line naming the file and the particle, nothing written."""
    sim, star = relion
    blocks = starfile.read(star, always_dict=True)
    names = blocks["particles"]["rlnImageName"]
    blocks["particles"]["rlnImageName"] = [str(star.parent / name) for name in names]
    ctf = [str(star.parent / name) for name in blocks["particles"]["rlnCtfImage"]]
    ctf[3] = str(tmp_path / "gone_weights.mrc")
    blocks["particles"]["rlnCtfImage"] = ctf
    broken = tmp_path / "broken.star"
    starfile.write(blocks, broken)
    (tmp_path / "out").mkdir()
    mask = str(star.parent / "mask.mrc")
    assert main(["ccc", "-p", str(broken), "-m", mask, "-f", "4", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "particle 3" in err and "gone_weights.mrc" in err
    assert not any((tmp_path / "out").iterdir())

    bare = _without_ctf_images(relion, tmp_path / "bare", premultiplied=0)
    tomograms = starfile.read(star.parent / "tomograms.star", always_dict=True)
    tomograms["global"] = tomograms["global"].iloc[1:]  # drop the first tomogram
    for block in tomograms["global"]["rlnTomoTiltSeriesStarFile"]:  # resolve from tmp_path
        (tmp_path / "tilt_series").mkdir(exist_ok=True)
        (tmp_path / block).write_text((star.parent / block).read_text())
    fewer = tmp_path / "tomograms.star"
    starfile.write(tomograms, fewer)
    out = tmp_path / "out.xml"
    assert main(["convert", str(bare), str(out), "--tomograms", str(fewer)]) == 2
    err = capsys.readouterr().err
    first = sim.tilt_series[0].name
    assert err.count("\n") == 1 and f"'{first}'" in err and "particle" in err
    assert not out.exists()
