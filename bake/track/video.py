"""Reading frames with OpenCV: probe, and a resampled, time-capped frame stream."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from formats.errors import UsageError


class VideoError(UsageError, ValueError):
    """A video that cannot be read; one-line message."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    frame_count: int  # as reported by the container; may be approximate


def probe(path: str | Path) -> VideoInfo:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: OpenCV cannot open this video (is it a video file?)")
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if w <= 0 or h <= 0:
            raise VideoError(f"{path}: no video stream")
    finally:
        cap.release()
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
        fps = 30.0  # containers without a rate: assume a phone's 30 fps
    return VideoInfo(path, w, h, fps, max(n, 0))


def keep_frame(i: int, src_fps: float, fps: float | None) -> bool:
    """Whether source frame i starts a new slot of the ``fps`` grid (all frames when None or when
    ``fps`` >= the source rate): frame i is kept iff floor(i*fps/src) > floor((i-1)*fps/src)."""
    if fps is None or fps >= src_fps:
        return True
    if i == 0:
        return True
    r = fps / src_fps
    return int(np.floor(i * r + 1e-9)) > int(np.floor((i - 1) * r + 1e-9))


def frames(info: VideoInfo, fps: float | None = None,
           max_seconds: float | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield (source frame index, time s, BGR uint8 [H, W, 3]) for the kept frames."""
    cap = cv2.VideoCapture(str(info.path))
    try:
        i = 0
        while True:
            t = i / info.fps
            if max_seconds is not None and t >= max_seconds:
                break
            if keep_frame(i, info.fps, fps):
                ok, img = cap.read()
            else:
                ok, img = cap.grab(), None
            if not ok:
                break
            if img is not None:
                yield i, t, img
            i += 1
    finally:
        cap.release()


def expected_count(info: VideoInfo, fps: float | None, max_seconds: float | None) -> int:
    """How many frames ``frames`` will yield, from the container's frame count (for progress)."""
    n = info.frame_count
    if max_seconds is not None:
        n = min(n, int(np.ceil(max_seconds * info.fps)))
    return sum(keep_frame(i, info.fps, fps) for i in range(n))


def content_box(peak: np.ndarray, dark: int = 24) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive: the picture inside a video's black bars.

    ``peak`` uint8 [H, W] is the brightest value each pixel reached over the clip; rows and
    columns at the borders that never rose above ``dark`` are letterbox / pillarbox bars, whose
    black says nothing about the scene. The whole frame when nothing is that dark, or when
    everything is (a dark clip has no bars to find).

    >>> p = np.full((4, 6), 200, np.uint8); p[:, :2] = 3; p[3] = 10
    >>> content_box(p)
    (2, 0, 6, 3)
    """
    rows = np.flatnonzero(peak.max(axis=1) > dark)
    cols = np.flatnonzero(peak.max(axis=0) > dark)
    h, w = peak.shape
    if rows.size == 0 or cols.size == 0:
        return 0, 0, w, h
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
