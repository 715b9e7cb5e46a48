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
from tomoclass.io.files import output_group
from tomoclass.parallel import Serial
from tomoclass.simulate import DEFAULT_TILT_RANGES, write_simulation

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


def _check_new_folder(destination: Path) -> Path:
    """The writable parent of ``destination``, which must not exist or be an empty folder."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise TomoclassError(f"{destination}: exists and is not empty; choose a new output folder")
    parent = destination.absolute().parent
    if not parent.is_dir():
        raise TomoclassError(f"{parent}: output folder's parent does not exist")
    if not os.access(parent, os.W_OK):
        raise TomoclassError(f"{parent}: output folder's parent is not writable")
    return parent


def _publish_folder(build: Callable[[Path], None], destination: Path) -> None:
    """Run ``build`` into a temporary sibling folder, then rename it to ``destination``.

    ``destination`` must not exist or be an empty folder, so earlier results are never touched.
    """
    parent = _check_new_folder(destination)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=parent))
    except OSError as exc:
        raise TomoclassError(f"{parent}: cannot write here ({exc.strerror})") from None
    try:
        build(work)
        if destination.exists():
            destination.rmdir()
        os.replace(work, destination)
    except OSError as exc:  # a full disk, say, while writing the new folder
        raise TomoclassError(f"{destination}: cannot write ({exc.strerror or exc})") from None
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


def _progress(comm) -> Callable[[str, int, int], None] | None:
    """A progress callback drawing one bar per stage, on a terminal and on rank 0 only."""
    if comm.rank != 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="", leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _writable_folder(folder: Path, create: bool = False) -> Path:
    """``folder``, made if ``create``; a clear error if it is missing or not writable."""
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TomoclassError(f"{folder}: cannot create the folder ({exc.strerror})") from None
    if not folder.is_dir():
        raise TomoclassError(f"{folder}: output folder does not exist")
    if not os.access(folder, os.W_OK):
        raise TomoclassError(f"{folder}: output folder is not writable")
    return folder


def _run_ccc(args: argparse.Namespace) -> None:
    import time

    from tomoclass.io import read_particle_list
    from tomoclass.parallel import world

    comm = world()
    out = _writable_folder(args.output)
    started = time.perf_counter()
    plist = read_particle_list(args.particles)
    checkpoint = out / ".ccc_checkpoint"
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
    target = open_matrix(out, n) if on_disk else None
    try:
        matrix = correlation_matrix(
            plist, args.mask, args.lowpass, args.binning, args.mode, lowest=args.lowest,
            tile=args.tile, comm=comm, checkpoint=checkpoint, resume=args.resume,
            progress=_progress(comm), cache_dir=out / ".ccc_features", memory_budget=budget,
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
        progress=_progress(comm),
    )  # fmt: skip
    if comm.rank != 0:
        return ""
    return f"{write_landmarks(result, args.output)} ({args.landmarks} landmarks)"


def _add_ccc(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ccc",
        help="constrained-correlation matrix of aligned particles",
        formatter_class=_Formatter,
        description=(
            "Compute the constrained cross-correlation (CCC) of every pair of aligned particles:\n"
            "the correlation over the Fourier region both particles sampled, inside the band\n"
            "up to the lowpass, after binning, alignment and masking. Writes DIR/\n"
            "correlation_matrix.csv (PyTom's format) and correlation_matrix.npy. Interrupted\n"
            "runs keep finished tiles in DIR/.ccc_checkpoint; --resume reuses them.\n\n"
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
    p.add_argument("-o", "--output", type=Path, default=Path("."), help="output folder")
    p.add_argument(
        "--mode",
        choices=("fourier", "real"),
        default="fourier",
        help="fourier: fast constrained correlation; real: PyTom's per-pair definition",
    )
    p.add_argument("--lowest", type=float, default=0.0, help="lowest frequency (Fourier voxels)")
    p.add_argument("--tile", type=int, default=512,
                   help="tile edge in particles (with --landmarks: rows per block)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="reuse tiles of an interrupted run")
    p.add_argument("--threads", type=int, help="threads per process (default: all cores)")
    _add_memory(p, "larger features and matrices are memory-mapped files in DIR")
    p.add_argument("--no-csv", action="store_true",
                   help="write only the .npy (the CSV of 10^5 particles is ~100 GB)")  # fmt: skip
    p.add_argument(
        "--landmarks",
        type=int,
        metavar="M",
        help="only the N×M block against M random landmarks, for a Nyström CPCA",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the landmark choice")
    p.set_defaults(run=_run_ccc)


def _write_text(path: Path, text: str) -> None:
    from tomoclass.io.files import atomic_output

    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)


def _run_cpca(args: argparse.Namespace) -> None:
    import json
    import platform
    import time

    import numpy as np
    import scipy

    from tomoclass import __version__
    from tomoclass.average import class_averages, write_averages
    from tomoclass.ccc import LandmarkBlock, read_matrix
    from tomoclass.cpca import cpca
    from tomoclass.io import read_particle_list, write_particle_list
    from tomoclass.parallel import world

    started = time.perf_counter()
    folder = args.output.parent if args.tables is None else args.tables
    prefix = args.average or args.output.with_suffix("").as_posix() + "_class"
    for place in {args.output.parent, Path(prefix).parent}:
        _writable_folder(place)
    _writable_folder(folder, create=True)
    plist = read_particle_list(args.particles)
    matrix = read_matrix(args.ccc)
    rows = len(matrix.block) if isinstance(matrix, LandmarkBlock) else len(matrix)
    if rows != len(plist):
        raise TomoclassError(
            f"{args.ccc}: correlations of {rows} particles, but {len(plist)} in {args.particles}"
        )
    neig = args.neig if args.neig == "auto" else _positive_int(args.neig, "-e/--neig")
    result = cpca(matrix, neig, args.nclass * args.oversample, args.seed, name=str(args.ccc))
    eigen_seconds = time.perf_counter() - started
    labels, plan = result.labels.tolist(), None
    if args.oversample > 1:
        lowpass = args.lowpass if args.lowpass is not None else 0.25
        labels, plan, before = _merge_oversampled(plist, labels, args.nclass, None, lowpass, 1)
    classified = plist.with_classes(labels)
    comm = world()
    averages = class_averages(classified, binning=args.binning, lowpass=args.lowpass, comm=comm)
    if comm.rank != 0:
        return
    with output_group():  # all of these are replaced, or none
        write_particle_list(classified, args.output)
        write_averages(averages, prefix)
        for name in ("eigenvalues", "coefficients"):
            _write_table(folder / name, getattr(result, name))
        if plan is not None:
            from tomoclass.merge import dendrogram_png

            dendrogram_png(plan, before, folder / "merge_dendrogram.png")
        run = {
            "command": "cpca",
            "parameters": {"particles": str(args.particles), "ccc": str(args.ccc),
                           "output": str(args.output.absolute()), "neig": args.neig,
                           "neig_used": result.neig, "nclass": args.nclass, "seed": args.seed,
                           "binning": args.binning, "lowpass": args.lowpass},
            "class_sizes": {a.label: a.count for a in averages},
            "oversample": {"factor": args.oversample,
                           "merge": plan.mapping if plan is not None else None},
            "versions": {"tomoclass": __version__, "numpy": np.__version__,
                         "scipy": scipy.__version__, "python": platform.python_version()},
            "timings": {"cpca_seconds": eigen_seconds,
                        "total_seconds": time.perf_counter() - started},
        }  # fmt: skip
        _write_text(folder / "run.json", json.dumps(run, indent=2) + "\n")
    sizes = ", ".join(f"{a.label}: {a.count}" for a in averages)
    print(f"neig {result.neig}, {args.nclass} classes ({sizes}): wrote {args.output}, "
          f"averages {prefix}_<k>.em, eigenvalues and run.json in {folder}")  # fmt: skip


def _merge_oversampled(plist, labels, nclass: int, mask, lowpass: float, binning: int):
    """``--oversample``: merge the classes of ``labels`` into ``nclass`` by hierarchical
    clustering of their averages; returns the merged labels and the merge plan."""
    from tomoclass.average import class_averages
    from tomoclass.features import box_size
    from tomoclass.fourier import frequency_radius
    from tomoclass.mask import load_mask, spherical_mask
    from tomoclass.merge import merge_plan

    box = box_size(plist)
    mask = spherical_mask(box) if mask is None else load_mask(mask, box)
    averages = class_averages(plist, labels=labels, binning=1)
    plan = merge_plan(averages, mask, frequency_radius(lowpass, box), n_clusters=nclass)
    return [plan.mapping[str(v)] for v in labels], plan, averages


def _write_table(stem: Path, values) -> None:
    """``stem.npy`` and ``stem.csv`` (one row per line), each written atomically."""
    from tomoclass.io.files import save_npy

    save_npy(stem.with_suffix(".npy"), values)
    rows = values.reshape(len(values), -1)
    text = "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in rows)
    _write_text(stem.with_suffix(".csv"), text)


def _positive_int(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise TomoclassError(f"{name} must be 'auto' or a whole number, got {text!r}") from None
    return value


def _add_cpca(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cpca",
        help="classify by CPCA: eigenvectors of the CCC matrix, then k-means",
        formatter_class=_Formatter,
        description=(
            "Constrained PCA (Förster et al. 2008): the top NEIG eigenvectors of the CCC matrix,\n"
            "coefficients sqrt(eigenvalue)·eigenvector, k-means++ (10 seeded restarts) into\n"
            "NCLASS classes. Writes the classified list, one wedge-weighted average per class\n"
            "(PREFIX_<k>.em with its wedge sum), eigenvalues and coefficients (.npy, .csv) and\n"
            "run.json. -e auto (default) counts the eigenvalues above a Marchenko-Pastur noise\n"
            "edge (at least NCLASS); too few eigenvectors silently ruin CPCA. Given the landmark\n"
            "block of 'ccc --landmarks M' (.npz), the eigenvectors come from a Nyström\n"
            "approximation of the full matrix (NEIG at most M/2).\n\n"
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
    p.add_argument("-o", "--output", type=Path, required=True, help="classified particle list")
    p.add_argument("-a", "--average", help="prefix of the class averages (default: OUT_class)")
    p.add_argument(
        "-t", "--tables", type=Path, help="folder for eigenvalues, coefficients, run.json"
    )
    p.add_argument("-b", "--binning", type=int, default=1, help="binning of the averages")
    p.add_argument("-f", "--lowpass", type=float, help="low-pass of the averages (Fourier voxels)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same classes")
    p.add_argument("--oversample", type=int, default=1,
                   help="classify into NCLASS x this many, then merge to NCLASS")  # fmt: skip
    p.set_defaults(run=_run_cpca)


def _run_average(args: argparse.Namespace) -> None:
    from tomoclass.average import class_averages, write_averages
    from tomoclass.io import read_particle_list
    from tomoclass.parallel import world

    comm = world()
    _writable_folder(Path(args.output).parent)
    plist = read_particle_list(args.particles)
    averages = class_averages(
        plist, binning=args.binning, lowpass=args.lowpass, floor=args.floor, comm=comm
    )
    if comm.rank != 0:
        return
    with output_group():
        paths = write_averages(averages, args.output)
    for path, avg in zip(paths, averages, strict=True):
        print(f"class {avg.label}: {avg.count} particles -> {path}")


def _add_average(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "average",
        help="wedge-weighted average of every class",
        formatter_class=_Formatter,
        description=(
            "Average the aligned particles of each class in Fourier space, weighted by their\n"
            "rotated wedges and divided by the wedge sum (floor: FLOOR × class size, PyTom's\n"
            "0.05). Writes PREFIX_<class>.em and PREFIX_<class>_wedgesum.em (centred).\n\n"
            "example:\n  tomoclass average -p classified.xml -o averages/class"
        ),
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="particle list")
    p.add_argument("-o", "--output", required=True, help="prefix of the output files")
    p.add_argument("-b", "--binning", type=int, default=1, help="Fourier binning factor")
    p.add_argument("-f", "--lowpass", type=float, help="low-pass radius, Fourier voxels")
    p.add_argument("--floor", type=float, default=0.05, help="wedge-sum floor per particle")
    p.set_defaults(run=_run_average)


def _run_select(args: argparse.Namespace) -> None:
    from tomoclass.io import read_particle_list, write_particle_list

    plist = read_particle_list(args.particles)
    wanted = [c.strip() for c in args.classes.split(",") if c.strip()]
    missing = sorted(set(wanted) - set(plist.class_names()))
    if missing:
        raise TomoclassError(f"{args.particles}: no class {', '.join(missing)} in the list")
    chosen = plist.select(wanted)
    write_particle_list(chosen, args.output)
    print(f"wrote {len(chosen)} of {len(plist)} particles to {args.output}")


def _run_split(args: argparse.Namespace) -> None:
    from tomoclass.io import read_particle_list, write_particle_list

    plist = read_particle_list(args.particles)
    parts = {Path(f"{args.output}_{name if name is not None else 'none'}.xml"): (name, part)
             for name, part in plist.split_by_class().items()}  # fmt: skip
    with output_group():
        for path, (_, part) in parts.items():
            write_particle_list(part, path)
    for path, (name, part) in parts.items():
        print(f"class {name}: {len(part)} particles -> {path}")


def _add_select_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "select",
        help="keep the particles of chosen classes",
        formatter_class=_Formatter,
        description="Keep the particles of the given classes, e.g. after judging the averages.",
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="classified list")
    p.add_argument("--classes", required=True, help="comma-separated class names, e.g. 1,2")
    p.add_argument("-o", "--output", type=Path, required=True, help="particle list to write")
    p.set_defaults(run=_run_select)
    p = sub.add_parser(
        "split",
        help="one particle list per class",
        formatter_class=_Formatter,
        description="Write PREFIX_<class>.xml for every class of the list.",
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="classified list")
    p.add_argument("-o", "--output", required=True, help="prefix of the lists")
    p.set_defaults(run=_run_split)


_MCO_REQUIRED = {"particles": "-p", "mask": "-m", "classes": "-c", "destination": "-d"}
_AC_REQUIRED = {"start_temperature": "--start-temperature", "annealing_step": "--annealing-step"}


def _mco_settings(args: argparse.Namespace, read_particle_list):
    """The particle list of an MCO run; with ``-j`` the job file's settings fill ``args``."""
    if args.job is None:
        required = {**_MCO_REQUIRED, **(_AC_REQUIRED if args.command == "mco-ac" else {})}
        missing = [flag for key, flag in required.items() if getattr(args, key) is None]
        if missing:
            raise TomoclassError(f"give -j JOB.xml or {', '.join(missing)}")
        return read_particle_list(args.particles)
    from tomoclass.io.pytom_job import read_mco_job

    job = read_mco_job(args.job)
    kind = "ac" if args.command == "mco-ac" else "exmx"
    if job.kind != kind:
        raise TomoclassError(f"{args.job}: an MCO-{job.kind.upper()} job, not for {args.command}")
    args.particles, args.mask, args.classes = args.job, job.mask, job.classes
    args.destination, args.iterations, args.end_threshold = (
        job.destination, job.iterations, job.end_threshold)  # fmt: skip
    args.binning, args.lowest_frequency = job.binning, job.lowest_frequency
    args.highest_frequency = job.highest_frequency
    if kind == "ac":
        args.start_temperature, args.annealing_step = job.start_temperature, job.annealing_step
        args.local_search_increment = job.local_search_increment
        args.temperature, args.criterion = job.temperature, job.criterion
    return job.particles


