"""The exception tomoclass raises for bad input, and the warning it gives for suspicious input."""

from __future__ import annotations


class TomoclassError(Exception):
    """Bad input or a failed run: the message names the file or parameter at fault.

    The command line prints the message and exits with status 2, no traceback.
    """


class TomoclassWarning(UserWarning):
    """Suspicious input that tomoclass goes on with (e.g. particles without a missing wedge).

    The command line prints it as one line ``tomoclass: warning: …``.
    """


class UnsampledWarning(TomoclassWarning):
    """Particles without any sampling information (they count as fully sampled)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C in a run that keeps a checkpoint: the message says where the finished work is
    and that ``--resume`` continues it. The command line exits with status 130."""
