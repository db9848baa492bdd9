"""Twin of ``player.kernels.relight``."""

from __future__ import annotations

import numpy as np


def relight(rgba, na, nb, t, table, scale, spans):
    """rgba uint8 [H, W, 4] premultiplied times the gain of its normals (a new array): gains at
    the stored samples mixed at t, bilinear between samples (sample i at pixel i*s + s//2,
    clamped at the edges), colour times round(256 gain) in 8.8 fixed point, the gain lowered so
    the largest channel stays within alpha, only where alpha > 0 inside spans."""
    h_out, w_out = rgba.shape[:2]
    gains = (1.0 - t) * table[na].astype(np.float64) + t * table[nb].astype(np.float64)
    h, w = gains.shape
    half = scale // 2

    def taps(n_out, n):
        f = (np.arange(n_out) - half) / scale
        i0 = np.clip(np.floor(f).astype(int), 0, n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        return i0, i1, np.clip(f - i0, 0.0, 1.0)

    y0, y1, wy = taps(h_out, h)
    x0, x1, wx = taps(w_out, w)
    top = gains[y0][:, x0] + (gains[y0][:, x1] - gains[y0][:, x0]) * wx
    bot = gains[y1][:, x0] + (gains[y1][:, x1] - gains[y1][:, x0]) * wx
    g = top + (bot - top) * wy[:, None]
    out = rgba.copy()
    a = rgba[..., 3].astype(np.float64)
    gi = np.floor(g * 256 + 0.5).astype(np.int64)
    c = rgba[..., :3].astype(np.int64)
    m = c.max(-1)
    a8 = rgba[..., 3].astype(np.int64) << 8
    gi = np.where(m * gi > a8, a8 // np.maximum(m, 1), gi)  # the largest channel stays within alpha: hue kept
    relit = np.minimum((c * gi[..., None] + 128) >> 8, a[..., None]).astype(np.uint8)
    cols = np.arange(w_out)
    inside = (cols >= spans[:, :1]) & (cols < spans[:, 1:]) & (a > 0)
    out[..., :3] = np.where(inside[..., None], relit, rgba[..., :3])
    return out
