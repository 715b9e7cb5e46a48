"""``tomoclass ccc``: the constrained-correlation matrix, or its landmark block."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tomoclass.ccc import REAL_TILE, TILE
from tomoclass.cli.common import (
    MADE,
    Formatter,
    add_memory,
    add_sampling,
    progress_bar,
    read_particles,
    resumable,
    writable_folder,
)
from tomoclass.errors import TomoclassError
from tomoclass.io.files import output_group


def _run_ccc(args: argparse.Namespace) -> None:
    import time

    from tomoclass.parallel import world

    comm = world()
    out = writable_folder(args.output)
    started = time.perf_counter()
    plist = read_particles(args)
    checkpoint = out / ".ccc_checkpoint"
    with resumable(checkpoint):
        if args.landmarks is not None:
            written, where = _ccc_landmarks(args, plist, comm, checkpoint), ""
        else:
            written, where = _ccc_matrix(args, plist, comm, checkpoint)
    if comm.rank == 0:
        shutil.rmtree(checkpoint, ignore_errors=True)
        seconds = time.perf_counter() - started
        print(f"{len(plist)} particles, {args.mode} mode, {comm.size} rank(s): wrote {written} "
              f"in {seconds:.1f} s{where}")  # fmt: skip


def _ccc_matrix(args: argparse.Namespace, plist, comm, checkpoint: Path) -> tuple[str, str]:
    """The whole matrix (in memory, or built on disk beyond ``--memory``); what was written."""
    from tomoclass.ccc import correlation_matrix, open_matrix, write_matrix

    out = args.output
    n, budget = len(plist), args.memory * 2**30
    on_disk = comm.rank == 0 and n * n * 4 > budget
    target = open_matrix(writable_folder(out, create=True), n) if on_disk else None
    try:
        matrix = correlation_matrix(
            plist, args.mask, args.lowpass, args.binning, args.mode, lowest=args.lowest,
            tile=args.tile, comm=comm, checkpoint=checkpoint, resume=args.resume,
            progress=progress_bar(comm), cache_dir=out / ".ccc_features", memory_budget=budget,
            out=target,
        )  # fmt: skip
        if comm.rank == 0:
            with output_group():
                csv_path, npy_path = write_matrix(matrix, out, csv=not args.no_csv)
    finally:
        shutil.rmtree(out / ".ccc_features", ignore_errors=True)
        if target is not None:
            Path(target.filename).unlink(missing_ok=True)
    if comm.rank != 0:
        return "", ""
    written = npy_path.name if csv_path is None else f"{csv_path} and {npy_path.name}"
    return written, " (matrix built on disk)" if on_disk else ""


def _ccc_landmarks(args: argparse.Namespace, plist, comm, checkpoint: Path) -> str:
    """``--landmarks M``: the N×M block for a Nyström CPCA; what was written."""
    from tomoclass.ccc import choose_landmarks, landmark_block, write_landmarks

    if args.mode != "fourier":
        raise TomoclassError("--landmarks needs --mode fourier")
    landmarks = choose_landmarks(len(plist), args.landmarks, args.seed)
    result = landmark_block(
        plist, args.mask, args.lowpass, landmarks, args.binning, lowest=args.lowest,
        tile=args.tile, comm=comm, checkpoint=checkpoint, resume=args.resume,
        progress=progress_bar(comm),
    )  # fmt: skip
    if comm.rank != 0:
        return ""
    return f"{write_landmarks(result, args.output)} ({args.landmarks} landmarks)"


def add_ccc(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ccc",
        help="constrained-correlation matrix of aligned particles",
        formatter_class=Formatter,
        description=(
            "Compute the constrained cross-correlation (CCC) of every pair of aligned particles:\n"
            "the correlation over the Fourier region both particles sampled, inside the band\n"
            "up to the lowpass, after binning, alignment and masking. Writes DIR/\n"
            "correlation_matrix.csv (PyTom's format) and correlation_matrix.npy (DIR is made\n"
            "if missing). Ctrl-C stops within a second; the finished features and tiles stay\n"
            "in DIR/.ccc_checkpoint and the same command with --resume continues from them.\n\n"
            "For very many particles (10^5), --landmarks M computes only the correlations with\n"
            "M randomly chosen landmark particles (DIR/correlation_landmarks.npz, N×M); cpca\n"
            "then runs a Nyström CPCA from it (a few hundred to a few thousand landmarks; the\n"
            "README gives its accuracy against the full matrix).\n\n"
            "examples:\n"
            "  tomoclass ccc -p particles.xml -m mask.em -f 8 -o out\n"
            "  tomoclass ccc -p particles.xml -m mask.em -f 8 -o out --landmarks 1000\n"
            "  mpiexec -n 4 tomoclass ccc -p particles.xml -m mask.em -f 0.25 -b 2 -o out"
        ),
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="particle list")
    p.add_argument("-m", "--mask", type=Path, required=True, help="real-space mask volume")
    p.add_argument(
        "-f",
        "--lowpass",
        type=float,
        required=True,
        help="highest frequency, Fourier voxels of the binned box (below 1: fraction of it)",
    )
    p.add_argument("-b", "--binning", type=int, default=1, help="Fourier binning factor")
    p.add_argument("-o", "--output", type=Path, default=Path("."), help="output folder" + MADE)
    p.add_argument(
        "--mode",
        choices=("fourier", "real"),
        default="fourier",
        help="fourier: fast constrained correlation; real: PyTom's per-pair definition",
    )
    p.add_argument("--lowest", type=float, default=0.0, help="lowest frequency (Fourier voxels)")
    p.add_argument("--tile", type=int,
                   help="tile edge in particles (with --landmarks: rows per block; default: "
                   f"{TILE}, {REAL_TILE} in real mode). In Fourier mode another tile sums the "
                   "products in another order: values agree to float32 rounding (about "
                   "1e-6), and are identical for any --threads and MPI rank count with the "
                   "same tile")  # fmt: skip
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from DIR/.ccc_checkpoint")  # fmt: skip
    p.add_argument("--threads", type=int, help="threads per process (default: all cores)")
    add_memory(p, "larger features and matrices are memory-mapped files in DIR")
    p.add_argument("--no-csv", action="store_true",
                   help="write only the .npy (the CSV of 10^5 particles is ~100 GB)")  # fmt: skip
    p.add_argument(
        "--landmarks",
        type=int,
        metavar="M",
        help="only the N×M block against M random landmarks, for a Nyström CPCA",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the landmark choice")
    add_sampling(p)
    p.set_defaults(run=_run_ccc)
