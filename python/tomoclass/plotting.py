"""Pictures of a run, and one self-contained ``report.html`` to judge a classification by.

``report(DIR)`` looks at whatever tomoclass commands left in ``DIR`` and finds the runs in
it: the run of ``run.json`` (cpca, classify, mco-exmx, mco-ac; with the folder's
``eigenvalues.npy``/``coefficients.npy``, ``correlation_matrix.npy``, ``scores.csv`` and its
``merge_dendrogram.png``), every merge (``PREFIX_merge.json`` beside ``PREFIX.xml``,
``PREFIX_class_<k>.em`` and ``PREFIX_dendrogram.png``) and every ``tomoclass average``
(``PREFIX_resolution.json`` beside ``PREFIX_<k>.em``). Each run gets its own section: a
table of its classes with their sizes (counted in its classified list) and resolution,
then its pictures, drawn with matplotlib into ``DIR/report/``. ``DIR/report.html`` embeds
the pictures, so the page is one file that can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoclass.average import average_path, resolution_text
from tomoclass.errors import TomoclassError
from tomoclass.io.particle_lists import FORMATS

FOLDER_FILES = ("eigenvalues.npy", "coefficients.npy", "correlation_matrix.npy", "scores.csv")
"""Files that belong to the run of the folder's ``run.json`` (or to the folder, without one)."""

UNCLASSIFIED = "none"
"""Class name shown for particles without a class (as ``tomoclass split`` names them)."""


@dataclass
class Run:
    """One command's result in a report's folder.

    ``title`` names the command and its classified list; ``record`` is what the command
    wrote about the run (``run.json``, ``PREFIX_merge.json`` or ``PREFIX_resolution.json``);
    ``labels`` the class of every particle in the classified list (None without a list);
    ``sizes`` the particles per class (in class order), counted in or read from the file
    ``source`` (the list, else the record); ``averages`` the average file of
    each class found; ``resolution`` the FSC record of the averages; ``dendrogram`` the
    merge's picture; ``main``: the run of ``run.json``, which owns the folder's other files.
    """

    title: str
    record: dict
    labels: np.ndarray | None
    sizes: dict[str, int]
    source: str
    averages: dict[str, Path]
    resolution: dict | None
    dendrogram: Path | None = None
    main: bool = False


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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TomoclassError(f"{path}: not readable as JSON ({exc})") from None


def _label_key(label: str) -> tuple[int, int, str]:
    """Sort key of class names: whole numbers in numeric order, then the rest by name."""
    return (0, int(label), "") if label.isdecimal() else (1, 0, label)


def _located(folder: Path, recorded: str) -> Path:
    """A path recorded in a run's JSON: the same name in ``folder`` when it is there (the
    report's folder holds the run, also when the folder was copied or moved), else the
    recorded path (written elsewhere)."""
    here = folder / Path(recorded).name
    return here if here.exists() or not Path(recorded).parent.is_dir() else Path(recorded)


def _list_labels(path: Path | None) -> np.ndarray | None:
    """The class of every particle of the list at ``path`` (None if there is no such file)."""
    from tomoclass.io import read_particle_list

    if path is None or not path.is_file():
        return None
    names = read_particle_list(path).class_names()
    return np.array([UNCLASSIFIED if n is None else n for n in names])


def _sizes(labels: np.ndarray | None, record: dict, resolution: dict | None) -> dict[str, int]:
    """Particles per class, counted in the classified list when there is one, else as the
    record says (its class sizes, or the particles of its resolution record)."""
    if labels is not None:
        names, counts = np.unique(labels, return_counts=True)
        found = dict(zip(names.tolist(), counts.tolist(), strict=True))
    elif record.get("class_sizes"):
        found = record["class_sizes"]
    elif resolution:
        found = {k: c["particles"] for k, c in resolution["classes"].items()}
    else:
        found = {}
    return {k: int(found[k]) for k in sorted(found, key=_label_key)}


def _averages(prefix: Path, labels: list[str]) -> dict[str, Path]:
    """The class averages ``PREFIX_<label>.em`` (or ``.mrc``) that exist."""
    found = {label: average_path(prefix, label) for label in labels}
    return {label: path for label, path in found.items() if path is not None}


