"""Twin of ``player.kernels.views``."""

from __future__ import annotations

import numpy as np


def view_weights(yaws, pitches, yaw, pitch, sharpen=1.0):
    """idx int32 [4], w float32 [4]: bilinear weights of the 4 grid views around (yaw, pitch),
    each axis' cell coordinate t stretched to clip((t - 1/2) sharpen + 1/2, 0, 1)."""
    def cell(vals, x):
        vals = np.asarray(vals, dtype=np.float64)
        x = float(np.clip(x, vals[0], vals[-1]))
        if len(vals) == 1 or x <= vals[0]:  # clamped at the border: one view, like the kernel
            return 0, 0, 0.0
        i = int(np.clip(np.searchsorted(vals, x, side="right") - 1, 0, len(vals) - 2))
        t = (x - vals[i]) / (vals[i + 1] - vals[i])
        if t >= 1.0:  # exactly on the last value: clamp, like the kernel
            return len(vals) - 1, len(vals) - 1, 0.0
        return i, i + 1, t
    i0, i1, ty = cell(yaws, yaw)
    j0, j1, tp = cell(pitches, pitch)
    ty, tp = (float(np.clip((t - 0.5) * sharpen + 0.5, 0.0, 1.0)) for t in (ty, tp))
    ny = len(yaws)
    idx = np.array([j0 * ny + i0, j0 * ny + i1, j1 * ny + i0, j1 * ny + i1], np.int32)
    w = np.array([(1 - tp) * (1 - ty), (1 - tp) * ty, tp * (1 - ty), tp * ty], np.float32)
    return idx, w
