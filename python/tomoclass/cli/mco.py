"""``tomoclass mco-exmx``, ``mco-ac`` and ``job``: multiple correlation optimisation, and
PyTom's job files."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoclass import __version__
from tomoclass.classify import ANNEALING_STEP, START_TEMPERATURE
from tomoclass.cli.common import (
    ANGSTROM_RULE,
    MADE,
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
    resumable,
    shared_cache,
    warn,
    warn_replaced_scores,
    write_classified,
    write_text,
)
from tomoclass.errors import TomoclassError

_MCO_REQUIRED = {"particles": "-p", "mask": "-m", "classes": "-c", "destination": "-d"}


def _mco_settings(args: argparse.Namespace):
    """The particle list of an MCO run; with ``-j`` the job file's settings fill ``args``."""
    if args.job is None:
        missing = [flag for key, flag in _MCO_REQUIRED.items() if getattr(args, key) is None]
        if missing:
            raise TomoclassError(f"give -j JOB.xml or {', '.join(missing)}")
        return read_particles(args)
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
    args.symmetry = job.symmetry
    if kind == "ac":
        args.start_temperature, args.annealing_step = job.start_temperature, job.annealing_step
        args.local_search_increment = job.local_search_increment
        args.temperature, args.criterion = job.temperature, job.criterion
    return read_particles(args, args.job, job.particles)


def _run_job(args: argparse.Namespace) -> None:
    from tomoclass.geometry import PointSymmetry
    from tomoclass.io.pytom_job import MCOJob, write_mco_job

    annealing = args.kind == "ac"
    job = MCOJob(
        kind=args.kind, particles=read_particles(args),
        mask=args.mask.absolute(), destination=args.destination.absolute(),
        classes=args.classes, iterations=args.iterations, end_threshold=args.end_threshold,
        binning=args.binning, lowest_frequency=args.lowest_frequency,
        highest_frequency=args.highest_frequency,
        start_temperature=args.start_temperature if annealing else None,
        annealing_step=args.annealing_step if annealing else None,
        local_search_increment=args.local_search_increment if annealing else None,
        temperature=args.temperature if annealing else None,
        criterion=args.criterion if annealing else None,
        symmetry=point_symmetry(args.symmetry) or PointSymmetry(),
    )  # fmt: skip
    write_mco_job(job, args.output)
    print(f"wrote {args.output}; run it with: tomoclass mco-{args.kind} -j {args.output}")


class McoCheckpoint:
    """The state of an MCO run after each iteration or round, and its finished feature
    blocks (``features/``), beside its destination (``.DIR.checkpoint``), so that
    ``--resume`` continues an interrupted run to the same result. Only rank 0 writes the
    state; every rank reads it, and writes its own feature blocks."""

    KEYS = ("command", "particles", "mask", "classes", "lowest_frequency", "highest_frequency",
            "binning", "iterations", "end_threshold", "seed", "allow_class_collapse", "max_shift",
            "update_shifts", "oversample", "start", "restarts", "symmetry",
            "start_temperature", "annealing_step", "local_search_increment", "temperature",
            "criterion")  # fmt: skip

    def __init__(self, args: argparse.Namespace, comm) -> None:
        from tomoclass.checkpoint import Checkpoint

        destination = args.destination.absolute()
        self.folder = destination.parent / f".{destination.name}.checkpoint"
        self.features = self.folder / "features"
        self.comm = comm
        params = {k: str(getattr(args, k, None)) for k in self.KEYS}
        self.store = Checkpoint(self.folder, params, args.resume, comm)

    def save(self, progress) -> None:
        import json

        if self.comm.rank != 0:
            return
        arrays = {"labels": progress.labels, f"step_{progress.step}": progress.labels}
        if progress.best_labels is not None:
            arrays["best_labels"] = progress.best_labels
        for name, values in arrays.items():
            self.store.save(name, values)
        state = {"step": progress.step, "trace": progress.trace,
                 "best_total": progress.best_total, "swaps": progress.swaps,
                 "seed": progress.seed, "tried": progress.tried}  # fmt: skip
        write_text(self.folder / "state.json", json.dumps(state))

    def load(self):
        """Where the interrupted run stood; None when it had only computed features."""
        import json

        from tomoclass.mco import Progress

        path = self.folder / "state.json"
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        return Progress(
            step=state["step"],
            labels=self.store.load("labels"),
            trace=state["trace"],
            best_labels=self.store.load("best_labels"),
            best_total=state["best_total"],
            swaps=[tuple(s) for s in state["swaps"]],
            seed=state["seed"],
            tried=state["tried"],
        )

    def steps(self, progress) -> list:
        """The labels of every step done before ``progress`` (none for a fresh run)."""
        if progress is None:
            return []
        return [(k, self.store.load(f"step_{k}")) for k in range(1, progress.step + 1)]

    def remove(self) -> None:
        self.store.remove()


