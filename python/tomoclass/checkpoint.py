"""Checkpoints: the finished work of a long run (CCC tiles, feature blocks, MCO steps) as
``.npy`` blocks in a folder, tied to the run's parameters, so that an interrupted run can
be resumed (``--resume``) to exactly the result of an uninterrupted one.

The folder and its stamp (``params.json``) are made with the first saved block, so a run
that fails early leaves nothing behind. Rank 0 checks (when resuming) or clears (otherwise)
an earlier folder while the other MPI ranks wait; then every rank saves and loads only its
own blocks. Every block is written atomically: a run killed while writing one leaves the
earlier version or none.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from tomoclass.errors import TomoclassError, TomoclassWarning
from tomoclass.io.files import atomic_output, save_npy
from tomoclass.parallel import Serial

RERUN = "; run without --resume"


class Checkpoint:
    """Blocks of finished work in ``folder``, tied to ``params`` (a JSON-able dict).

    ``resume``: reuse the blocks of an earlier run with the same parameters; it is an error
    when its parameters differ, or when there is no checkpoint and it is ``required``.
    Without ``resume`` an earlier checkpoint is discarded, with a warning saying what was
    lost. A checkpoint may hold another in a subfolder (an MCO run's feature blocks).
    """

    def __init__(
        self, folder: Path, params: dict, resume: bool, comm=None, *, required: bool = True
    ) -> None:
        comm = comm or Serial()
        self.folder = Path(folder)
        self.params = params
        self.stamp = self.folder / "params.json"
        problem = None
        if comm.rank == 0:
            problem = self._take_over(resume, required)
        problem = comm.bcast(problem, root=0)
        if problem:
            raise TomoclassError(problem)

    def _take_over(self, resume: bool, required: bool) -> str | None:
        """Check (resuming) or clear (not resuming) an earlier checkpoint; a problem or None."""
        if resume:
            if self.stamp.exists() and json.loads(self.stamp.read_text()) != self.params:
                return f"{self.folder}: checkpoint of a run with other parameters{RERUN}"
            if required and not self.exists():
                return f"{self.folder}: no checkpoint to resume from{RERUN}"
            return None
        if self.exists():
            blocks = len(list(self.folder.rglob("*.npy")))
            warnings.warn(
                f"{self.folder}: discarding the checkpoint of an earlier, unfinished run "
                f"({blocks} finished blocks); --resume would have continued it",
                TomoclassWarning,
                stacklevel=4,
            )
        shutil.rmtree(self.folder, ignore_errors=True)
        return None

    def exists(self) -> bool:
        """Whether any work has been saved here (also by a checkpoint in a subfolder)."""
        return self.folder.is_dir() and any(self.folder.iterdir())

    def load(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The block ``name`` if it was saved (with ``shape``, when given), else None."""
        path = self.folder / f"{name}.npy"
        if not path.exists():
            return None
        block = np.load(path)
        return block if shape is None or block.shape == shape else None

    def save(self, name: str, block: np.ndarray) -> None:
        """Save the block ``name`` (atomically; the first one also stamps the folder)."""
        if not self.stamp.exists():
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TomoclassError(f"{self.folder}: cannot write ({exc.strerror})") from None
            with atomic_output(self.stamp) as tmp:
                Path(tmp).write_text(json.dumps(self.params))
        save_npy(self.folder / f"{name}.npy", block)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
