"""The ``tomoclass`` command line: one subcommand per job, each a thin layer over the API.

Bad input ends with one line ``tomoclass: error: …`` on stderr and exit status 2, no
traceback; outputs are written to a temporary name and renamed, so a failed run leaves
nothing half-written and overwrites nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tomoclass import __version__
from tomoclass.errors import TomoclassError

EXIT_BAD_INPUT = 2


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the examples' line breaks and show every default."""


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _tilt_ranges(text: str) -> list[tuple[float, float]]:
    ranges = []
    for item in text.split(","):
        try:
            lo, hi = (float(v) for v in item.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"tilt ranges look like -60:60,-50:55 (min:max degrees), got {text!r}"
            ) from None
        ranges.append((lo, hi))
    return ranges


def _publish_folder(build: Callable[[Path], None], destination: Path) -> None:
    """Run ``build`` into a temporary sibling folder, then rename it to ``destination``.

    ``destination`` must not exist or be an empty folder, so earlier results are never touched.
    """
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise TomoclassError(f"{destination}: exists and is not empty; choose a new output folder")
    parent = destination.absolute().parent
    if not parent.is_dir():
        raise TomoclassError(f"{parent}: output folder's parent does not exist")
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=parent))
    except OSError as exc:
        raise TomoclassError(f"{parent}: cannot write here ({exc.strerror})") from None
    try:
        build(work)
        if destination.exists():
            destination.rmdir()
        os.replace(work, destination)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_simulate(args: argparse.Namespace) -> None:
    from tomoclass.simulate import SimulationConfig, simulate_particles, write_simulation

    config = SimulationConfig(
        n_particles=args.particles,
        n_classes=args.classes,
        box=args.box,
        snr=args.snr,
        fractions=args.fractions,
        tilt_ranges=args.tilt_ranges,
        max_shift=args.max_shift,
        angular_error=args.angular_error,
        shift_error=args.shift_error,
        seed=args.seed,
    )
    config.check()  # before creating anything
    sim = simulate_particles(config)
    _publish_folder(lambda work: write_simulation(sim, work, fmt=args.format), args.directory)
    counts = ", ".join(f"class {k}: {int((sim.labels == k).sum())}" for k in range(args.classes))
    print(f"wrote {args.particles} particles ({counts}) to {args.directory}")
    print(f"  list: {args.directory / 'particles.xml'}   truth: {args.directory / 'truth.csv'}")


def _run_convert(args: argparse.Namespace) -> None:
    from tomoclass.io import convert_particle_list

    if Path(args.input).absolute() == Path(args.output).absolute():
        raise TomoclassError(f"{args.output}: output is the input file")
    convert_particle_list(args.input, args.output, pixel_size=args.pixel_size)
    print(f"wrote {args.output}")


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="synthetic aligned particles with known classes",
        formatter_class=_Formatter,
        description=(
            "Simulate aligned subtomograms of a chiral body whose domain takes a different\n"
            "position in each class: random rotations and shifts, white noise at the given SNR,\n"
            "then the missing wedge of one of several tomograms. Writes particles/, the PyTom\n"
            "list particles.xml, mask.em, class_<k>_reference.em and truth.csv.\n\n"
            "example:\n  tomoclass simulate sim --particles 300 --classes 3 --snr 0.05 --seed 1"
        ),
    )
    p.add_argument("directory", type=Path, help="new (or empty) output folder")
    p.add_argument("-n", "--particles", type=int, default=200, help="number of particles")
    p.add_argument("-k", "--classes", type=int, default=2, help="number of classes (1-8)")
    p.add_argument("--box", type=int, default=32, help="box size in voxels")
    p.add_argument("--snr", type=float, default=0.1, help="signal variance / noise variance")
    p.add_argument(
        "--fractions", type=_floats, help="class proportions, e.g. 0.9,0.1 (default: equal)"
    )
    p.add_argument(
        "--tilt-ranges",
        type=_tilt_ranges,
        default=[(-60.0, 60.0), (-50.0, 60.0), (-60.0, 45.0), (-45.0, 45.0)],
        help="tilt range of each simulated tomogram, min:max degrees, comma-separated",
    )
    p.add_argument("--max-shift", type=float, default=2.0, help="largest shift, voxels")
    p.add_argument(
        "--angular-error", type=float, default=0.0, help="alignment error in the list, degrees"
    )
    p.add_argument("--shift-error", type=float, default=0.0, help="shift error in the list, voxels")
    p.add_argument("--format", choices=("em", "mrc"), default="em", help="volume file format")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same data")
    p.set_defaults(run=_run_simulate)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert particle lists between PyTom XML, RELION STAR and Dynamo tbl",
        formatter_class=_Formatter,
        description=(
            "Convert a particle list; formats follow the extensions (.xml, .star, .tbl).\n"
            "Rotations are converted between the packages' Euler conventions and shifts\n"
            "between voxels and Å (STAR).\n\n"
            "example:\n  tomoclass convert particles.xml particles.star --pixel-size 13.6"
        ),
    )
    p.add_argument("input", type=Path, help="particle list to read")
    p.add_argument("output", type=Path, help="particle list to write")
    p.add_argument(
        "--pixel-size",
        type=float,
        help="Å per voxel for STAR shifts (default: the STAR file's, else 1)",
    )
    p.set_defaults(run=_run_convert)


def build_parser() -> argparse.ArgumentParser:
    """The ``tomoclass`` argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="tomoclass",
        formatter_class=_Formatter,
        description=(
            "Classify aligned subtomograms (PyTom-compatible, Rust core).\n\n"
            "Start with 'tomoclass simulate DIR' to make a data set with known classes;\n"
            "'tomoclass COMMAND --help' explains each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tomoclass {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_simulate(sub)
    _add_convert(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tomoclass`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except TomoclassError as exc:
        print(f"tomoclass: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("tomoclass: interrupted; no output was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