def _run_mco(args: argparse.Namespace) -> None:
    """mco-exmx and mco-ac: run (on every MPI rank), then rank 0 writes a new folder with
    every iteration or round."""
    import json
    import time

    from tomoclass.average import average_suffix, class_averages, write_averages
    from tomoclass.io import write_particle_list
    from tomoclass.mco import mco_ac, mco_exmx
    from tomoclass.parallel import world

    comm = world()
    started = time.perf_counter()
    plist = _mco_settings(args)
    symmetry = point_symmetry(args.symmetry)
    check_new_folder(args.destination)  # now, not after the whole run
    annealing = args.command == "mco-ac"
    step_name = "round" if annealing else "iteration"
    checkpoint = McoCheckpoint(args, comm)
    resume = checkpoint.load() if args.resume else None
    steps = checkpoint.steps(resume)
    with resumable(checkpoint.folder):  # Ctrl-C says that --resume continues
        bar = progress_bar(comm)
        total = args.iterations
        if annealing:
            total = (
                int(-(-args.start_temperature // args.annealing_step)) if args.annealing_step else 0
            )

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

        def keep_start(progress) -> None:
            """Checkpoint the random starts tried so far; one line each."""
            checkpoint.save(progress)
            last = progress.tried[-1]
            if comm.rank == 0:
                print(f"random start {len(progress.tried)} (seed {last['seed']}): total score "
                      f"{last['total_score']:.4g}, occupancy {last['sizes']}")  # fmt: skip

        features = checkpoint.folder.with_suffix(".features")
        common = {"lowest": args.lowest_frequency, "seed": args.seed, "comm": comm,
                  "end_threshold": args.end_threshold, "resume": resume,
                  "max_shift": args.max_shift, "update_shifts": args.update_shifts,
                  "allow_collapse": args.allow_class_collapse,
                  "cache_dir": features, "memory_budget": args.memory * 2**30,
                  "start": args.start, "oversample": args.oversample,
                  "restarts": args.restarts, "on_restart": keep_start,
                  "symmetry": symmetry, "feature_checkpoint": checkpoint.features}  # fmt: skip
        swaps = None
        with shared_cache(comm, features):
            if annealing:
                result, swaps = mco_ac(
                    plist, args.mask, args.classes, args.start_temperature, args.annealing_step,
                    args.highest_frequency, args.binning, on_round=keep_step,
                    local_search=args.local_search_increment, temperature=args.temperature,
                    criterion=args.criterion, **common,
                )  # fmt: skip
            else:
                result = mco_exmx(
                    plist, args.mask, args.classes, args.highest_frequency, args.binning,
                    iterations=args.iterations, on_iteration=keep_step, **common,
                )  # fmt: skip
        classified = plist.with_classes(result.labels.tolist())
        if result.shifts is not None:
            classified = classified.with_shifts(result.shifts)
        averages = class_averages(classified, binning=args.binning, comm=comm, symmetry=symmetry,
                                  progress=counting_bar(comm, "averages", len(plist)))  # fmt: skip
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
            write_classified(
                classified,
                result.labels,
                result.scores,
                work / "classifiedParticles.xml",
                args.destination.absolute(),
            )
            write_averages(averages, work / "class")
            if result.merge is not None:
                from tomoclass.merge import score_dendrogram_png

                score_dendrogram_png(result.merge, len(plist), work / "merge_dendrogram.png")
            run = {
                "command": args.command,
                "oversample": {"factor": args.oversample, **(result.merge or {})},
                "restarts": result.restarts,
                "warnings": result.warnings,
                "resolution": resolution_record(averages),
                "parameters": json_parameters(args),
                "ranks": comm.size,
                "versions": {"tomoclass": __version__},
                "trace": result.trace,
                "timings": {"total_seconds": time.perf_counter() - started},
            }  # fmt: skip
            (work / "run.json").write_text(json.dumps(run, indent=2) + "\n")

        publish_folder(build, args.destination)
        checkpoint.remove()
        for line in result.warnings:  # about a result that was written
            warn(line)
        warn_replaced_scores(plist, args.destination / "classifiedParticles.xml")
        print(resolution_text(resolution_record(averages)))
        extra = "swaps.csv, " if annealing else ""
        print(f"wrote {args.destination}/classifiedParticles.xml, "
              f"class_<k>{average_suffix(averages)}, "
              f"{step_name}_<i>/, {extra}run.json")  # fmt: skip


def _add_mco_options(p: argparse.ArgumentParser, annealing: bool, run: bool = True) -> None:
    """The settings of an MCO run (also those of ``tomoclass job``; ``run``: the command
    runs it, so ``--output`` names its folder, as in the other commands)."""
    # A run may take these from a job file instead; a job file needs them.
    needed = {"required": False, "help": " (required without -j)"} if run else {"required": True}
    p.add_argument("-p", "--particles", type=Path, required=needed["required"],
                   help="particle list" + needed.get("help", ""))  # fmt: skip
    p.add_argument("-m", "--mask", type=Path, required=needed["required"],
                   help="real-space mask volume" + needed.get("help", ""))  # fmt: skip
    p.add_argument("-c", "--classes", "--nclass", dest="classes", type=int,
                   required=needed["required"],
                   help="number of classes" + needed.get("help", ""))  # fmt: skip
    outputs = ("-d", "--destination", "--output") if run else ("-d", "--destination")
    p.add_argument(*outputs, dest="destination", type=Path, required=needed["required"],
                   help=NEW_FOLDER + needed.get("help", ""))  # fmt: skip
    p.add_argument("--lowest-frequency", type=float, default=0.0, help="Fourier voxels")
    p.add_argument(
        "-f",
        "--highest-frequency",
        "--lowpass",
        dest="highest_frequency",
        type=float,
        default=0.25,
        help="band limit, Fourier voxels of the binned box (below 1: fraction of it); "
        + ANGSTROM_RULE,
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
                   help="classify into CLASSES x this many, merge them to CLASSES by total score, "
                   "then refine by EXMX")  # fmt: skip
    if annealing:
        p.add_argument("--start-temperature", type=float, default=START_TEMPERATURE,
                       help="first temperature (x score spread for sigma; the default is "
                       "classify's schedule)")  # fmt: skip
        p.add_argument("--annealing-step", type=float, default=ANNEALING_STEP,
                       help="temperature drop per round")  # fmt: skip
        p.add_argument("--local-search-increment", type=int, default=5,
                       help="EXMX iterations per round")  # fmt: skip
        p.add_argument("--temperature", choices=("sigma", "annealing"), default="sigma",
                       help="sigma: T x std of all scores; annealing: T as is")  # fmt: skip
        p.add_argument("--criterion", choices=("metropolis", "threshold"), default="metropolis",
                       help="acceptance of a jump to a worse class")  # fmt: skip
    add_symmetry(p, "particles are scored against symmetrised class averages")
    add_sampling(p)


def _add_mco(sub: argparse._SubParsersAction, name: str, summary: str, text: str) -> None:
    p = sub.add_parser(name, help=summary, formatter_class=Formatter, description=text)
    p.add_argument("-j", "--job", type=Path,
                   help="PyTom job file (MCOEXMXJob/MCOACJob) instead of the flags")  # fmt: skip
    _add_mco_options(p, name == "mco-ac")
    p.add_argument(
        "--start", choices=("auto", "list", "cpca", "random"), default="auto",
        help="start from the list's classes, CPCA's labels or at random; auto: the list's "
        "classes when it has at least two, else cpca",
    )  # fmt: skip
    p.add_argument(
        "--restarts", type=int,
        help="with --start random: random starts tried, the best by total score is kept "
        "(default: 3)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, help="threads per process (default: all cores)")
    add_memory(p, "larger features are memory-mapped from .DIR.features (shared by MPI ranks)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from .DIR.checkpoint")  # fmt: skip
    p.set_defaults(run=_run_mco)


def add_job(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "job",
        help="write a PyTom-compatible MCO job file",
        formatter_class=Formatter,
        description=(
            "Write an MCOEXMXJob (exmx) or MCOACJob (ac) XML file that PyTom and\n"
            "'tomoclass mco-exmx|mco-ac -j JOB.xml' both read.\n\n"
            "example:\n  tomoclass job exmx -p particles.xml -m mask.em -c 3 -d mco "
            "--highest-frequency 8 -o job.xml"
        ),
    )
    p.add_argument("kind", choices=("exmx", "ac"), help="which algorithm")
    p.add_argument("-o", "--output", type=Path, required=True, help="job file to write" + MADE)
    _add_mco_options(p, annealing=True, run=False)
    p.set_defaults(run=_run_job)


def add_mco_commands(sub: argparse._SubParsersAction) -> None:
    _add_mco(sub, "mco-exmx", "classify by multiple correlation optimisation (EXMX)", (
        "MCO-EXMX: iterate class averages (in the particles' own wedges) and reassignment\n"
        "of every particle to its best-correlating class, until at most END_THRESHOLD of\n"
        "the particles change class. Starts from the list's classes, or from CPCA's labels\n"
        "when the list has none (--start). Writes DIR/classifiedParticles.xml, class_<k>.em\n"
        "(.mrc for MRC particles), iteration_<i>/classifiedParticles.xml and run.json with\n"
        "the per-iteration trace.\n\n"
        "example:\n  tomoclass mco-exmx -p particles.xml -m mask.em -c 3 -d mco "
        "--highest-frequency 8"
    ))  # fmt: skip
    _add_mco(sub, "mco-ac", "classify by MCO with simulated annealing (AC)", (
        "MCO-AC: rounds of EXMX (LOCAL_SEARCH_INCREMENT iterations each) followed by an\n"
        "annealed reassignment: every particle proposes a random other class and moves if\n"
        "the criterion accepts the score it loses at the current temperature; the\n"
        "temperature drops by ANNEALING_STEP per round until it reaches 0, then EXMX runs\n"
        "to convergence. The best assignment by total score is kept. Writes\n"
        "classifiedParticles.xml, class_<k>.em (.mrc for MRC particles), round_<r>/,\n"
        "swaps.csv and run.json.\n\n"
        "example:\n  tomoclass mco-ac -p particles.xml -m mask.em -c 4 -d ac "
        "--highest-frequency 8 --start-temperature 2 --annealing-step 0.2"
    ))  # fmt: skip
