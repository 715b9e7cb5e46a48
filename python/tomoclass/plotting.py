"""Pictures of a run, and one self-contained ``report.html`` to judge a classification by.

``report(DIR)`` looks at whatever a tomoclass command left in ``DIR`` — ``run.json``,
``eigenvalues.npy``/``coefficients.npy`` and the classified list (cpca),
``correlation_matrix.npy`` (ccc), class averages (``*class_<k>.em``), a dendrogram PNG
(merge, ``--oversample``), the per-iteration or per-round trace (mco-exmx, mco-ac) — and
draws what it finds with matplotlib into ``DIR/report/``, then writes ``DIR/report.html``
with the pictures embedded, so the page is one file that can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from tomoclass.errors import TomoclassError

AVERAGE = re.compile(r"(?:^|_)class_(?P<label>[^_]+)\.(?:em|mrc)$")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    _pyplot().close(figure)
    return buffer.getvalue()


def _run_info(folder: Path) -> dict:
    path = folder / "run.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TomoclassError(f"{path}: not readable as JSON ({exc})") from None


def _classified_labels(folder: Path, run: dict) -> np.ndarray | None:
    from tomoclass.io import read_particle_list

    candidates = [folder / f"classifiedParticles{ext}" for ext in (".xml", ".star", ".tbl")]
    output = run.get("parameters", {}).get("output")
    if output:
        candidates.insert(0, Path(output))
    for path in candidates:
        if path.is_file():
            names = read_particle_list(path).class_names()
            return np.array(["" if n is None else n for n in names])
    return None


def eigenvalue_figure(values: np.ndarray) -> bytes:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.2))
    ranks = np.arange(1, len(values) + 1)
    axes.semilogy(ranks, np.clip(values, 1e-12, None), "o-", ms=4)
    axes.set_xlabel("eigenvector")
    axes.set_ylabel("eigenvalue")
    axes.set_title("eigenvalue spectrum of the CCC matrix")
    figure.tight_layout()
    return _png(figure)


def scatter_figure(coefficients: np.ndarray, labels: np.ndarray | None) -> bytes:
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 4))
    pairs = [(0, 1), (1, 2)] if coefficients.shape[1] > 2 else [(0, 1), (0, 1)]
    classes = [""] if labels is None else sorted(set(labels), key=str)
    for ax, (a, b) in zip(axes, pairs, strict=True):
        for name in classes:
            chosen = slice(None) if labels is None else labels == name
            ax.scatter(coefficients[chosen, a], coefficients[chosen, b], s=8, label=name or None)
        ax.set_xlabel(f"coefficient {a + 1}")
        ax.set_ylabel(f"coefficient {b + 1}")
    if labels is not None:
        axes[1].legend(title="class", fontsize=8)
    figure.suptitle("CPCA coefficients, coloured by class")
    figure.tight_layout()
    return _png(figure)


def heatmap_figure(matrix: np.ndarray, labels: np.ndarray | None) -> bytes:
    plt = _pyplot()
    order = np.arange(len(matrix)) if labels is None else np.argsort(labels, kind="stable")
    figure, axes = plt.subplots(figsize=(5.5, 4.8))
    shown = matrix[np.ix_(order, order)]
    off = shown[~np.eye(len(shown), dtype=bool)]
    image = axes.imshow(shown, cmap="viridis", vmin=np.percentile(off, 1),
                        vmax=np.percentile(off, 99), interpolation="nearest")  # fmt: skip
    figure.colorbar(image, ax=axes, label="CCC")
    if labels is not None:
        ordered = labels[order]
        for edge in np.flatnonzero(ordered[1:] != ordered[:-1]) + 0.5:
            axes.axhline(edge, color="white", lw=0.6)
            axes.axvline(edge, color="white", lw=0.6)
    axes.set_title("CCC matrix, particles ordered by class")
    figure.tight_layout()
    return _png(figure)


def averages_figure(averages: list[tuple[str, np.ndarray, int | None]]) -> bytes:
    plt = _pyplot()
    figure, axes = plt.subplots(len(averages), 3, figsize=(7, 2.3 * len(averages)),
                                squeeze=False)  # fmt: skip
    for row, (label, volume, count) in zip(axes, averages, strict=True):
        c = volume.shape[0] // 2
        views = {"xy (z = c)": volume[c], "xz (y = c)": volume[:, c], "yz (x = c)": volume[:, :, c]}
        for ax, (name, image) in zip(row, views.items(), strict=True):
            ax.imshow(image, cmap="gray", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=8)
        size = "" if count is None else f", {count} particles"
        row[0].set_ylabel(f"class {label}{size}")
    figure.suptitle("central slices of the class averages")
    figure.tight_layout()
    return _png(figure)


def margin_figure(margins: np.ndarray, labels: np.ndarray) -> bytes:
    """Per class, the distribution of the particles' margins (best − second score)."""
    plt = _pyplot()
    classes = sorted(set(labels), key=str)
    figure, axes = plt.subplots(figsize=(max(5.5, 0.8 * len(classes) + 2), 3.2))
    axes.boxplot([margins[labels == c] for c in classes], showfliers=False)
    axes.set_xticks(range(1, len(classes) + 1), [str(c) for c in classes])
    axes.set_xlabel("class")
    axes.set_ylabel("margin (best − second score)")
    axes.set_title("how surely each particle belongs to its class")
    figure.tight_layout()
    return _png(figure)