def _run(
    title: str,
    record: tuple[str, dict],
    listed: Path | None,
    prefix: Path,
    dendrogram: Path | None = None,
    main: bool = False,
) -> Run:
    """A run from its record (file name and content), classified list, prefix of class
    averages and dendrogram (None if it is not there)."""
    recorded, content = record
    labels = _list_labels(listed)
    resolution = content.get("resolution")
    sizes = _sizes(labels, content, resolution)
    source = recorded if labels is None else listed.name
    picture = dendrogram if dendrogram is not None and dendrogram.is_file() else None
    return Run(title, content, labels, sizes, source, _averages(prefix, list(sizes)),
               resolution, picture, main)  # fmt: skip


def _main_run(folder: Path, info: dict) -> Run:
    """The run of ``run.json`` (cpca, classify, mco-*), or the folder's files without one.

    cpca records its list and the prefix of its averages; classify and mco-* write
    ``classifiedParticles.<ext>`` and ``class_<k>.em`` into their folder."""
    params = info.get("parameters", {})
    command = info.get("command", "output")
    listed = _located(folder, params["output"]) if command == "cpca" else None
    if listed is None or not listed.is_file():
        listed = next((p for p in (folder / f"classifiedParticles{e}" for e in FORMATS)
                       if p.is_file()), None)  # fmt: skip
    if command == "cpca":
        recorded = params.get("average") or f"{Path(params['output']).with_suffix('')}_class"
        prefix = _located(folder, recorded)
    else:
        prefix = folder / "class"
    oversampled = info.get("oversample", {}).get("factor", 1) > 1
    dendrogram = folder / "merge_dendrogram.png" if oversampled else None
    title = command if listed is None else f"{command} → {listed.name}"
    return _run(title, ("run.json", info), listed, prefix, dendrogram, main=True)


def _merge_run(path: Path) -> Run:
    """The run of ``tomoclass merge -o PREFIX.<ext>``, from its ``PREFIX_merge.json``."""
    stem = path.parent / path.name.removesuffix("_merge.json")
    listed = next((p for p in (Path(f"{stem}{e}") for e in FORMATS) if p.is_file()), None)
    record = _read_json(path)
    mapping = record.get("mapping", {})
    merged = f"{len(mapping)} classes into {len(set(mapping.values()))}"
    title = f"merge → {listed.name if listed else stem.name} ({merged})"
    prefix, dendrogram = Path(f"{stem}_class"), Path(f"{stem}_dendrogram.png")
    return _run(title, (path.name, record), listed, prefix, dendrogram)


def _average_run(path: Path) -> Run:
    """The run of ``tomoclass average -o PREFIX``, from its ``PREFIX_resolution.json``."""
    stem = path.parent / path.name.removesuffix("_resolution.json")
    record = _read_json(path)
    return _run(f"average → {stem.name}_<k>", (path.name, {"resolution": record}), None, stem)


def find_runs(folder: Path) -> list[Run]:
    """Every run whose output is in ``folder``: that of ``run.json`` first, then the
    merges and averages by name."""
    info = _read_json(folder / "run.json") if (folder / "run.json").exists() else {}
    runs = []
    if info or any((folder / name).exists() for name in FOLDER_FILES):
        runs.append(_main_run(folder, info))
    runs += [_merge_run(p) for p in sorted(folder.glob("*_merge.json"))]
    runs += [_average_run(p) for p in sorted(folder.glob("*_resolution.json"))]
    return runs


def _resolution_text(resolution: dict | None, label: str) -> str:
    """Where the FSC of a class average falls below 0.143, or a dash."""
    c = (resolution or {}).get("classes", {}).get(label)
    return "—" if c is None or c["fourier_voxels"] is None else resolution_text(c)