def _run_job(args: argparse.Namespace) -> None:
    from tomoclass.io import read_particle_list
    from tomoclass.io.pytom_job import MCOJob, write_mco_job

    annealing = args.kind == "ac"
    job = MCOJob(
        kind=args.kind, particles=read_particle_list(args.particles),
        mask=args.mask.absolute(), destination=args.destination.absolute(),
        classes=args.classes, iterations=args.iterations, end_threshold=args.end_threshold,
        binning=args.binning, lowest_frequency=args.lowest_frequency,
        highest_frequency=args.highest_frequency,
        start_temperature=args.start_temperature if annealing else None,
        annealing_step=args.annealing_step if annealing else None,
        local_search_increment=args.local_search_increment if annealing else None,
        temperature=args.temperature if annealing else None,
        criterion=args.criterion if annealing else None,
    )  # fmt: skip
    if annealing and (job.start_temperature is None or job.annealing_step is None):
        raise TomoclassError("an AC job needs --start-temperature and --annealing-step")
    write_mco_job(job, args.output)
    print(f"wrote {args.output}; run it with: tomoclass mco-{args.kind} -j {args.output}")


class McoCheckpoint:
    """The state of an MCO run after each iteration or round, beside its destination
    (``.DIR.checkpoint``), so that ``--resume`` continues an interrupted run to the same
    result. Only rank 0 writes; every rank reads."""

    KEYS = ("command", "particles", "mask", "classes", "lowest_frequency", "highest_frequency",
            "binning", "iterations", "end_threshold", "seed", "allow_class_collapse", "max_shift",
            "update_shifts", "oversample",
            "start_temperature", "annealing_step", "local_search_increment", "temperature",
            "criterion")  # fmt: skip

    def __init__(self, args: argparse.Namespace, comm) -> None:
        destination = args.destination.absolute()
        self.folder = destination.parent / f".{destination.name}.checkpoint"
        self.comm = comm
        self.params = {k: str(getattr(args, k, None)) for k in self.KEYS}
        if not args.resume and comm.rank == 0:
            shutil.rmtree(self.folder, ignore_errors=True)

    def save(self, progress) -> None:
        import json

        from tomoclass.io.files import save_npy

        if self.comm.rank != 0:
            return
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise TomoclassError(f"{self.folder}: cannot write ({exc.strerror})") from None
        arrays = {"labels": progress.labels, f"step_{progress.step}": progress.labels}
        if progress.best_labels is not None:
            arrays["best_labels"] = progress.best_labels
        for name, values in arrays.items():
            save_npy(self.folder / f"{name}.npy", values)
        state = {"params": self.params, "step": progress.step, "trace": progress.trace,
                 "best_total": progress.best_total, "swaps": progress.swaps}  # fmt: skip
        _write_text(self.folder / "state.json", json.dumps(state))

    def load(self):
        import json

        import numpy as np

        from tomoclass.mco import Progress

        path = self.folder / "state.json"
        if not path.exists():
            raise TomoclassError(f"{self.folder}: no checkpoint to resume from")
        state = json.loads(path.read_text())
        if state["params"] != self.params:
            raise TomoclassError(
                f"{self.folder}: checkpoint of a run with other parameters; run without --resume"
            )
        best = self.folder / "best_labels.npy"
        return Progress(
            step=state["step"],
            labels=np.load(self.folder / "labels.npy"),
            trace=state["trace"],
            best_labels=np.load(best) if best.exists() else None,
            best_total=state["best_total"],
            swaps=[tuple(s) for s in state["swaps"]],
        )

    def steps(self, progress) -> list:
        """The labels of every step done before ``progress`` (none for a fresh run)."""
        import numpy as np

        if progress is None:
            return []
        return [(k, np.load(self.folder / f"step_{k}.npy")) for k in range(1, progress.step + 1)]

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _run_mco(args: argparse.Namespace) -> None:
    """mco-exmx and mco-ac: run (on every MPI rank), then rank 0 writes a new folder with
    every iteration or round."""
    import json
    import time

    from tomoclass import __version__
    from tomoclass.average import class_averages, write_averages
    from tomoclass.io import read_particle_list, write_particle_list
    from tomoclass.mco import mco_ac, mco_exmx
    from tomoclass.parallel import world

    comm = world()
    started = time.perf_counter()
    plist = _mco_settings(args, read_particle_list)
    _check_new_folder(args.destination)  # now, not after the whole run
    annealing = args.command == "mco-ac"
    step_name = "round" if annealing else "iteration"
    checkpoint = McoCheckpoint(args, comm)
    resume = checkpoint.load() if args.resume else None
    steps = checkpoint.steps(resume)

    bar = _progress(comm)
    total = args.iterations
    if annealing:
        total = int(-(-args.start_temperature // args.annealing_step)) if args.annealing_step else 0

    def keep_step(progress) -> None:
        """Checkpoint; then a bar on a terminal, or one line per step in a log."""
        entry = progress.trace[-1]
        steps.append((progress.step, progress.labels.copy()))
        checkpoint.save(progress)
        if bar is not None:
            bar(f"{step_name}s", progress.step, max(total, progress.step))
        elif comm.rank == 0:
            extra = f", T {entry['temperature']:.3g}" if annealing else ""
            print(f"{step_name} {entry[step_name]}: {entry['changes']} changed{extra}, "
                  f"occupancy {entry['occupancy']}")  # fmt: skip

    features = checkpoint.folder.with_suffix(".features")
    common = {"lowest": args.lowest_frequency, "seed": args.seed, "comm": comm,
              "end_threshold": args.end_threshold, "resume": resume,
              "max_shift": args.max_shift, "update_shifts": args.update_shifts,
              "allow_collapse": args.allow_class_collapse,
              "cache": (features, args.memory * 2**30)}  # fmt: skip
    swaps = None
    if args.oversample < 1:
        raise TomoclassError(f"--oversample must be >= 1, got {args.oversample}")
    classes = args.classes * args.oversample
    try:
        if annealing:
            result, swaps = mco_ac(
                plist, args.mask, classes, args.start_temperature, args.annealing_step,
                args.highest_frequency, args.binning, on_round=keep_step,
                local_search=args.local_search_increment, temperature=args.temperature,
                criterion=args.criterion, **common,
            )  # fmt: skip
        else:
            result = mco_exmx(
                plist, args.mask, classes, args.highest_frequency, args.binning,
                iterations=args.iterations, on_iteration=keep_step, **common,
            )  # fmt: skip
    except BaseException:
        if comm.rank == 0:  # no barrier: a failed rank is not coming back
            shutil.rmtree(features, ignore_errors=True)
        raise
    comm.allgather(None)  # every rank is done with the shared features
    if comm.rank == 0:
        shutil.rmtree(features, ignore_errors=True)
    labels, plan = result.labels.tolist(), None
    if args.oversample > 1:
        labels, plan, before = _merge_oversampled(plist, labels, args.classes, args.mask,
                                                  args.highest_frequency, args.binning)  # fmt: skip
    classified = plist.with_classes(labels)
    if result.shifts is not None:
        classified = classified.with_shifts(result.shifts)
    averages = class_averages(classified, binning=args.binning, comm=comm)
    if comm.rank != 0:
        return

    def build(work: Path) -> None:
        for number, labels in steps:
            folder = work / f"{step_name}_{number}"
            folder.mkdir()
            write_particle_list(plist.with_classes(labels.tolist()),
                                folder / "classifiedParticles.xml")  # fmt: skip
        if swaps is not None:
            lines = ["round,particle,from,to,score_lost\n"]
            lines += [f"{r},{i},{a},{b},{loss:.6g}\n" for r, i, a, b, loss in swaps]
            (work / "swaps.csv").write_text("".join(lines))
        write_particle_list(classified, work / "classifiedParticles.xml")
        write_averages(averages, work / "class")
        if plan is not None:
            from tomoclass.merge import dendrogram_png

            dendrogram_png(plan, before, work / "merge_dendrogram.png")
        run = {
            "command": args.command,
            "oversample": {"factor": args.oversample,
                           "merge": plan.mapping if plan is not None else None},
            "parameters": {k: (str(v) if isinstance(v, Path) else v)
                           for k, v in vars(args).items() if k != "run"},
            "ranks": comm.size,
            "versions": {"tomoclass": __version__},
            "trace": result.trace,
            "timings": {"total_seconds": time.perf_counter() - started},
        }  # fmt: skip
        (work / "run.json").write_text(json.dumps(run, indent=2) + "\n")

    _publish_folder(build, args.destination)
    checkpoint.remove()
    extra = "swaps.csv, " if annealing else ""
    print(f"wrote {args.destination}/classifiedParticles.xml, class_<k>.em, "
          f"{step_name}_<i>/, {extra}run.json")  # fmt: skip


def _add_mco_options(p: argparse.ArgumentParser, annealing: bool) -> None:
    """The settings of an MCO run (also those of ``tomoclass job``)."""
    p.add_argument("-p", "--particles", type=Path, help="particle list")
    p.add_argument("-m", "--mask", type=Path, help="real-space mask volume")
    p.add_argument("-c", "--classes", type=int, help="number of classes")
    p.add_argument("-d", "--destination", type=Path, help="new output folder")
    p.add_argument("--lowest-frequency", type=float, default=0.0, help="Fourier voxels")
    p.add_argument(
        "--highest-frequency",
        type=float,
        default=0.25,
        help="Fourier voxels of the binned box (below 1: fraction of it)",
    )
    p.add_argument("-b", "--binning", type=int, default=1, help="Fourier binning factor")
    p.add_argument("-n", "--iterations", type=int, default=10, help="most EXMX iterations")
    p.add_argument("-t", "--end-threshold", type=float, default=0.05,
                   help="stop when at most this fraction of particles changed class")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (start and annealing)")
    p.add_argument("--max-shift", type=float, default=0.0,
                   help="best-shift search radius, voxels (0: no search)")  # fmt: skip
    p.add_argument("--allow-class-collapse", action="store_true",
                   help="let classes empty instead of re-seeding them")  # fmt: skip
    p.add_argument("--update-shifts", action="store_true",
                   help="store the best shifts (needs --max-shift)")  # fmt: skip
    p.add_argument("--oversample", type=int, default=1,
                   help="classify into CLASSES x this many, then merge to CLASSES")  # fmt: skip
    if annealing:
        p.add_argument("--start-temperature", type=float,
                       help="first temperature (x score spread for sigma)")  # fmt: skip
        p.add_argument("--annealing-step", type=float,
                       help="temperature drop per round")  # fmt: skip
        p.add_argument("--local-search-increment", type=int, default=5,
                       help="EXMX iterations per round")  # fmt: skip
        p.add_argument("--temperature", choices=("sigma", "annealing"), default="sigma",
                       help="sigma: T x std of all scores; annealing: T as is")  # fmt: skip
        p.add_argument("--criterion", choices=("metropolis", "threshold"), default="metropolis",
                       help="acceptance of a jump to a worse class")  # fmt: skip


def _add_mco(sub: argparse._SubParsersAction, name: str, summary: str, text: str) -> None:
    p = sub.add_parser(name, help=summary, formatter_class=_Formatter, description=text)
    p.add_argument("-j", "--job", type=Path,
                   help="PyTom job file (MCOEXMXJob/MCOACJob) instead of the flags")  # fmt: skip
    _add_mco_options(p, name == "mco-ac")
    p.add_argument("--threads", type=int, help="threads per process (default: all cores)")
    _add_memory(p, "larger features are memory-mapped from .DIR.features (shared by MPI ranks)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from .DIR.checkpoint")  # fmt: skip
    p.set_defaults(run=_run_mco)


def _add_memory(p: argparse.ArgumentParser, beyond: str) -> None:
    p.add_argument("--memory", type=float, default=2.0, help=f"GiB kept in memory: {beyond}")


def _add_job(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "job",
        help="write a PyTom-compatible MCO job file",
        formatter_class=_Formatter,
        description=(
            "Write an MCOEXMXJob (exmx) or MCOACJob (ac) XML file that PyTom and\n"
            "'tomoclass mco-exmx|mco-ac -j JOB.xml' both read.\n\n"
            "example:\n  tomoclass job exmx -p particles.xml -m mask.em -c 3 -d mco "
            "--highest-frequency 8 -o job.xml"
        ),
    )
    p.add_argument("kind", choices=("exmx", "ac"), help="which algorithm")
    p.add_argument("-o", "--output", type=Path, required=True, help="job file to write")
    _add_mco_options(p, annealing=True)
    p.set_defaults(run=_run_job)


def _add_mco_commands(sub: argparse._SubParsersAction) -> None:
    _add_mco(sub, "mco-exmx", "classify by multiple correlation optimisation (EXMX)", (
        "MCO-EXMX: iterate class averages (in the particles' own wedges) and reassignment\n"
        "of every particle to its best-correlating class, until at most END_THRESHOLD of\n"
        "the particles change class. Starts from the list's classes, or at random (seeded)\n"
        "when the list has at most one. Writes DIR/classifiedParticles.xml, class_<k>.em,\n"
        "iteration_<i>/classifiedParticles.xml and run.json with the per-iteration trace.\n\n"
        "example:\n  tomoclass mco-exmx -p particles.xml -m mask.em -c 3 -d mco "
        "--highest-frequency 8"
    ))  # fmt: skip
    _add_mco(sub, "mco-ac", "classify by MCO with simulated annealing (AC)", (
        "MCO-AC: rounds of EXMX (LOCAL_SEARCH_INCREMENT iterations each) followed by an\n"
        "annealed reassignment: every particle proposes a random other class and moves if\n"
        "the criterion accepts the score it loses at the current temperature; the\n"
        "temperature drops by ANNEALING_STEP per round until it reaches 0, then EXMX runs\n"
        "to convergence. The best assignment by total score is kept. Writes\n"
        "classifiedParticles.xml, class_<k>.em, round_<r>/, swaps.csv and run.json.\n\n"
        "example:\n  tomoclass mco-ac -p particles.xml -m mask.em -c 4 -d ac "
        "--highest-frequency 8 --start-temperature 2 --annealing-step 0.2"
    ))  # fmt: skip


def _run_merge(args: argparse.Namespace) -> None:
    import json

    from tomoclass.average import class_averages, read_averages, write_averages
    from tomoclass.features import box_size
    from tomoclass.fourier import frequency_radius
    from tomoclass.io import read_particle_list, write_particle_list
    from tomoclass.mask import load_mask, spherical_mask
    from tomoclass.merge import dendrogram_png, merge_plan

    _writable_folder(args.output.absolute().parent)
    plist = read_particle_list(args.particles)
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
               "ccc_between_averages": plan.correlation.round(6).tolist()}  # fmt: skip
    with output_group():
        write_particle_list(merged, args.output)
        write_averages(new_averages, f"{stem}_class")
        dendrogram_png(plan, averages, f"{stem}_dendrogram.png")
        _write_text(Path(f"{stem}_merge.json"), json.dumps(summary, indent=2) + "\n")
    moves = ", ".join(f"{old}→{new}" for old, new in plan.mapping.items())
    print(f"{len(averages)} classes merged into {len(new_averages)} ({moves}): wrote "
          f"{args.output}, {stem}_class_<k>.em, {stem}_dendrogram.png")  # fmt: skip


def _add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="merge look-alike classes by hierarchical clustering of their averages",
        formatter_class=_Formatter,
        description=(
            "Average every class, correlate the averages (masked, band-passed, no wedge),\n"
            "cluster the distances 1 - CCC with average linkage, and merge classes by explicit\n"
            "groups, into K clusters, or below a distance threshold. Writes OUT.xml,\n"
            "OUT_class_<k>.em, OUT_dendrogram.png and OUT_merge.json.\n\n"
            "examples:\n  tomoclass merge -p classified.xml --n-clusters 3 -o merged.xml\n"
            '  tomoclass merge -p classified.xml --groups "0,2,3;1,4;5,6" -o merged.xml'
        ),
    )
    p.add_argument("-p", "--particles", type=Path, required=True, help="classified list")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--groups", help="classes to merge, e.g. 0,2,3;1,4;5,6")
    how.add_argument("--n-clusters", type=int, help="number of merged classes")
    how.add_argument("--threshold", type=float, help="merge below this distance 1 - CCC")
    p.add_argument("-o", "--output", type=Path, required=True, help="merged list to write")
    p.add_argument("-m", "--mask", type=Path, help="mask (default: a sphere of the box)")
    p.add_argument("-a", "--averages",
                   help="reuse existing averages PREFIX_<k>.em (else computed)")  # fmt: skip
    p.add_argument("-f", "--lowpass", type=float, default=0.25,
                   help="band of the comparison, Fourier voxels (below 1: of the box)")  # fmt: skip
    p.set_defaults(run=_run_merge)