def fsc_figure(record: dict) -> bytes:
    """Every class's half-set FSC against spatial frequency (1/Å when the voxel size is
    known, else Fourier voxels), with the 0.143 threshold."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.6))
    voxel = record.get("voxel_size")
    for label, c in record["classes"].items():
        if c["fsc"] is None:
            continue
        shells = np.arange(len(c["fsc"]))
        x = shells / (record["box"] * voxel) if voxel else shells
        where = (f"{c['angstrom']:.1f} Å" if c["angstrom"] is not None
                 else f"{c['fourier_voxels']:.1f} Fourier voxels")  # fmt: skip
        axes.plot(x, c["fsc"], "-", lw=1.2, label=f"class {label} (n={c['particles']}): {where}")
    axes.axhline(record["threshold"], color="grey", lw=0.8, ls="--", label="0.143")
    axes.set_xlabel("spatial frequency (1/Å)" if voxel else "shell (Fourier voxels)")
    axes.set_ylabel("FSC of the half-sets")
    axes.set_ylim(-0.1, 1.05)
    axes.set_title("resolution of each class average")
    axes.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


def _resolution(folder: Path, run: dict) -> dict | None:
    """The resolution record of ``run.json``, or of the one ``*_resolution.json`` that
    ``tomoclass average`` wrote here."""
    if run.get("resolution"):
        return run["resolution"]
    found = sorted(folder.glob("*_resolution.json"))
    if len(found) != 1:
        return None
    try:
        return json.loads(found[0].read_text())
    except (OSError, ValueError) as exc:
        raise TomoclassError(f"{found[0]}: not readable as JSON ({exc})") from None


def class_count_figure(count: dict) -> bytes:
    """``-n auto``: half-set agreement and restart stability against the number of classes,
    the chosen count marked."""
    plt = _pyplot()
    tried = count["tried"]
    k = [t["classes"] for t in tried]
    figure, axes = plt.subplots(figsize=(5.5, 3.4))
    axes.plot(k, [t["half_set_agreement"] for t in tried], "o-", label="half-set agreement")
    axes.plot(k, [t["restart_stability"] for t in tried], "s--", label="restart stability")
    axes.axvline(count["chosen"], color="grey", lw=0.8, label=f"chosen: {count['chosen']}")
    axes.set_xticks(k)
    axes.set_ylim(min(0.0, axes.get_ylim()[0]), 1.05)
    axes.set_xlabel("number of classes")
    axes.set_ylabel("ARI")
    axes.set_title("how many classes the data support")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return _png(figure)


def _margins(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Margins and classes of ``scores.csv`` (written by ``classify``), if there."""
    import csv

    path = folder / "scores.csv"
    if not path.exists():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    try:
        margins = np.array([float(r["margin"]) for r in rows])
    except (KeyError, ValueError):
        raise TomoclassError(f"{path}: not a scores table with a margin column") from None
    return margins, np.array([r["class"] for r in rows])


