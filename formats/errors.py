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

import argparse
import os
from pathlib import Path

__all__ = ["UsageError", "OneLineParser", "check_input_file", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE",
           "EXIT_INTERRUPTED"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad usage or an input that cannot be used; printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with its usage error on one line (argparse prints usage and error on two), exit 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def check_input_file(path, what: str = "a .p4d file") -> Path:
    """``path`` checked before it is opened, so each way an input can be unusable gets its own
    one-line ``UsageError`` (and a FIFO is refused instead of blocking the open)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{p}: is a folder, not {what}")
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    if not p.is_file():
        raise UsageError(f"{p}: not a regular file")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{p}: cannot be read (permission denied)")
    return p
