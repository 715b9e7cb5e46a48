"""Shared pieces of the subcommands: help formatting, progress bars, output folders and tables."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tomoclass.errors import TomoclassError


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the examples' line breaks and show every default that says something (not
    None or False, and not where the help text already tells it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False) or "default" in text:
            return text
        return super()._get_help_string(action)


ANGSTROM_RULE = (
    "r Fourier voxels are a resolution of n·s/r Å for a box of n voxels of s Å, binned or "
    "not (8 in 64 voxels of 4 Å: 32 Å)"
)
"""For ``--help`` texts of frequencies: how a radius in Fourier voxels reads in Å."""


NEW_FOLDER = "new output folder, made if missing (an existing one must be empty)"
"""Help of the output of a command that owns its whole folder."""

MADE = " (missing folders are made)"
"""Help suffix of an output file or prefix."""


def check_new_folder(destination: Path) -> Path:
    """The parent of ``destination`` (which may still have to be made), for a command that
    owns its whole output folder: ``destination`` must not exist or be an empty folder."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise TomoclassError(f"{destination}: exists and is not empty; choose a new output folder")
    return writable_folder(destination.absolute().parent)


def publish_folder(build: Callable[[Path], None], destination: Path) -> None:
    """Run ``build`` into a temporary sibling folder, then rename it to ``destination``
    (making missing folders above it).

    ``destination`` must not exist or be an empty folder, so earlier results are never touched.
    """
    check_new_folder(destination)
    parent = writable_folder(destination.absolute().parent, create=True)
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


@contextmanager
def shared_cache(comm, folder: Path) -> Iterator[Path]:
    """``folder`` for features shared by all MPI ranks during a run; removed once every rank
    is done with it, or at once when the run fails."""
    try:
        yield folder
    except BaseException:
        if comm.rank == 0:  # no barrier: a failed rank is not coming back
            shutil.rmtree(folder, ignore_errors=True)
        raise
    comm.allgather(None)
    if comm.rank == 0:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def resumable(checkpoint: Path) -> Iterator[None]:
    """Ctrl-C inside becomes :class:`~tomoclass.errors.Interrupted`, whose message says that
    the finished work kept in ``checkpoint`` is continued by ``--resume`` (when any was
    kept; otherwise nothing was written, as after any other interrupt)."""
    from tomoclass.errors import Interrupted

    try:
        yield
    except KeyboardInterrupt:
        if checkpoint.is_dir() and any(checkpoint.iterdir()):
            raise Interrupted(
                f"the finished work is kept in {checkpoint}; the same command with --resume "
                "continues it"
            ) from None
        raise


def progress_bar(comm) -> Callable[[str, int, int], None] | None:
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


def counting_bar(comm, stage: str, total: int) -> Callable[[int], None] | None:
    """A bar for a step that reports increments (``progress(count)``), as
    :func:`tomoclass.average.class_averages` does; None off a terminal."""
    bar = progress_bar(comm)
    if bar is None:
        return None
    done = [0]

    def step(count: int) -> None:
        done[0] += count
        bar(stage, done[0], total)

    return step


def announce(comm, text: str) -> None:
    """One line on a terminal (rank 0) before a step that cannot show its progress, as the
    bars do (logs stay free of it)."""
    if comm.rank == 0 and sys.stderr.isatty():
        print(f"{text} …", file=sys.stderr, flush=True)


def writable_folder(folder: Path, create: bool = False) -> Path:
    """``folder`` for output: an existing writable folder, or one that can be made (the
    nearest existing folder above it is writable); made now, with any missing folders
    above it, if ``create``. A clear error otherwise.

    Commands check their output folders before the work and make them only when they
    write, so that bad input leaves nothing behind."""
    folder = Path(folder)
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise TomoclassError(f"{existing}: is a file, not an output folder")
    if not os.access(existing, os.W_OK):
        raise TomoclassError(f"{existing}: output folder is not writable")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TomoclassError(f"{folder}: cannot create the folder ({exc.strerror})") from None
    return folder


def write_text(path: Path, text: str) -> None:
    from tomoclass.io.files import atomic_output

    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)


def write_table(stem: Path, values) -> None:
    """``stem.npy`` and ``stem.csv`` (one row per line), each written atomically."""
    from tomoclass.io.files import save_npy

    save_npy(stem.with_suffix(".npy"), values)
    rows = values.reshape(len(values), -1)
    text = "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in rows)
    write_text(stem.with_suffix(".csv"), text)


def tilt_range_text(text: str) -> tuple[float, float]:
    """``MIN:MAX`` degrees, e.g. ``-60:60``."""
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a tilt range looks like -60:60 (min:max degrees), got {text!r}"
        ) from None
    if not -90 <= lo < hi <= 90:
        raise argparse.ArgumentTypeError(f"tilt range {text}: needs -90 <= MIN < MAX <= 90")
    return lo, hi


