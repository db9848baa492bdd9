"""Frame step 2b (format 1.2): the quotient relight of a blended source tile, in its own pixels.

Normals are head-frame vectors and the relight's gain SH_new(n) / SH_captured(n) depends on the
normal only, so a source pixel relit before the warp is the pixel the warp would have relit after
it: the normals follow the colour's warp exactly. ``Renderer`` relights each decoded tile once
per light (t = 0, na = nb) and blends the relit tiles; mixing two keyframes' gains at t is for a
caller that relights a blend.

The gain per packed normal code comes from ``formats.lighting.relight_table`` (float32 [65536]);
keyframes k and k+1 blended at t get (1 - t) gain(n_k) + t gain(n_k+1). Normal tiles stored at
1/s are read at their samples (the depth rule: sample i at pixel i*s + s//2) and the gain is
interpolated between them, bilinearly where the colour is smooth and joint-bilaterally (guided by
the tile's own pixels) where it is not: no s x s blocks, and no crease's gain smeared s px into
the next surface (the jaw's into the neck, the forehead's into the hair).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .checks import require

# The guide's colour scale in 8-bit levels (premultiplied RGBA distance): webp's noise (a few
# levels) counts as alike, a crease in the captured shading or hair against skin (tens) not.
GUIDE_SIGMA = 48.0


@njit(inline="always")
def _apply(px, g):
    """Premultiplied RGBA word px (uint32, R in the low byte) times gain g, in 8.8 fixed point:
    (c * gi + 128) >> 8 per colour channel with gi = round(256 g), gi lowered so that the
    largest channel stays within the alpha (premultiplied colour never exceeds it): a bright
    pixel saturates as a whole, keeping its hue, instead of losing red first (skin turning
    pale or green)."""
    gi = np.uint32(g * np.float32(256.0) + np.float32(0.5))
    a = (px >> 24) & np.uint32(0xFF)
    r = px & np.uint32(0xFF)
    gg = (px >> 8) & np.uint32(0xFF)
    b = (px >> 16) & np.uint32(0xFF)
    m = max(r, max(gg, b))
    if m * gi > a << 8:
        gi = (a << 8) // m
    half = np.uint32(128)
    r = min((r * gi + half) >> 8, a)
    gg = min((gg * gi + half) >> 8, a)
    b = min((b * gi + half) >> 8, a)
    return (px & np.uint32(0xFF000000)) | r | (gg << 8) | (b << 16)


@njit(inline="always")
def _likeness(p, q, inv_sigma2):
    """How much pixel word p looks like sample word q (premultiplied RGBA, 8 bits a channel):
    1 / (1 + d^2 / sigma^2)^2 with d the Euclidean distance over the four channels; a rational
    fall-off, as sharp as a Gaussian where it matters and cheaper than exp per tap."""
    d2 = np.float32(0.0)
    for sh in (0, 8, 16, 24):
        c = np.float32((p >> sh) & np.uint32(0xFF)) - np.float32((q >> sh) & np.uint32(0xFF))
        d2 += c * c
    r = np.float32(1.0) / (np.float32(1.0) + d2 * inv_sigma2)
    return r * r


@njit("void(u4[:,::1], u2[:,::1], u2[:,::1], f4, f4[::1], i8, i4[:,::1], f4[:,::1], i4[::1], i4[::1], i4[::1], "
      "f4[::1], u4[:,::1], f4)", cache=True, nogil=True)
def _relight(px, na, nb, t, table, s, spans, grid, done, c0, c1, cw, guide, inv_sigma2):
    h_out, w_out = px.shape
    h, w = na.shape
    s1 = np.float32(1.0) - t
    if s == 1:
        for y in range(h_out):
            x0, x1 = max(spans[y, 0], 0), min(spans[y, 1], w_out)
            row, ra, rb = px[y], na[y], nb[y]
            for x in range(x0, x1):
                p = row[x]
                if p >> 24:
                    row[x] = _apply(p, s1 * table[ra[x]] + t * table[rb[x]])
        return
    half = s // 2
    inv = np.float32(1.0 / s)
    # Each sample's own pixel (i*s + s//2), read before any row is relit in place: the guide.
    for i in range(h):
        gy = min(i * s + half, h_out - 1)
        for j in range(w):
            guide[i, j] = px[gy, min(j * s + half, w_out - 1)]
    done[:] = 0
    eps = np.float32(1e-3)  # where no sample looks like the pixel, the plain bilinear gain
    for y in range(h_out):
        x0, x1 = max(spans[y, 0], 0), min(spans[y, 1], w_out)
        if x1 <= x0:
            continue
        fy = (y - half) * inv
        i0 = min(max(int(np.floor(fy)), 0), h - 1)
        i1 = min(i0 + 1, h - 1)
        wy = min(max(fy - i0, np.float32(0.0)), np.float32(1.0))
        for i in (i0, i1):  # the gains of a sample row, once per call
            if not done[i]:
                ga, gb, gr = na[i], nb[i], grid[i]
                for j in range(w):
                    gr[j] = s1 * table[ga[j]] + t * table[gb[j]]
                done[i] = 1
        g0, g1, q0, q1 = grid[i0], grid[i1], guide[i0], guide[i1]
        row = px[y]
        for x in range(x0, x1):
            p = row[x]
            if p >> 24:
                j0, j1, wx = c0[x], c1[x], cw[x]
                # Joint bilateral upsampling (Kopf et al. 2007): the bilinear weights times how
                # much each sample's pixel looks like this one, so a gain stays on its side of
                # a colour edge (jaw over neck, skin under hair) instead of smearing s px across.
                w00 = (1 - wx) * (1 - wy) * (_likeness(p, q0[j0], inv_sigma2) + eps)
                w01 = wx * (1 - wy) * (_likeness(p, q0[j1], inv_sigma2) + eps)
                w10 = (1 - wx) * wy * (_likeness(p, q1[j0], inv_sigma2) + eps)
                w11 = wx * wy * (_likeness(p, q1[j1], inv_sigma2) + eps)
                g = (w00 * g0[j0] + w01 * g0[j1] + w10 * g1[j0] + w11 * g1[j1]) / (w00 + w01 + w10 + w11)
                row[x] = _apply(p, g)


def relight_scratch(normal_shape: tuple[int, int], scale: int = 1) -> tuple:
    """The buffers ``relight`` needs for normal tiles of (h, w) at ``scale`` (allocate once per
    renderer): gains float32 [h, w], a row flag int32 [h], the column taps of each of the tile's
    W = w * scale pixels (first and second sample int32 [W], weight float32 [W]) and the
    samples' own pixels uint32 [h, w] (the guide)."""
    h, w = normal_shape
    width = w * scale
    f = (np.arange(width, dtype=np.float64) - scale // 2) / scale
    c0 = np.clip(np.floor(f), 0, w - 1).astype(np.int32)
    c1 = np.minimum(c0 + 1, w - 1).astype(np.int32)
    cw = np.clip(f - c0, 0.0, 1.0).astype(np.float32)
    return np.zeros((h, w), np.float32), np.zeros(h, np.int32), c0, c1, cw, np.zeros((h, w), np.uint32)


def relight(rgba: np.ndarray, na: np.ndarray, nb: np.ndarray, t: float, table: np.ndarray, scale: int,
            spans: np.ndarray, scratch: tuple, sigma: float = GUIDE_SIGMA) -> None:
    """rgba (uint8 [H, W, 4] premultiplied, in place) times the gain of its normals, colour
    clamped to alpha, only inside ``spans`` (int32 [H, 2]: per row the columns [x0, x1)).

    na, nb: packed normal codes (uint16 [ceil(H/s), ceil(W/s)], ``formats.lighting.pack_codes``)
    of the two keyframes rgba blends at t in [0, 1]; table: float32 [65536] gain per code;
    scale s: the normal tiles' scale (1, 2, 4, 8); scratch: ``relight_scratch(na.shape, s)``.
    Between samples (s > 1) the gain is upsampled joint-bilaterally: the four nearest samples'
    gains weighted bilinearly times ``_likeness`` of the pixel to each sample's own pixel
    (premultiplied RGBA distance, ``sigma`` levels). Colour is multiplied in 8.8 fixed point: (c * gi + 128) >> 8, gi = round(256 gain) lowered to
    (256 alpha) // max(r, g, b) where it would push the largest channel past the alpha.
    """
    require(rgba.ndim == 3 and rgba.shape[2] == 4 and rgba.dtype == np.uint8 and rgba.flags.c_contiguous,
            "rgba uint8 [H, W, 4] C-contiguous", (rgba.shape, rgba.dtype))
    h, w = rgba.shape[:2]
    require(scale in (1, 2, 4, 8), "scale 1, 2, 4 or 8", scale)
    want = (-(-h // scale), -(-w // scale))
    require(na.shape == nb.shape == want and na.dtype == nb.dtype == np.uint16,
            f"normal codes uint16 {want}", (na.shape, nb.shape, na.dtype))
    require(table.shape == (65536,) and table.dtype == np.float32, "table float32 [65536]", (table.shape, table.dtype))
    require(spans.shape == (h, 2) and spans.dtype == np.int32, "spans int32 [H, 2]", (spans.shape, spans.dtype))
    grid, done, c0, c1, cw, guide = scratch
    require(grid.shape == want == guide.shape and grid.dtype == np.float32 and done.shape == (want[0],)
            and c0.shape[0] >= w and guide.dtype == np.uint32,
            "scratch from relight_scratch(normal shape, scale)", (grid.shape, done.shape, c0.shape))
    _relight(rgba.view(np.uint32).reshape(h, w), np.ascontiguousarray(na), np.ascontiguousarray(nb),
             np.float32(min(max(t, 0.0), 1.0)), table, int(scale), spans, grid, done, c0, c1, cw, guide,
             np.float32(1.0 / (sigma * sigma)))
