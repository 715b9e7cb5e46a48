"""``tomoclass average``, ``merge``, ``select`` and ``split``: the classes of a particle
list."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoclass.cli.common import (
    ANGSTROM_RULE,
    MADE,
    Formatter,
    add_sampling,
    add_symmetry,
    counting_bar,
    nonempty,
    point_symmetry,
    read_particles,
    resolution_record,
    resolution_text,
    writable_folder,
    write_text,
)
from tomoclass.errors import TomoclassError
from tomoclass.io.files import output_group


def _run_average(args: argparse.Namespace) -> None:
    import json

    from tomoclass.average import class_averages, write_averages
    from tomoclass.parallel import world

    comm = world()
    writable_folder(Path(args.output).parent)
    plist = read_particles(args)
    averages = class_averages(
        plist, binning=args.binning, lowpass=args.lowpass, floor=args.floor, comm=comm,
        symmetry=point_symmetry(args.symmetry),
        progress=counting_bar(comm, "averages", len(plist)),
    )  # fmt: skip
    if comm.rank != 0:
        return
    record = resolution_record(averages)
    stem = args.output.removesuffix(".em").removesuffix(".mrc")
    resolution_json = Path(f"{stem}_resolution.json")
    with output_group():
        paths = write_averages(averages, args.output)
        write_text(resolution_json, json.dumps(record, indent=2) + "\n")
    for path, avg in zip(paths, averages, strict=True):
        print(f"class {avg.label}: {avg.count} particles -> {path}")
    print(f"{resolution_text(record)} ({resolution_json})")


def add_average(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "average",
        help="wedge-weighted average of every class",
        formatter_class=Formatter,
        description=(
            "Average the aligned particles of each class in Fourier space, weighted by their\n"
            "rotated wedges and divided by the wedge sum (floor: FLOOR × class size, PyTom's\n"
            "0.05). Writes PREFIX_<class>.em and PREFIX_<class>_wedgesum.em (centred); with\n"
            "-o PREFIX.mrc MRC files, the averages with the particles' voxel size times the\n"
            "binning.\n\n"
            "example:\n  tomoclass average -p classified.xml -o averages/class"
        ),
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="particle list")
    p.add_argument("-o", "--output", required=True, help="prefix of the output files" + MADE)
    p.add_argument("-b", "--binning", type=int, default=1, help="Fourier binning factor")
    p.add_argument(
        "-f",
        "--lowpass",
        type=float,
        help="low-pass radius, Fourier voxels of the binned box; " + ANGSTROM_RULE,
    )
    p.add_argument("--floor", type=float, default=0.05,
                   help="floor of the weight sum, as a fraction of its largest value")  # fmt: skip
    add_symmetry(p)
    add_sampling(p)
    p.set_defaults(run=_run_average)


MARGIN_RANGE = (0.0, 2.0)
"""Margins are differences of two correlations."""


def _run_select(args: argparse.Namespace) -> None:
    import numpy as np

    from tomoclass.io import read_particle_list, write_particle_list
    from tomoclass.io.scores import SCORES, read_margins

    if args.classes is None and args.min_margin is None:
        raise TomoclassError("give --classes, --min-margin or both")
    lo, hi = MARGIN_RANGE
    if args.min_margin is not None and not lo <= args.min_margin <= hi:
        raise TomoclassError(f"--min-margin must be within {lo:g}..{hi:g}, got {args.min_margin}")
    plist = read_particle_list(args.particles)
    nonempty(plist, args.particles)
    keep = np.ones(len(plist), bool)
    if args.classes is not None:
        wanted = [c.strip() for c in args.classes.split(",") if c.strip()]
        missing = sorted(set(wanted) - set(plist.class_names()))
        if missing:
            raise TomoclassError(f"{args.particles}: no class {', '.join(missing)} in the list")
        keep &= np.isin(plist.class_names(), wanted)
    if args.min_margin is not None:
        table = args.scores or args.particles.parent / SCORES
        if args.scores is None and not table.exists():
            raise TomoclassError(
                f"{table}: no scores table beside the list (classify and mco-* write one); "
                "give --scores"
            )
        keep &= read_margins(table, [p.filename for p in plist]) >= args.min_margin
    chosen = plist[keep]
    write_particle_list(chosen, args.output)
    print(f"wrote {len(chosen)} of {len(plist)} particles to {args.output}")


def _run_split(args: argparse.Namespace) -> None:
    from tomoclass.io import read_particle_list, write_particle_list

    plist = read_particle_list(args.particles)
    nonempty(plist, args.particles)
    parts = {Path(f"{args.output}_{name if name is not None else 'none'}.xml"): (name, part)
             for name, part in plist.split_by_class().items()}  # fmt: skip
    with output_group():
        for path, (_, part) in parts.items():
            write_particle_list(part, path)
    for path, (name, part) in parts.items():
        print(f"class {name}: {len(part)} particles -> {path}")


def add_select_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "select",
        help="keep the particles of chosen classes, or those assigned with confidence",
        formatter_class=Formatter,
        description=(
            "Keep the particles of the given classes (e.g. after judging the averages), and/or\n"
            "those whose margin (score against their best class minus the second best, from\n"
            "the scores.csv that 'classify' writes beside its list) is at least MIN_MARGIN.\n\n"
            "example:\n  tomoclass select -p classes/classifiedParticles.xml --classes 1 "
            "--min-margin 0.01 -o class1.xml"
        ),
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="classified list")
    p.add_argument("--classes", help="comma-separated class names, e.g. 1,2")
    p.add_argument("--min-margin", type=float, metavar="M",
                   help="keep particles whose margin is at least M (0..2)")  # fmt: skip
    p.add_argument("--scores", type=Path,
                   help="the scores table (default: scores.csv beside the list)")  # fmt: skip
    p.add_argument("-o", "--output", type=Path, required=True, help="particle list to write" + MADE)
    p.set_defaults(run=_run_select)
    p = sub.add_parser(
        "split",
        help="one particle list per class",
        formatter_class=Formatter,
        description="Write PREFIX_<class>.xml for every class of the list.",
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="classified list")
    p.add_argument("-o", "--output", required=True, help="prefix of the lists" + MADE)
    p.set_defaults(run=_run_split)


def _run_merge(args: argparse.Namespace) -> None:
    import json

    from tomoclass.average import (
        average_suffix,
        class_averages,
        read_averages,
        write_averages,
    )
    from tomoclass.features import box_size
    from tomoclass.fourier import frequency_radius
    from tomoclass.io import write_particle_list
    from tomoclass.mask import load_mask, spherical_mask
    from tomoclass.merge import average_dendrogram_png, merge_plan

    writable_folder(args.output.absolute().parent)
    plist = read_particles(args)
    if all(name is None for name in plist.class_names()):
        raise TomoclassError(f"{args.particles}: the list has no classes to merge")
    box = box_size(plist)
    mask = load_mask(args.mask, box) if args.mask else spherical_mask(box)
    groups = plist.split_by_class()
    averages = None
    if args.averages is not None:
        averages = read_averages(args.averages, [str(k) for k in groups],
                                 [len(v) for v in groups.values()])  # fmt: skip
    if averages is None:
        averages = class_averages(plist)
    plan = merge_plan(averages, mask, frequency_radius(args.lowpass, box), groups=args.groups,
                      n_clusters=args.n_clusters, threshold=args.threshold)  # fmt: skip
    merged = plist.with_classes(plan.mapping.get(name, name) for name in plist.class_names())
    stem = args.output.with_suffix("")
    new_averages = class_averages(merged)
    summary = {"mapping": plan.mapping, "class_sizes": {a.label: a.count for a in new_averages},
               "ccc_between_averages": plan.correlation.round(6).tolist(),
               "resolution": resolution_record(new_averages)}  # fmt: skip
    with output_group():
        write_particle_list(merged, args.output)
        write_averages(new_averages, f"{stem}_class")
        average_dendrogram_png(plan, averages, f"{stem}_dendrogram.png")
        write_text(Path(f"{stem}_merge.json"), json.dumps(summary, indent=2) + "\n")
    moves = ", ".join(f"{old}→{new}" for old, new in plan.mapping.items())
    print(f"{len(averages)} classes merged into {len(new_averages)} ({moves}): wrote "
          f"{args.output}, {stem}_class_<k>{average_suffix(new_averages)}, "
          f"{stem}_dendrogram.png")  # fmt: skip


def add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="merge look-alike classes by hierarchical clustering of their averages",
        formatter_class=Formatter,
        description=(
            "Average every class, correlate the averages (masked, band-passed, no wedge),\n"
            "cluster the distances 1 - CCC with average linkage, and merge classes by explicit\n"
            "groups, into K clusters, or below a distance threshold. Writes OUT.xml,\n"
            "OUT_class_<k>.em (.mrc for MRC particles), OUT_dendrogram.png and\n"
            "OUT_merge.json.\n\n"
            "examples:\n  tomoclass merge -p classified.xml --n-clusters 3 -o merged.xml\n"
            '  tomoclass merge -p classified.xml --groups "0,2,3;1,4;5,6" -o merged.xml'
        ),
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="classified list")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--groups", help="classes to merge, e.g. 0,2,3;1,4;5,6")
    how.add_argument("--n-clusters", type=int, help="number of merged classes")
    how.add_argument("--threshold", type=float, help="merge below this distance 1 - CCC")
    p.add_argument("-o", "--output", type=Path, required=True, help="merged list to write" + MADE)
    p.add_argument("-m", "--mask", type=Path, help="mask (default: a sphere of the box)")
    p.add_argument("-a", "--averages",
                   help="reuse existing averages PREFIX_<k>.em (else computed)")  # fmt: skip
    p.add_argument("-f", "--lowpass", type=float, default=0.25,
                   help="band of the comparison, Fourier voxels (below 1: of the box); "
                   + ANGSTROM_RULE)  # fmt: skip
    add_sampling(p)
    p.set_defaults(run=_run_merge)
