"""Headless playback to an H.264 mp4, an animated WebP or GIF, a folder of PNG frames, or one
still PNG (the first frame: with ``--keyframe --mode fixed`` one exact state).

The encoders are FFmpeg's through PyAV (``player/encoders.py``, the ``video`` extra). Without
PyAV, mp4 falls back to opencv's mp4v, which browsers do not play, and says so once; WebP and
GIF need PyAV and say how to get it before any frame is drawn.

Nothing appears at the output path until the whole clip is written: a file through
``formats.atomic.atomic_path``, a folder staged under a unique name beside it and renamed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from formats.atomic import atomic_dir, atomic_path
from formats.errors import UsageError
from formats.progress import Progress
from player.encoders import DITHERS, GifWriter, H264Writer, Mp4vWriter, WebpWriter, have_av
from player.playback import Playback

VIDEO_EXTRA = "pip install 'portrait4d[video]'"


class ExportError(UsageError):
    """An export asked for with a name or folder that cannot be used; the message says why."""


def output_kind(out: str) -> str:
    """'mp4' | 'webp' | 'gif' | 'png' | 'dir' from the output name (a trailing slash or an existing
    folder = dir); a WebP or GIF name without PyAV installed is refused here, before any work."""
    if out.endswith(("/", os.sep)) or Path(out).is_dir():
        return "dir"
    ext = Path(out).suffix.lower()
    if ext == ".png":
        return "png"
    if ext not in (".mp4", ".webp", ".gif"):
        raise ExportError(f"{out}: unknown export type {ext or '(none)'}; "
                          f"use .mp4, .webp, .gif, .png (one still) or a folder name ending in /")
    if ext != ".mp4" and not have_av():
        raise ExportError(f"{out}: {ext} export needs PyAV (FFmpeg's encoders); install it with {VIDEO_EXTRA}")
    return ext[1:]


def _say(message: str) -> None:
    print(f"player: {message}", file=sys.stderr)


def frames(pb: Playback, seconds: float, fps: float):
    """Yield (index, RGB uint8 [H, W, 3] top-down) for ``round(seconds * fps)`` frames."""
    n = max(1, int(round(seconds * fps)))
    for i in range(n):
        img = pb.render()
        yield i, np.ascontiguousarray(img[::-1, :, :3])
        pb.step(1.0 / fps)


def export(pb: Playback, out: str, seconds: float, fps: float = 25.0, quiet: bool = False, *,
           crf: int = 20, quality: int = 80, dither: str = "bayer",
           note: Callable[[str], None] = _say) -> Path:
    """Plays ``pb`` for ``seconds`` at ``fps`` into ``out`` (kind from its name, ``output_kind``).

    ``crf``: H.264 quality, 1-51, lower is better and larger (mp4). ``quality``: WebP quality,
    0-100. ``dither``: GIF dithering, one of ``DITHERS``. ``note``: where the one warning of the
    mp4 fallback goes (stderr by default).
    """
    kind = output_kind(out)
    if seconds <= 0 or fps <= 0:
        raise ExportError(f"--seconds and --fps must be > 0 (got {seconds}, {fps})")
    if not 1 <= crf <= 51:
        raise ExportError(f"--crf must be between 1 and 51, got {crf}")
    if not 0 <= quality <= 100:
        raise ExportError(f"--quality must be between 0 and 100, got {quality}")
    if dither not in DITHERS:
        raise ExportError(f"--dither must be one of {', '.join(DITHERS)}, got {dither}")
    n = max(1, int(round(seconds * fps)))
    target = Path(out.rstrip("/" + os.sep)) if kind == "dir" else Path(out)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"{out}: folder {parent} cannot be written")
    if kind == "dir" and target.exists() and any(target.iterdir()):
        raise ExportError(f"{out}: folder exists and is not empty; give a new or empty folder")
    h, w = pb.renderer.out_shape
    if kind == "png":  # one still: the state the playback starts in
        rgb = np.ascontiguousarray(pb.render()[::-1, :, :3])
        with atomic_path(target) as tmp:
            if not cv2.imwrite(str(tmp), rgb[:, :, ::-1]):
                raise ExportError(f"{out}: could not write the PNG")
        return target
    if kind == "mp4" and not have_av():
        note(f"PyAV is not installed, so {target.name} is MPEG-4 Part 2 (mp4v), which browsers and "
             f"most messaging apps do not play; for H.264 install {VIDEO_EXTRA}")
    with Progress(n, f"export {target.name}", disable=quiet) as bar:
        if kind == "dir":
            with atomic_dir(target) as tmp:
                for i, rgb in frames(pb, seconds, fps):
                    cv2.imwrite(str(tmp / f"frame_{i:06d}.png"), rgb[:, :, ::-1])
                    bar.update(1)
            return target
        with atomic_path(target) as tmp:
            if kind == "mp4":
                writer = H264Writer(tmp, w, h, fps, crf=crf) if have_av() else Mp4vWriter(tmp, w, h, fps)
            elif kind == "webp":
                writer = WebpWriter(tmp, w, h, fps, quality=quality)
            else:
                writer = GifWriter(tmp, w, h, fps, dither=dither)
            with writer:
                for _, rgb in frames(pb, seconds, fps):
                    writer.add(rgb)
                    bar.update(1)
    return target
