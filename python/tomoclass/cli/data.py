"""``tomoclass demo``, ``simulate``, ``report`` and ``convert``: data in, pictures out."""

from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path

from tomoclass.cli.common import (
    MADE,
    NEW_FOLDER,
    Formatter,
    add_sampling,
    publish_folder,
    sampling_options,
    tilt_range_text,
)
from tomoclass.errors import TomoclassError
from tomoclass.simulate import DEFAULT_TILT_RANGES, write_simulation


def floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def tilt_ranges(text: str) -> list[tuple[float, float]]:
    """Comma-separated ``MIN:MAX`` tilt ranges, e.g. ``-60:60,-50:55``."""
    return [tilt_range_text(item) for item in text.split(",")]


def _run_demo(args: argparse.Namespace) -> None:
    import time

    from tomoclass.cli import build_parser
    from tomoclass.io import read_particle_list
    from tomoclass.metrics import adjusted_rand_index
    from tomoclass.plotting import report
    from tomoclass.simulate import SimulationConfig, read_truth, simulate_particles

    folder = args.directory or Path(tempfile.mkdtemp(prefix="tomoclass-demo-"))
    started = time.perf_counter()
    config = SimulationConfig(n_particles=args.particles, n_classes=args.classes, box=32,
                              snr=args.snr, seed=args.seed)  # fmt: skip
    print(f"1/3 simulating {config.n_particles} particles of {config.n_classes} conformations "
          f"(box 32, SNR {config.snr}, 4 tomograms with different wedges) in {folder}")  # fmt: skip
    sim = simulate_particles(config)
    publish_folder(lambda work: write_simulation(sim, work), folder)
    classes = folder / "classes"
    command = ["classify", "-p", str(folder / "particles.xml"), "-m", str(folder / "mask.em"),
               "-n", str(config.n_classes), "-f", "8", "-o", str(classes),
               "--seed", str(args.seed)]  # fmt: skip
    print(f"2/3 tomoclass {shlex.join(command)}")
    chosen = build_parser().parse_args(command)
    chosen.run(chosen)
    print("3/3 the report")
    page = report(classes)
    truth = read_truth(folder / "truth.csv")
    plist = read_particle_list(folder / "particles.xml")
    classified = read_particle_list(classes / "classifiedParticles.xml")
    ari = adjusted_rand_index([truth[p.filename] for p in plist], classified.class_names())
    print(f"\nadjusted Rand index against the truth: {ari:.3f}  "
          f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
    print(f"the simulated particles and truth.csv are in {folder}, the classes in {classes}")
    print(f"look at the report: {page}")


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a data set, classify it end to end and report (seconds)",
        formatter_class=Formatter,
        description=(
            "Simulate aligned particles with known classes, classify them with 'tomoclass\n"
            "classify' into DIR/classes and report the adjusted Rand index against the truth.\n"
            "Without DIR the outputs go to a new temporary folder."
        ),
    )
    p.add_argument("directory", type=Path, nargs="?", help=NEW_FOLDER)
    p.add_argument("-n", "--particles", type=int, default=300, help="number of particles")
    p.add_argument("-k", "--classes", "--nclass", dest="classes", type=int, default=3,
                   help="number of classes")  # fmt: skip
    p.add_argument("--snr", type=float, default=0.3, help="signal variance / noise variance")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(run=_run_demo)


def _run_simulate(args: argparse.Namespace) -> None:
    from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation

    layout = args.layout
    options = {"pixel_size": "--pixel-size", "defoci": "--defocus", "dose_per_tilt": "--dose"}
    physics = {k: getattr(args, k) for k in options if getattr(args, k, None) is not None}
    fmt = getattr(args, "format", None)
    ctf = [options[k] for k in physics if k != "pixel_size"]
    if layout == "pytom" and ctf:
        raise TomoclassError(
            f"{', '.join(ctf)}: only for --layout warp or relion (tilt series with CTFs)"
        )
    if layout == "pytom" and "pixel_size" in physics and fmt != "mrc":
        raise TomoclassError("--pixel-size: EM files hold no voxel size; add --format mrc")
    if layout != "pytom" and fmt not in (None, "mrc"):
        raise TomoclassError(
            f"--layout {layout} writes MRC files as {layout} does, not --format {fmt}"
        )
    max_shift = getattr(args, "max_shift", 0.0 if layout == "warp" else 2.0)
    config = SimulationConfig(
        n_particles=args.particles,
        n_classes=args.classes,
        box=args.box,
        snr=args.snr,
        fractions=args.fractions,
        tilt_ranges=args.tilt_ranges,
        max_shift=max_shift,
        angular_error=args.angular_error,
        shift_error=args.shift_error,
        factor=args.factor,
        seed=args.seed,
        **{k: tuple(v) if k == "defoci" else v for k, v in physics.items()},
    )
    config.check(layout)  # before creating anything
    sim = simulate_particles(config)
    publish_folder(lambda work: write_simulation(sim, work, fmt=fmt, layout=layout), args.directory)
    counts = ", ".join(f"class {k}: {int((sim.labels == k).sum())}" for k in range(args.classes))
    print(f"wrote {args.particles} particles ({counts}) to {args.directory}")
    listed = "particles.xml" if layout == "pytom" else "particles.star"
    print(f"  list: {args.directory / listed}   truth: {args.directory / 'truth.csv'}")
    if layout == "relion":
        print(f"  tomograms: {args.directory / 'tomograms.star'}")


