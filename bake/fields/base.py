"""The field interface every checkpoint kind loads into, and the checkpoint envelope.

Every field kind (``bake.synthetic.field``, ``bake.nerf.field``) builds on this module;
``bake.fields.registry.load_field`` picks the kind a checkpoint names.

A field answers ``render(camera, expression) -> (rgb, alpha, depth)`` as numpy arrays:
``rgb`` float32 [H, W, 3] in [0, 1], premultiplied (composited over black); ``alpha`` float32
[H, W] in [0, 1]; ``depth`` float32 [H, W] camera z-depth in metres, 0 where nothing was hit.
Render at the size of ``camera.intrinsics``.

The checkpoint (docs/checkpoint.md) is one ``torch.save`` dict of tensors and plain types so that
``torch.load(path, weights_only=True)`` can open a file a stranger sent.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from formats.atomic import atomic_path
from formats.camera import Camera, Intrinsics, view_angles
from formats.errors import UsageError

CKPT_FORMAT = "portrait4d-ckpt"
CKPT_VERSION = 1


class CheckpointError(UsageError, ValueError):
    """A checkpoint file that cannot be used (missing, corrupt, another kind); the message says why."""


@dataclass
class Capture:
    """What a checkpoint remembers of the capture it came from."""

    width: int
    height: int
    intrinsics: Intrinsics
    times: np.ndarray  # [N] seconds
    poses: np.ndarray  # [N, 4, 4] head -> camera
    expressions: np.ndarray  # [N, D] float32
    expression_names: list[str]
    split: dict[str, list[int]]

    def view_angles(self) -> np.ndarray:
        """[N, 3] (yaw_deg, pitch_deg, radius) of the capture camera around the head centre."""
        return np.array([view_angles(np.linalg.inv(p)) for p in self.poses])

    def to_dict(self) -> dict:
        return {
            "width": int(self.width), "height": int(self.height),
            "intrinsics": self.intrinsics.to_dict(),
            "times": torch.as_tensor(self.times, dtype=torch.float64),
            "poses": torch.as_tensor(self.poses, dtype=torch.float64),
            "expressions": torch.as_tensor(self.expressions, dtype=torch.float32),
            "expression_names": [str(n) for n in self.expression_names],
            "split": {str(k): [int(i) for i in v] for k, v in self.split.items()},
        }

    @staticmethod
    def from_dict(d: dict) -> "Capture":
        return Capture(int(d["width"]), int(d["height"]), Intrinsics.from_dict(d["intrinsics"]),
                       np.asarray(d["times"], dtype=np.float64), np.asarray(d["poses"], dtype=np.float64),
                       np.asarray(d["expressions"], dtype=np.float32), list(d["expression_names"]),
                       {k: [int(i) for i in v] for k, v in d["split"].items()})

    @staticmethod
    def from_dataset(ds) -> "Capture":
        return Capture(ds.width, ds.height, ds.intrinsics, ds.times(), ds.poses(), ds.expressions(),
                       list(ds.expression_names), ds.split)


class Field(Protocol):
    kind: str
    capture: Capture

    def render(self, camera: Camera, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ...


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(device)


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Open a checkpoint safely (weights_only) and check its envelope."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or damaged files
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path}: not a Portrait4D checkpoint (format != {CKPT_FORMAT!r})")
    if ckpt.get("version") != CKPT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')!r}, this build reads {CKPT_VERSION}")
    return ckpt


def save_checkpoint(ckpt: dict, path: str | os.PathLike) -> None:
    """Write atomically: a crash never leaves a half checkpoint at ``path``."""
    with atomic_path(path) as tmp:
        torch.save({"format": CKPT_FORMAT, "version": CKPT_VERSION, **ckpt}, tmp)
