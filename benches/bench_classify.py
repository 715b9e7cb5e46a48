"""Benchmark the default classification against the single methods and the limit.

Each row is a simulated set (``tomoclass simulate``'s model; the warp and relion rows are
written to disk in that program's layout and read back through the particle list, with the
weight volumes it names). For each, mean ARI against the truth over ``--seeds`` sets of:

- ``limit``: every particle scored against the class averages of the true labels of all the
  other particles (:func:`tomoclass.mco.leave_one_out_scores`), argmax: the best the score
  allows;
- ``CPCA``: ``tomoclass cpca -e auto`` on the raw matrix (PyTom's method);
- ``CPCA corrected``: the same after the nuisance model is taken out (``classify``'s first
  stage, :func:`tomoclass.cpca.corrected_cpca`);
- ``EXMX``, ``AC``: MCO from a random start (AC: T = 2·sigma, step 0.2, one EXMX iteration
  per round, as bench_mco);
- ``EXMX×3``: ``mco-exmx --oversample 3`` from the same random start (one start, as
  ``EXMX``): 3×K classes, merged to K by total score, refined by EXMX;
- ``classify``: ``tomoclass classify`` (4 restarts), and its restarts' agreement.

The rows: two conformations 3:1 at two low SNRs and four conformations (the simulator's
PyTom layout, box 32, lowpass 8, spherical mask, four tilt ranges); RELION 5
pseudo-subtomograms with CTFs (box 32, SNR 0.02); and the subtle difference: a factor of
3 % of the mass in 40 % of the particles, 64³, Warp's layout with its CTF volumes, lowpass
16, a mask focused on the factor's site (a sphere of radius 0.2·box around it).

Usage: python benches/bench_classify.py [--seeds 2] [--only NAME[,NAME]]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tomoclass.ccc import correlation_matrix
from tomoclass.classify import classify
from tomoclass.cpca import corrected_cpca, cpca
from tomoclass.features import Preprocessing
from tomoclass.io import read_particle_list
from tomoclass.mask import spherical_mask
from tomoclass.mco import (
    ac_rounds,
    leave_one_out_scores,
    mco_exmx,
    random_labels,
)
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation


@dataclass(frozen=True)
class Row:
    name: str
    config: SimulationConfig
    lowpass: float
    layout: str = "pytom"
    focus: bool = False


SUBTLE = SimulationConfig(
    n_particles=600, fractions=(3, 2), factor=0.03, snr=0.002, box=64, max_shift=0.0
)
ROWS = (
    Row("3:1, SNR 0.05", SimulationConfig(n_particles=400, fractions=(3, 1), snr=0.05), 8),
    Row("3:1, SNR 0.03", SimulationConfig(n_particles=400, fractions=(3, 1), snr=0.03), 8),
    Row("4 classes, SNR 0.1", SimulationConfig(n_particles=400, n_classes=4, snr=0.1), 8),
    Row("RELION CTFs, SNR 0.02", SimulationConfig(n_particles=300, snr=0.02), 8, "relion"),
    Row(
        "factor 3 %, 64³, Warp CTFs, SNR 0.002",
        SUBTLE,
        16,
        "warp",
        focus=True,
    ),
)


def focus_mask(references: np.ndarray) -> np.ndarray:
    """A soft sphere of radius 0.2·box around the voxel where the class maps differ most."""
    box = references.shape[-1]
    spread = np.abs(references - references.mean(axis=0)).max(axis=0)
    centre = np.unravel_index(spread.argmax(), spread.shape)
    grid = np.indices(spread.shape)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    return np.clip((0.2 * box - r) / 2 + 0.5, 0, 1).astype(np.float32)


def particles_of(row: Row, seed: int, folder: Path):
    """The particles (a stack, or a list read from the layout's files), truth and mask."""
    sim = simulate_particles(replace(row.config, seed=seed))
    mask = focus_mask(sim.references) if row.focus else spherical_mask(row.config.box)
    if row.layout == "pytom":
        return sim.particle_stack(), sim.labels, mask
    star = write_simulation(sim, folder, layout=row.layout)
    with open(folder / "truth.csv") as handle:
        truth = np.array([int(r["class"]) for r in csv.DictReader(handle)])
    return read_particle_list(star), truth, mask


def scores(row: Row, seed: int) -> dict[str, float]:
    k = row.config.n_classes
    with tempfile.TemporaryDirectory() as tmp:
        particles, truth, mask = particles_of(row, seed, Path(tmp))
        prep = Preprocessing.for_band(particles, mask, row.lowpass)
        feats = prep.features()
        f, w, herm = np.asarray(feats.f), np.asarray(feats.w), feats.band.herm
        start = random_labels(len(f), k, seed)
        mco = {
            "iterations": 30,
            "end_threshold": 0.01,
            "seed": seed,
            "start": "random",
            "restarts": 1,
        }
        found = {
            "limit": leave_one_out_scores(f, w, herm, truth, k).argmax(1),
            "CPCA": cpca(correlation_matrix(prep), "auto", k, seed).labels,
            "CPCA corrected": corrected_cpca(f, w, feats.band, k, seed)[0].labels,
            "EXMX": mco_exmx(prep, None, k, None, **mco).labels,
            "AC": ac_rounds(f, w, herm, start, k, 2.0, 0.2, local_search=1, seed=seed)[0].labels,
            "EXMX×3": mco_exmx(prep, None, k, None, oversample=3, **mco).labels,
        }
        began = time.perf_counter()
        result = classify(prep, None, k, None, seed=seed)
        seconds = time.perf_counter() - began
    out = {name: adjusted_rand_index(truth, labels) for name, labels in found.items()}
    out["classify"] = adjusted_rand_index(truth, result.labels)
    out["stability"] = result.stability
    out["seconds"] = seconds
    return out


COLUMNS = ("limit", "CPCA", "CPCA corrected", "EXMX", "AC", "EXMX×3", "classify", "stability")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--only", help="comma-separated row name prefixes")
    args = parser.parse_args()
    rows = ROWS
    if args.only:
        rows = [r for r in ROWS if any(r.name.startswith(p) for p in args.only.split(","))]
    threads = os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))
    print(f"mean ARI over {args.seeds} seeds, {threads} threads; classify: 4 restarts; "
          "stability: mean ARI between its restarts")  # fmt: skip
    print("| set | N | " + " | ".join(COLUMNS) + " | classify − limit | classify s |")
    print("| --- " * (len(COLUMNS) + 4) + "|")
    for row in rows:
        runs = [scores(row, seed) for seed in range(args.seeds)]
        mean = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
        cells = " | ".join(f"{mean[c]:.2f}" for c in COLUMNS)
        gap = mean["classify"] - mean["limit"]
        print(f"| {row.name} | {row.config.n_particles} | {cells} | {gap:+.2f} | "
              f"{mean['seconds']:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
