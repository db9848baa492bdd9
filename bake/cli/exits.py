"""The one place where a ``bake`` command's errors become exit codes (``formats.errors``).

- 2: ``UsageError`` and its kinds (``DatasetError``, ``CheckpointError``, ``BakeError``,
  ``SynthError``, ``TrackError``, ``VideoError``), a ``P4DFormatError`` (a partial bake or a file
  that cannot be used); argparse itself exits 2 on bad flags.
- 1: a failure while working: the disk, an encoder, a kernel (``OSError``, ``ValueError``,
  ``RuntimeError``). Any other exception is a bug and keeps its traceback (and exits 1).
- 130: Ctrl-C.
Every message is one line on stderr: ``PROG: error: ...``.
"""

from __future__ import annotations

import sys
from typing import Callable

from formats import P4DFormatError
from formats.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, UsageError


def run_command(prog: str, body: Callable[[], int], interrupted: str = "interrupted") -> int:
    """``body()``'s exit code, or the code and one-line message of what it raised."""
    try:
        return body()
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, P4DFormatError) as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split("\n"))
