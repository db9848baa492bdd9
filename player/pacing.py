"""Frame pacing for headless playback (``player bench`` and the benches): each frame waits for the
next tick of a fixed rate, as a display's refresh would; a frame that ran late restarts the clock
instead of letting the next ones run back to back to catch up."""

from __future__ import annotations

import time


class FrameClock:
    """Ticks at ``hz``: ``wait()`` after each frame sleeps until the next tick."""

    def __init__(self, hz: float = 60.0):
        if not hz > 0:
            raise ValueError(f"hz must be > 0, got {hz!r}")
        self.period = 1.0 / hz
        self.tick = time.perf_counter()

    def wait(self) -> None:
        self.tick += self.period
        pause = self.tick - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            self.tick = time.perf_counter()
