"""Twin of ``player.kernels.blend``."""

from __future__ import annotations

import numpy as np


def temporal_blend(a, b, da, db, t):
    """(rgba uint8 [H, W, 4], depth float32 [H, W]) of keyframes a, b mixed at t."""
    t8 = int(round(float(np.clip(t, 0, 1)) * 256))
    out = ((a.astype(np.int32) * (256 - t8) + b.astype(np.int32) * t8 + 128) >> 8).astype(np.uint8)
    t = np.float32(t8 / 256)
    dout = np.where((da > 0) & (db > 0), da + (db - da) * t, np.where(da > 0, da, db)).astype(np.float32)
    return out, dout
