"""Where the viewpoint is: slow auto-orbit, a fixed view, or the captured head motion replayed.

Each motion has ``step(dt)`` and ``view() -> (yaw, pitch)`` in degrees, and is seeded where it
draws random numbers (``player.rng.Pcg32``, as the browser player: docs/walk.md). The window's
free mode drives the view itself and uses ``Orbit`` when idle.
"""

from __future__ import annotations

import math

import numpy as np

from player.rng import Pcg32


def grid_span(meta: dict) -> tuple[float, float, float, float]:
    """(yaw centre, yaw half-range, pitch centre, pitch half-range) of the baked view grid."""
    ys, ps = meta["grid"]["yaws"], meta["grid"]["pitches"]
    return (0.5 * (ys[0] + ys[-1]), 0.5 * (ys[-1] - ys[0]), 0.5 * (ps[0] + ps[-1]), 0.5 * (ps[-1] - ps[0]))


class Orbit:
    """A slow Lissajous sweep over 80 % of the grid: one yaw period every ``period`` seconds."""

    def __init__(self, meta: dict, period: float = 12.0, phase: float = 0.0):
        self.yc, self.yr, self.pc, self.pr = grid_span(meta)
        self.period = period
        self.t = phase

    def step(self, dt: float) -> None:
        self.t += dt

    def view(self) -> tuple[float, float]:
        a = 2 * math.pi * self.t / self.period
        return (self.yc + 0.8 * self.yr * math.sin(a), self.pc + 0.8 * self.pr * math.sin(0.61 * a))


class Fixed:
    def __init__(self, yaw: float = 0.0, pitch: float = 0.0):
        self.yaw, self.pitch = yaw, pitch

    def step(self, dt: float) -> None:
        pass

    def view(self) -> tuple[float, float]:
        return self.yaw, self.pitch


class CaptureReplay:
    """The captured head motion (keyframes.capture_view) played at the keyframe rate, forward or
    backward, switching direction with probability ``p_switch`` per keyframe step and at the ends
    (Kimura et al.: p = 0.03)."""

    def __init__(self, meta: dict, seed: int = 0, p_switch: float | None = None):
        self.views = np.asarray(meta["keyframes"]["capture_view"], dtype=np.float64).reshape(-1, 2)
        self.fps = float(meta["keyframes"]["fps"])
        self.p_switch = float(meta["graph"].get("pose_switch_prob", 0.03) if p_switch is None else p_switch)
        self.rng = Pcg32(seed, 1)  # stream 1: the walker draws from stream 0 of the same seed
        self.pos = 0.0  # index into views, fractional
        self.direction = 1
        self.switches = 0

    def step(self, dt: float) -> None:
        n = len(self.views)
        if n < 2:
            return
        remaining = dt * self.fps
        while remaining > 0:
            # Move to the next integer index (one step) or as far as remaining allows.
            frac = self.pos - math.floor(self.pos)
            to_next = (1.0 - frac) if self.direction > 0 else (frac if frac > 0 else 1.0)
            d = min(to_next, remaining)
            self.pos += self.direction * d
            remaining -= d
            if d == to_next:  # landed on a keyframe: maybe turn around
                self.pos = round(self.pos)
                at_end = (self.pos >= n - 1 and self.direction > 0) or (self.pos <= 0 and self.direction < 0)
                if at_end or self.rng.random() < self.p_switch:
                    self.direction = -self.direction
                    self.switches += 1

    def view(self) -> tuple[float, float]:
        i = int(math.floor(self.pos))
        j = min(i + 1, len(self.views) - 1)
        t = self.pos - i
        y, p = (1 - t) * self.views[i] + t * self.views[j]
        return float(y), float(p)
