"""Benchmark tomoclass at scale: peak memory and time of whole commands at N = 20,000 and
100,000 particles (box 32, lowpass 8), each command run as its own process.

For each N a simulated data set on disk (``tomoclass simulate``, 4 classes, SNR 0.1; made
once in ``--workdir`` and reused) is classified by:

- ``exact`` (N ≤ ``--exact-limit``): ``ccc --memory 1 --no-csv`` (the N×N matrix built in a
  memory-mapped .npy), then ``cpca -e 8`` streaming it to Lanczos;
- ``nystrom``: ``ccc --landmarks M``, then ``cpca -e 8`` on the N×M block;
- ``mco``: ``mco-exmx -c 4 -n 5 --memory 1`` (features memory-mapped from disk).

Printed per command: wall time, peak resident memory (``wait4`` of that process; pages of
memory-mapped files it touched count too) and that peak as a fraction of the N×N float32
matrix a dense method would hold; ARI against the truth for each classification; and, when
both ran, the Nyström pipeline's time as a ratio to the exact one in the same process.

Usage: python benches/bench_scale.py [--sizes 20000,100000] [--landmarks 1000]
                                     [--exact-limit 20000] [--workdir bench-scale]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tomoclass import _core
from tomoclass.io import read_particle_list
from tomoclass.metrics import adjusted_rand_index
from tomoclass.simulate import read_truth

GIB = 2**30


def measured(args: list[str]) -> tuple[float, float]:
    """Run ``tomoclass ARGS``; its wall time (s) and peak RSS (GiB)."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "tomoclass.cli", *args],
                                   stdout=subprocess.DEVNULL, stderr=errors)  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)  # the usage of this process alone
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            sys.exit(f"tomoclass {' '.join(args)} failed:\n{errors.read().decode()}")
    return seconds, usage.ru_maxrss * 1024 / GIB  # ru_maxrss is in KiB on Linux


def ari(truth: dict[str, int], classified: Path) -> float:
    plist = read_particle_list(classified)
    true = [truth[Path(p.filename).relative_to(Path(p.filename).parents[1]).as_posix()]
            for p in plist]  # fmt: skip
    return adjusted_rand_index(true, plist.class_names())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--landmarks", type=int, default=1000)
    parser.add_argument("--exact-limit", type=int, default=20000)
    parser.add_argument("--workdir", type=Path, default=Path("bench-scale"))
    args = parser.parse_args()
    args.workdir.mkdir(exist_ok=True)
    print(f"scale: box 32, lowpass 8, 4 classes, SNR 0.1, {_core.thread_count()} threads, "
          f"{args.landmarks} landmarks")  # fmt: skip
    print("| N | command | time (s) | peak RSS (GiB) | peak ÷ N×N float32 | ARI |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    for n in (int(v) for v in args.sizes.split(",")):
        run_size(n, args)


def run_size(n: int, args: argparse.Namespace) -> None:
    """Simulate N particles (once), then time the exact, Nyström and MCO commands."""
    data = args.workdir / f"sim{n}"
    if not (data / "particles.xml").exists():
        seconds, peak = measured(["simulate", str(data), "-n", str(n), "-k", "4", "--snr",
                                  "0.1", "--seed", "7"])  # fmt: skip
        print(f"| {n} | simulate | {seconds:.0f} | {peak:.2f} | | |", flush=True)
    truth = read_truth(data / "truth.csv")
    plist, mask = str(data / "particles.xml"), str(data / "mask.em")
    dense = n * n * 4 / GIB
    totals: dict[str, float] = {}

    def step(name: str, command: list[str], classified: Path | None = None) -> None:
        seconds, peak = measured(command)
        kind = name.split()[0]
        totals[kind] = totals.get(kind, 0.0) + seconds
        score = f"{ari(truth, classified):.2f}" if classified else ""
        print(f"| {n} | {name} | {seconds:.0f} | {peak:.2f} | {peak / dense:.3f} | {score} |",
              flush=True)  # fmt: skip

    for kind in ("exact", "nystrom"):
        if kind == "exact" and n > args.exact_limit:
            continue
        out = args.workdir / f"{kind}{n}"
        out.mkdir(exist_ok=True)
        ccc = ["ccc", "-p", plist, "-m", mask, "-f", "8", "-o", str(out)]
        if kind == "exact":
            ccc += ["--memory", "1", "--no-csv"]
            matrix = out / "correlation_matrix.npy"
        else:
            ccc += ["--landmarks", str(args.landmarks)]
            matrix = out / "correlation_landmarks.npz"
        step(f"{kind} ccc", ccc)
        classified = out / "classified.xml"
        step(f"{kind} cpca -e 8", ["cpca", "-p", plist, "-c", str(matrix), "-e", "8",
                                   "-n", "4", "-o", str(classified)], classified)  # fmt: skip
        matrix.unlink()
    destination = args.workdir / f"mco{n}"
    shutil.rmtree(destination, ignore_errors=True)
    step("mco-exmx -n 5", ["mco-exmx", "-p", plist, "-m", mask, "-c", "4", "-d",
                           str(destination), "--highest-frequency", "8", "-n", "5",
                           "--memory", "1"], destination / "classifiedParticles.xml")  # fmt: skip
    if "exact" in totals:
        ratio = totals["exact"] / totals["nystrom"]
        print(f"| {n} | exact ÷ Nyström pipeline time | {ratio:.1f}× | | | |", flush=True)


if __name__ == "__main__":
    main()
