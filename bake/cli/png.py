"""PNG output of the bake commands (validation and evaluation sheets), written atomically."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from formats.atomic import atomic_path


def write_png(path: Path, rgb: np.ndarray) -> None:
    """uint8 RGB [H, W, 3] or RGBA [H, W, 4] -> ``path``: whole or absent, never half written."""
    img = rgb[..., [2, 1, 0, 3]] if rgb.shape[-1] == 4 else rgb[..., ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
