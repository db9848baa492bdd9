"""The progress bar every long job shares (bake, track, train, repack, compare, export): tqdm.

A thin subclass rather than tqdm at each call site, so that one place sets the project's
behaviour: stderr; on a terminal tqdm's bar with ETA, redrawn at most 5 times a second; anywhere
else (CI logs, a pipe) one plain line about every 10 % and the final one, never carriage returns;
``disable=True`` (the commands' ``--quiet``) prints nothing. ``update`` takes the postfix as
keywords: ``with Progress(total, "train") as bar: bar.update(1, loss=0.1)``.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

__all__ = ["Progress"]

# No bar in logs: one line a step, as today's CI logs read.
_LOG_FORMAT = "{desc}: {percentage:5.1f}% {n}/{total} [{elapsed}<{remaining}, {rate_fmt}]{postfix}"


class Progress(tqdm):
    # tqdm's monitor thread forces a redraw after 10 s without one, which would print every step
    # of a slow job in a log; the 10 % cadence below is all a log needs.
    monitor_interval = 0

    def __init__(self, total: int, desc: str = "", *, initial: int = 0, stream: TextIO | None = None,
                 disable: bool = False):
        stream = sys.stderr if stream is None else stream
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        total = max(int(total), 0)
        look = {"mininterval": 0.2, "dynamic_ncols": True} if self._tty else {
            "bar_format": _LOG_FORMAT, "mininterval": 0, "miniters": max(1, total // 10), "leave": False}
        self._shown = -1
        super().__init__(total=total, desc=desc, initial=initial, file=stream, disable=disable, **look)

    def update(self, n: int = 1, **postfix) -> None:
        if postfix:
            self.set_postfix(postfix, refresh=False)
        super().update(n)

    def display(self, msg=None, pos=None):
        if self._tty:
            return super().display(msg, pos)
        if msg == "":  # tqdm clearing the bar on close: nothing to clear in a log
            return False
        self.fp.write(str(self) + "\n")
        self.fp.flush()
        self._shown = self.n
        return True

    def close(self) -> None:
        if not getattr(self, "disable", True) and not self._tty and self._shown != self.n:
            self.display()  # the final line, unless the last step already printed it
        super().close()
