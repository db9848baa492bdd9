"""Twin of ``player.kernels.decode``, and the row spans it returns."""

from __future__ import annotations

import numpy as np


def upsample_depth(small: np.ndarray, s: int, h: int, w: int, disc: float = 0.05,
                   alpha: np.ndarray | None = None) -> np.ndarray:
    """Full-resolution depth [h, w] from a depth tile stored at 1/s: bilinear between the samples
    around a pixel where they lie on one surface, else its own block's sample; with alpha, 0
    where alpha is 0 and, where the own block's sample is empty, the nearest sample with a
    surface among the 3 x 3 blocks around (the first in row-major order on a tie)."""
    hs, ws = small.shape
    py = np.minimum(np.arange(hs) * s + s // 2, h - 1).astype(np.float32)
    px = np.minimum(np.arange(ws) * s + s // 2, w - 1).astype(np.float32)
    i1 = np.clip(np.searchsorted(py, np.arange(h, dtype=np.float32), side="right"), 1, max(hs - 1, 1))
    j1 = np.clip(np.searchsorted(px, np.arange(w, dtype=np.float32), side="right"), 1, max(ws - 1, 1))
    i0, j0 = np.maximum(i1 - 1, 0), np.maximum(j1 - 1, 0)
    i1, j1 = np.minimum(i1, hs - 1), np.minimum(j1, ws - 1)
    ty = np.clip((np.arange(h) - py[i0]) / np.maximum(py[i1] - py[i0], 1), 0, 1).astype(np.float32)[:, None]
    tx = np.clip((np.arange(w) - px[j0]) / np.maximum(px[j1] - px[j0], 1), 0, 1).astype(np.float32)[None, :]
    z00, z01 = small[i0][:, j0], small[i0][:, j1]
    z10, z11 = small[i1][:, j0], small[i1][:, j1]
    lin = (1 - ty) * ((1 - tx) * z00 + tx * z01) + ty * ((1 - tx) * z10 + tx * z11)
    zs = np.stack([z00, z01, z10, z11])
    zmin, zmax = zs.min(0), zs.max(0)
    near = small[np.minimum(np.arange(h) // s, hs - 1)][:, np.minimum(np.arange(w) // s, ws - 1)]
    smooth = (zmin > 0) & (zmax - zmin <= disc * zmin)
    if alpha is None:
        return np.where(smooth, lin, near).astype(np.float32)
    n_r, n_c = np.minimum(np.arange(h) // s, hs - 1), np.minimum(np.arange(w) // s, ws - 1)
    best, best_d = np.zeros((h, w), np.float32), np.full((h, w), np.inf)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = n_r + dr, n_c + dc
            ok = ((r >= 0) & (r < hs))[:, None] & ((c >= 0) & (c < ws))[None, :]
            z = small[np.clip(r, 0, hs - 1)][:, np.clip(c, 0, ws - 1)]
            d = (py[np.clip(r, 0, hs - 1)].astype(np.float64)[:, None] - np.arange(h)[:, None]) ** 2 \
                + (px[np.clip(c, 0, ws - 1)].astype(np.float64)[None, :] - np.arange(w)[None, :]) ** 2
            better = ok & (z > 0) & (d < best_d)
            best, best_d = np.where(better, z, best), np.where(better, d, best_d)
    near = np.where(near > 0, near, best)
    return np.where(alpha == 0, 0, np.where(smooth, lin, near)).astype(np.float32)


def row_spans(nonzero: np.ndarray) -> np.ndarray:
    """int32 [H, 2]: per row of a boolean [H, W] the columns [x0, x1), half-open, outside of which
    it is False; (W, 0) for a row with none."""
    h, w = nonzero.shape
    any_ = nonzero.any(1)
    spans = np.empty((h, 2), np.int32)
    spans[:, 0] = np.where(any_, nonzero.argmax(1), w)
    spans[:, 1] = np.where(any_, w - nonzero[:, ::-1].argmax(1), 0)
    return spans


def content_spans(rgba: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """A tile's row spans (``player.cache.Tile.spans``): outside them every RGBA byte and depth is 0."""
    return row_spans((rgba != 0).any(2) | (depth > 0))


def interleave_rgba(color: np.ndarray, alpha: np.ndarray, depth_spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rgba, spans): colour, clamped to alpha, and alpha as one RGBA array, and the row spans of it
    and of the depth (whose own spans are ``depth_spans``)."""
    rgba = np.concatenate([np.minimum(color, alpha[..., None]), alpha[..., None]], 2)
    x = np.arange(alpha.shape[1])
    in_depth = (x >= depth_spans[:, :1]) & (x < depth_spans[:, 1:])
    return rgba, row_spans((rgba != 0).any(2) | in_depth)