def add_sampling(p: argparse.ArgumentParser) -> None:
    """The options that give particles their missing wedge when the list does not."""
    group = p.add_argument_group(
        "missing wedge",
        "for particles whose list does not say how they were sampled (a PyTom list carries\n"
        "its wedges, a Warp or RELION list its CTF volumes in rlnCtfImage)",
    )
    group.add_argument("--tilt-range", type=tilt_range_text, metavar="MIN:MAX",
                       help="tilt range about y in degrees, e.g. -60:60, with RELION's sign "
                       "(a tomogram PyTom reconstructed from tilts MIN..MAX is "
                       "-MAX:-MIN)")  # fmt: skip
    group.add_argument(
        "--tomograms", type=Path, metavar="STAR",
        help="RELION 4/5 tomograms.star: each particle gets its tomogram's tilt series "
        "(angles, exposure, defocus)",
    )  # fmt: skip
    group.add_argument("--wedge-list", type=Path, metavar="STAR",
                       help="STOPGAP wedge list: each particle gets its tilt series")  # fmt: skip
    group.add_argument(
        "--subtomo-name", metavar="PREFIX",
        help="STOPGAP motive list: subtomogram name prefix, relative to the list's folder "
        "(default: found in subtomograms/)",
    )  # fmt: skip


def sampling_options(args: argparse.Namespace) -> dict:
    """The sampling options of :func:`add_sampling` as ``read_particle_list`` takes them."""
    return {"tomograms": args.tomograms, "wedge_list": args.wedge_list,
            "tilt_range": args.tilt_range, "subtomo_name": args.subtomo_name}  # fmt: skip


def read_particles(args: argparse.Namespace, path: Path | None = None, plist=None):
    """The particle list ``path`` (default ``args.particles``; or ``plist``, read already)
    with the sampling options applied, and one warning line if particles still have no
    sampling information: they would be classified as if fully sampled."""
    from tomoclass.io import read_particle_list
    from tomoclass.io.particle_lists import fill_sampling

    path = args.particles if path is None else path
    if plist is None:
        plist = read_particle_list(path, **sampling_options(args))
    else:
        options = sampling_options(args)
        options.pop("subtomo_name")
        plist = fill_sampling(plist, **options)
    nonempty(plist, path)
    _check_geometry(plist, path)
    _check_voxel_sizes(plist, path)
    missing = sum(w is None for w in plist.wedges())
    if missing:
        warn(
            f"{path}: {missing} of {len(plist)} particles carry no missing wedge or CTF and "
            "are classified as if fully sampled; give --tilt-range MIN:MAX, --tomograms "
            "tomograms.star (RELION) or --wedge-list wedgelist.star (STOPGAP)"
        )
    return plist


def _check_geometry(plist, path) -> None:
    """One warning line each for particles listed twice (they would correlate 1 with each
    other and count twice in averages) and for a list whose particles all have the same
    rotation (it looks unaligned)."""
    import numpy as np

    seen, again = set(), []
    for name in (os.path.normpath(os.path.abspath(p)) for p in plist.paths()):
        if name in seen:
            again.append(name)
        seen.add(name)
    if again:
        warn(
            f"{path}: {len(again)} particles are listed more than once (the first: "
            f"{again[0]}); "
            "each copy correlates 1 with the other and counts again in averages"
        )
    rotations = plist.rotation_matrices()
    if len(plist) > 1 and np.allclose(rotations, rotations[0], atol=1e-6):
        warn(
            f"{path}: every particle has the same rotation, so the list looks unaligned "
            "(tomoclass classifies aligned subtomograms); ignore this if they were rotated "
            "into register already"
        )


def _check_voxel_sizes(plist, path) -> None:
    """One warning line each for particles of different voxel sizes (they are classified as
    if equal, and averages and resolutions get no size in Å) and for MRC particles whose
    header gives no voxel size (0)."""
    from tomoclass.io.volumes import group_voxel_sizes, read_voxel_size, volume_format

    paths = plist.paths()
    sizes = [read_voxel_size(p) for p in paths]
    groups = group_voxel_sizes(sizes)
    if len(groups) > 1:
        counts = ", ".join(f"{len(found)} of {size:g} Å" for size, found in groups.items())
        other = paths[list(groups.values())[1][0]]
        warn(
            f"{path}: the particles have different voxel sizes ({counts}; the first of "
            f"another size: {other}); they are classified as if they were the same, and the "
            "class averages and resolutions get no voxel size"
        )
    blank = [p for p, size in zip(paths, sizes, strict=True)
             if size is None and volume_format(p) == "mrc"]  # fmt: skip
    if blank:
        use = "the others' voxel size" if len(groups) == 1 else "no voxel size"
        warn(
            f"{path}: {len(blank)} of {len(paths)} MRC particles have no voxel size in their "
            f"header (it is 0; the first: {blank[0]}); the class averages and resolutions "
            f"get {use}"
        )


def nonempty(plist, path) -> None:
    """A clear error naming ``path`` if the list has no particles."""
    if len(plist) == 0:
        raise TomoclassError(f"{path}: the particle list is empty")


def warn(message: str) -> None:
    """One warning line ``tomoclass: warning: …`` (see :func:`show_warnings`)."""
    import warnings

    from tomoclass.errors import TomoclassWarning

    warnings.warn(message, TomoclassWarning, stacklevel=2)


