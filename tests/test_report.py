"""``tomoclass report``: the pictures a user judges a classification by, checked in a real
headless browser (Debian's chromium: CI installs it and fails without it, elsewhere the
browser tests are skipped)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import needs

from tomoclass import plotting
from tomoclass.cli import main
from tomoclass.io import read_particle_list, write_particle_list, write_volume

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
NEEDS_BROWSER = needs(BROWSER is not None, "needs Debian's chromium (apt-get install chromium)")


class SizeTables(HTMLParser):
    """The class-size tables of a report page as its text shows them: per table, the file
    its caption says the sizes were counted in, and the particles of every class."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, int]] = {}
        self._caption: str | None = None
        self._rows: list[list[str]] | None = None
        self._cell = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table" and ("class", "sizes") in attrs:
            self._caption, self._rows = "", []
        elif self._rows is not None and tag == "tr":
            self._rows.append([])
        elif self._rows is not None and tag == "td":
            self._rows[-1].append("")
            self._cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = False
        elif tag == "table" and self._rows is not None:
            source = re.search(r"\((?:counted|as recorded) in (\S+)\)", self._caption).group(1)
            self.tables[source] = {row[0]: int(row[1]) for row in self._rows if row}
            self._caption = self._rows = None

    def handle_data(self, data: str) -> None:
        if self._cell:
            self._rows[-1][-1] += data
        elif self._rows is not None and not self._rows:
            self._caption += data


def list_sizes(path: Path) -> dict[str, int]:
    """Particles per class in the classified list at ``path``."""
    return dict(Counter(read_particle_list(path).class_names()))


