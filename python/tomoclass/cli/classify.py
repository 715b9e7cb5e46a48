"""``tomoclass classify``: the default classification (correlations, nuisance removed, CPCA,
MCO-AC restarts), written as one folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoclass import __version__
from tomoclass.cli.common import (
    ANGSTROM_RULE,
    NEW_FOLDER,
    Formatter,
    add_memory,
    add_sampling,
    add_symmetry,
    check_new_folder,
    counting_bar,
    json_parameters,
    point_symmetry,
    progress_bar,
    publish_folder,
    read_particles,
    resolution_record,
    resolution_text,
    shared_cache,
    warn,
    warn_replaced_scores,
    write_classified,
    write_table,
)
from tomoclass.errors import TomoclassError


def _class_count(text: str) -> int | str:
    """``-n``: a whole number or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise TomoclassError(
            f"-n/--nclass must be 'auto' or a whole number, got {text!r}"
        ) from None


def _run_classify(args: argparse.Namespace) -> None:
    import json
    import time

    from tomoclass.average import average_suffix, class_averages, write_averages
    from tomoclass.classify import classify
    from tomoclass.io.stopgap import is_stopgap_motl
    from tomoclass.parallel import world

    comm = world()
    started = time.perf_counter()
    plist = read_particles(args)
    nclass, symmetry = _class_count(args.nclass), point_symmetry(args.symmetry)
    check_new_folder(args.output)  # now, not after the whole run
    features = args.output.absolute().parent / f".{args.output.name}.features"
    with shared_cache(comm, features):
        result = classify(
            plist, args.mask, nclass, args.lowpass, args.binning,
            lowest=args.lowest_frequency, restarts=args.restarts, seed=args.seed, comm=comm,
            max_classes=args.max_classes, symmetry=symmetry,
            progress=progress_bar(comm), cache_dir=features, memory_budget=args.memory * 2**30,
        )  # fmt: skip
    classified = plist.with_classes(result.labels.tolist())
    averages = class_averages(classified, binning=args.binning, comm=comm, symmetry=symmetry,
                              progress=counting_bar(comm, "averages", len(plist)))  # fmt: skip
    if comm.rank != 0:
        return
    listed = f"classifiedParticles{args.particles.suffix.lower()}"

    def build(work: Path) -> None:
        write_classified(classified, result.labels, result.scores, work / listed,
                         args.output.absolute())  # fmt: skip
        write_averages(averages, work / "class")
        write_table(work / "eigenvalues", result.cpca.eigenvalues)
        write_table(work / "coefficients", result.cpca.coefficients)
        run = {
            "command": "classify",
            "parameters": json_parameters(args),
            "ranks": comm.size,
            "versions": {"tomoclass": __version__},
            **result.summary(),
            "resolution": resolution_record(averages),
            "timings": {"total_seconds": time.perf_counter() - started},
        }  # fmt: skip
        (work / "run.json").write_text(json.dumps(run, indent=2) + "\n")

    publish_folder(build, args.output)
    for line in result.warnings:  # about a result that was written
        warn(line)
    warn_replaced_scores(plist, args.output / listed)
    if listed.endswith(".star") and is_stopgap_motl(args.particles):
        warn(
            f"{args.output / listed}: a RELION STAR list, not a STOPGAP motive list like "
            f"{args.particles} (tomoclass writes no STOPGAP lists)"
        )
    sizes = ", ".join(f"{a.label}: {a.count}" for a in averages)
    if result.class_count is not None:
        print(f"-n auto: {result.class_count.sureness}")
    print(resolution_text(resolution_record(averages)))
    print(f"{len(averages)} classes ({sizes}); restarts agree at ARI {result.stability:.2f}; "
          f"wrote {args.output}/{listed}, class_<k>{average_suffix(averages)}, scores.csv, "
          f"run.json; look at them with 'tomoclass report {args.output}'")  # fmt: skip


def add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classify",
        help="classify the recommended way (start here)",
        formatter_class=Formatter,
        description=(
            "The default classification, no method to choose: the correlation matrix of the\n"
            "particles, less what their sampling (wedges, CTFs) predicts; CPCA of it; then\n"
            "RESTARTS refinements by MCO-AC from CPCA's eigenvectors (k-means with seed\n"
            "SEED + r, short annealing, EXMX to convergence). The assignment with the highest\n"
            "total score is kept, and the agreement between restarts (ARI) is printed as a\n"
            "stability figure. Beyond 4000 particles the matrix is a landmark block\n"
            "(Nyström CPCA). -n auto first classifies two seeded halves of the particles\n"
            "separately for every count from 2 to MAX_CLASSES, assigns every particle by\n"
            "each half's class averages, and keeps the most classes whose two assignments\n"
            "agree (ARI) within 0.05 of the best count; it says how sure that is.\n\n"
            "Writes the new folder OUT: classifiedParticles with the input's extension,\n"
            "class_<k>.em (wedge-weighted averages; .mrc with the voxel size for MRC\n"
            "particles), CPCA's eigenvalues and coefficients\n"
            "(.npy, .csv), scores.csv (every particle's score against every class and its\n"
            "margin, best - second: small margins are ambiguous particles, see 'select\n"
            "--min-margin') and run.json (each stage's result); 'tomoclass report OUT' draws\n"
            "them.\n\n"
            "example:\n  tomoclass classify -p particles.xml -m mask.em -n 3 -f 8 -o classes"
        ),
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="particle list")
    p.add_argument("-m", "--mask", type=Path, required=True,
                   help="real-space mask (focus it on a local difference)")  # fmt: skip
    p.add_argument("-n", "--nclass", required=True,
                   help="number of classes, or auto (chosen by half-set agreement)")  # fmt: skip
    p.add_argument("--max-classes", type=int, default=6, help="most classes -n auto tries")
    p.add_argument(
        "-f",
        "--lowpass",
        type=float,
        required=True,
        help="band limit, Fourier voxels of the binned box; " + ANGSTROM_RULE,
    )
    p.add_argument("-o", "--output", type=Path, required=True, help=NEW_FOLDER)
    p.add_argument("--lowest-frequency", type=float, default=0.0, help="Fourier voxels")
    p.add_argument("-b", "--binning", type=int, default=1, help="Fourier binning factor")
    p.add_argument("--restarts", type=int, default=4, help="seeded refinements")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same classes")
    p.add_argument("--threads", type=int, help="threads per process (default: all cores)")
    add_memory(p, "larger features are memory-mapped from .OUT.features (shared by MPI ranks)")
    add_symmetry(
        p, "the refinement scores against symmetrised class averages, which are written symmetrised"
    )
    add_sampling(p)
    p.set_defaults(run=_run_classify)
