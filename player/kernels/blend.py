"""Frame step 2: consecutive keyframes of one source view mixed at the fractional keyframe time,
in the view's own pixels (the jump crossfade too, in one pass), and the row spans such a blend
writes."""

from __future__ import annotations

import numpy as np
from numba import njit

from .checks import require
from .intrinsics import _prefetch


@njit(inline="always")
def _prefetch_row(f0, f1, f2, f3, w, y, spans):
    """Prefetch row y's span [x0, x1) of four flat [H * W] arrays of 4-byte elements, one hint
    per 64-byte line. The blends hint the next row while mixing this one: a row's span is a few
    hundred pixels, too short for the hardware prefetcher to get ahead of, most of all in a
    frame that starts after an idle gap (player bench paces frames at 60 Hz)."""
    x0 = max(spans[y, 0], 0)
    x1 = min(spans[y, 1], w)
    for x in range(x0 - (x0 & 15), x1, 16):
        i = y * w + x
        _prefetch(f0, i)
        _prefetch(f1, i)
        _prefetch(f2, i)
        _prefetch(f3, i)


@njit(inline="always")
def _mix_rgba(x, y, s8, t8):
    """(x (256 - t8) + y t8 + 128) >> 8 per byte of two RGBA words (uint32, s8 = 256 - t8), two
    channels per multiply: R|B and G|A in 16-bit lanes (255 * 256 + 128 fits a lane, so no carry
    crosses into the next)."""
    lanes = np.uint32(0xFF00FF)
    half = np.uint32(0x800080)
    rb = ((x & lanes) * s8 + (y & lanes) * t8 + half) >> 8
    ga = ((x >> 8) & lanes) * s8 + ((y >> 8) & lanes) * t8 + half
    return (rb & lanes) | (ga & np.uint32(0xFF00FF00))


@njit(inline="always")
def _mix_depth(za, zb, tf):
    """Depths mixed at tf where both have a surface, else the one that has one (0 = none)."""
    return za + (zb - za) * tf if (za > 0 and zb > 0) else za + zb


@njit("void(u4[:,::1], u4[:,::1], f4[:,::1], f4[:,::1], i8, i8, i8, i4[:,::1], u4[:,::1], f4[:,::1])",
      cache=True, nogil=True)
def _temporal_blend(a, b, da, db, t8, y0, y1, spans, out, dout):
    # One RGBA pixel per 32-bit word; t8 = 0 returns a exactly.
    s8 = np.uint32(256 - t8)
    t = np.uint32(t8)
    tf = np.float32(t8 / 256.0)
    w = out.shape[1]
    fa, fb, fda, fdb = a.reshape(a.size), b.reshape(b.size), da.reshape(da.size), db.reshape(db.size)
    for y in range(y0, y1):
        if y + 1 < y1:
            _prefetch_row(fa, fb, fda, fdb, w, y + 1, spans)
        x0, x1 = max(spans[y, 0], 0), min(spans[y, 1], out.shape[1])  # clamped: never past the row
        if x1 <= x0:
            continue
        # Row slices, indexed from 0: the loops then vectorise (2-D indexing ran 2.2x slower).
        ar, br, orow = a[y, x0:x1], b[y, x0:x1], out[y, x0:x1]
        for i in range(ar.shape[0]):
            orow[i] = _mix_rgba(ar[i], br[i], s8, t)
        dar, dbr, drow = da[y, x0:x1], db[y, x0:x1], dout[y, x0:x1]
        for i in range(dar.shape[0]):
            drow[i] = _mix_depth(dar[i], dbr[i], tf)


@njit("void(u4[:,::1], u4[:,::1], f4[:,::1], f4[:,::1], i8, u4[:,::1], u4[:,::1], f4[:,::1], f4[:,::1], i8, "
      "i8, i8, i8, i4[:,::1], u4[:,::1], f4[:,::1])", cache=True, nogil=True)
