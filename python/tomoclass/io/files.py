"""Safe file output shared by every writer: write to a temporary name, then rename."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

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


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    On any error the temporary file is removed and ``path`` is left as it was. OS errors
    become a :class:`TomoclassError` naming ``path``. The file gets the usual permissions
    (0666 minus the umask).
    """
    target = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise TomoclassError(f"{os.fspath(path)}: cannot write ({err.strerror or err})") from None
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as err:
        _remove_quietly(tmp)
        raise TomoclassError(f"{os.fspath(path)}: cannot write ({err.strerror or err})") from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
