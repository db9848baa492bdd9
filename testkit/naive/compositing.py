"""Twin of ``player.kernels.compositing``."""

from __future__ import annotations

import numpy as np


def crossfade(a, b, t):
    """Premultiplied RGBA uint8 frames mixed in 1/256 steps, like ``temporal_blend``'s colour."""
    t8 = int(round(float(np.clip(t, 0, 1)) * 256))
    return ((a.astype(np.int32) * (256 - t8) + b.astype(np.int32) * t8 + 128) >> 8).astype(np.uint8)


def composite(src, background):
    """Premultiplied RGBA uint8 over the RGB background: c + round((255 - a) bg), rows flipped."""
    bg = np.asarray(background, np.float64)
    a = src[..., 3:4].astype(np.float64)
    rgb = src[..., :3] + np.floor((255 - a) * bg + 0.5)
    out = np.empty(src.shape, np.uint8)
    out[..., :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    out[..., 3] = 255
    return out[::-1].copy()