def _run_report(args: argparse.Namespace) -> None:
    from tomoclass.plotting import report

    print(f"wrote {report(args.directory)} (pictures in {args.directory / 'report'})")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="pictures and one HTML page of a run's output folder",
        formatter_class=_Formatter,
        description=(
            "Draw what a tomoclass command left in DIR: eigenvalue spectrum, coefficient\n"
            "scatter by class, CCC matrix ordered by class, central slices of the class\n"
            "averages with their sizes, dendrograms, the iteration/annealing trace and the\n"
            "parameters of run.json. Writes DIR/report/*.png and a self-contained\n"
            "DIR/report.html.\n\nexample:\n  tomoclass report mco"
        ),
    )
    p.add_argument("directory", type=Path, help="output folder of a tomoclass command")
    p.set_defaults(run=_run_report)


def _run_demo(args: argparse.Namespace) -> None:
    import json
    import time

    from tomoclass.average import class_averages, write_averages
    from tomoclass.ccc import correlation_matrix, write_matrix
    from tomoclass.cpca import cpca
    from tomoclass.io import read_particle_list, write_particle_list
    from tomoclass.metrics import adjusted_rand_index
    from tomoclass.plotting import report
    from tomoclass.simulate import SimulationConfig, read_truth, simulate_particles

    folder = args.directory or Path(tempfile.mkdtemp(prefix="tomoclass-demo-"))
    started = time.perf_counter()
    config = SimulationConfig(n_particles=args.particles, n_classes=args.classes, box=32,
                              snr=args.snr, seed=args.seed)  # fmt: skip
    print(f"1/4 simulating {config.n_particles} particles of {config.n_classes} conformations "
          f"(box 32, SNR {config.snr}, 4 tomograms with different wedges) in {folder}")  # fmt: skip
    sim = simulate_particles(config)
    _publish_folder(lambda work: write_simulation(sim, work), folder)
    plist = read_particle_list(folder / "particles.xml")
    print("2/4 constrained-correlation matrix (lowpass 8 Fourier voxels)")
    matrix = correlation_matrix(plist, folder / "mask.em", 8, progress=_progress(Serial()))
    write_matrix(matrix, folder)
    print("3/4 CPCA (neig auto) and k-means")
    result = cpca(matrix, "auto", config.n_classes, args.seed)
    classified = plist.with_classes(result.labels.tolist())
    write_particle_list(classified, folder / "classified.xml")
    print("4/4 wedge-weighted class averages and the report")
    averages = class_averages(classified)
    write_averages(averages, folder / "class")
    for name in ("eigenvalues", "coefficients"):
        _write_table(folder / name, getattr(result, name))
    run = {"command": "demo", "parameters": {"particles": args.particles, "classes": args.classes,
           "snr": args.snr, "seed": args.seed, "neig_used": result.neig,
           "output": str((folder / "classified.xml").absolute())},
           "class_sizes": {a.label: a.count for a in averages}}  # fmt: skip
    _write_text(folder / "run.json", json.dumps(run, indent=2) + "\n")
    page = report(folder)
    truth = read_truth(folder / "truth.csv")
    ari = adjusted_rand_index([truth[p.filename] for p in plist], result.labels)
    sizes = ", ".join(f"{a.label}: {a.count}" for a in averages)
    print(f"\nadjusted Rand index against the truth: {ari:.3f}  (neig {result.neig}; "
          f"class sizes {sizes}; {time.perf_counter() - started:.0f} s)")  # fmt: skip
    print(
        f"outputs in {folder}: classified.xml, class_<k>.em (+ _wedgesum), "
        "correlation_matrix.csv, truth.csv"
    )
    print(f"look at the report: {page}")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a data set, classify it end to end and report (seconds)",
        formatter_class=_Formatter,
        description=(
            "Simulate aligned particles with known classes, then run ccc → cpca → average and\n"
            "report the adjusted Rand index against the truth. Without DIR the outputs go to a\n"
            "new temporary folder."
        ),
    )
    p.add_argument("directory", type=Path, nargs="?", help="new (or empty) output folder")
    p.add_argument("-n", "--particles", type=int, default=300, help="number of particles")
    p.add_argument("-k", "--classes", type=int, default=3, help="number of classes")
    p.add_argument("--snr", type=float, default=0.3, help="signal variance / noise variance")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(run=_run_demo)


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
        default=list(DEFAULT_TILT_RANGES),
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
            "Start with 'tomoclass demo': it simulates particles with known classes, classifies\n"
            "them (ccc -> cpca -> average) and writes a report. A typical run on your data:\n"
            "  tomoclass ccc -p particles.xml -m mask.em -f 8 -o out\n"
            "  tomoclass cpca -p particles.xml -c out/correlation_matrix.csv -n 3 "
            "-o out/classified.xml\n"
            "  tomoclass mco-exmx -p particles.xml -m mask.em -c 3 -d mco --highest-frequency 8\n"
            "  tomoclass report out\n"
            "'tomoclass COMMAND --help' explains each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tomoclass {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_demo(sub)
    _add_simulate(sub)
    _add_ccc(sub)
    _add_cpca(sub)
    _add_mco_commands(sub)
    _add_job(sub)
    _add_average(sub)
    _add_merge(sub)
    _add_select_split(sub)
    _add_report(sub)
    _add_convert(sub)
    return parser


def _abort_other_ranks() -> None:
    """Under MPI, stop the other ranks too, so that none waits forever in a collective."""
    from tomoclass.parallel import world

    comm = world()
    if comm.size > 1:
        sys.stderr.flush()
        comm.Abort(EXIT_BAD_INPUT)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tomoclass`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            parser.error(f"--threads must be >= 1, got {threads}")
        os.environ["RAYON_NUM_THREADS"] = str(threads)  # read when the core's pool starts
    try:
        args.run(args)
    except TomoclassError as exc:
        print(f"tomoclass: error: {exc}", file=sys.stderr)
        _abort_other_ranks()
        return EXIT_BAD_INPUT
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


if __name__ == "__main__":
    sys.exit(main())
