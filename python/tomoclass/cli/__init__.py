"""The ``tomoclass`` command line: one subcommand per job, each a thin layer over the API.

Bad input ends with one line ``tomoclass: error: …`` on stderr and exit status 2, no
traceback; outputs are written to a temporary name and renamed, so a failed run leaves
nothing half-written and overwrites nothing.

One module per command family: :mod:`~tomoclass.cli.ccc`, :mod:`~tomoclass.cli.cpca`,
:mod:`~tomoclass.cli.mco`, :mod:`~tomoclass.cli.classes`, :mod:`~tomoclass.cli.data`; shared
pieces in :mod:`~tomoclass.cli.common`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from tomoclass import __version__
from tomoclass.cli.ccc import add_ccc
from tomoclass.cli.classes import add_average, add_merge, add_select_split
from tomoclass.cli.classify import add_classify
from tomoclass.cli.common import Formatter, show_warnings
from tomoclass.cli.cpca import add_cpca
from tomoclass.cli.data import add_convert, add_demo, add_report, add_simulate
from tomoclass.cli.mco import add_job, add_mco_commands
from tomoclass.errors import Interrupted, TomoclassError

EXIT_BAD_INPUT = 2


MIXUPS = {
    ("classify", "-c"): "in classify the number of classes is -n/--nclass",
    ("cpca", "-k"): "in cpca the number of classes is -n/--nclass",
    ("classify", "-k"): "in classify the number of classes is -n/--nclass",
    ("ccc", "-n"): "ccc computes the correlations only: give the number of classes to cpca "
    "or classify (-n)",
    ("ccc", "-c"): "ccc computes the correlations only: give the number of classes to cpca "
    "or classify (-n)",
    ("mco-exmx", "-k"): "in mco-exmx the number of classes is -c/--nclass (-n is the iterations)",
    ("mco-ac", "-k"): "in mco-ac the number of classes is -c/--nclass (-n is the iterations)",
}
"""(command, flag) it does not take → where the value belongs: each command keeps PyTom's
short flags, so a flag from another command is a likely slip."""


class _Parser(argparse.ArgumentParser):
    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        command = next((a for a in argv if not a.startswith("-")), None)
        for flag in argv:  # before argparse, which would first ask for the missing flags
            hint = MIXUPS.get((command, flag.split("=")[0]))
            if hint:
                self.error(f"{command} has no {flag.split('=')[0]}: {hint}")
        return super().parse_args(argv, namespace)


def build_parser() -> argparse.ArgumentParser:
    """The ``tomoclass`` argument parser with all subcommands."""
    parser = _Parser(
        prog="tomoclass",
        formatter_class=Formatter,
        description=(
            "Classify aligned subtomograms (PyTom-compatible, Rust core).\n\n"
            "Start with 'tomoclass demo': it simulates particles with known classes, classifies\n"
            "them with 'tomoclass classify' and writes a report. On your data, start with:\n"
            "  tomoclass classify -p particles.xml -m mask.em -n 3 -f 8 -o classes\n"
            "  tomoclass report classes\n"
            "The single steps, as in PyTom:\n"
            "  tomoclass ccc -p particles.xml -m mask.em -f 8 -o out\n"
            "  tomoclass cpca -p particles.xml -c out/correlation_matrix.csv -n 3 "
            "-o out/classified.xml\n"
            "  tomoclass mco-exmx -p particles.xml -m mask.em -c 3 -d mco -f 8\n"
            "'tomoclass COMMAND --help' explains each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tomoclass {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_demo(sub)
    add_simulate(sub)
    add_classify(sub)
    add_ccc(sub)
    add_cpca(sub)
    add_mco_commands(sub)
    add_job(sub)
    add_average(sub)
    add_merge(sub)
    add_select_split(sub)
    add_report(sub)
    add_convert(sub)
    return parser


def _abort_other_ranks() -> None:
    """Under MPI, stop the other ranks too, so that none waits forever in a collective."""
    from tomoclass.parallel import world

    comm = world()
    if comm.size > 1:
        sys.stderr.flush()
        comm.Abort(EXIT_BAD_INPUT)


def _joined_ranges(argv: Sequence[str]) -> list[str]:
    """``--tilt-range -60:60`` as ``--tilt-range=-60:60``: argparse takes a value that starts
    with ``-`` and is not a plain number for an option."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--tilt-range" and re.match(r"-\d", arg):
            out[-1] = f"--tilt-range={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tomoclass`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(_joined_ranges(sys.argv[1:] if argv is None else argv))
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            parser.error(f"--threads must be >= 1, got {threads}")
        os.environ["RAYON_NUM_THREADS"] = str(threads)  # read when the core's pool starts
    try:
        from tomoclass.parallel import world

        show_warnings(world())
        args.run(args)
    except TomoclassError as exc:
        print(f"tomoclass: error: {exc}", file=sys.stderr)
        _abort_other_ranks()
        return EXIT_BAD_INPUT
    except Interrupted as exc:
        print(f"tomoclass: interrupted; {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("tomoclass: interrupted; no output was written", file=sys.stderr)
        return 130
    except BaseException:
        # Under MPI an unexpected failure on one rank must not leave the others waiting.
        import traceback

        traceback.print_exc()
        _abort_other_ranks()
        raise
    return 0