def trace_figure(trace: list[dict]) -> bytes:
    plt = _pyplot()
    steps = [e for e in trace if isinstance(e.get("round", e.get("iteration")), int)]
    key = "round" if steps and "round" in steps[0] else "iteration"
    x = [e[key] for e in steps]
    annealing = key == "round"
    panels = 4 if annealing else 3
    figure, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3))
    axes[0].plot(x, [e["total_score"] for e in steps], "o-", ms=3)
    axes[0].set_title("total score")
    axes[1].plot(x, [e["changes"] for e in steps], "o-", ms=3)
    axes[1].set_title("changes")
    occupancy = np.array([e["occupancy"] for e in steps])
    axes[2].stackplot(x, occupancy.T)
    axes[2].set_title("occupancy per class")
    if annealing:
        axes[3].plot(x, [e["temperature"] for e in steps], "o-", ms=3)
        axes[3].set_title("temperature")
    for ax in axes:
        ax.set_xlabel(key)
    figure.tight_layout()
    return _png(figure)


def _averages(folder: Path, run: dict) -> list[tuple[str, np.ndarray, int | None]]:
    from tomoclass.io import read_volume

    sizes = run.get("class_sizes", {})
    found = []
    for path in sorted(folder.iterdir()):
        match = AVERAGE.search(path.name)
        if match and "wedgesum" not in path.name:
            label = match.group("label")
            found.append((label, read_volume(path), sizes.get(label)))
    return found


def _table(run: dict) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in {**run.get("parameters", {}), **{k: run[k] for k in run
                     if k not in ("parameters", "trace", "ccc_between_averages")}}.items()
    )  # fmt: skip
    return f"<table>{rows}</table>"


def report(directory: str | os.PathLike) -> Path:
    """Draw the pictures of the run in ``directory`` and write ``report.html``; returns it."""
    folder = Path(directory)
    if not folder.is_dir():
        raise TomoclassError(f"{folder}: not a folder")
    run = _run_info(folder)
    labels = _classified_labels(folder, run)
    figures: list[tuple[str, bytes]] = []
    if (folder / "eigenvalues.npy").exists():
        figures.append(("Eigenvalues", eigenvalue_figure(np.load(folder / "eigenvalues.npy"))))
    if (folder / "coefficients.npy").exists():
        coefficients = np.load(folder / "coefficients.npy")
        figures.append(("Coefficients", scatter_figure(coefficients, labels)))
    if (folder / "correlation_matrix.npy").exists():
        matrix = np.load(folder / "correlation_matrix.npy")
        usable = labels if labels is not None and len(labels) == len(matrix) else None
        figures.append(("CCC matrix", heatmap_figure(matrix, usable)))
    averages = _averages(folder, run)
    if averages:
        figures.append(("Class averages", averages_figure(averages)))
    resolution = _resolution(folder, run)
    if resolution is not None:
        figures.append(("Resolution", fsc_figure(resolution)))
    if run.get("class_count"):
        figures.append(("Number of classes", class_count_figure(run["class_count"])))
    margins = _margins(folder)
    if margins is not None:
        figures.append(("Margins", margin_figure(*margins)))
    for picture in sorted(folder.glob("*dendrogram.png")):
        figures.append((f"Dendrogram ({picture.name})", picture.read_bytes()))
    if run.get("trace"):
        figures.append(("Trace", trace_figure(run["trace"])))
    if not figures and not run:
        raise TomoclassError(f"{folder}: no tomoclass output found to report on")
    pictures = folder / "report"
    pictures.mkdir(exist_ok=True)
    sections = []
    for k, (title, png) in enumerate(figures):
        name = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
        (pictures / f"{k:02d}_{name}.png").write_bytes(png)
        data = base64.b64encode(png).decode()
        sections.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                        f"src='data:image/png;base64,{data}'>")  # fmt: skip
    if run:
        sections.append(f"<h2>Parameters (run.json)</h2>{_table(run)}")
    page = _PAGE.format(title=html.escape(f"tomoclass report: {folder.name}"),
                        body="\n".join(sections))  # fmt: skip
    out = folder / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}img{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}
</style></head>
<body><h1>{title}</h1>
{body}
<script>
window.addEventListener("load", () => {{
  const images = [...document.images];
  document.body.dataset.images = images.length;
  document.body.dataset.loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
}});
</script></body></html>
"""
