"""Off the frame path, on the decode thread: a depth tile stored at 1/s brought to the tile's
size, and colour and alpha interleaved into RGBA words, each only inside the rows' content spans,
which they return."""

from __future__ import annotations

import numpy as np
from numba import njit

from .checks import require

from formats.p4d import depth_sample_index


@njit(inline="always")
def _nearest_surface(small, rpos, cpos, y, x, n, c):
    """The stored sample with a surface nearest to pixel (y, x) among the 3 x 3 around its own
    block's (n, c), 0 when none has one; the first in row-major order on a tie."""
    hs, ws = small.shape
    best = np.float32(0.0)
    best_d = np.inf
    for r in range(max(n - 1, 0), min(n + 2, hs)):
        for q in range(max(c - 1, 0), min(c + 2, ws)):
            z = small[r, q]
            if z > 0:
                d = (rpos[r] - y) ** 2 + (cpos[q] - x) ** 2
                if d < best_d:
                    best_d = d
                    best = z
    return best


@njit("void(f4[:,::1], i8[::1], i8[::1], f4[::1], i8[::1], i8[::1], i8[::1], f4[::1], i8[::1], f4, "
      "u1[:,::1], b1, f8[::1], f8[::1], i8[:,::1], i8[::1], i8[::1], f4[:,::1], i4[:,::1])", cache=True, nogil=True)
def _upsample_depth(small, i0, i1, ty, ny, j0, j1, tx, nx, disc, alpha, guided, rpos, cpos, rows, first, end, out,
                    ext):
    hs, ws = small.shape
    h, w = out.shape
    one = np.float32(1.0)
    # A pixel reads the stored columns j0[x] <= j1[x] and nx[x] (all non-decreasing in x): pixels
    # left of first[c] read only columns < c, those from end[c] on only columns > c. So a row
    # whose stored rows hold surface in columns [cmin, cmax) is 0 outside
    # [first[cmin], end[cmax - 1]); ``out`` arrives zeroed and only that range is computed: a
    # head fills about a third of its tile.
    # rows[r]: the columns [c0, c1) of stored row r that hold a surface ((ws, 0): none).
    for r in range(hs):
        c0 = 0
        while c0 < ws and small[r, c0] == 0:
            c0 += 1
        c1 = ws
        while c1 > c0 and small[r, c1 - 1] == 0:
            c1 -= 1
        rows[r, 0] = c0
        rows[r, 1] = c1 if c0 < ws else 0
    c = 0
    for x in range(w):
        while c <= max(j1[x], nx[x]):
            first[c] = x
            c += 1
    c = ws - 1
    for x in range(w - 1, -1, -1):
        while c >= 0 and c >= min(j0[x], nx[x]):
            end[c] = x + 1
            c -= 1
    for y in range(h):
        # Unsigned indices: no negative-index wraparound test on every load (0.6x the time).
        a0, a1, t, n = np.uint64(i0[y]), np.uint64(i1[y]), ty[y], np.uint64(ny[y])
        cmin = min(min(rows[a0, 0], rows[a1, 0]), rows[n, 0])
        cmax = max(max(rows[a0, 1], rows[a1, 1]), rows[n, 1])
        if guided:
            # The search reaches one stored row and column further (``_nearest_surface``).
            for r in range(max(ny[y] - 1, 0), min(ny[y] + 2, hs)):
                cmin = min(cmin, rows[r, 0])
                cmax = max(cmax, rows[r, 1])
        ext[y, 0] = w
        ext[y, 1] = 0
        if cmin >= cmax:
            continue
        xa = first[max(cmin - 1, 0)] if guided else first[cmin]
        xb = end[min(cmax, ws - 1)] if guided else end[cmax - 1]
        for x in range(xa, xb):
            if guided and alpha[y, x] == 0:
                continue  # no surface where the lossless alpha has none
            b0, b1, u = np.uint64(j0[x]), np.uint64(j1[x]), tx[x]
            z00 = small[a0, b0]
            z01 = small[a0, b1]
            z10 = small[a1, b0]
            z11 = small[a1, b1]
            zmin = min(min(z00, z01), min(z10, z11))
            zmax = max(max(z00, z01), max(z10, z11))
            if zmin > 0 and zmax - zmin <= disc * zmin:
                out[y, x] = (one - t) * ((one - u) * z00 + u * z01) + t * ((one - u) * z10 + u * z11)
            else:
                z = small[n, np.uint64(nx[x])]
                if guided and z == 0:
                    z = _nearest_surface(small, rpos, cpos, y, x, ny[y], nx[x])
                out[y, x] = z
        while xa < xb and out[y, xa] == 0:
            xa += 1
        while xb > xa and out[y, xb - 1] == 0:
            xb -= 1
        if xa < xb:
            ext[y, 0] = xa
            ext[y, 1] = xb