def _fade_blend(a0, b0, da0, db0, t0, a1, b1, da1, db1, t1, t8, y0, y1, spans, out, dout):
    # The three mixes of ``_temporal_blend`` (stream 0, stream 1, then the two) per pixel, in
    # registers: one pass over the four tiles instead of three passes with two stores between.
    s0, u0, tf0 = np.uint32(256 - t0), np.uint32(t0), np.float32(t0 / 256.0)
    s1, u1, tf1 = np.uint32(256 - t1), np.uint32(t1), np.float32(t1 / 256.0)
    s8, u8, tf = np.uint32(256 - t8), np.uint32(t8), np.float32(t8 / 256.0)
    w = out.shape[1]
    f0, f1, f2, f3 = a0.reshape(a0.size), b0.reshape(b0.size), a1.reshape(a1.size), b1.reshape(b1.size)
    g0, g1, g2, g3 = da0.reshape(da0.size), db0.reshape(db0.size), da1.reshape(da1.size), db1.reshape(db1.size)
    for y in range(y0, y1):
        if y + 1 < y1:
            _prefetch_row(f0, f1, f2, f3, w, y + 1, spans)
            _prefetch_row(g0, g1, g2, g3, w, y + 1, spans)
        x0, x1 = max(spans[y, 0], 0), min(spans[y, 1], out.shape[1])  # clamped: never past the row
        if x1 <= x0:
            continue
        a0r, b0r, a1r, b1r, orow = a0[y, x0:x1], b0[y, x0:x1], a1[y, x0:x1], b1[y, x0:x1], out[y, x0:x1]
        for i in range(orow.shape[0]):
            orow[i] = _mix_rgba(_mix_rgba(a0r[i], b0r[i], s0, u0), _mix_rgba(a1r[i], b1r[i], s1, u1), s8, u8)
        d0a, d0b, d1a, d1b, drow = da0[y, x0:x1], db0[y, x0:x1], da1[y, x0:x1], db1[y, x0:x1], dout[y, x0:x1]
        for i in range(drow.shape[0]):
            drow[i] = _mix_depth(_mix_depth(d0a[i], d0b[i], tf0), _mix_depth(d1a[i], d1b[i], tf1), tf)


@njit("void(i4[:,::1], i4[:,::1], i4[:,::1], i4[:,::1], i4[:,::1], i4[:,::1])", cache=True, nogil=True)
def _write_spans(held, s0, s1, s2, s3, out):
    for y in range(held.shape[0]):
        lo = min(min(s0[y, 0], s1[y, 0]), min(s2[y, 0], s3[y, 0]))
        hi = max(max(s0[y, 1], s1[y, 1]), max(s2[y, 1], s3[y, 1]))
        out[y, 0] = min(held[y, 0], lo)
        out[y, 1] = max(held[y, 1], hi)
        held[y, 0] = lo
        held[y, 1] = hi


def write_spans(held: np.ndarray, tiles_spans: tuple, out: np.ndarray) -> None:
    """Row spans (int32 [H, 2], (W, 0) = empty row) of a blend of 1 to 4 tiles into a buffer
    that holds nonzero pixels only inside ``held``: out = held and the tiles' spans, per row;
    held becomes the tiles' union (what the buffer holds after the blend)."""
    require(1 <= len(tiles_spans) <= 4 and held.shape[1:] == (2,),
            "1 to 4 tiles' spans and held spans [H, 2]", (len(tiles_spans), held.shape))
    require(all(x.shape == held.shape for x in (out, *tiles_spans)), "spans of one height")
    s = tuple(tiles_spans) + (tiles_spans[0],) * (4 - len(tiles_spans))
    _write_spans(held, *s, out)


def _words(rgba: np.ndarray) -> np.ndarray:
    """uint8 RGBA [H, W, 4] (C-contiguous) seen as uint32 [H, W]: one pixel per word."""
    return rgba.view(np.uint32).reshape(rgba.shape[:2])


