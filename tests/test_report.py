"""``tomoclass report``: the pictures a user judges a classification by, checked in a real
headless browser (Debian's chromium; CI installs it, elsewhere the browser test is skipped)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from tomoclass.cli import main

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report") / "demo"
    assert main(["demo", str(folder), "-n", "90", "-k", "2", "--snr", "1"]) == 0
    return folder / "classes"


def test_demo_ends_with_a_report_of_every_picture(demo):
    page = (demo / "report.html").read_text()
    for title in ("Eigenvalues", "Coefficients", "Class averages", "Resolution", "Margins"):
        assert f"<h2>{title}</h2>" in page
    assert page.count("data:image/png;base64,") == 5
    assert len(list((demo / "report").glob("*.png"))) == 5


def test_mco_ac_and_merge_reports(tmp_path):
    data = tmp_path / "sim"
    assert main(["simulate", str(data), "-n", "60", "--box", "16", "--snr", "1"]) == 0
    out = tmp_path / "ac"
    assert main(["mco-ac", "-p", str(data / "particles.xml"), "-m", str(data / "mask.em"),
                 "-c", "2", "-d", str(out), "--highest-frequency", "4", "--oversample", "2",
                 "--start-temperature", "1", "--annealing-step", "0.5"]) == 0  # fmt: skip
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    for title in ("Class averages", "Dendrogram (merge_dendrogram.png)", "Trace", "Parameters"):
        assert f"<h2>{title}" in page, title


def test_report_of_an_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no tomoclass output" in capsys.readouterr().err


@pytest.mark.skipif(BROWSER is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_in_a_browser_with_every_image_loaded(demo, tmp_path):
    url = (demo / "report.html").as_uri()
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    images = int(re.search(r'data-images="(\d+)"', dom.stdout).group(1))
    loaded = int(re.search(r'data-loaded="(\d+)"', dom.stdout).group(1))
    assert images == 5 and loaded == images
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,1400", url],
                   capture_output=True, timeout=120)  # fmt: skip
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not blank
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50
