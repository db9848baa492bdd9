"""Keyframes and the view grid of a bake: what gets rendered, pure numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.camera import Intrinsics, view_angles


@dataclass
class Keyframes:
    times: np.ndarray  # [N] seconds from the start of the sequence
    expressions: np.ndarray  # [N, D] float32, in the subject's expression space
    capture_view: np.ndarray  # [N, 2] (yaw, pitch) degrees of the head as captured at that time
    source: str  # "capture" | "drive"


def resample(times: np.ndarray, values: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear resampling of a per-frame sequence [T, ...] at ``fps`` from its first time.

    >>> resample(np.array([0.0, 1.0]), np.array([[0.0], [1.0]]), 4)[1].ravel().tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if fps <= 0:
        raise ValueError(f"keyframe rate must be positive, got {fps}")
    t0, t1 = float(times[0]), float(times[-1])
    n = int(np.floor((t1 - t0) * fps + 1e-6)) + 1
    t = np.arange(n) / fps
    flat = values.reshape(len(values), -1)
    out = np.stack([np.interp(t0 + t, times, flat[:, c]) for c in range(flat.shape[1])], axis=1)
    return t, out.reshape((n,) + values.shape[1:])


def capture_views(poses: np.ndarray) -> np.ndarray:
    """[N, 4, 4] head -> camera poses -> [N, 2] (yaw, pitch) of the camera around the head centre."""
    return np.array([view_angles(np.linalg.inv(p))[:2] for p in poses])


def make_keyframes(times: np.ndarray, expressions: np.ndarray, poses: np.ndarray, fps: float,
                   source: str = "capture") -> Keyframes:
    views = capture_views(poses)
    # Unwrap yaw so interpolation never sweeps through ±180°.
    views[:, 0] = np.degrees(np.unwrap(np.radians(views[:, 0])))
    t, e = resample(times, expressions.astype(np.float64), fps)
    _, v = resample(times, views, fps)
    return Keyframes(t, e.astype(np.float32), v, source)


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


def parse_views(text: str) -> tuple[int, int]:
    """'9x5' -> (9, 5) (yaw count x pitch count)."""
    try:
        a, b = text.lower().split("x")
        ny, np_ = int(a), int(b)
    except ValueError:
        raise ValueError(f"--views wants YAWxPITCH such as 7x3, got {text!r}") from None
    if not (1 <= ny <= 64 and 1 <= np_ <= 64):
        raise ValueError(f"--views counts must be between 1 and 64, got {text!r}")
    return ny, np_


def parse_range(text: str) -> tuple[float, float]:
    """'-35,35' -> (-35.0, 35.0)."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"a range wants LO,HI in degrees such as -30,30, got {text!r}") from None
    if not -89.0 <= lo <= hi <= 89.0:
        raise ValueError(f"range {text!r} must satisfy -89 <= LO <= HI <= 89 degrees")
    return lo, hi


def captured_range(values: np.ndarray, pad: float = 0.0, step: float = 1.0) -> tuple[float, float]:
    """The range a capture saw, robust to a few outlier frames, widened by ``pad`` and rounded out."""
    lo, hi = np.percentile(values, [1, 99])
    lo, hi = np.floor((lo - pad) / step) * step, np.ceil((hi + pad) / step) * step
    return float(lo), float(hi)


def grid_axis(lo: float, hi: float, n: int) -> tuple[float, ...]:
    if n == 1:
        return (round(0.5 * (lo + hi), 4),)
    return tuple(round(float(x), 4) for x in np.linspace(lo, hi, n))