def _sample_axis(s: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(k0, k1, t, own) per full-resolution index 0..n-1: the stored samples on either side (at
    ``depth_sample_index``), the fraction between them, clamped to [0, 1], and the sample of
    the index's own block of s."""
    pos = depth_sample_index(n, s).astype(np.float32)
    n_small = len(pos)
    k1 = np.clip(np.searchsorted(pos, np.arange(n, dtype=np.float32), side="right"), 1, max(n_small - 1, 1))
    k0 = np.maximum(k1 - 1, 0)
    k1 = np.minimum(k1, n_small - 1)
    t = np.clip((np.arange(n) - pos[k0]) / np.maximum(pos[k1] - pos[k0], 1), 0, 1).astype(np.float32)
    own = np.minimum(np.arange(n) // s, n_small - 1)
    return k0.astype(np.int64), k1.astype(np.int64), t, own.astype(np.int64)


def upsample_depth(small: np.ndarray, s: int, h: int, w: int, disc: float = 0.05,
                   spans: np.ndarray | None = None, alpha: np.ndarray | None = None) -> np.ndarray:
    """Full-resolution depth float32 [h, w] from a depth tile stored at 1/s (docs/p4d-format.md:
    sample (i, j) sits at pixel (min(i s + s//2, h-1), min(j s + s//2, w-1))). Bilinear between
    the 4 samples around a pixel where they lie on one surface (all > 0, spread <= disc x the
    nearest); else the sample of the pixel's own s x s block: a mean across a silhouette or depth
    edge is a depth that is neither surface. s = 1 returns the samples themselves.

    alpha: the tile's full-resolution alpha uint8 [h, w], which draws the silhouette the stored
    samples cannot: depth is 0 where alpha is 0, and a pixel with alpha whose own block's sample
    is empty takes the nearest sample with a surface among the 3 x 3 blocks around (0 if none).
    Without it, a 1/4 depth drops a rim of up to 3 px that the alpha covers, and the warp loses
    those pixels even at the grid views themselves (bench/interp_quality.py at grid views: the
    outline band 31.9 -> 36.3 dB, the same as depth stored at full resolution).
    spans: int32 [h, 2], filled with each row's columns [x0, x1) outside of which it is 0
    ((w, 0) for a row that is all 0). On the decode thread, without the GIL."""
    small = np.ascontiguousarray(small, dtype=np.float32)
    require(small.ndim == 2 and s >= 1 and small.shape == (-(-h // s), -(-w // s)),
            "a depth tile [ceil(h / s), ceil(w / s)] with s >= 1", (small.shape, s, h, w))
    out = np.zeros((h, w), np.float32)
    ext = spans if spans is not None else np.empty((h, 2), np.int32)
    require(ext.shape == (h, 2) and ext.dtype == np.int32 and ext.flags.c_contiguous,
            "spans int32 [h, 2], C-contiguous", (ext.shape, ext.dtype))
    hs, ws = small.shape
    guided = alpha is not None
    if guided:
        alpha = np.ascontiguousarray(alpha)
        require(alpha.shape == (h, w) and alpha.dtype == np.uint8, "alpha uint8 [h, w]", (alpha.shape, alpha.dtype))
    else:
        alpha = np.zeros((1, 1), np.uint8)
    rpos = depth_sample_index(h, s).astype(np.float64)
    cpos = depth_sample_index(w, s).astype(np.float64)
    _upsample_depth(small, *_sample_axis(s, h), *_sample_axis(s, w), np.float32(disc), alpha, guided, rpos, cpos,
                    np.empty((hs, 2), np.int64), np.empty(ws, np.int64), np.empty(ws, np.int64), out, ext)
    return out


@njit("void(u1[:,:,::1], u1[:,::1], i4[:,::1], u4[:,::1], i4[:,::1])", cache=True, nogil=True)
def _interleave_rgba(color, alpha, depth_spans, out32, spans):
    h, w = alpha.shape
    for y in range(h):
        x0 = depth_spans[y, 0]
        x1 = depth_spans[y, 1]
        if x0 >= x1:
            x0, x1 = w, 0
        # Widen the depth's span to the alpha's (the colour, clamped to it, is 0 where it is 0):
        # scan only the margins outside it.
        x = 0
        while x < x0 and alpha[y, x] == 0:
            x += 1
        x0 = x
        x = w
        while x > x1 and alpha[y, x - 1] == 0:
            x -= 1
        x1 = x
        for x in range(x0, x1):
            a = alpha[y, x]
            out32[y, x] = (np.uint32(min(color[y, x, 0], a)) | (np.uint32(min(color[y, x, 1], a)) << 8)
                           | (np.uint32(min(color[y, x, 2], a)) << 16) | (np.uint32(a) << 24))
        spans[y, 0] = x0
        spans[y, 1] = x1


def interleave_rgba(color: np.ndarray, alpha: np.ndarray, depth_spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rgba uint8 [H, W, 4], spans int32 [H, 2]) from premultiplied colour uint8 [H, W, 3] and
    alpha uint8 [H, W]: the channels interleaved, each colour channel clamped to the alpha, and per
    row the columns [x0, x1), half-open, outside of which every RGBA byte and the depth is 0
    ((W, 0) for a row that is all 0, so row unions are a min and a max); depth_spans: the
    depth's (``upsample_depth``). Only the span is written: the rest of the zeroed buffer is never
    touched (the renderer reads tiles inside their spans).

    The clamp: alpha is stored losslessly and true premultiplied colour never exceeds it, so a
    lossy colour codec's overshoot is all that it removes (no channel moves away from the true
    value), such as faint specks around the head where alpha is 0."""
    h, w = alpha.shape
    require(color.shape == (h, w, 3) and color.dtype == np.uint8 and alpha.dtype == np.uint8,
            "uint8 colour [H, W, 3] and alpha [H, W]", (color.shape, alpha.shape))
    require(depth_spans.shape == (h, 2) and depth_spans.dtype == np.int32,
            "depth spans int32 [H, 2]", depth_spans.shape)
    rgba = np.zeros((h, w, 4), np.uint8)
    spans = np.empty((h, 2), np.int32)
    _interleave_rgba(np.ascontiguousarray(color), np.ascontiguousarray(alpha), np.ascontiguousarray(depth_spans),
                     rgba.view(np.uint32).reshape(h, w), spans)
    return rgba, spans