def blend_steps(t: float) -> int:
    """The blend fraction t in [0, 1] (clamped) in the 1/256 steps ``temporal_blend`` mixes in:
    two fractions with the same steps give the same tile."""
    return int(round(min(max(t, 0.0), 1.0) * 256))


def _row_spans(box: tuple[int, int, int, int] | None, spans: np.ndarray | None, h: int, w: int) -> tuple:
    """(y0, y1, spans) for the blend kernels: the box's rows, and per row the columns to write
    (the box's own columns on every row when no spans are given)."""
    y0, y1, x0, x1 = (0, h, 0, w) if box is None else box
    require(0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w, "a box (y0, y1, x0, x1) inside the tile", (box, (h, w)))
    if spans is None:
        spans = np.empty((h, 2), np.int32)
        spans[:] = (x0, x1)
    require(spans.shape == (h, 2) and spans.dtype == np.int32, "row spans int32 [H, 2]", (spans.shape, spans.dtype))
    return int(y0), int(y1), np.ascontiguousarray(spans)


def temporal_blend(a: np.ndarray, b: np.ndarray, da: np.ndarray, db: np.ndarray, t: float,
                   out: np.ndarray, dout: np.ndarray, box: tuple[int, int, int, int] | None = None,
                   spans: np.ndarray | None = None) -> None:
    """out = (a (256 - t8) + b t8 + 128) >> 8 with t8 = round(256 t) (RGBA uint8 [H, W, 4]);
    dout = the depths mixed at t8 / 256 where both have a surface, else the one that has one.

    a, b: keyframe k and its successor of one view; t in [0, 1] the fractional keyframe time.
    box = (y0, y1, x0, x1): only rows y0..y1-1 and columns x0..x1-1 are written (default: all);
    a caller passes the box outside of which every input and the old output are zero (the
    tiles' content), so a head half the tile wide costs half the pass.
    spans int32 [H, 2]: per row of the box, the columns [x0, x1) to write instead of the box's
    (none where x1 <= x0): the same, row by row (``Tile.spans``).
    All arrays C-contiguous.
    """
    require(a.shape == b.shape == out.shape and a.ndim == 3 and a.shape[2] == 4,
            "a, b and out RGBA [H, W, 4] of one size", (a.shape, b.shape, out.shape))
    require(da.shape == db.shape == dout.shape == a.shape[:2],
            "da, db and dout [H, W] of the tiles' size", (da.shape, db.shape, dout.shape))
    y0, y1, spans = _row_spans(box, spans, *da.shape)
    t8 = blend_steps(t)
    _temporal_blend(_words(a), _words(b), da, db, t8, y0, y1, spans, _words(out), dout)


def fade_blend(stream0: tuple, stream1: tuple, t: float, out: np.ndarray, dout: np.ndarray,
               box: tuple[int, int, int, int] | None = None, spans: np.ndarray | None = None) -> None:
    """The jump crossfade in source pixels, in one pass: stream = (a, b, da, db, t_stream), each
    blended like ``temporal_blend``, and the two results mixed at t the same way. Equal to three
    ``temporal_blend`` calls (stream 0 into out, stream 1 into a scratch tile, then the two).

    box, spans: as for ``temporal_blend`` (the union of the four tiles' and of out's old ones).
    """
    (a0, b0, da0, db0, t0), (a1, b1, da1, db1, t1) = stream0, stream1
    for x in (a0, b0, a1, b1):
        require(x.shape == out.shape and x.ndim == 3 and x.shape[2] == 4 and x.dtype == np.uint8,
                "tiles uint8 RGBA [H, W, 4] of out's size", x.shape)
    for x in (da0, db0, da1, db1):
        require(x.shape == dout.shape == out.shape[:2] and x.dtype == np.float32,
                "depths float32 [H, W] of out's size", x.shape)
    y0, y1, spans = _row_spans(box, spans, *dout.shape)
    _fade_blend(_words(a0), _words(b0), da0, db0, blend_steps(t0), _words(a1), _words(b1), da1, db1,
                blend_steps(t1), blend_steps(t), y0, y1, spans, _words(out), dout)
