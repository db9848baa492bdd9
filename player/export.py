"""Headless playback to a video (mp4), an animated gif, or a folder of PNG frames.

Nothing appears at the output path until the whole clip is written: a file through
``formats.atomic.atomic_path``, a folder staged under a unique name beside it and renamed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from formats.atomic import atomic_path
from formats.errors import UsageError
from formats.progress import Progress
from player.gif import GifWriter
from player.playback import Playback


class ExportError(UsageError):
    """An export asked for with a name or folder that cannot be used; the message says why."""


def output_kind(out: str) -> str:
    """'mp4' | 'gif' | 'dir' from the output name (a trailing slash or an existing folder = dir)."""
    if out.endswith(("/", os.sep)) or Path(out).is_dir():
        return "dir"
    ext = Path(out).suffix.lower()
    if ext in (".mp4", ".gif"):
        return ext[1:]
    raise ExportError(f"{out}: unknown export type {ext or '(none)'}; use .mp4, .gif or a folder name ending in /")


def frames(pb: Playback, seconds: float, fps: float):
    """Yield (index, RGB uint8 [H, W, 3] top-down) for ``round(seconds * fps)`` frames."""
    n = max(1, int(round(seconds * fps)))
    for i in range(n):
        img = pb.render()
        yield i, np.ascontiguousarray(img[::-1, :, :3])
        pb.step(1.0 / fps)


def export(pb: Playback, out: str, seconds: float, fps: float = 25.0, quiet: bool = False) -> Path:
    kind = output_kind(out)
    if seconds <= 0 or fps <= 0:
        raise ExportError(f"--seconds and --fps must be > 0 (got {seconds}, {fps})")
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
    with Progress(n, f"export {target.name}", disable=quiet) as bar:
        if kind == "dir":
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
            try:
                for i, rgb in frames(pb, seconds, fps):
                    cv2.imwrite(str(tmp / f"frame_{i:06d}.png"), rgb[:, :, ::-1])
                    bar.update(1)
                if target.exists():
                    target.rmdir()
                os.replace(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return target
        with atomic_path(target) as tmp:
            if kind == "mp4":
                vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not vw.isOpened():
                    raise RuntimeError(f"{out}: opencv cannot write mp4 here (no mp4v encoder)")
                for _, rgb in frames(pb, seconds, fps):
                    vw.write(rgb[:, :, ::-1])
                    bar.update(1)
                vw.release()
            else:
                with open(tmp, "wb") as f:
                    gw = GifWriter(f, w, h, fps)
                    for _, rgb in frames(pb, seconds, fps):
                        gw.add(rgb)
                        bar.update(1)
                    gw.close()
    return target
