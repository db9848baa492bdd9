"""Two portraits on the same grid and keyframes, tile against tile (``p4d compare``).

Colour: PSNR of the premultiplied colour over the pixels where B's alpha is nonzero (identical
tiles count as 100 dB, so a mean stays finite). Alpha: mean absolute error in levels (0..255) over
the whole tile. Depth: RMS error in millimetres over the pixels where B's alpha is nonzero and
both files hold a surface, each file's depth brought to full resolution by its own depth scale
(nearest sample, as stored). B is the reference: ``compare(candidate, reference)``.
"""

from __future__ import annotations

import math

import numpy as np

from formats.codecs import dequantize_depth
from formats.errors import UsageError
from formats.p4d import upsample_depth_nearest
from formats.progress import Progress

__all__ = ["IDENTICAL_DB", "same_layout", "tile_psnr", "compare"]

IDENTICAL_DB = 100.0  # the PSNR of identical tiles (and the cap of every PSNR here)


def tile_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB (peak 255) of uint8 images a, b [H, W, C] over the pixels of ``mask`` [H, W];
    ``IDENTICAL_DB`` when they agree there (or the mask is empty).

    >>> a = np.zeros((2, 2, 3), np.uint8); b = a.copy(); b[0, 0] = 10
    >>> round(tile_psnr(a, b, np.ones((2, 2), bool)), 2), tile_psnr(a, b, np.eye(2, dtype=bool) & False)
    (34.15, 100.0)
    """
    if not mask.any():
        return IDENTICAL_DB
    err = (a[mask].astype(np.float64) - b[mask].astype(np.float64)) ** 2
    mse = float(err.mean())
    return IDENTICAL_DB if mse == 0 else min(IDENTICAL_DB, 10.0 * math.log10(255.0 ** 2 / mse))


def same_layout(a, b) -> None:
    """Raise ``UsageError`` naming the first difference unless readers a and b share the view
    grid (yaws, pitches, tile size) and the keyframes (count and times)."""
    ga, gb = a.meta["grid"], b.meta["grid"]
    for key in ("yaws", "pitches"):
        if len(ga[key]) != len(gb[key]) or not np.allclose(ga[key], gb[key], atol=1e-6):
            raise UsageError(f"the files have different view grids ({key}: {list(ga[key])} vs {list(gb[key])})")
    if tuple(a.tile_shape) != tuple(b.tile_shape):
        raise UsageError(f"the files have different tile sizes ({a.tile_shape} vs {b.tile_shape})")
    ta, tb = a.meta["keyframes"]["times"], b.meta["keyframes"]["times"]
    if len(ta) != len(tb):
        raise UsageError(f"the files have different keyframes ({len(ta)} vs {len(tb)})")
    if not np.allclose(ta, tb, atol=1e-6):
        raise UsageError("the files have keyframes at different times")


def _depth_m(reader, k: int, v: int) -> np.ndarray:
    d = reader.meta["grid"]["depth"]
    small = dequantize_depth(reader.tile(k, v, "depth"), d["near"], d["far"])
    return upsample_depth_nearest(small, reader.depth_scale, reader.tile_shape)


def _summary(per_tile: np.ndarray, key: str, worst) -> dict:
    """Mean, worst and per-view means (over keyframes) of a [K, V] table; NaN cells (nothing to
    compare) left out."""
    with np.errstate(invalid="ignore"):
        per_view = [None if np.isnan(c).all() else float(np.nanmean(c)) for c in per_tile.T]
    ok = per_tile[~np.isnan(per_tile)]
    return {f"{key}_mean": float(ok.mean()) if ok.size else None,
            f"{key}_{worst.__name__}": float(worst(ok)) if ok.size else None,
            "per_view": per_view}


def compare(a, b, quiet: bool = True) -> dict:
    """A's tiles against B's (readers with ``same_layout``): {"color": {"psnr_mean", "psnr_min",
    "per_view"}, "alpha": {"mae_mean", "mae_max", "per_view"} or None, "depth": {"rms_mm_mean",
    "rms_mm_max", "per_view"} or None}; per_view: one mean over keyframes per view, in the
    files' view order. Alpha and depth are None unless both files hold them."""
    same_layout(a, b)
    n_k, n_v = a.n_keyframes, a.n_views
    h, w = b.tile_shape
    has_alpha = "alpha" in a.kinds and "alpha" in b.kinds
    has_depth = "depth" in a.kinds and "depth" in b.kinds
    color = np.full((n_k, n_v), np.nan)
    alpha = np.full((n_k, n_v), np.nan)
    depth = np.full((n_k, n_v), np.nan)
    with Progress(n_k * n_v, "compare", disable=quiet) as bar:
        for k in range(n_k):
            for v in range(n_v):
                ab = b.tile(k, v, "alpha") if "alpha" in b.kinds else np.full((h, w), 255, np.uint8)
                inside = ab > 0
                color[k, v] = tile_psnr(a.tile(k, v, "color"), b.tile(k, v, "color"), inside)
                if has_alpha:
                    alpha[k, v] = float(np.abs(a.tile(k, v, "alpha").astype(np.int32) - ab).mean())
                if has_depth:
                    da, db = _depth_m(a, k, v), _depth_m(b, k, v)
                    both = inside & (da > 0) & (db > 0)
                    if both.any():
                        depth[k, v] = float(np.sqrt(np.mean((da[both] - db[both]).astype(np.float64) ** 2)) * 1e3)
                bar.update(1)
    return {"color": _summary(color, "psnr", min),
            "alpha": _summary(alpha, "mae", max) if has_alpha else None,
            "depth": _summary(depth, "rms_mm", max) if has_depth else None,
            "keyframes": n_k, "views": n_v}