def add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="synthetic aligned particles with known classes",
        formatter_class=Formatter,
        description=(
            "Simulate aligned subtomograms of a chiral body whose domain takes a different\n"
            "position in each class: random rotations and shifts, white noise at the given SNR,\n"
            "then the missing wedge of one of several tomograms. Writes particles/, the PyTom\n"
            "list particles.xml, mask.em, class_<k>_reference.em and truth.csv.\n\n"
            "--layout warp or relion writes instead what Warp (ts_export_particles --3d) or\n"
            "RELION 5 (relion_tomo_subtomo) would have made of dose-symmetric tilt series with\n"
            "CTFs (one tilt series per tilt range, 3 degree steps): subtomograms and per-particle\n"
            "3-D CTFs or weights in their file names, folders and data types, particles.star\n"
            "(RELION also tomograms.star), mask.mrc, class_<k>_reference.mrc and truth.csv.\n"
            "Warp's STAR has no origins, so its particles are centred (no shifts). SNR is then\n"
            "the variance of the noise-free data volume over that of its noise.\n\n"
            "examples:\n  tomoclass simulate sim --particles 300 --classes 3 --snr 0.05 --seed 1\n"
            "  tomoclass simulate sim_warp --layout warp --pixel-size 10 --defocus 3,5"
        ),
    )
    p.add_argument("directory", type=Path, help=NEW_FOLDER)
    p.add_argument("-n", "--particles", type=int, default=200, help="number of particles")
    p.add_argument("-k", "--classes", "--nclass", dest="classes", type=int, default=2,
                   help="number of classes (1-8)")  # fmt: skip
    p.add_argument("--box", type=int, default=32, help="box size in voxels")
    p.add_argument("--snr", type=float, default=0.1, help="signal variance / noise variance")
    p.add_argument(
        "--fractions", type=floats, help="class proportions, e.g. 0.9,0.1 (default: equal)"
    )
    p.add_argument(
        "--factor", type=float, default=0.0, metavar="FRACTION",
        help="classes differ by a bound factor of this fraction of the mass, e.g. 0.03 "
        "(default: by a swung domain)",
    )  # fmt: skip
    p.add_argument(
        "--tilt-ranges",
        type=tilt_ranges,
        default=list(DEFAULT_TILT_RANGES),
        help="tilt range of each simulated tomogram, min:max degrees, comma-separated",
    )
    p.add_argument(
        "--max-shift",
        type=float,
        default=argparse.SUPPRESS,
        help="largest shift, voxels (default: 2; 0 with --layout warp)",
    )
    p.add_argument(
        "--angular-error", type=float, default=0.0, help="alignment error in the list, degrees"
    )
    p.add_argument("--shift-error", type=float, default=0.0, help="shift error in the list, voxels")
    p.add_argument(
        "--format",
        choices=("em", "mrc"),
        default=argparse.SUPPRESS,
        help="volume file format (default: em; warp and relion layouts write mrc)",
    )
    p.add_argument(
        "--layout",
        choices=("pytom", "warp", "relion"),
        default="pytom",
        help="whose files to write: PyTom's particles and list, Warp's or RELION 5's",
    )
    layouts = p.add_argument_group("warp and relion layouts")
    layouts.add_argument(
        "--pixel-size",
        type=float,
        default=argparse.SUPPRESS,
        metavar="Å",
        help="Å per voxel, in the header of every MRC file (default: 8; also with --format mrc)",
    )
    layouts.add_argument(
        "--defocus",
        dest="defoci",
        type=floats,
        default=argparse.SUPPRESS,
        metavar="µm,…",
        help="defocus of each tomogram in turn, µm underfocus (default: 2.5,3.5,4.5,6)",
    )
    layouts.add_argument(
        "--dose",
        dest="dose_per_tilt",
        type=float,
        default=argparse.SUPPRESS,
        metavar="e/Å²",
        help="exposure per tilt image, e/Å² (default: 3)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same data")
    p.set_defaults(run=_run_simulate)


