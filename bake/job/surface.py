"""The depth a tile stores: the surface the field holds, not its fog.

A learned field leaves faint fog in front of the head (a few /255 of alpha); its median depth
(``bake.nerf.render.median_depth``) is then wherever that fog sits, often a hand's width from the
camera. The player's coarse z-buffer keeps the nearest depth of every source, so one such pixel
pulls the whole cell around it in front of the head, and the sources sampled there paint a patch
of shirt or shadow over the chin (d9 between grid views, issue 40's note). Depth is kept where the
field is at least half opaque. A pixel with less alpha near such a pixel (an antialiased outline,
a soft fringe of hair) keeps its depth unless it lies well in front of that pixel's, which it then
takes; farther from any, it holds no surface.
"""

from __future__ import annotations

import numpy as np

from bake.anchor.blend import nearest_inside

SOLID_ALPHA = 0.5  # the median depth describes the surface that holds at least half the pixel
REACH = 3.0 / 256  # how far (a share of the width) an outline's soft pixels look for the nearest solid depth
FRONT = 0.1  # a soft pixel this share nearer than the solid one next to it is fog; an outline seen
             # edge-on lies behind its neighbour, and a hair fringe at about its depth


def solid_depth(depth: np.ndarray, alpha: np.ndarray, reach: float = REACH) -> np.ndarray:
    """float32 [H, W]: ``depth`` where ``alpha`` >= SOLID_ALPHA (solid); where depth > 0 and alpha
    is less, within ``reach`` x W pixels of a solid pixel, its own depth, or the nearest solid
    pixel's where its own is more than FRONT nearer than that; else 0."""
    depth = np.asarray(depth, np.float32)
    alpha = np.asarray(alpha, np.float32)
    if depth.shape != alpha.shape:
        raise ValueError(f"depth {depth.shape} and alpha {alpha.shape} must have one shape")
    solid = (depth > 0) & (alpha >= SOLID_ALPHA)
    rows, cols = nearest_inside(solid, reach * depth.shape[1])
    near = np.where(rows >= 0, depth[np.maximum(rows, 0), np.maximum(cols, 0)], 0.0)
    soft = np.where(depth >= (1.0 - FRONT) * near, depth, near)
    return np.where(solid, depth, np.where((depth > 0) & (near > 0), soft, 0.0)).astype(np.float32)