def sizes_table(run: Run) -> str:
    """The run's classes as an HTML table: class, particles, share, the classes a merge
    joined, and the resolution of the average."""
    mapping = run.record.get("mapping")
    joined = {}
    for old, new in (mapping or {}).items():
        joined.setdefault(new, []).append(old)
    total = sum(run.sizes.values())
    head = ["class", "particles", "share"] + (["merged from"] if mapping else [])
    head.append("resolution (FSC 0.143)")
    rows = []
    for label, count in run.sizes.items():
        cells = [label, str(count), f"{100 * count / max(total, 1):.1f} %"]
        if mapping:
            cells.append(", ".join(sorted(joined.get(label, []), key=_label_key)))
        cells.append(_resolution_text(run.resolution, label))
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    how = "counted in" if run.labels is not None else "as recorded in"
    caption = f"{len(run.sizes)} classes, {total} particles ({how} {run.source})"
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (f"<table class='sizes'><caption>{html.escape(caption)}</caption>"
            f"<tr>{header}</tr>{''.join(rows)}</table>")  # fmt: skip


def _log_axis(axes, shown: np.ndarray) -> None:
    """A log y axis for the values ``shown``, ticks as plain numbers (1, 2, 5 per decade;
    every digit within 1.5 decades); symmetric-log when values reach zero or below (a
    noise bulk around zero), linear only below the smallest nonzero magnitude."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    if shown.min() <= 0:
        axes.set_yscale("symlog", linthresh=max(np.abs(shown[shown != 0]).min(), 1e-9))
        return
    axes.set_yscale("log")
    subs = (1.0, 2.0, 5.0) if np.log10(shown.max() / shown.min()) > 1.5 else np.arange(1.0, 10.0)
    axes.yaxis.set_major_locator(LogLocator(subs=subs))
    axes.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes.yaxis.set_minor_formatter(NullFormatter())


def eigenvalue_figure(values: np.ndarray, noise: dict | None) -> bytes:
    """The eigenvalues used by rank and, when ``-e auto`` chose how many, the spectrum it
    judged with its Marchenko–Pastur noise edge, on a log axis (symmetric-log when the noise
    bulk reaches below zero) so that the dominant eigenvalue and the bulk are both readable."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 3.6))
    spectrum = np.empty(0) if noise is None else np.asarray(noise["spectrum"])
    used = f"used: {len(values)} eigenvectors"
    if noise is not None:
        landmark = noise["of"] == "landmark block"
        judged = "of the landmark block W, judged by -e auto" if landmark else "examined by -e auto"
        axes.plot(np.arange(1, len(spectrum) + 1), spectrum, "o", ms=4, mfc="none",
                  color="grey", label=f"eigenvalues {judged}")  # fmt: skip
        axes.axhline(noise["edge"], color="C3", ls="--", lw=1,
                     label=f"noise edge of the {noise['of']}: {noise['edge']:.3g}")  # fmt: skip
        above = int(np.sum(spectrum > noise["edge"]))
        if above < len(values):
            used += f" ({above} above the edge, at least NCLASS)"
    axes.plot(np.arange(1, len(values) + 1), values, "o-", ms=4, color="C0", label=used)
    _log_axis(axes, np.concatenate([values, spectrum]))
    axes.set_xlabel("rank of the eigenvalue")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("eigenvalue (CCC, dimensionless)")
    axes.set_title("eigenvalue spectrum of the CCC matrix")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return _png(figure)


