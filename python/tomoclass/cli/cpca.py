"""``tomoclass cpca``: classification by CPCA of a matrix or a landmark block."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoclass import __version__
from tomoclass.cli.common import (
    MADE,
    Formatter,
    add_sampling,
    add_symmetry,
    announce,
    counting_bar,
    point_symmetry,
    positive_int,
    read_particles,
    resolution_record,
    resolution_text,
    writable_folder,
    write_table,
    write_text,
)
from tomoclass.errors import TomoclassError
from tomoclass.io.files import output_group


def _merge_by_score(plist, labels, args: argparse.Namespace, comm):
    """``--oversample``: CPCA's classes merged to NCLASS by total score
    (:func:`tomoclass.mco.merge_classes`) on features with the mask (default: a sphere) and
    band up to the low-pass (default: a quarter of the box)."""
    from tomoclass.features import Preprocessing, box_size
    from tomoclass.mask import spherical_mask
    from tomoclass.mco import merge_classes

    mask = args.mask if args.mask is not None else spherical_mask(box_size(plist))
    lowpass = args.lowpass if args.lowpass is not None else 0.25
    prep = Preprocessing.for_band(plist, mask, lowpass)
    f, w = prep.gathered_features(comm)
    classes = args.nclass * args.oversample
    return merge_classes(f, w, prep.band.herm, labels, classes, args.nclass, comm)


def _run_cpca(args: argparse.Namespace) -> None:
    import json
    import platform
    import time

    import numpy as np
    import scipy

    from tomoclass.average import average_suffix, class_averages, write_averages
    from tomoclass.ccc import LandmarkBlock, read_matrix
    from tomoclass.cpca import cpca
    from tomoclass.io import write_particle_list
    from tomoclass.parallel import world

    started = time.perf_counter()
    folder = args.output.parent if args.tables is None else args.tables
    prefix = args.average or args.output.with_suffix("").as_posix() + "_class"
    for place in {args.output.parent, Path(prefix).parent, folder}:
        writable_folder(place)  # made when written
    plist = read_particles(args)
    if not args.ccc.exists() and str(args.ccc).isdigit():
        raise TomoclassError(
            f"-c/--ccc is the correlation matrix file in cpca, got {args.ccc}; the number of "
            "classes is -n/--nclass"
        )
    matrix = read_matrix(args.ccc)
    rows = len(matrix.block) if isinstance(matrix, LandmarkBlock) else len(matrix)
    if rows != len(plist):
        raise TomoclassError(
            f"{args.ccc}: correlations of {rows} particles, but {len(plist)} in {args.particles}"
        )
    neig = args.neig if args.neig == "auto" else positive_int(args.neig, "-e/--neig")
    comm = world()
    what = "landmark block" if isinstance(matrix, LandmarkBlock) else "matrix"
    announce(comm, f"CPCA: top eigenvectors of the {rows}-particle {what}, then k-means")
    result = cpca(matrix, neig, args.nclass * args.oversample, args.seed, name=str(args.ccc))
    eigen_seconds = time.perf_counter() - started
    labels, record = result.labels, None
    if args.oversample > 1:
        labels, record = _merge_by_score(plist, labels, args, comm)
    classified = plist.with_classes(labels.tolist())
    averages = class_averages(classified, binning=args.binning, lowpass=args.lowpass, comm=comm,
                              progress=counting_bar(comm, "averages", len(plist)),
                              symmetry=point_symmetry(args.symmetry))  # fmt: skip
    if comm.rank != 0:
        return
    with output_group():  # all of these are replaced, or none
        write_particle_list(classified, args.output)
        write_averages(averages, prefix)
        for name in ("eigenvalues", "coefficients"):
            write_table(folder / name, getattr(result, name))
        if record is not None:
            from tomoclass.merge import score_dendrogram_png

            score_dendrogram_png(record, len(plist), folder / "merge_dendrogram.png")
        run = {
            "command": "cpca",
            "parameters": {"particles": str(args.particles), "ccc": str(args.ccc),
                           "output": str(args.output.absolute()),
                           "average": str(Path(prefix).absolute()), "neig": args.neig,
                           "neig_used": result.neig, "nclass": args.nclass, "seed": args.seed,
                           "binning": args.binning, "lowpass": args.lowpass,
                           "symmetry": args.symmetry},
            "class_sizes": {a.label: a.count for a in averages},
            "noise_edge": None if result.noise is None else result.noise.summary(),
            "resolution": resolution_record(averages),
            "oversample": {"factor": args.oversample, **(record or {})},
            "versions": {"tomoclass": __version__, "numpy": np.__version__,
                         "scipy": scipy.__version__, "python": platform.python_version()},
            "timings": {"cpca_seconds": eigen_seconds,
                        "total_seconds": time.perf_counter() - started},
        }  # fmt: skip
        write_text(folder / "run.json", json.dumps(run, indent=2) + "\n")
    sizes = ", ".join(f"{a.label}: {a.count}" for a in averages)
    print(resolution_text(resolution_record(averages)))
    print(f"neig {result.neig}, {args.nclass} classes ({sizes}): wrote {args.output}, "
          f"averages {prefix}_<k>{average_suffix(averages)}, eigenvalues and run.json in "
          f"{folder}")  # fmt: skip


def add_cpca(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cpca",
        help="classify by CPCA: eigenvectors of the CCC matrix, then k-means",
        formatter_class=Formatter,
        description=(
            "Constrained PCA (Förster et al. 2008): the top NEIG eigenvectors of the CCC matrix,\n"
            "coefficients sqrt(eigenvalue)·eigenvector, k-means++ (10 seeded restarts) into\n"
            "NCLASS classes. Writes the classified list, one wedge-weighted average per class\n"
            "(PREFIX_<k>.em with its wedge sum; .mrc for MRC particles), eigenvalues and\n"
            "coefficients (.npy, .csv) and run.json. -e auto (default) counts the eigenvalues\n"
            "above a Marchenko-Pastur noise edge (at least NCLASS); too few eigenvectors\n"
            "silently ruin CPCA. Given the landmark block of 'ccc --landmarks M' (.npz), the\n"
            "eigenvectors come from a Nyström approximation of the full matrix (NEIG at most\n"
            "M/2).\n\n"
            "example:\n  tomoclass cpca -p particles.xml -c out/correlation_matrix.csv -n 3 "
            "-o out/classified.xml"
        ),
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="particle list")
    p.add_argument(
        "-c",
        "--ccc",
        type=Path,
        required=True,
        help="correlation matrix .csv/.npy, or a landmark block .npz (Nyström CPCA)",
    )
    p.add_argument("-e", "--neig", default="auto", help="eigenvectors used, or auto")
    p.add_argument("-n", "--nclass", type=int, required=True, help="number of classes")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="classified particle list; the averages, tables and run.json go beside it" + MADE,
    )
    p.add_argument("-a", "--average", help="prefix of the class averages (default: OUT_class)")
    p.add_argument(
        "-t",
        "--tables",
        type=Path,
        help="folder for eigenvalues, coefficients, run.json (default: OUT's folder)",
    )
    p.add_argument("-b", "--binning", type=int, default=1, help="binning of the averages")
    p.add_argument("-f", "--lowpass", type=float, help="low-pass of the averages (Fourier voxels)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same classes")
    p.add_argument("--oversample", type=int, default=1,
                   help="classify into NCLASS x this many, then merge to NCLASS by total score "
                   "(features with -m and up to -f)")  # fmt: skip
    p.add_argument("-m", "--mask", type=Path,
                   help="mask for --oversample's merge (default: a sphere)")  # fmt: skip
    add_symmetry(p)
    add_sampling(p)
    p.set_defaults(run=_run_cpca)
