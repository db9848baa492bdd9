"""The tracked dataset: output of ``bake track`` and ``bake synth``, input of ``bake train``.

This module holds the in-memory types, our own ``dataset.json`` reader and writer; other
producers' layouts are read in ``bake.data.foreign``, and ``bake.data.load.load_dataset`` picks
the reader for a folder.

Layout (docs/dataset.md)::

    DATASET/dataset.json
    DATASET/images/000000.jpg
    DATASET/masks/000000.png

``pose`` is head -> camera (OpenCV axes), the inverse of a camera's ``cam_to_head``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from formats.atomic import atomic_path
from formats.camera import Intrinsics
from formats.errors import UsageError

DATASET_VERSION = 1


class DatasetError(UsageError, ValueError):
    """A dataset directory that cannot be read; the message says what and where."""


@dataclass
class Frame:
    index: int
    time: float
    image: str  # path relative to the dataset root
    mask: str
    pose: np.ndarray  # [4, 4] head -> camera
    expression: np.ndarray  # [dim]
    valid: np.ndarray | None = None
    """[4, 2] convex quad (pixels of the stored frame, edge origin) of the part that shows the
    source video; outside it the image is padding whose content nobody knows. None = all of it."""


def quad_mask(quad: np.ndarray | None, w: int, h: int, scale: float = 1.0) -> np.ndarray:
    """bool [h, w]: pixels whose centre lies inside the convex ``quad`` [4, 2] (edge-origin
    pixels, times ``scale``); all True when ``quad`` is None.

    >>> quad_mask(np.array([[1, 0], [4, 0], [4, 2], [1, 2]]), 5, 3).astype(int)
    array([[0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
    """
    if quad is None:
        return np.ones((h, w), bool)
    q = np.asarray(quad, np.float64) * scale
    # The polygon's orientation decides which side of each edge is inside.
    area2 = np.sum(q[:, 0] * np.roll(q[:, 1], -1) - np.roll(q[:, 0], -1) * q[:, 1])
    x, y = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    inside = np.ones((h, w), bool)
    for a, b in zip(q, np.roll(q, -1, axis=0)):
        cross = (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])
        inside &= cross * np.sign(area2) >= 0
    return inside


@dataclass
class Dataset:
    root: Path
    width: int
    height: int
    fps: float
    intrinsics: Intrinsics
    expression_space: str  # e.g. "synthetic-8", "arkit-52"
    expression_names: list[str]
    frames: list[Frame]
    split: dict[str, list[int]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # free-form producer info (tracker stats, seed)

    @property
    def expression_dim(self) -> int:
        return len(self.expression_names)

    def poses(self) -> np.ndarray:
        """[N, 4, 4] head -> camera."""
        return np.stack([f.pose for f in self.frames])

    def expressions(self) -> np.ndarray:
        """[N, dim] float32."""
        return np.stack([f.expression for f in self.frames]).astype(np.float32)

    def times(self) -> np.ndarray:
        return np.array([f.time for f in self.frames], dtype=np.float64)

    def load_image(self, i: int) -> np.ndarray:
        """RGB uint8 [H, W, 3] of frame i (list position, not ``Frame.index``)."""
        return _read(self.root / self.frames[i].image, cv2.IMREAD_COLOR)[..., ::-1].copy()

    def load_mask(self, i: int) -> np.ndarray:
        """uint8 [H, W] foreground mask of frame i."""
        return _read(self.root / self.frames[i].mask, cv2.IMREAD_GRAYSCALE)

    def valid_mask(self, i: int, w: int | None = None, h: int | None = None) -> np.ndarray:
        """bool [h, w] (default the stored size): where frame i shows the source video."""
        w, h = w or self.width, h or self.height
        return quad_mask(self.frames[i].valid, w, h, w / self.width)


def _read(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise DatasetError(f"cannot read image {path}")
    return img


def default_split(n: int) -> dict[str, list[int]]:
    """Last 10 % test, every 20th of the rest val, the remainder train (list positions)."""
    n_test = max(1, n // 10) if n >= 10 else 0
    head = list(range(n - n_test))
    val = head[10::20]
    val_set = set(val)
    return {"train": [i for i in head if i not in val_set], "val": val,
            "test": list(range(n - n_test, n))}


def save_dataset(ds: Dataset) -> Path:
    """Write ``dataset.json`` under ``ds.root`` atomically (images and masks are the caller's)."""
    doc = {
        "format": "portrait4d-dataset",
        "version": DATASET_VERSION,
        "width": ds.width,
        "height": ds.height,
        "fps": ds.fps,
        "intrinsics": {k: v for k, v in ds.intrinsics.to_dict().items() if k in ("fx", "fy", "cx", "cy")},
        "expression": {"name": ds.expression_space, "dim": ds.expression_dim,
                       "names": list(ds.expression_names)},
        "split": ds.split,
        "extra": ds.extra,
        "frames": [
            {"index": f.index, "time": round(float(f.time), 6), "image": f.image, "mask": f.mask,
             "pose": np.asarray(f.pose, dtype=np.float64).round(8).tolist(),
             "expression": np.asarray(f.expression, dtype=np.float64).round(6).tolist(),
             **({} if f.valid is None else {"valid": np.asarray(f.valid, np.float64).round(3).tolist()})}
            for f in ds.frames
        ],
    }
    path = Path(ds.root) / "dataset.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1))
    return path


def read_dataset_json(root: str | os.PathLike) -> Dataset:
    """Read ``root/dataset.json`` (our own layout); raises DatasetError with a one-line reason."""
    root = Path(root)
    path = root / "dataset.json"
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except ValueError as exc:
        raise DatasetError(f"{path}: not JSON ({exc})") from None
    try:
        if not isinstance(doc, dict):
            raise DatasetError(f"{path}: not a dataset (the top level is not an object)")
        if doc.get("version") != DATASET_VERSION:
            raise DatasetError(f"{path}: unsupported dataset version {doc.get('version')!r} "
                               f"(this build reads {DATASET_VERSION})")
        w, h = int(doc["width"]), int(doc["height"])
        k = doc["intrinsics"]
        intr = Intrinsics(float(k["fx"]), float(k["fy"]), float(k["cx"]), float(k["cy"]), w, h)
        expr = doc["expression"]
        names = list(expr.get("names") or [f"e{i}" for i in range(int(expr["dim"]))])
        frames = []
        for fr in doc["frames"]:
            pose = np.asarray(fr["pose"], dtype=np.float64)
            e = np.asarray(fr["expression"], dtype=np.float32)
            if pose.shape != (4, 4) or e.shape != (len(names),):
                raise DatasetError(f"{path}: frame {fr.get('index')} has pose {pose.shape} / "
                                   f"expression {e.shape}, expected (4, 4) / ({len(names)},)")
            valid = fr.get("valid")
            if valid is not None:
                valid = np.asarray(valid, dtype=np.float64)
                if valid.shape != (4, 2):
                    raise DatasetError(f"{path}: frame {fr.get('index')} has valid {valid.shape}, expected (4, 2)")
            frames.append(Frame(int(fr["index"]), float(fr["time"]), str(fr["image"]),
                                str(fr["mask"]), pose, e, valid))
    except DatasetError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: malformed ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise DatasetError(f"{path}: no frames")
    split = {k: [int(i) for i in v] for k, v in doc.get("split", {}).items()}
    return Dataset(root, w, h, float(doc["fps"]), intr, str(expr.get("name", "unknown")), names,
                   frames, split or default_split(len(frames)), dict(doc.get("extra", {})))
