"""Write a synthetic selfie capture: DIR/capture.mp4, the dataset and DIR/subject.ckpt.

Everything is staged in a hidden sibling folder inside DIR and moved into place only when all
of it is written, so an interrupted run never leaves a half dataset behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from bake.data.dataset import Dataset, Frame, default_split, save_dataset
from bake.fields.base import Capture, save_checkpoint
from bake.synthetic.field import SyntheticField
from bake.synthetic.head import EXPRESSION_NAMES, HeadConfig
from bake.synthetic.motion import MotionConfig, capture_motion
from formats.atomic import check_writable_dir
from formats.camera import Camera, Intrinsics
from formats.lighting import direction
from formats.errors import UsageError
from formats.progress import Progress

EXPRESSION_SPACE = "synthetic-8"
ARTEFACTS = ("capture.mp4", "dataset.json", "subject.ckpt", "images", "masks")


@dataclass(frozen=True)
class SynthConfig:
    """A synthetic capture: motion, image size and the phone camera."""

    motion: MotionConfig = MotionConfig()
    size: int = 256
    """width and height of the capture in pixels"""
    fov_deg: float = 40.0
    """phone field of view across the image: the head fills ~2/3 of the frame height"""
    jpeg_quality: int = 92
    light: tuple[float, float] | None = None
    """key light as (yaw, pitch) in degrees in the head frame, the sign conventions of `bake
    render` (yaw > 0 towards the subject's left, pitch > 0 above); None = HeadConfig's default
    (yaw 23.1, pitch 26.8). The same subject under another light: the truth a relit portrait
    is compared with"""

    def head(self) -> HeadConfig:
        """The head this capture renders: HeadConfig with ``light`` as its key-light direction."""
        if self.light is None:
            return HeadConfig()
        return HeadConfig(light=tuple(round(float(x), 9) for x in direction(*self.light)))

    def __post_init__(self) -> None:
        if not isinstance(self.motion, MotionConfig):
            raise ValueError(f"motion must be a MotionConfig, got {type(self.motion).__name__}")
        if not 16 <= self.size <= 2048:
            raise ValueError(f"size must be in [16, 2048], got {self.size}")
        if not 10 <= self.fov_deg <= 120:
            raise ValueError(f"fov_deg must be in [10, 120] degrees, got {self.fov_deg:g}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.light is not None:
            if len(self.light) != 2 or not all(np.isfinite(self.light)):
                raise ValueError(f"light must be (yaw, pitch) in degrees, got {self.light!r}")
            if not -90 <= self.light[1] <= 90:
                raise ValueError(f"light pitch must be in [-90, 90] degrees, got {self.light[1]:g}")


class SynthError(UsageError, ValueError):
    """A synth request that cannot run; the message says why."""


def background(size: int, seed: int) -> np.ndarray:
    """A plausible room behind the subject: float32 [2 size, 2 size, 3] in [0, 1] (RGB).

    Twice the frame so hand-held shake can pan across it.
    """
    rng = np.random.default_rng(seed + 7919)
    n = 2 * size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    wall = np.array(rng.choice([[0.80, 0.76, 0.68], [0.70, 0.75, 0.78], [0.78, 0.72, 0.70]]), np.float32)
    img = wall[None, None] * (0.75 + 0.3 * (1 - yy) [..., None] - 0.1 * xx[..., None])
    # Plaster texture: blurred noise at two scales.
    for scale, amp in ((n // 24 + 1, 0.025), (n // 96 + 1, 0.012)):
        noise = rng.normal(0, 1, (n // scale + 2, n // scale + 2)).astype(np.float32)
        noise = cv2.resize(noise, (n, n), interpolation=cv2.INTER_CUBIC)
        img *= 1 + amp * noise[..., None]
    # A bright window on one side with its frame and cross bar.
    wx0 = int(n * rng.uniform(0.02, 0.12)) if rng.uniform() < 0.5 else int(n * rng.uniform(0.6, 0.7))
    wy0, ww, wh = int(n * 0.12), int(n * 0.28), int(n * 0.38)
    sky = np.linspace([0.75, 0.85, 0.98], [0.95, 0.96, 0.97], wh, dtype=np.float32)[:, None]
    img[wy0:wy0 + wh, wx0:wx0 + ww] = sky
    img[wy0 + wh // 2 - 3: wy0 + wh // 2 + 3, wx0:wx0 + ww] = 0.92
    img[wy0:wy0 + wh, wx0 + ww // 2 - 3: wx0 + ww // 2 + 3] = 0.92
    cv2.rectangle(img, (wx0, wy0), (wx0 + ww, wy0 + wh), (0.95, 0.95, 0.93), max(2, n // 120))
    # A shelf of books opposite the window, a door frame, a plant.
    sx0 = n - wx0 - ww
    sy = int(n * 0.55)
    cv2.rectangle(img, (sx0, sy), (sx0 + ww, sy + n // 60 + 2), (0.45, 0.32, 0.22), -1)
    x = sx0 + 4
    while x < sx0 + ww - 8:
        bw = int(rng.integers(max(3, n // 80), max(5, n // 40)))
        bh = int(rng.integers(n // 16, n // 9))
        col = tuple(float(c) for c in rng.uniform(0.15, 0.8, 3))
        cv2.rectangle(img, (x, sy - bh), (x + bw, sy - 1), col, -1)
        x += bw + 1
    dx0 = int(n * rng.uniform(0.38, 0.48))
    cv2.rectangle(img, (dx0, int(n * 0.2)), (dx0 + int(n * 0.22), n), (0.55, 0.42, 0.30), max(3, n // 60))
    px, py = int(n * rng.uniform(0.8, 0.92)), int(n * 0.78)
    for _ in range(14):
        ang = rng.uniform(-2.4, -0.7)
        ln = rng.uniform(0.05, 0.12) * n
        end = (int(px + ln * np.cos(ang)), int(py + ln * np.sin(ang)))
        cv2.line(img, (px, py), end, (0.18, 0.42 + 0.2 * rng.uniform(), 0.16), max(2, n // 90))
    cv2.rectangle(img, (px - n // 30, py), (px + n // 30, py + n // 12), (0.55, 0.30, 0.20), -1)
    img = cv2.GaussianBlur(img, (0, 0), max(0.6, n / 700))  # the phone focuses on the face
    return np.clip(img, 0, 1).astype(np.float32)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} exists and is not a directory")
    if out.is_dir() and not overwrite:
        present = [a for a in ARTEFACTS if (out / a).exists()]
        if present:
            raise SynthError(f"{out} already holds {', '.join(present)}; pass --overwrite or pick another -o")


def write_capture(out: str | os.PathLike, cfg: SynthConfig = SynthConfig(), *, overwrite: bool = False,
                  quiet: bool = False) -> Dataset:
    """Render the capture and write video, dataset and checkpoint into ``out``."""
    out = Path(out)
    _check_out_dir(out, overwrite)
    size = int(cfg.size)
    m = cfg.motion
    times, c2h, expr = capture_motion(m)
    n = len(times)
    intr = Intrinsics.from_fov(cfg.fov_deg, size, size)
    head = cfg.head()
    field = SyntheticField(head)
    bg_big = background(size, m.seed)
    shake = np.random.default_rng(m.seed + 31).uniform(0, 1, 4)

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SynthError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    check_writable_dir(out / ARTEFACTS[0])
    # A unique name: two runs into one folder must not share (and delete) each other's stage.
    stage = Path(tempfile.mkdtemp(prefix=".synth-partial-", dir=out))
    (stage / "images").mkdir()
    (stage / "masks").mkdir()
    try:
        video = cv2.VideoWriter(str(stage / "capture.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), float(m.fps),
                                (size, size))
        if not video.isOpened():
            raise SynthError("opencv cannot write mp4v video here (VideoWriter did not open)")
        frames = []
        with Progress(n, "synth", disable=quiet) as bar:
            for i in range(n):
                rgb, alpha, _ = field.render(Camera(intr, c2h[i]), expr[i])
                # Hand-held shake pans the room a little; it is the camera, so the head's pose
                # (already in c2h) is what moves it in the frame.
                ox = int(size * (0.5 + 0.04 * np.sin(2 * np.pi * (0.13 * times[i] + shake[0]))))
                oy = int(size * (0.5 + 0.03 * np.sin(2 * np.pi * (0.17 * times[i] + shake[1]))))
                bg = bg_big[oy:oy + size, ox:ox + size]
                img = rgb + (1.0 - alpha[..., None]) * bg
                bgr = np.clip(img[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)
                mask = np.where(alpha >= 0.5, 255, 0).astype(np.uint8)
                name = f"{i:06d}"
                cv2.imwrite(str(stage / "images" / f"{name}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
                cv2.imwrite(str(stage / "masks" / f"{name}.png"), mask)
                video.write(bgr)
                frames.append(Frame(i, float(times[i]), f"images/{name}.jpg", f"masks/{name}.png",
                                    np.linalg.inv(c2h[i]), expr[i]))
                bar.update(1)
        video.release()

        split = default_split(n)
        ds = Dataset(stage, size, size, float(m.fps), intr, EXPRESSION_SPACE, list(EXPRESSION_NAMES),
                     frames, split, {"producer": "bake synth", "seed": int(m.seed),
                                     "seconds": float(m.seconds), "fov_deg": float(cfg.fov_deg)})
        save_dataset(ds)
        capture = Capture(size, size, intr, times, np.stack([f.pose for f in frames]), expr,
                          list(EXPRESSION_NAMES), split)
        save_checkpoint({
            "kind": "synthetic",
            "config": {**head.to_dict(), "seed": int(m.seed), "fps": float(m.fps),
                       "seconds": float(m.seconds), "fov_deg": float(cfg.fov_deg)},
            "capture": capture.to_dict(),
            "expression_range": {"min": torch.as_tensor(expr.min(axis=0)),
                                 "max": torch.as_tensor(expr.max(axis=0))},
            "model": {},
            "density_grid": None,
            "train_stats": {},
        }, stage / "subject.ckpt")

        # Everything is written: move it into place.
        for a in ARTEFACTS:
            dst = out / a
            if dst.is_dir():
                shutil.rmtree(dst)
            os.replace(stage / a, dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    ds.root = out
    return ds
