"""Safe file output shared by every writer: write to a temporary name, then rename."""

from __future__ import annotations

import contextlib
import contextvars
import linecache
import os
import re
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tomoclass.errors import TomoclassError

PathLike = str | os.PathLike[str]
"""A file path as callers pass it."""


def is_file(path: PathLike) -> bool:
    """Whether ``path`` is an existing file; a name the system cannot even look up (too
    long, say) is simply not one, rather than an OSError."""
    try:
        return os.path.isfile(path)
    except (OSError, ValueError):
        return False


def read_star_blocks(path: PathLike, parse_as_string: Sequence[str] = ()) -> dict[str, Any]:
    """All blocks of a STAR file by name (``data_`` removed), read by ``starfile``; errors
    name the file.

    Blank lines after ``loop_`` (valid STAR, written by PyTom's ``pl2star``) are dropped in a
    temporary copy, since ``starfile`` stops at them. ``linecache``, through which
    ``starfile`` reads, is cleared before reading: ``starfile`` clears it after a parse, but
    not after one that failed.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise TomoclassError(f"{name}: no such file")
    if not is_file(name):
        raise TomoclassError(f"{name}: not a file")
    try:
        with open(name, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as err:
        raise TomoclassError(f"{name}: cannot read ({err.strerror or err})") from None
    fixed = re.sub(r"(?m)^([ \t]*loop_[ \t]*)\n(?:[ \t]*\n)+", r"\1\n", text)
    copy = None
    if fixed != text:
        handle, copy = tempfile.mkstemp(suffix=".star", prefix="tomoclass-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(fixed)
    linecache.clearcache()
    import starfile  # with pandas, half a second to import: only when a STAR file is read

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return starfile.read(copy or name, always_dict=True,
                                 parse_as_string=list(parse_as_string))  # fmt: skip
    except Exception as err:  # starfile/pandas raise many types for malformed text
        reason = " ".join(str(err).split())
        raise TomoclassError(f"{name}: malformed STAR file ({reason})") from None
    finally:
        if copy is not None:
            os.remove(copy)


_GROUP: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "tomoclass_output_group", default=None
)


@contextlib.contextmanager
def output_group() -> Iterator[None]:
    """Make the files written inside one set: each is written to its temporary name as usual,
    and they replace their targets only when all were written. If any fails (a full disk,
    say), every temporary file is removed and none of the earlier files is touched."""
    outer = _GROUP.get()
    pending: list[tuple[str, str]] = []
    token = _GROUP.set(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            _remove_quietly(tmp)
        raise
    finally:
        _GROUP.reset(token)
    if outer is not None:  # nested: the outer group decides
        outer.extend(pending)
        return
    for tmp, target in pending:
        os.replace(tmp, target)


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically
    (inside :func:`output_group`, when the whole group succeeded).

    A missing folder of ``path`` is made (output folders are made, never required). On
    any error the temporary file is removed and ``path`` is left as it was. OS errors
    become a :class:`TomoclassError` naming ``path``. The file gets the usual permissions
    (0666 minus the umask).
    """
    target = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        os.makedirs(folder, exist_ok=True)
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise TomoclassError(f"{os.fspath(path)}: cannot write ({err.strerror or err})") from None
    try:
        yield tmp
        publish(tmp, target)
    except OSError as err:
        _remove_quietly(tmp)
        raise TomoclassError(f"{os.fspath(path)}: cannot write ({err.strerror or err})") from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def publish(written: PathLike, target: PathLike) -> None:
    """Rename the finished file ``written`` (beside ``target``) to ``target``: now, or inside
    :func:`output_group` when the whole group has succeeded (else ``written`` is removed)."""
    group = _GROUP.get()
    if group is None:
        os.replace(written, target)
    else:
        group.append((os.fspath(written), os.fspath(target)))


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


class _PythonWrites:
    """Only a file's ``write`` method: numpy then writes through Python, which reports every
    failed write, instead of through C stdio, whose flush on close can drop the error of a
    full disk and leave a truncated file."""

    def __init__(self, handle) -> None:
        self.write = handle.write


def save_npy(path: PathLike, array: np.ndarray) -> None:
    """Write ``array`` to the ``.npy`` file ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.save(_PythonWrites(handle), np.asarray(array), allow_pickle=False)


def save_npz(path: PathLike, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically (see :func:`atomic_output`);
    :mod:`zipfile` writes through Python, so every failed write is reported."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def reserved_npy(path: PathLike, shape: tuple[int, ...], dtype=np.float32) -> np.memmap:
    """A new memory-mapped ``.npy`` whose disk space is reserved up front, so that a full disk
    is a clear error now rather than a crash (SIGBUS) when a page is later written."""
    try:
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
    except OSError as err:
        _remove_quietly(os.fspath(path))
        raise TomoclassError(f"{os.fspath(path)}: cannot write ({err.strerror or err})") from None
    return array
