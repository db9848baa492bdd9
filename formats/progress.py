"""One small progress bar for every long job (bake, repack, export), with no dependency.

Writes to stderr; redraws at most ``min_interval`` seconds apart; on a non-terminal it prints a
plain line every ~10 % so CI logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")


def _fmt_seconds(s: float) -> str:
    s = int(max(s, 0))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class Progress:
    """``with Progress(total, "bake") as bar: bar.update(1, loss=0.1)``."""

    def __init__(self, total: int, desc: str = "", *, initial: int = 0, stream: TextIO | None = None,
                 min_interval: float = 0.2, disable: bool = False):
        self.total = max(int(total), 0)
        self.desc = desc
        self.n = int(initial)
        self._start_n = self.n
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self.disable = disable
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self._postfix = ""

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, **postfix) -> None:
        self.n += n
        if postfix:
            self._postfix = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in postfix.items())
        self._draw()

    def line(self) -> str:
        elapsed = time.monotonic() - self._t0
        done = self.n - self._start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.n / self.total if self.total else 100.0
        eta_s = _fmt_seconds(eta) if eta == eta else "--:--"
        text = (f"{self.desc}: {pct:5.1f}% {self.n}/{self.total} "
                f"[{_fmt_seconds(elapsed)}<{eta_s}, {rate:.3g}/s]")
        return f"{text} {self._postfix}".rstrip()

    def _draw(self, final: bool = False) -> None:
        if self.disable:
            return
        now = time.monotonic()
        if self._tty:
            if final or now - self._last_draw >= self.min_interval:
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
                self._last_draw = now
        else:
            decile = int(10 * self.n / self.total) if self.total else 10
            if final or decile > self._last_decile:
                self._last_decile = decile
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.disable:
            return
        if self._tty:
            self._draw(final=True)
            self.stream.write("\n")
            self.stream.flush()
        elif self._last_decile < 10:
            self._draw(final=True)


def progress(items: Iterable[T], total: int, desc: str = "", **kw) -> Iterator[T]:
    """Iterate ``items`` with a progress bar."""
    with Progress(total, desc, **kw) as bar:
        for item in items:
            yield item
            bar.update(1)