def show_warnings(comm) -> None:
    """Print tomoclass's warnings as one line ``tomoclass: warning: …`` on rank 0 only, and
    leave out the library's own warning about particles without sampling (the command
    line says it once, naming the list and the options)."""
    import warnings

    from tomoclass.errors import TomoclassWarning, UnsampledWarning

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, TomoclassWarning):
            original(message, category, filename, lineno, file, line)
        elif comm.rank == 0:
            print(f"tomoclass: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    warnings.filterwarnings("default", category=TomoclassWarning)
    warnings.filterwarnings("ignore", category=UnsampledWarning)  # checked first


def positive_int(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise TomoclassError(f"{name} must be 'auto' or a whole number, got {text!r}") from None
    return value


def add_memory(p: argparse.ArgumentParser, beyond: str) -> None:
    p.add_argument("--memory", type=float, default=2.0, help=f"GiB kept in memory: {beyond}")


def write_classified(classified, labels, scores, path: Path, folder: Path) -> None:
    """The classified list at ``path`` with every particle's score against its class
    (``labels``: column of ``scores`` ``(N, classes)``): PyTom's ``Score``, Dynamo's cc, or
    for STAR the columns ``tomoclassClassScore`` and ``tomoclassMargin`` (``rlnLCCmax``
    stays the picking score); and ``scores.csv`` beside it. ``folder`` is where both will
    finally be: the table names the particles as the list there does."""
    import numpy as np

    from tomoclass.io import write_particle_list
    from tomoclass.io.scores import SCORES, margins, write_scores

    own = scores[np.arange(len(scores)), np.asarray(labels)]
    if path.suffix.lower() == ".star":
        columns = {"tomoclassClassScore": own.tolist(), "tomoclassMargin": margins(scores).tolist()}
        write_particle_list(classified, path, columns=columns)
    else:
        write_particle_list(classified.with_scores(own.tolist()), path)
    names = [p.filename for p in classified.rebased(folder)]
    write_scores(path.parent / SCORES, names, classified.class_names(), scores)


def warn_replaced_scores(plist, written: Path) -> None:
    """One warning line when the classified list's scores replaced ones the input carried
    (an alignment or picking score in PyTom's Score or Dynamo's cc; STAR keeps rlnLCCmax)."""
    if written.suffix.lower() == ".star":
        return
    had = sum(p.score is not None for p in plist)
    if had:
        warn(
            f"{written}: the Score of {had} particles is now their class score; the "
            "alignment or picking scores they had stay in the input list"
        )


def add_symmetry(p: argparse.ArgumentParser, effect: str = "symmetrised class averages") -> None:
    """``--symmetry N``: PyTom's point symmetry about the particle's z axis."""
    p.add_argument("--symmetry", type=int, metavar="N",
                   help=f"N-fold point symmetry about the particle's z axis: {effect} "
                   "(PyTom's PointSymmetry; default: none)")  # fmt: skip


def point_symmetry(value):
    """The :class:`~tomoclass.geometry.PointSymmetry` of ``--symmetry`` (an order, or one
    read from a job file); None for no symmetry."""
    from tomoclass.geometry import PointSymmetry

    if value is None:
        return None
    symmetry = value if isinstance(value, PointSymmetry) else PointSymmetry(value)
    return None if symmetry.nfold == 1 and symmetry.z2 == 0 and symmetry.x == 0 else symmetry


def resolution_record(averages) -> dict:
    """The gold-standard resolution of every class average for ``run.json``: the particles,
    the FSC of the two fixed half-sets (shells of the binned box) and where it falls below
    0.143, in Fourier voxels and, when the averages carry a voxel size (their particle
    files agreed on one), in Å."""
    from tomoclass.average import FSC_THRESHOLD

    voxel = averages[0].voxel_size if averages else None
    classes = {}
    for a in averages:
        box = a.volume.shape[0]
        r = a.resolution
        classes[a.label] = {
            "particles": a.count,
            "fourier_voxels": r,
            "angstrom": None if r is None or voxel is None else box * voxel / r,
            "fsc": None if a.fsc is None else [round(float(v), 4) for v in a.fsc],
        }
    box = averages[0].volume.shape[0] if averages else None
    return {"threshold": FSC_THRESHOLD, "voxel_size": voxel, "box": box, "classes": classes}


def resolution_text(record: dict) -> str:
    """``class 0: 18.2 Å, class 1: …`` (Fourier voxels when the voxel size is unknown)."""
    from tomoclass.average import resolution_text as text

    parts = [f"class {label}: {text(c)}" for label, c in record["classes"].items()]
    return "resolution at FSC 0.143: " + ", ".join(parts)


def json_parameters(args: argparse.Namespace) -> dict:
    """A command's parameters for ``run.json``: paths as text, a symmetry as its fields."""
    import dataclasses

    def plain(value):
        if isinstance(value, Path):
            return str(value)
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value

    return {k: plain(v) for k, v in vars(args).items() if k != "run"}
