"""MPI distribution with mpi4py, and a serial stand-in with the same methods.

``mpiexec -n R tomoclass …`` runs R ranks; :func:`world` returns the MPI communicator then,
and a :class:`Serial` one otherwise (mpi4py is imported only when launched by an MPI
starter, so a plain run never needs it). Work is split so that the result does not depend on R.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tomoclass.errors import TomoclassError

_MPI_ENV = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "HYDI_CONTROL_FD")


class Serial:
    """One process: the subset of mpi4py's communicator that tomoclass uses."""

    rank = 0
    size = 1

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def gather(self, obj: Any, root: int = 0) -> list[Any]:
        return [obj]

    def allgather(self, obj: Any) -> list[Any]:
        return [obj]


def launched_by_mpi() -> bool:
    """Whether an MPI starter (mpiexec, srun, …) started this process."""
    return any(name in os.environ for name in _MPI_ENV)


def world():
    """The MPI world communicator under mpiexec, else a :class:`Serial` one."""
    if not launched_by_mpi():
        return Serial()
    try:
        from mpi4py import MPI
    except ImportError:
        raise TomoclassError(
            "started by mpiexec but mpi4py is missing: pip install 'tomoclass[mpi]'"
        ) from None
    return MPI.COMM_WORLD


def share(comm, part: int, total: int) -> tuple[int, int]:
    """The ``start, stop`` of rank ``part``'s contiguous share of ``total`` items."""
    base, extra = divmod(total, comm.size)
    start = part * base + min(part, extra)
    return start, start + base + (1 if part < extra else 0)


def allgather_rows(comm, rows: np.ndarray) -> np.ndarray:
    """Every rank's ``rows`` stacked in rank order, on every rank."""
    if comm.size == 1:
        return rows
    return np.concatenate(comm.allgather(rows), axis=0)
