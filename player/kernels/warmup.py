"""Every kernel run once on tiny inputs, so the first real frame pays no JIT or page-in cost."""

from __future__ import annotations

import numpy as np

from .blend import fade_blend, temporal_blend
from .compositing import composite, crossfade
from .decode import interleave_rgba, upsample_depth
from .relight import relight, relight_scratch
from .reprojection import warp
from .splat import splat_depth
from .views import view_weights


def warm_up() -> None:
    """Run every kernel once on tiny inputs so the first real frame pays no JIT or page-in cost."""
    s, h, w = 2, 8, 8
    rgba = np.zeros((s, h, w, 4), np.uint8)
    depth = np.ones((s, h, w), np.float32)
    sw = np.array([0.5, 0.5], np.float32)
    k = np.tile(np.array([8.0, 8.0, 4.0, 4.0]), (s, 1))
    r = np.tile(np.eye(3), (s, 1, 1))
    c = np.zeros((s, 3))
    coarse = np.zeros((2, 4, 4), np.float32)
    splat_depth(depth, sw, (k, r, c), (k[0].copy(), r[0].copy(), c[0].copy()), 2, 1, coarse)
    out = np.zeros((h, w, 4), np.uint8)
    warp(rgba, depth, sw, (k, r, c), (k[0].copy(), r[0].copy(), c[0].copy()), coarse, 2, out)
    temporal_blend(rgba[0], rgba[1], depth[0], depth[1], 0.5, rgba[0], depth[0])
    fade_blend((rgba[0], rgba[1], depth[0], depth[1], 0.5), (rgba[1], rgba[0], depth[1], depth[0], 0.0), 0.3,
               rgba[0], depth[0])
    crossfade(out, out, 0.5, out)
    composite(out, (0.0, 0.0, 0.0), np.zeros((h, w, 4), np.uint8))
    view_weights(np.array([0.0, 1.0]), np.array([0.0]), 0.5, 0.0)
    spans = np.empty((8, 2), np.int32)
    upsample_depth(np.ones((2, 2), np.float32), 4, 8, 8, spans=spans)
    interleave_rgba(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), spans)
    codes = np.zeros((4, 4), np.uint16)
    relight(np.zeros((8, 8, 4), np.uint8), codes, codes, 0.5, np.ones(65536, np.float32), 2, spans,
            relight_scratch((4, 4), 2))
