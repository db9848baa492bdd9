"""Twin of ``player.kernels.relight``."""

from __future__ import annotations

import numpy as np


def relight(rgba, na, nb, t, table, scale, spans, sigma=48.0):
    """rgba uint8 [H, W, 4] premultiplied times the gain of its normals (a new array): gains at
    the stored samples mixed at t; between samples (sample i at pixel i*s + s//2, clamped at the
    edges) the four nearest samples' gains weighted bilinearly times (likeness + 1e-3), likeness
    = 1 / (1 + d^2 / sigma^2)^2 with d the RGBA distance between the pixel and the sample's own
    pixel; colour times round(256 gain) in 8.8 fixed point, the gain lowered so the largest
    channel stays within alpha, only where alpha > 0 inside spans."""
    h_out, w_out = rgba.shape[:2]
    gains = (1.0 - t) * table[na].astype(np.float64) + t * table[nb].astype(np.float64)
    h, w = gains.shape
    half = scale // 2

    def taps(n_out, n):
        f = (np.arange(n_out) - half) / scale
        i0 = np.clip(np.floor(f).astype(int), 0, n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        return i0, i1, np.clip(f - i0, 0.0, 1.0)

    if scale == 1:
        g = gains
    else:
        y0, y1, wy = taps(h_out, h)
        x0, x1, wx = taps(w_out, w)
        guide = rgba[np.minimum(np.arange(h) * scale + half, h_out - 1)][:, np.minimum(np.arange(w) * scale + half,
                                                                                          w_out - 1)]
        px = rgba.astype(np.float64)
        num = np.zeros((h_out, w_out))
        den = np.zeros((h_out, w_out))
        for ys, by in ((y0, 1 - wy), (y1, wy)):
            for xs, bx in ((x0, 1 - wx), (x1, wx)):
                q = guide[ys][:, xs].astype(np.float64)
                d2 = ((px - q) ** 2).sum(-1)
                wgt = by[:, None] * bx[None, :] * (1.0 / (1.0 + d2 / sigma ** 2) ** 2 + 1e-3)
                num += wgt * gains[ys][:, xs]
                den += wgt
        g = num / den
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
