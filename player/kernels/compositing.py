"""Frame step 5: warped frames crossfaded (``crossfade``), and premultiplied colour composited
over the background (``composite``; rows flipped bottom-up for a GL texture)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .checks import require
from .blend import _mix_rgba, blend_steps


@njit("void(u4[:,::1], u4[:,::1], i8, u4[:,::1])", cache=True, nogil=True, parallel=True)
def _crossfade(a, b, t8, out):
    s8 = np.uint32(256 - t8)
    t = np.uint32(t8)
    for y in prange(a.shape[0]):
        for x in range(a.shape[1]):
            out[y, x] = _mix_rgba(a[y, x], b[y, x], s8, t)


def crossfade(a: np.ndarray, b: np.ndarray, t: float, out: np.ndarray) -> None:
    """out = (a (256 - t8) + b t8 + 128) >> 8 with t8 = round(256 t), t clamped to [0, 1], on
    premultiplied RGBA uint8 [H, W, 4] frames; out may alias a or b."""
    require(a.shape == b.shape == out.shape and a.ndim == 3 and a.shape[2] == 4,
            "a, b and out RGBA [H, W, 4] of one size", (a.shape, b.shape))
    require(a.dtype == b.dtype == out.dtype == np.uint8, "uint8 frames", (a.dtype, b.dtype, out.dtype))
    h, w = a.shape[:2]
    _crossfade(a.view(np.uint32).reshape(h, w), b.view(np.uint32).reshape(h, w), blend_steps(t),
               out.view(np.uint32).reshape(h, w))


def composite_tables(background) -> np.ndarray:
    """uint32 [2, 256]: what an RGB background (3 floats in [0, 1]) adds under coverage a,
    round((255 - a) bg) per channel, as R|B words (16-bit lanes) and G words, so that a
    composited pixel is two adds and a saturation, not three float ops. Built once per
    background: ``composite`` then allocates nothing per frame."""
    bg = np.asarray(background, dtype=np.float64)
    require(bg.shape == (3,) and (bg >= 0).all() and (bg <= 1).all(), "an RGB background of 3 floats in [0, 1]", bg)
    c = ((255 - np.arange(256, dtype=np.float64))[:, None] * bg + 0.5).astype(np.uint32)
    return np.ascontiguousarray(np.stack([c[:, 0] | (c[:, 2] << 16), c[:, 1]]))


@njit("void(u4[:,::1], u4[:,::1], i4[:,::1], u4[:,::1])", cache=True, nogil=True, parallel=True)
def _composite(src, tables, spans, out):
    lanes = np.uint32(0xFF00FF)
    tab_rb = tables[0]
    tab_g = tables[1]
    h, w = src.shape[0], src.shape[1]
    for y in prange(h):
        yo = h - 1 - y  # GL textures start at the bottom row
        x0, x1 = max(spans[y, 0], 0), min(spans[y, 1], w)  # clamped: never past the row
        for x in range(x0, x1):
            p = src[y, x]
            a = p >> 24
            rb = (p & lanes) + tab_rb[a]
            g = ((p >> 8) & np.uint32(255)) + tab_g[a]
            # Saturate: a lossy colour codec can leave a premultiplied channel above its alpha.
            rb |= ((rb >> 8) & np.uint32(0x10001)) * np.uint32(255)
            g |= ((g >> 8) & np.uint32(1)) * np.uint32(255)
            out[yo, x] = (rb & lanes) | ((g & np.uint32(255)) << 8) | np.uint32(0xFF000000)


def composite(src: np.ndarray, background, out: np.ndarray, spans: np.ndarray | None = None,
              tables: np.ndarray | None = None) -> None:
    """Premultiplied RGBA uint8 [H, W, 4] over an RGB background (3 floats in [0, 1]) ->
    opaque RGBA uint8 [H, W, 4] with rows bottom-up (GL order): c + round((255 - a) bg).

    spans int32 [H, 2]: per row of src, the columns [x0, x1) to composite ((W, 0) = none);
    out's other pixels are left as they are (default: all columns). A caller whose out already
    holds the background wherever src is 0 outside the spans (``warp_spans``, ``write_spans``)
    skips the empty part of the frame.
    tables: ``composite_tables(background)``, which a caller compositing every frame builds once
    (default: built here); background is then not read.
    """
    if tables is None:
        tables = composite_tables(background)
    require(tables.shape == (2, 256) and tables.dtype == np.uint32 and tables.flags.c_contiguous,
            "tables from composite_tables (uint32 [2, 256])", tables.shape)
    require(src.ndim == 3 and src.shape[2] == 4 and out.shape == src.shape,
            "src and out RGBA [H, W, 4] of one size", (src.shape, out.shape))
    require(src.dtype == out.dtype == np.uint8, "uint8 src and out", (src.dtype, out.dtype))
    h, w = src.shape[:2]
    if spans is None:
        spans = np.zeros((h, 2), np.int32)
        spans[:, 1] = w
    require(spans.shape == (h, 2) and spans.dtype == np.int32, "row spans int32 [H, 2]", (spans.shape, spans.dtype))
    _composite(src.view(np.uint32).reshape(h, w), tables, spans, out.view(np.uint32).reshape(h, w))