def dumped_dom(page: Path) -> str:
    """The page's DOM after headless chromium loaded it and ran its script."""
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    done = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    return done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report") / "demo"
    assert main(["demo", str(folder), "-n", "90", "-k", "2", "--snr", "1"]) == 0
    return folder / "classes"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder of two runs: cpca into 8 classes, then those merged into 4 beside them."""
    base = tmp_path_factory.mktemp("runs")
    data, out = base / "sim", base / "out"
    assert main(["simulate", str(data), "-n", "80", "-k", "4", "--box", "16", "--snr", "2",
                 "--seed", "1"]) == 0  # fmt: skip
    out.mkdir()
    particles = ["-p", str(data / "particles.xml")]
    assert main(["ccc", *particles, "-m", str(data / "mask.em"), "-f", "5", "-o", str(out)]) == 0
    assert main(["cpca", *particles, "-c", str(out / "correlation_matrix.npy"), "-n", "8",
                 "-o", str(out / "cpca.xml")]) == 0  # fmt: skip
    assert main(["merge", "-p", str(out / "cpca.xml"), "--n-clusters", "4", "-f", "5",
                 "-o", str(out / "merged.xml"), "-a", str(out / "cpca_class")]) == 0  # fmt: skip
    assert main(["report", str(out)]) == 0
    return out


def test_demo_ends_with_a_report_of_every_picture(demo):
    page = (demo / "report.html").read_text()
    for title in ("Eigenvalues", "Coefficients", "Class averages", "Resolution", "Margins"):
        assert f"<h3>{title}</h3>" in page
    assert page.count("data:image/png;base64,") == 5
    assert len(list((demo / "report").glob("*.png"))) == 5
    listed = demo / "classifiedParticles.xml"
    assert SizeTables(page).tables == {listed.name: list_sizes(listed)}


def test_each_run_of_a_folder_has_its_own_section_with_its_sizes(runs):
    page = (runs / "report.html").read_text()
    tables = SizeTables(page).tables
    assert tables == {name: list_sizes(runs / name) for name in ("cpca.xml", "merged.xml")}
    assert len(tables["cpca.xml"]) == 8 and len(tables["merged.xml"]) == 4
    assert page.count("<section") == 2
    merged = page[page.index("<h2>merge → merged.xml (8 classes into 4)</h2>") :]
    for title in ("Class averages", "Resolution", "Dendrogram (merged_dendrogram.png)"):
        assert f"<h3>{title}</h3>" in merged
    assert "<h3>Eigenvalues</h3>" not in merged  # CPCA's, shown in the cpca section


def test_a_copied_folder_is_reported_from_its_own_files(runs, tmp_path):
    """A copy of a run's folder reports the copy's classes, even after the original folder
    was rerun with other classes (run.json records the original's paths)."""

    copy = tmp_path / "copy"
    shutil.copytree(runs, copy)
    original = read_particle_list(runs / "cpca.xml")
    write_particle_list(original.with_classes(["0"] * len(original)), runs / "cpca.xml")
    try:
        assert main(["report", str(copy)]) == 0
    finally:
        shutil.copy(copy / "cpca.xml", runs / "cpca.xml")
    tables = SizeTables((copy / "report.html").read_text()).tables
    assert tables["cpca.xml"] == list_sizes(copy / "cpca.xml")
    assert len(tables["cpca.xml"]) == 8


def test_cpca_records_the_noise_edge_its_eigenvalue_plot_shows(runs):
    run = json.loads((runs / "run.json").read_text())
    edge, spectrum = run["noise_edge"]["edge"], np.array(run["noise_edge"]["spectrum"])
    assert run["noise_edge"]["of"] == "correlation matrix" and np.isfinite(edge)
    assert 1 <= np.sum(spectrum > edge) <= run["parameters"]["neig_used"]
    assert len(spectrum) > run["parameters"]["neig_used"]  # the bulk beyond is drawn too
    assert "<h3>Eigenvalues</h3>" in (runs / "report.html").read_text()


def test_averages_of_12_classes_have_no_overlapping_text(tmp_path, monkeypatch):
    from matplotlib.text import Text

    rng = np.random.default_rng(0)
    averages = {}
    for k in range(12):
        averages[str(k)] = tmp_path / f"class_{k}.em"
        write_volume(averages[str(k)], rng.standard_normal((16, 16, 16)).astype(np.float32))
    drawn = []
    monkeypatch.setattr(plotting, "_png", drawn.append)
    plotting.averages_figure(averages, {str(k): 10 + k for k in range(12)}, 8.0)
    figure = drawn[0]
    figure.canvas.draw()  # places the labels
    renderer = figure.canvas.get_renderer()
    texts = [t.get_window_extent(renderer) for t in figure.findobj(Text)
             if t.get_visible() and t.get_text()]  # fmt: skip
    panels = [ax.get_window_extent(renderer) for ax in figure.axes]
    assert len(texts) == 1 + 3 * 2 + 12  # title, slice planes over both groups, classes
    whole = figure.bbox
    for i, box in enumerate(texts):
        assert (
            whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 <= box.y1 <= whole.y1
        )
        assert not any(box.overlaps(other) for other in texts[i + 1 :] + panels)


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
        assert f"<h3>{title}" in page, title
    listed = out / "classifiedParticles.xml"
    assert SizeTables(page).tables == {listed.name: list_sizes(listed)}


def test_report_of_an_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no tomoclass output" in capsys.readouterr().err


@NEEDS_BROWSER
def test_report_renders_in_a_browser_with_every_image_loaded(demo, tmp_path):
    url = (demo / "report.html").as_uri()
    dom = dumped_dom(demo / "report.html")
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-loaded="(\d+)"', dom).group(1))
    assert images == 5 and loaded == images
    listed = demo / "classifiedParticles.xml"
    assert SizeTables(dom).tables == {listed.name: list_sizes(listed)}
    shot = tmp_path / "shot.png"
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,1400", url],
                   capture_output=True, timeout=120)  # fmt: skip
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not blank
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50


@NEEDS_BROWSER
def test_browser_shows_each_runs_class_sizes(runs):
    dom = dumped_dom(runs / "report.html")
    assert SizeTables(dom).tables == {
        name: list_sizes(runs / name) for name in ("cpca.xml", "merged.xml")
    }
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    assert int(re.search(r'data-loaded="(\d+)"', dom).group(1)) == images == 8