def _run_report(args: argparse.Namespace) -> None:
    from tomoclass.plotting import report

    print(f"wrote {report(args.directory)} (pictures in {args.directory / 'report'})")


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="pictures and one HTML page of the runs in an output folder",
        formatter_class=Formatter,
        description=(
            "Draw what tomoclass commands left in DIR, one section per run: the run of\n"
            "run.json (cpca, classify, mco-*), each merge (OUT_merge.json) and each average\n"
            "(PREFIX_resolution.json). Each section has a table of the run's classes with\n"
            "their sizes (counted in its classified list) and resolution, then its pictures:\n"
            "eigenvalue spectrum with the noise edge of -e auto, coefficient scatter and CCC\n"
            "matrix by class, central slices of the class averages, FSC curves, margins,\n"
            "dendrograms, the iteration/annealing trace and the parameters of run.json.\n"
            "Writes DIR/report/*.png and a self-contained DIR/report.html.\n\n"
            "example:\n  tomoclass report mco"
        ),
    )
    p.add_argument("directory", type=Path, help="output folder of tomoclass commands")
    p.set_defaults(run=_run_report)


def _run_convert(args: argparse.Namespace) -> None:
    from tomoclass.io import convert_particle_list

    if Path(args.input).absolute() == Path(args.output).absolute():
        raise TomoclassError(f"{args.output}: output is the input file")
    convert_particle_list(args.input, args.output, pixel_size=args.pixel_size,
                          particle_files=args.particle_files, **sampling_options(args))  # fmt: skip
    print(f"wrote {args.output}")


def add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert particle lists between PyTom XML, RELION STAR and Dynamo tbl",
        formatter_class=Formatter,
        description=(
            "Convert a particle list; formats follow the extensions (.xml, .star, .tbl; a\n"
            "STOPGAP motive list .star is read too). Rotations are converted between the\n"
            "packages' Euler conventions and shifts between voxels and Å (STAR).\n\n"
            "Signs: a STAR origin is RELION's (3dem/relion particle_set.cpp: the particle\n"
            "sits at coordinate - origin), so a PyTom shift is -origin / pixel size.\n"
            "PyTom's own star2pl/pl2star use +origin: lists they converted have the\n"
            "opposite shifts.\n\n"
            "Missing wedges survive: PyTom wedges and tilt series go to STAR in tomoclass's\n"
            "columns, CTF volumes as rlnCtfImage; Dynamo tables keep only a tilt range (with\n"
            "a warning). The options below give particles without one their missing wedge.\n\n"
            "Dynamo reads particle <tag> from particle_<tag>.em (or .mrc) beside the table,\n"
            "the tag zero-padded to 5 digits as dynamo_table_crop writes it (particle_00001.em);\n"
            "tomoclass reads them so, and a table written where the particles are not gets a\n"
            "warning. --link-particles puts symbolic links under those names beside OUT,\n"
            "--copy-particles copies; a file of another particle in the way is an error.\n\n"
            "examples:\n  tomoclass convert particles.xml particles.star --pixel-size 13.6\n"
            "  tomoclass convert particles.star particles.xml --tomograms tomograms.star\n"
            "  tomoclass convert particles.xml crop.tbl --link-particles"
        ),
    )
    p.add_argument("input", type=Path, help="particle list to read")
    p.add_argument("output", type=Path, help="particle list to write" + MADE)
    p.add_argument(
        "--pixel-size",
        type=float,
        help="Å per voxel for STAR shifts (default: the STAR file's, else 1)",
    )
    dynamo = p.add_argument_group("Dynamo table (OUT.tbl)").add_mutually_exclusive_group()
    dynamo.add_argument("--link-particles", dest="particle_files", action="store_const",
                        const="link", help="symbolic links particle_<tag>.em beside OUT, "
                        "to the particle files")  # fmt: skip
    dynamo.add_argument("--copy-particles", dest="particle_files", action="store_const",
                        const="copy", help="copies of the particle files beside OUT")  # fmt: skip
    add_sampling(p)
    p.set_defaults(run=_run_convert)
