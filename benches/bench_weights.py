"""Benchmark sampling weights from files: what they cost in ``ccc`` and what they are worth.

1. ``cost``: the whole correlation matrix (reading, features, tiles) of N particles in
   Warp's layout (``tomoclass simulate --layout warp``: a data volume and a float16 3-D CTF
   per particle), once with each particle's CTF volume and once with a binary wedge of the
   same tilt range, in the same process. Printed as the ratio weights / binary (the issue's
   goal: at most 1.5 at N = 2000, 32³), with N, box, lowpass and threads; best of
   ``--repeats``.
2. ``accuracy``: simulated sets in Warp's and RELION 5's layouts (dose-symmetric tilt series
   with CTFs; ``--snr`` as ``tomoclass simulate`` defines it), each classified into its two
   classes with the particles' sampling taken four ways: none (as if fully sampled), binary
   wedges of each tomogram's tilt range, the weight volumes the list names (``rlnCtfImage``),
   and for RELION the tilt series of ``tomograms.star``. For each: the leave-one-out limit
   (every particle scored against the class averages of the true labels of all the other
   particles, with tomoclass's features and score, :func:`tomoclass.mco.leave_one_out_scores`),
   CPCA, and MCO-EXMX started from CPCA's labels. Mean ARI over ``--seeds`` sets.

Usage: python benches/bench_weights.py [--n 2000] [--box 32] [--lowpass 8] [--repeats 2]
                                       [--particles 300] [--snr 0.05,0.02,0.01] [--seeds 4]
                                       [--only cost|accuracy]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from tomoclass.ccc import correlation_matrix
from tomoclass.cpca import cpca
from tomoclass.features import Preprocessing
from tomoclass.io import read_particle_list
from tomoclass.io.particle_lists import fill_sampling
from tomoclass.mco import leave_one_out_scores, mco_exmx
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation
from tomoclass.wedge import tilt_range_wedge


def threads() -> str:
    return os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))


def write_set(folder: Path, layout: str, n: int, box: int, snr: float, seed: int):
    """A simulated set in ``layout``: its STAR file, truth and binary wedges in STAR order."""
    shifts = 0.0 if layout == "warp" else 2.0
    sim = simulate_particles(SimulationConfig(n_particles=n, n_classes=2, box=box, snr=snr,
                                              seed=seed, max_shift=shifts))  # fmt: skip
    star = write_simulation(sim, folder, layout=layout)
    ranges = {s.name: tilt_range_wedge(min(s.angles), max(s.angles)) for s in sim.tilt_series}
    with open(folder / "truth.csv") as handle:
        rows = list(csv.DictReader(handle))
    truth = np.array([int(r["class"]) for r in rows])
    binary = [ranges[r["tomogram"]] for r in rows]
    return star, truth, binary


def cost(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        star, _, binary = write_set(Path(tmp), "warp", args.n, args.box, 0.1, 0)
        weighted = read_particle_list(star)
        plain = weighted.with_wedges(binary)
        mask = Path(tmp) / "mask.mrc"
        best = {"binary": np.inf, "weights": np.inf}
        for _ in range(args.repeats):
            for name, plist in (("binary", plain), ("weights", weighted)):
                start = time.perf_counter()
                correlation_matrix(Preprocessing.for_band(plist, mask, args.lowpass))
                best[name] = min(best[name], time.perf_counter() - start)
    print(f"cost: ccc of N={args.n}, box {args.box}, lowpass {args.lowpass}, "
          f"{threads()} threads, Warp layout on disk, best of {args.repeats}")  # fmt: skip
    print(
        f"  binary wedges {best['binary']:.2f} s, per-particle 3-D CTFs "
        f"{best['weights']:.2f} s: weights / binary = {best['weights'] / best['binary']:.2f}"
    )
    print()


def scores(plist, truth, mask, lowpass: float) -> tuple[float, float, float]:
    """ARI of the leave-one-out limit, CPCA and MCO-EXMX from CPCA's labels."""
    prep = Preprocessing.for_band(plist, mask, lowpass)
    features = prep.features()
    limit = leave_one_out_scores(features.f, features.w, features.band.herm, truth, 2)
    labels = cpca(correlation_matrix(prep), "auto", 2, 0).labels
    started = Preprocessing.for_band(plist.with_classes(labels.tolist()), mask, lowpass)
    refined = mco_exmx(started, None, 2, None, iterations=20).labels
    return tuple(adjusted_rand_index(truth, x) for x in (limit.argmax(1), labels, refined))


def accuracy(args) -> None:
    ways = ("none", "binary", "weights", "tomograms")
    print(
        f"accuracy: N={args.particles}, box {args.box}, lowpass {args.lowpass}, 2 classes, "
        f"mean ARI over {args.seeds} seeds: leave-one-out limit / CPCA / MCO-EXMX from CPCA"
    )
    print("| layout | SNR | no sampling | binary wedges | weight volumes | tomograms.star |")
    print("| --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for layout in ("warp", "relion"):
        for snr in args.snr:
            cells: dict[str, list] = {w: [] for w in ways}
            for seed in range(args.seeds):
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    star, truth, binary = write_set(folder, layout, args.particles, args.box,
                                                    snr, seed)  # fmt: skip
                    plist, mask = read_particle_list(star), folder / "mask.mrc"
                    bare = plist.with_wedges([None] * len(plist))
                    lists = {"none": bare, "binary": plist.with_wedges(binary), "weights": plist}
                    if layout == "relion":
                        tomograms = folder / "tomograms.star"
                        lists["tomograms"] = fill_sampling(bare, tomograms=tomograms)
                    for way, sampled in lists.items():
                        cells[way].append(scores(sampled, truth, mask, args.lowpass))
            row = [
                "/".join(f"{v:.2f}" for v in np.mean(cells[w], axis=0)) if cells[w] else "—"
                for w in ways
            ]
            print(f"| {layout} | {snr} | " + " | ".join(row) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--lowpass", type=float, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--particles", type=int, default=300)
    parser.add_argument("--snr", type=lambda s: [float(v) for v in s.split(",")],
                        default=[0.05, 0.02, 0.01])  # fmt: skip
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--only", choices=["cost", "accuracy"])
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the unsampled rows warn by design
    if args.only != "accuracy":
        cost(args)
    if args.only != "cost":
        accuracy(args)


if __name__ == "__main__":
    main()
