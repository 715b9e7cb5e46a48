"""The one exception type that tomoclass raises for bad input."""

from __future__ import annotations


class TomoclassError(Exception):
    """Bad input or a failed run: the message names the file or parameter at fault.

    The command line prints the message and exits with status 2, no traceback.
    """