def scatter_figure(coefficients: np.ndarray, labels: np.ndarray | None) -> bytes:
    """The particles' first CPCA coefficients (1 against 2, 2 against 3), by class."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    pairs = [(0, 1), (1, 2)] if coefficients.shape[1] > 2 else [(0, 1), (0, 1)]
    classes = [None] if labels is None else sorted(set(labels.tolist()), key=_label_key)
    for ax, (a, b) in zip(axes, pairs, strict=True):
        for name in classes:
            chosen = slice(None) if name is None else labels == name
            label = "all particles" if name is None else f"{name} ({int(np.sum(chosen))})"
            ax.scatter(coefficients[chosen, a], coefficients[chosen, b], s=8, label=label)
        ax.set_xlabel(f"coefficient {a + 1} (√λ·u, dimensionless)")
        ax.set_ylabel(f"coefficient {b + 1} (√λ·u, dimensionless)")
    title = "particles" if labels is None else "class (particles)"
    axes[1].legend(title=title, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    figure.suptitle("CPCA coefficients, coloured by class")
    figure.tight_layout()
    return _png(figure)


def heatmap_figure(matrix: np.ndarray, labels: np.ndarray | None) -> bytes:
    """The CCC matrix with the particles grouped by class, classes named along the axes."""
    plt = _pyplot()
    if labels is None:
        order = np.arange(len(matrix))
    else:  # classes in the page's order (numeric names numerically)
        ranks = {name: r for r, name in enumerate(sorted(set(labels.tolist()), key=_label_key))}
        order = np.argsort([ranks[name] for name in labels.tolist()], kind="stable")
    figure, axes = plt.subplots(figsize=(6, 5))
    shown = matrix[np.ix_(order, order)]
    off = shown[~np.eye(len(shown), dtype=bool)]
    image = axes.imshow(shown, cmap="viridis", vmin=np.percentile(off, 1),
                        vmax=np.percentile(off, 99), interpolation="nearest")  # fmt: skip
    figure.colorbar(image, ax=axes, label="CCC (dimensionless)")
    what = "particle (list order)"
    if labels is not None:
        ordered = labels[order]
        edges = np.flatnonzero(ordered[1:] != ordered[:-1]) + 0.5
        for edge in edges:
            axes.axhline(edge, color="white", lw=0.6)
            axes.axvline(edge, color="white", lw=0.6)
        bounds = np.concatenate([[-0.5], edges, [len(ordered) - 0.5]])
        centres, names = (bounds[:-1] + bounds[1:]) / 2, ordered[(bounds[:-1] + 0.5).astype(int)]
        axes.set_xticks(centres, names.tolist(), fontsize=7)
        axes.set_yticks(centres, names.tolist(), fontsize=7)
        what = "class (white lines between classes)"
    axes.set_xlabel(what, fontsize=8)
    axes.set_ylabel(what, fontsize=8)
    axes.set_title("CCC matrix, particles ordered by class")
    figure.tight_layout()
    return _png(figure)


def _volume_grid(count: int) -> tuple[int, int]:
    """Rows and class columns of the averages figure: one column up to 4 classes, else two
    (so that 8–12 classes stay a readable page high)."""
    columns = 1 if count <= 4 else 2
    return -(-count // columns), columns


def averages_figure(averages: dict[str, Path], sizes: dict[str, int], voxel: float | None) -> bytes:
    """Central xy, xz and yz slices of every class average, each class labelled with its
    size; the slice planes head the columns once, the box's size (Å when ``voxel`` is
    known) is in the title. Margins are fixed in inches, so nothing overlaps at any count."""
    from tomoclass.io import read_volume

    plt = _pyplot()
    rows, columns = _volume_grid(len(averages))
    side, gap, left, top = 1.2, 0.45, 0.5, 0.75  # inches: image, between groups, margins
    width, height = left + columns * 3 * side + (columns - 1) * gap + 0.1, rows * side + top
    figure = plt.figure(figsize=(width, height))
    ratios = ([side] * 3 + [gap] * 1) * columns
    grid = figure.add_gridspec(rows, len(ratios) - 1, width_ratios=ratios[:-1], wspace=0.05,
                               hspace=0.12, left=left / width, right=1 - 0.1 / width,
                               bottom=0.05 / height, top=1 - top / height)  # fmt: skip
    views = ("xy (z = centre)", "xz (y = centre)", "yz (x = centre)")
    for k, (label, path) in enumerate(averages.items()):
        volume = read_volume(path)
        box, c = volume.shape[0], volume.shape[0] // 2
        row, first = k % rows, 4 * (k // rows)
        for j, image in enumerate((volume[c], volume[:, c], volume[:, :, c])):
            ax = figure.add_subplot(grid[row, first + j])
            ax.imshow(image, cmap="gray", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(views[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(f"class {label}\n{sizes[label]} particles", fontsize=8)
    extent = f"{box} voxels" + ("" if voxel is None else f" = {box * voxel:.0f} Å")
    figure.suptitle(f"central slices of the class averages\n(box {extent}; grey: density, "
                    "white high)", fontsize=9, y=1 - 0.05 / height, va="top")  # fmt: skip
    return _png(figure)


def margin_figure(margins: np.ndarray, labels: np.ndarray) -> bytes:
    """Per class, the distribution of the particles' margins (best − second score)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _pyplot()
    classes = sorted(set(labels.tolist()), key=_label_key)
    figure, axes = plt.subplots(figsize=(max(6.5, 0.8 * len(classes) + 3.5), 3.4))
    axes.boxplot([margins[labels == c] for c in classes], showfliers=False)
    names = [f"{c}\n({int(np.sum(labels == c))})" for c in classes]
    axes.set_xticks(range(1, len(classes) + 1), names, fontsize=8)
    axes.set_xlabel("class (particles)")
    axes.set_ylabel("margin (CCC, dimensionless)")
    axes.set_title("how surely each particle belongs to its class")
    keys = [
        Line2D([], [], color="C1", label="median"),
        Patch(facecolor="none", edgecolor="black", label="middle half (quartiles)"),
        Line2D([], [], color="black", label="whiskers: 1.5 × box, outliers hidden"),
    ]
    axes.legend(handles=keys, fontsize=7, title="margin = best − second score",
                title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # fmt: skip
    figure.tight_layout()
    return _png(figure)


def fsc_figure(record: dict) -> bytes:
    """Every class's half-set FSC against spatial frequency (1/Å when the voxel size is
    known, else Fourier voxels), with the 0.143 threshold."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 3.8))
    voxel = record.get("voxel_size")
    for label, c in sorted(record["classes"].items(), key=lambda item: _label_key(item[0])):
        if c["fsc"] is None:
            continue
        shells = np.arange(len(c["fsc"]))
        x = shells / (record["box"] * voxel) if voxel else shells
        axes.plot(x, c["fsc"], "-", lw=1.2,
                  label=f"class {label} (n={c['particles']}): {resolution_text(c)}")  # fmt: skip
    axes.axhline(record["threshold"], color="grey", lw=0.8, ls="--", label="0.143")
    axes.set_xlabel("spatial frequency (1/Å)" if voxel else "shell (Fourier voxels)")
    axes.set_ylabel("FSC of the half-sets (dimensionless)")
    axes.set_ylim(-0.1, 1.05)
    axes.set_title("resolution of each class average")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    return _png(figure)


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
    axes.set_ylabel("adjusted Rand index (dimensionless)")
    axes.set_title("how many classes the data support")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return _png(figure)


def _margins(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Margins and classes of ``scores.csv`` (written by ``classify`` and ``mco-*``), if
    there."""
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


def trace_figure(trace: list[dict], temperature: str | None = None) -> bytes:
    """Total score, changes and occupancy per iteration (mco-exmx) or round (mco-ac, with
    the temperature: ``sigma`` × the spread of the scores, else in score units)."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    steps = [e for e in trace if isinstance(e.get("round", e.get("iteration")), int)]
    key = "round" if steps and "round" in steps[0] else "iteration"
    x = [e[key] for e in steps]
    annealing = key == "round"
    panels = 4 if annealing else 3
    figure, axes = plt.subplots(1, panels, figsize=(3.4 * panels + 1.2, 3.2))
    axes[0].plot(x, [e["total_score"] for e in steps], "o-", ms=3, label="Σ own-class CCC")
    axes[0].set_ylabel("total score (Σ CCC)")
    axes[1].plot(x, [e["changes"] for e in steps], "o-", ms=3, label="moved")
    axes[1].set_ylabel("particles changing class")
    occupancy = np.array([e["occupancy"] for e in steps])
    axes[2].stackplot(x, occupancy.T, labels=[f"class {k}" for k in range(occupancy.shape[1])])
    axes[2].set_ylabel("particles per class (stacked)")
    if annealing:
        scale = "× score spread" if temperature == "sigma" else "score units"
        axes[3].plot(x, [e["temperature"] for e in steps], "o-", ms=3, label="temperature")
        axes[3].set_ylabel(f"temperature ({scale})")
    for ax in axes:
        ax.set_xlabel(key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax is not axes[2]:
            ax.legend(fontsize=7)
    axes[2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.suptitle(f"{'MCO-AC' if annealing else 'MCO-EXMX'} per {key}")
    figure.tight_layout()
    return _png(figure)


def _figures(folder: Path, run: Run) -> list[tuple[str, bytes]]:
    """The pictures of one run: the folder's CPCA and correlation files and traces for the
    run of ``run.json``; averages, resolution and dendrogram for every run."""
    record, labels, figures = run.record, run.labels, []
    if run.main and (folder / "eigenvalues.npy").exists():
        noise = record.get("noise_edge") or record.get("cpca", {}).get("noise_edge")
        figures.append(("Eigenvalues", eigenvalue_figure(np.load(folder / "eigenvalues.npy"),
                                                         noise)))  # fmt: skip
    if run.main and (folder / "coefficients.npy").exists():
        coefficients = np.load(folder / "coefficients.npy")
        usable = labels if labels is not None and len(labels) == len(coefficients) else None
        figures.append(("Coefficients", scatter_figure(coefficients, usable)))
    if run.main and (folder / "correlation_matrix.npy").exists():
        matrix = np.load(folder / "correlation_matrix.npy")
        usable = labels if labels is not None and len(labels) == len(matrix) else None
        figures.append(("CCC matrix", heatmap_figure(matrix, usable)))
    if run.averages:
        voxel = (run.resolution or {}).get("voxel_size")
        figures.append(("Class averages", averages_figure(run.averages, run.sizes, voxel)))
    if run.resolution and run.resolution.get("classes"):
        figures.append(("Resolution", fsc_figure(run.resolution)))
    if record.get("class_count"):
        figures.append(("Number of classes", class_count_figure(record["class_count"])))
    margins = _margins(folder) if run.main else None
    if margins is not None:
        figures.append(("Margins", margin_figure(*margins)))
    if run.dendrogram is not None:
        figures.append((f"Dendrogram ({run.dendrogram.name})", run.dendrogram.read_bytes()))
    if record.get("trace"):
        temperature = record.get("parameters", {}).get("temperature")
        figures.append(("Trace", trace_figure(record["trace"], temperature)))
    return figures


TABLED = ("parameters", "trace", "ccc_between_averages", "resolution", "class_sizes",
          "noise_edge", "class_count", "oversample")  # fmt: skip
"""Keys of ``run.json`` shown as pictures or tables of their own, not in the parameters."""


def _table(run: dict) -> str:
    """The parameters and other plain values of ``run.json`` as an HTML table."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in {**run.get("parameters", {}),
                     **{k: run[k] for k in run if k not in TABLED}}.items()
    )  # fmt: skip
    return f"<table>{rows}</table>"


