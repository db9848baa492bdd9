"""The view grid of a bake: yaw x pitch orbit views around the head, pure numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.camera import Intrinsics


@dataclass(frozen=True)
class ViewGrid:
    yaws: tuple[float, ...]  # degrees, ascending
    pitches: tuple[float, ...]
    radius: float
    intrinsics: Intrinsics
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def n_views(self) -> int:
        return len(self.yaws) * len(self.pitches)

    def view(self, v: int) -> tuple[float, float]:
        """(yaw, pitch) of view index v = pitch_index * len(yaws) + yaw_index."""
        return self.yaws[v % len(self.yaws)], self.pitches[v // len(self.yaws)]

    def nearest_view(self, yaw: float, pitch: float) -> int:
        iy = int(np.argmin(np.abs(np.asarray(self.yaws) - yaw)))
        ip = int(np.argmin(np.abs(np.asarray(self.pitches) - pitch)))
        return ip * len(self.yaws) + iy


MAX_VIEWS_PER_AXIS = 64
MAX_ANGLE = 89.0  # an orbit camera at +-90 degrees of pitch has no defined "up"


def check_views(views: tuple[int, int]) -> tuple[int, int]:
    """(yaw count, pitch count), each in 1..64; raises ValueError naming the bound."""
    ny, np_ = views
    if not (1 <= ny <= MAX_VIEWS_PER_AXIS and 1 <= np_ <= MAX_VIEWS_PER_AXIS):
        raise ValueError(f"view counts must be between 1 and {MAX_VIEWS_PER_AXIS}, got {ny}x{np_}")
    return int(ny), int(np_)


def check_range(lo: float, hi: float, what: str = "range") -> tuple[float, float]:
    """(lo, hi) degrees with -89 <= lo <= hi <= 89; raises ValueError naming the rule."""
    if not -MAX_ANGLE <= lo <= hi <= MAX_ANGLE:
        raise ValueError(f"{what} {lo:g},{hi:g} must satisfy -89 <= LO <= HI <= 89 degrees")
    return float(lo), float(hi)


def parse_views(text: str) -> tuple[int, int]:
    """'9x5' -> (9, 5) (yaw count x pitch count)."""
    try:
        a, b = text.lower().split("x")
        ny, np_ = int(a), int(b)
    except ValueError:
        raise ValueError(f"--views wants YAWxPITCH such as 7x3, got {text!r}") from None
    return check_views((ny, np_))


def parse_range(text: str) -> tuple[float, float]:
    """'-35,35' -> (-35.0, 35.0)."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"a range wants LO,HI in degrees such as -30,30, got {text!r}") from None
    return check_range(lo, hi)


def captured_range(values: np.ndarray, pad: float = 0.0, step: float = 1.0) -> tuple[float, float]:
    """The range a capture saw, robust to a few outlier frames, widened by ``pad`` and rounded out."""
    lo, hi = np.percentile(values, [1, 99])
    lo, hi = np.floor((lo - pad) / step) * step, np.ceil((hi + pad) / step) * step
    return float(lo), float(hi)


def grid_axis(lo: float, hi: float, n: int) -> tuple[float, ...]:
    if n == 1:
        return (round(0.5 * (lo + hi), 4),)
    return tuple(round(float(x), 4) for x in np.linspace(lo, hi, n))
