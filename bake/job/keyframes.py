"""Keyframes of a bake: the expression sequence resampled at the bake rate, pure numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.camera import view_angles


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


def keyframe_frames(keyframe_times, frame_times) -> np.ndarray:
    """int [K]: for each keyframe (seconds from the capture's first frame) the position of the
    captured frame nearest to it in time.

    >>> keyframe_frames([0.0, 1.0], [5.0, 5.4, 5.9, 6.1]).tolist()
    [0, 2]
    """
    ft = np.asarray(frame_times, np.float64)
    t = np.asarray(keyframe_times, np.float64) + ft[0]
    return np.abs(t[:, None] - ft[None, :]).argmin(1)