def _slug(text: str) -> str:
    """``text`` as a file name: lower-case letters and digits joined by ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _section(folder: Path, number: int, run: Run) -> str:
    """One run's part of the page; its pictures are also written to ``folder/report``."""
    parts = [f"<h2>{html.escape(run.title)}</h2>"]
    if run.sizes:
        parts.append(sizes_table(run))
    for title, png in _figures(folder, run):
        name = f"{number}_{_slug(run.title.split(' (')[0])}_{_slug(title.split(' (')[0])}.png"
        (folder / "report" / name).write_bytes(png)
        data = base64.b64encode(png).decode()
        parts.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' "
                     f"src='data:image/png;base64,{data}'>")  # fmt: skip
    if run.main and run.record:
        parts.append(f"<h3>Parameters (run.json)</h3>{_table(run.record)}")
    return f"<section data-run='{html.escape(run.title)}'>{''.join(parts)}</section>"


def report(directory: str | os.PathLike) -> Path:
    """Draw the pictures of every run in ``directory`` and write ``report.html``, one
    section per run; returns the page."""
    folder = Path(directory)
    if not folder.is_dir():
        raise TomoclassError(f"{folder}: not a folder")
    runs = find_runs(folder)
    if not runs:
        raise TomoclassError(f"{folder}: no tomoclass output found to report on")
    (folder / "report").mkdir(exist_ok=True)
    sections = [_section(folder, k, run) for k, run in enumerate(runs)]
    page = _PAGE.format(title=html.escape(f"tomoclass report: {folder.name}"),
                        body="\n".join(sections))  # fmt: skip
    out = folder / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}img{{max-width:100%}}
table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #ccc;padding:2px 6px;
text-align:left}}caption{{text-align:left;font-style:italic}}
section{{border-top:2px solid #888;margin-top:2em}}
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
