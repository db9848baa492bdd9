"""The errors and exit codes every command line of the project shares.

Exit codes, the same for ``bake``, ``p4d`` and ``player``:

- 0: done.
- 1: a failure while working (a kernel, an encoder, the disk filling up). ``p4d validate`` also
  answers 1 for "this file is not sound", as ``cmp`` and ``diff`` answer with 1.
- 2: bad usage or an input that cannot be used: bad flags, a missing or unreadable file, a file
  that is not a portrait (``UsageError``, ``P4DFormatError`` while opening an input).
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

__all__ = ["UsageError", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad usage or an input that cannot be used; printed as one line, exit code 2."""
