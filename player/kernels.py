"""Every numba kernel of the player, each behind a checked public wrapper.

The frame pipeline, per frame (H, W = tile size; Ho, Wo = output size):

1. ``view_weights``: the 4 grid views around the viewpoint and their bilinear weights.
2. ``temporal_blend``: per source view, keyframe k and its successor mixed at the fractional
   keyframe time, in the source view's own pixels (same camera, so a pixel-wise mix is exact
   for the colour and a fair guess for the depth) -> one RGBA + depth tile per source, mixed
   only inside the tiles' content boxes (outside them everything is 0). During a jump the two
   streams' tiles are mixed the same way (the crossfade, in source pixels), so a jump frame
   still warps once.
3. ``splat_depth``: the 4 source depth tiles forward-splatted, subsampled by the z-buffer's cell
   size (``zstride``; the renderer's default is 1/128 of the output, the lattice's 1/64) and
   only inside the tiles' row spans, into a coarse z-buffer of the target view (z-min = nearest
   surface wins), cracks closed (a cell between surface cells is filled; the silhouette is not
   grown). Each sample row is projected in one vectorised loop, then scattered.
4. ``warp``: backward warp. Each target pixel takes its depth from the coarse z-buffer, refined
   on the nearest source's full-resolution depth (at the silhouette, where the coarse depth is an
   extrapolation, a pixel whose point that source sees as empty, or that does not converge onto
   its surface, is background), becomes a 3-D point, is projected into every source view and
   sampled there (bilinear), weighted by the view weight times a soft z-test (a source whose
   depth is clearly in front of the point does not see it). Points no source sees fall back to
   the plain view weights (hole fill); a source the point projects outside of takes no part (the
   subject goes on past the frame edge). Only the lattice nodes (every ``stride``-th pixel) are
   projected where a cell lies on one surface; its pixels interpolate the nodes' source
   coordinates and blend weights (the z-test and hole fill evaluated at the nodes: across an
   occlusion edge inside a cell the weights ramp over the cell's few pixels) in fixed point.
   A cell off one surface (a depth edge, a fold or a view's visibility edge crosses it) is split
   into four cells of half the stride under the same rule (an even stride of 8 or more); pixels
   still off one surface are projected one by one.
   The warped frame is premultiplied RGBA in 8 bits (one 32-bit store per pixel: a float frame
   cost more to write than the composite pass it fed).
5. ``composite`` (premultiplied colour over the background, rows flipped bottom-up for a GL
   texture; integer, one table lookup per pixel), only inside the row spans of the warp's
   non-EMPTY cells (``warp_spans``) and of the last frame's: the rest already holds the
   background. ``crossfade`` mixes two warped frames (the same
   fade in output pixels; the renderer fades in source pixels instead, which costs one warp, not
   two).

Off the frame path, on the decode thread: ``upsample_depth`` brings a depth tile stored at 1/s
(``tiles.depth_scale``) to the tile's size and ``interleave_rgba`` interleaves colour (clamped to
alpha) and alpha, both only inside each row's content span, which they return with it.

Coarse depth + backward sampling keeps the cost at one projection and one bilinear fetch per
(target pixel, source) instead of splatting every source pixel.

Each private ``_kernel`` has explicit dtypes/layouts and ``cache=True``; its slow numpy twin lives
in ``player/naive.py`` and tests/test_player_kernels.py holds them against each other.
Cameras are passed as (K [4] = fx, fy, cx, cy; R [3, 3] camera->head rotation; C [3] centre).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import config, get_thread_id, njit, prange, types
from numba.extending import intrinsic

from formats.p4d import depth_sample_index

__all__ = ["view_weights", "blend_steps", "temporal_blend", "fade_blend", "splat_depth", "splat_rows", "warp",
           "warp_scratch", "warp_split", "warp_spans", "WarpScratch", "crossfade", "composite", "camera_arrays",
           "upsample_depth", "interleave_rgba", "warm_up"]

_EMPTY = np.float32(0.0)  # depth value meaning "nothing here"
MODE_PIXEL, MODE_EMPTY, MODE_MESH, MODE_MESH_RAMP = 0, 1, 2, 3  # how ``warp`` fills a lattice cell


# --- (a) bilinear weights of the 4 nearest grid views -------------------------------------------

@njit("UniTuple(f8, 3)(f8[::1], f8)", cache=True, nogil=True)
def _axis_cell(vals, x):
    """(i0, i1, t) of ``x`` on the ascending axis ``vals``, clamped at the ends."""
    n = vals.shape[0]
    if n == 1 or x <= vals[0]:
        return 0.0, 0.0, 0.0
    if x >= vals[n - 1]:
        return float(n - 1), float(n - 1), 0.0
    i = 0
    while i < n - 2 and x >= vals[i + 1]:
        i += 1
    t = (x - vals[i]) / (vals[i + 1] - vals[i])
    return float(i), float(i + 1), t


@njit("f8(f8, f8)", cache=True, nogil=True)
def _sharpen(t, g):
    """Cell coordinate t in [0, 1] stretched by g >= 1 about the centre and clamped: near a grid
    view (t < (1 - 1/g) / 2 or the mirror) only that view is used."""
    return min(max((t - 0.5) * g + 0.5, 0.0), 1.0)


@njit("void(f8[::1], f8[::1], f8, f8, f8, i4[::1], f4[::1])", cache=True, nogil=True)
def _view_weights(yaws, pitches, yaw, pitch, sharpen, idx, w):
    i0, i1, ty = _axis_cell(yaws, yaw)
    j0, j1, tp = _axis_cell(pitches, pitch)
    ty = _sharpen(ty, sharpen)
    tp = _sharpen(tp, sharpen)
    ny = yaws.shape[0]
    idx[0] = int(j0) * ny + int(i0)
    idx[1] = int(j0) * ny + int(i1)
    idx[2] = int(j1) * ny + int(i0)
    idx[3] = int(j1) * ny + int(i1)
    w[0] = (1.0 - tp) * (1.0 - ty)
    w[1] = (1.0 - tp) * ty
    w[2] = tp * (1.0 - ty)
    w[3] = tp * ty


def view_weights(yaws: np.ndarray, pitches: np.ndarray, yaw: float, pitch: float,
                 idx: np.ndarray | None = None, w: np.ndarray | None = None, sharpen: float = 1.0):
    """The 4 grid views around (yaw, pitch) in degrees and their bilinear weights.

    yaws [NY], pitches [NP] ascending; view index = pitch_index * NY + yaw_index.
    Returns idx int32 [4], w float32 [4] (sum 1; outside the grid the viewpoint is clamped).
    sharpen g >= 1 stretches each axis' cell coordinate t to clip((t - 1/2) g + 1/2, 0, 1): the
    weights stay bilinear and continuous, but within (1 - 1/g) / 2 of a cell side only that side's
    views are used (less ghosting from far sources, fewer views to warp). g = 1: plain bilinear.

    >>> i, w = view_weights(np.array([-10., 0, 10]), np.array([0., 10]), 5.0, 2.5)
    >>> i.tolist(), np.round(w, 3).tolist()
    ([1, 2, 4, 5], [0.375, 0.375, 0.125, 0.125])
    """
    yaws = np.ascontiguousarray(yaws, dtype=np.float64)
    pitches = np.ascontiguousarray(pitches, dtype=np.float64)
    assert yaws.ndim == 1 and pitches.ndim == 1 and yaws.size and pitches.size, "empty grid axes"
    assert sharpen >= 1.0, sharpen
    idx = np.empty(4, np.int32) if idx is None else idx
    w = np.empty(4, np.float32) if w is None else w
    _view_weights(yaws, pitches, float(yaw), float(pitch), float(sharpen), idx, w)
    return idx, w


# --- (c) temporal blend of consecutive keyframes, in source-view pixels -------------------------

@intrinsic
def _prefetch(typingctx, arr, idx):
    """A hint that arr[idx] (1-D, C-contiguous) is read soon: llvm.prefetch (read, keep in all
    cache levels). No load and no fault, so idx may point past a row's content."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C" and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        a, i = args
        data = context.make_array(signature.args[0])(context, builder, a).data
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", fnty=fnty)
        builder.call(fn, [builder.bitcast(builder.gep(data, [i]), i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(arr, idx), codegen


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
    assert 1 <= len(tiles_spans) <= 4 and held.shape[1:] == (2,), (len(tiles_spans), held.shape)
    assert all(x.shape == held.shape for x in (out, *tiles_spans)), "spans of another height"
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
    assert 0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w, (box, (h, w))
    if spans is None:
        spans = np.empty((h, 2), np.int32)
        spans[:] = (x0, x1)
    assert spans.shape == (h, 2) and spans.dtype == np.int32, (spans.shape, spans.dtype)
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
    assert a.shape == b.shape == out.shape and a.ndim == 3 and a.shape[2] == 4, (a.shape, b.shape, out.shape)
    assert da.shape == db.shape == dout.shape == a.shape[:2], (da.shape, db.shape, dout.shape)
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
        assert x.shape == out.shape and x.ndim == 3 and x.shape[2] == 4 and x.dtype == np.uint8, x.shape
    for x in (da0, db0, da1, db1):
        assert x.shape == dout.shape == out.shape[:2] and x.dtype == np.float32, x.shape
    y0, y1, spans = _row_spans(box, spans, *dout.shape)
    _fade_blend(_words(a0), _words(b0), da0, db0, blend_steps(t0), _words(a1), _words(b1), da1, db1,
                blend_steps(t1), blend_steps(t), y0, y1, spans, _words(out), dout)


@njit(cache=True, nogil=True)
def _relative(ra, ca, rb, cb, g):
    """Affine map from camera b's frame to camera a's, q_a = M q_b + o with M = Ra^T Rb,
    o = Ra^T (Cb - Ca) (R camera->head [3, 3], C centre [3]), written into g [4, 3]: rows 0-2 = M,
    row 3 = o. Written out so numba needs no BLAS; into the caller's buffer so a frame allocates
    nothing."""
    for i in range(3):
        for j in range(3):
            acc = 0.0
            for k in range(3):
                acc += ra[k, i] * rb[k, j]
            g[i, j] = acc
        acc = 0.0
        for k in range(3):
            acc += ra[k, i] * (cb[k] - ca[k])
        g[3, i] = acc


# --- decoding a tile: depth stored at 1/s brought to the tile's size, colour and alpha packed ----

@njit("void(f4[:,::1], i8[::1], i8[::1], f4[::1], i8[::1], i8[::1], i8[::1], f4[::1], i8[::1], f4, "
      "i8[:,::1], i8[::1], i8[::1], f4[:,::1], i4[:,::1])", cache=True, nogil=True)
def _upsample_depth(small, i0, i1, ty, ny, j0, j1, tx, nx, disc, rows, first, end, out, ext):
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
        ext[y, 0] = w
        ext[y, 1] = 0
        if cmin >= cmax:
            continue
        xa = first[cmin]
        xb = end[cmax - 1]
        for x in range(xa, xb):
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
                out[y, x] = small[n, np.uint64(nx[x])]
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
                   spans: np.ndarray | None = None) -> np.ndarray:
    """Full-resolution depth float32 [h, w] from a depth tile stored at 1/s (docs/p4d-format.md:
    sample (i, j) sits at pixel (min(i s + s//2, h-1), min(j s + s//2, w-1))). Bilinear between
    the 4 samples around a pixel where they lie on one surface (all > 0, spread <= disc x the
    nearest); else the sample of the pixel's own s x s block: a mean across a silhouette or depth
    edge is a depth that is neither surface. s = 1 returns the samples themselves.
    spans: int32 [h, 2], filled with each row's columns [x0, x1) outside of which it is 0
    ((w, 0) for a row that is all 0). On the decode thread, without the GIL."""
    small = np.ascontiguousarray(small, dtype=np.float32)
    assert small.ndim == 2 and s >= 1 and small.shape == (-(-h // s), -(-w // s)), (small.shape, s, h, w)
    out = np.zeros((h, w), np.float32)
    ext = spans if spans is not None else np.empty((h, 2), np.int32)
    assert ext.shape == (h, 2) and ext.dtype == np.int32 and ext.flags.c_contiguous, (ext.shape, ext.dtype)
    hs, ws = small.shape
    _upsample_depth(small, *_sample_axis(s, h), *_sample_axis(s, w), np.float32(disc),
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
    assert color.shape == (h, w, 3) and color.dtype == np.uint8 and alpha.dtype == np.uint8, (color.shape, alpha.shape)
    assert depth_spans.shape == (h, 2) and depth_spans.dtype == np.int32, depth_spans.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    spans = np.empty((h, 2), np.int32)
    _interleave_rgba(np.ascontiguousarray(color), np.ascontiguousarray(alpha), np.ascontiguousarray(depth_spans),
                     rgba.view(np.uint32).reshape(h, w), spans)
    return rgba, spans


# --- (b) depth-aware reprojection: coarse target depth, then backward warp ----------------------

@njit(inline="always")
def _zmin(zb, j, i, z):
    """The z-buffer cell (j, i) keeps the nearest depth (0 = empty). Stored unconditionally: a
    select, where a branch on the depth test mispredicted at every other sample."""
    cur = zb[j, i]
    zb[j, i] = z if (cur == 0) | (z < cur) else cur


@njit(inline="always")
def _splat_row(dflat, base, half, sstride, k0, n, vy, cx, rfx, g, su, sv, ou, ov, ci, cj, zrow):
    """Samples k0 .. k0 + n - 1 of one sample row of a source depth tile (pixel x = half +
    k sstride at flat index base + x of ``dflat``) projected into the target: zrow[i] = the
    target depth (0 = no surface or behind the camera) and (ci[i], cj[i]) = the z-buffer cell at
    the top left of its 2x2 footprint (meaningless where zrow[i] is 0). No branch and no
    scatter, so LLVM vectorises it (as a scalar loop the projection was 60 % of the splat); flat
    unsigned indices keep numba's negative-index wrap-around out of the loop."""
    m00, m01, m02 = g[0, 0], g[0, 1], g[0, 2]
    m10, m11, m12 = g[1, 0], g[1, 1], g[1, 2]
    m20, m21, m22 = g[2, 0], g[2, 1], g[2, 2]
    o0, o1, o2 = g[3, 0], g[3, 1], g[3, 2]
    for i in range(n):
        x = half + (k0 + i) * sstride
        d = np.float64(dflat[np.uint64(base + x)])
        px = (x + 0.5 - cx) * rfx * d
        py = vy * d
        qx = m00 * px + m01 * py + m02 * d + o0
        qy = m10 * px + m11 * py + m12 * d + o1
        qz = m20 * px + m21 * py + m22 * d + o2
        ok = (d > 0) & (qz > 1e-6)
        iz = 1.0 / (qz if ok else 1.0)
        ci[i] = np.int64(np.floor(qx * iz * su + ou))
        cj[i] = np.int64(np.floor(qy * iz * sv + ov))
        zrow[i] = np.float32(qz) if ok else _EMPTY


@njit("void(f4[:,:,::1], i4[:,:,::1], f4[::1], f8[:,::1], f8[:,:,::1], f8[:,::1], f8[::1], f8[:,::1], "
      "f8[::1], i8, i8, f4[:,:,::1], f8[:,:,::1], i8[::1], i8[::1], f4[::1])", cache=True, nogil=True)
def _splat_depth(src_depth, spans, src_w, src_k, src_r, src_c, tgt_k, tgt_r, tgt_c, stride, n_dilate, coarse,
                 geo, ci, cj, zrow):
    n_src, h, w = src_depth.shape
    hc, wc = coarse.shape[1], coarse.shape[2]
    zb = coarse[0]
    zb[:, :] = 0.0
    zflat = zb.reshape(hc * wc)
    dflat = src_depth.reshape(n_src * h * w)
    fx_t, fy_t, cx_t, cy_t = tgt_k[0], tgt_k[1], tgt_k[2], tgt_k[3]
    for s in range(n_src):
        if src_w[s] <= 0:
            continue
        fx, fy, cx, cy = src_k[s, 0], src_k[s, 1], src_k[s, 2], src_k[s, 3]
        # Source sample spacing = one coarse cell's footprint in source pixels (focal ratio).
        sstride = max(1, int(stride * fx / fx_t + 0.5))
        half = sstride // 2
        n_row = (w - half + sstride - 1) // sstride
        # Source camera -> target camera in one affine map: q = Rt^T (Rs p + Cs - Ct).
        _relative(tgt_r, tgt_c, src_r[s], src_c[s], geo[s])
        g = geo[s]
        # Per sample one division (1 / qz): the target pixel -> cell map folded into one scale
        # and offset per axis (four divisions before: the splat ran 7 % longer).
        rfx = 1.0 / fx
        su = fx_t / stride
        sv = fy_t / stride
        ou = cx_t / stride - 0.5
        ov = cy_t / stride - 0.5
        for y in range(half, h, sstride):
            # Only the samples inside the row's span: outside it the depth is 0.
            k0 = max(0, (spans[s, y, 0] - half + sstride - 1) // sstride)
            k1 = min(n_row, (spans[s, y, 1] - half + sstride - 1) // sstride)
            if k1 <= k0:
                continue
            vy = (y + 0.5 - cy) / fy
            _splat_row(dflat, (s * h + y) * w, half, sstride, k0, k1 - k0, vy, cx, rfx, g, su, sv, ou, ov,
                       ci, cj, zrow)
            for i in range(k1 - k0):
                z = zrow[i]
                if z == 0:
                    continue
                i0 = ci[i]
                j0 = cj[i]
                # 2x2 footprint: no cracks up to 2x magnification.
                if 0 <= i0 and i0 + 1 < wc and 0 <= j0 and j0 + 1 < hc:  # all four cells inside
                    c = j0 * wc + i0
                    for o in (0, 1, wc, wc + 1):  # ``_zmin`` on flat indices
                        cur = zflat[c + o]
                        zflat[c + o] = z if (cur == 0) | (z < cur) else cur
                    continue
                for jj in range(j0, j0 + 2):
                    if jj < 0 or jj >= hc:
                        continue
                    for ii in range(i0, i0 + 2):
                        if ii < 0 or ii >= wc:
                            continue
                        _zmin(zb, jj, ii, z)
    # Crack filling: an empty cell with surface cells on opposite sides (left-right, up-down or
    # a diagonal pair) takes the mean depth of its surface neighbours. A cell that merely borders
    # the surface stays empty: growing the silhouette would give background pixels a depth that
    # the sources then colour with whatever they see behind it. (Soft alpha edges need no growth:
    # bakes write depth wherever alpha > 0; at depth_scale > 1 the edge is as blocky as the
    # stored depth, which the splat footprint's one cell covers.)
    for _ in range(n_dilate):
        src = coarse[0]
        dst = coarse[1]
        for j in range(hc):
            jm = max(j - 1, 0)
            jp = min(j + 1, hc - 1)
            for i in range(wc):
                v = src[j, i]
                if v > 0:
                    dst[j, i] = v
                    continue
                im = max(i - 1, 0)
                ip = min(i + 1, wc - 1)
                if not ((src[j, im] > 0 and src[j, ip] > 0) or (src[jm, i] > 0 and src[jp, i] > 0)
                        or (src[jm, im] > 0 and src[jp, ip] > 0) or (src[jm, ip] > 0 and src[jp, im] > 0)):
                    dst[j, i] = 0.0
                    continue
                acc = 0.0
                cnt = 0
                for jj in range(max(j - 1, 0), min(j + 2, hc)):
                    for ii in range(max(i - 1, 0), min(i + 2, wc)):
                        u = src[jj, ii]
                        if u > 0:
                            acc += u
                            cnt += 1
                dst[j, i] = acc / cnt if cnt > 0 else 0.0
        coarse[0, :, :] = coarse[1]


def splat_depth(src_depth: np.ndarray, src_w: np.ndarray, src_cams, tgt_cam, stride: int,
                n_dilate: int, coarse: np.ndarray, geo: np.ndarray | None = None,
                spans: np.ndarray | None = None,
                rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
    """Forward-splat source depths into a coarse target z-buffer ``coarse[0]`` ([2, Hc, Wc]).

    src_depth float32 [S, H, W] camera z-depth (0 = empty); src_w float32 [S] (sources with
    weight 0 are skipped); src_cams = (K [S, 4], R [S, 3, 3], C [S, 3]) from ``camera_arrays``;
    tgt_cam = (K [4], R [3, 3], C [3]); cell (j, i) covers target pixels
    [j*stride, (j+1)*stride) x [i*stride, (i+1)*stride).
    spans int32 [S, H, 2]: per source row, the columns [x0, x1) outside of which its depth is 0
    (``Tile.spans``; (W, 0) = an empty row): only samples inside are projected (default: all).
    Scratch, allocated when not given: ``coarse[1]``; ``geo`` float64 [S, 4, 3]
    (``WarpScratch.geo``); rows = (int64 [W], int64 [W], float32 [W]) from ``splat_rows``.
    """
    sk, sr, sc = src_cams
    tk, tr, tc = tgt_cam
    assert src_depth.ndim == 3 and src_depth.dtype == np.float32, (src_depth.shape, src_depth.dtype)
    s, h, w = src_depth.shape
    assert src_w.shape == (s,) and sk.shape == (s, 4) and sr.shape == (s, 3, 3) and sc.shape == (s, 3)
    assert coarse.ndim == 3 and coarse.shape[0] == 2 and coarse.dtype == np.float32, coarse.shape
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    geo = np.zeros((s, 4, 3)) if geo is None else geo
    assert geo.shape == (s, 4, 3) and geo.dtype == np.float64, geo.shape
    if spans is None:
        spans = np.zeros((s, h, 2), np.int32)
        spans[:, :, 1] = w
    assert spans.shape == (s, h, 2) and spans.dtype == np.int32, (spans.shape, spans.dtype)
    ci, cj, zrow = splat_rows(w) if rows is None else rows
    assert ci.shape[0] >= w and cj.shape[0] >= w and zrow.shape[0] >= w, (ci.shape, cj.shape, zrow.shape, w)
    _splat_depth(src_depth, spans, src_w, sk, sr, sc, tk, tr, tc, int(stride), int(n_dilate), coarse, geo, ci, cj,
                 zrow)


def splat_rows(w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scratch for ``splat_depth`` on tiles W pixels wide: one sample row's footprint cells
    (column, row) and depths."""
    return np.zeros(w, np.int64), np.zeros(w, np.int64), np.zeros(w, np.float32)


@njit(cache=True, nogil=True)
def _weights_256(w, bits, out):
    """out int64 [S] = the weights w [S] of the sources in the bit mask ``bits`` that have w > 0,
    in 1/256 summing to exactly 256 (the last of them takes the rounding remainder); 0 for the
    others (all 0 when none qualifies)."""
    n = w.shape[0]
    tot = 0.0
    for s in range(n):
        if (bits >> s) & 1 and w[s] > 0:
            tot += w[s]
    last = -1
    acc = 0
    for s in range(n):
        out[s] = 0
        if (bits >> s) & 1 and w[s] > 0:
            out[s] = int(w[s] / tot * 256.0 + 0.5)
            acc += out[s]
            last = s
    if last >= 0:
        out[last] += 256 - acc


@njit(inline="always")
def _node_fx(nodes, bits, slot, c, j, i):
    """Node quantity c (0 = u, 1 = v, 2 = weight) of a MESH slot's source at node (j, i), in 16.16
    fixed point; 0 for a slot the cell does not use (a free slot is 4)."""
    on = (bits >> slot) & 1
    s = slot if on else 0
    return np.int64(nodes[s, c, j, i] * 65536.0 + 0.5) * on


@njit(inline="always")
def _per(a, b, recip):
    """The step from a to b over the cell's width (recip: 1 / the width in 16.16), in 16.16."""
    return ((b - a) * recip) >> 16


@njit(cache=True, nogil=True)
def _cell_map(nodes, bits, slot, c, j0, i_n, k, recip):
    """A MESH slot's node quantity c over the cell with corner nodes (j0, i_n) and k nodes on, as
    the integer bilinear map value(row q, pixel t) = (A + B q) + (C + D q) t in 16.16 from the
    corners' values: (A, B, C, D) = (the top-left value, the left edge's step per row, the top
    edge's step per pixel, that step's change per row). Steps are floored, so a row's value and
    step are exact integer sums, the same however a loop forms them.

    Not inlined by numba: ``_mesh_cell`` calls it a dozen times, and numba's own inlining copies
    the whole body into every call before LLVM simplifies anything, which made the player's
    kernels take minutes longer to compile. LLVM still inlines it where that pays."""
    tl = _node_fx(nodes, bits, slot, c, j0, i_n)
    bl = _node_fx(nodes, bits, slot, c, j0 + k, i_n)
    top = _per(tl, _node_fx(nodes, bits, slot, c, j0, i_n + k), recip)
    bottom = _per(bl, _node_fx(nodes, bits, slot, c, j0 + k, i_n + k), recip)
    return tl, _per(tl, bl, recip), top, _per(top, bottom, recip)


def _slot_table() -> np.ndarray:
    """[16, 5]: for each bit mask of at most 4 sources, its sources in order (4 = none) and, in
    the last column, how many there are. A constant, so a MESH span looks its sources up instead
    of counting bits (spans are ``stride`` pixels wide: per-span work shows in the frame time)."""
    tab = np.full((16, 5), 4, np.int64)
    for bits in range(16):
        srcs = [s for s in range(4) if (bits >> s) & 1]
        tab[bits, :len(srcs)] = srcs
        tab[bits, 4] = len(srcs)
    return tab


_SLOTS = _slot_table()


@njit(inline="always")
def _clamp(f, hi):
    """A 16.16 coordinate clamped to [0, hi]."""
    return min(max(f, np.int64(0)), hi)


@njit(inline="always")
def _ramp_w(w0, dw, t):
    """A MESH_RAMP slot's 1/256 weight at span pixel t: floored, never below 0."""
    return max((w0 + dw * t) >> 16, 0)


@njit(inline="always")
def _spread(p):
    """RGBA word -> uint64 with one channel per 16-bit lane (R, B, G, A from the low end): a
    channel times a weight up to 256 then fits its lane, so one multiply scales all four."""
    q = np.uint64(p)
    return (q & np.uint64(0xFF00FF)) | ((q & np.uint64(0xFF00FF00)) << np.uint64(24))


_LANES64 = 0x00FF00FF00FF00FF
_HALF64 = 0x0080008000800080


@intrinsic
def _load_pair(typingctx, arr, idx):
    """uint64 = arr[idx] | arr[idx + 1] << 32 of a C-contiguous 1-D uint32 array, in one 8-byte
    load (little-endian). A vector loop then fetches the two taps of a bilinear footprint's row
    with one 64-bit gather instead of two 32-bit ones (numba indexes whole elements only). The
    caller keeps idx + 1 inside the array; no bounds check, as with numba's own indexing."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint32 and arr.ndim == 1
            and arr.layout == "C" and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        a, i = args
        data = context.make_array(signature.args[0])(context, builder, a).data
        return builder.load(builder.bitcast(builder.gep(data, [i]), ir.IntType(64).as_pointer()), align=4)
    return types.uint64(arr, idx), codegen


@njit(inline="always")
def _tap_fx(flat, w_s, base, uf, vf):
    """Bilinear sample at 16.16 (uf, vf) of the source starting at flat[base] (width w_s): the
    four channels in 16-bit lanes (``_spread``), each 0..255 (weights in 1/256, rounded).

    Unsigned arithmetic (a lane's sum stays below 255 * 256 + 128, so no carry crosses lanes)
    and an unsigned index, which spares every load numba's negative-index wraparound test."""
    fu = np.uint64((uf >> 8) & 255)
    fv = np.uint64((vf >> 8) & 255)
    w01 = ((np.uint64(256) - fv) * fu) >> np.uint64(8)
    w00 = np.uint64(256) - fv - w01
    w11 = (fv * fu) >> np.uint64(8)
    w10 = fv - w11
    i = np.uint64(base + (vf >> 16) * w_s + (uf >> 16))
    top = _load_pair(flat, i)  # taps (0, 0) and (0, 1)
    bot = _load_pair(flat, i + np.uint64(w_s))  # (1, 0) and (1, 1)
    lo = np.uint64(0xFFFFFFFF)
    hi = np.uint64(32)
    acc = (_spread(top & lo) * w00 + _spread(top >> hi) * w01
           + _spread(bot & lo) * w10 + _spread(bot >> hi) * w11)
    return ((acc + np.uint64(_HALF64)) >> np.uint64(8)) & np.uint64(_LANES64)


@njit(inline="always")
def _acc_fx(flat, w_s, base, uf, vf, wgt, acc):
    """The lane sums plus one source's bilinear tap (``_tap_fx``) times its 1/256 weight."""
    return acc + _tap_fx(flat, w_s, base, uf, vf) * np.uint64(wgt)


@njit(inline="always")
def _store_fx(out32, y, x, acc):
    """Lane sums (weights in 1/256 summing to 256) -> one packed RGBA word at out32[y, x]."""
    c = ((acc + np.uint64(_HALF64)) >> np.uint64(8)) & np.uint64(_LANES64)
    out32[y, x] = np.uint32((c & np.uint64(0xFF00FF)) | ((c >> np.uint64(24)) & np.uint64(0xFF00FF00)))


@njit(inline="always")
def _mesh_cell(flat, w_s, h_s, hw, nodes, cm, bits, r, j0, i_n, k, recip, x0, x1, y0, y1, out32):
    """Target pixels [x0, x1) x [y0, y1) of a MESH or MESH_RAMP cell (corner nodes (j0, i_n) and k
    nodes on; recip: 1 / its width in 16.16; bits: its sources; r: a ramp's remainder source),
    blended into out32 (see ``_warp``).

    Fixed point, so the inner loop is integer adds, shifts and multiplies: source coordinates
    (and a ramp's weights) in 16.16, each slot's on the cell's integer bilinear map
    (``_cell_map``), set up once per cell: a row's start and step are then a multiply-add away
    (setting them up from the nodes at every row took a fifth of the warp). Bilinear and blend
    weights in 1/256, each summing to exactly 256; the four channels in 16-bit lanes of one
    integer (``_spread``). Up to four source slots in registers, the cell's sources packed into
    the first ones (a slot past them has weight 0 and reads source 0 at its first pixel): fixed
    code, no per-pixel loop over a scratch array, and a cell or frame that uses fewer sources
    taps only those. No tuples, no subarrays: see ``_warp``, step 3."""
    n_used = _SLOTS[bits, 4]
    sa = _SLOTS[bits, 0]
    sb = _SLOTS[bits, 1]
    sc = _SLOTS[bits, 2]
    sd = _SLOTS[bits, 3]
    # Per slot and coordinate: the top-left value, its change per row, the step per pixel along
    # the top row and that step's change per row (``_cell_map``'s A, B, C, D).
    ua, ua_q, dua, dua_q = _cell_map(nodes, bits, sa, 0, j0, i_n, k, recip)
    va, va_q, dva, dva_q = _cell_map(nodes, bits, sa, 1, j0, i_n, k, recip)
    ub, ub_q, dub, dub_q = _cell_map(nodes, bits, sb, 0, j0, i_n, k, recip)
    vb, vb_q, dvb, dvb_q = _cell_map(nodes, bits, sb, 1, j0, i_n, k, recip)
    uc, uc_q, duc, duc_q = _cell_map(nodes, bits, sc, 0, j0, i_n, k, recip)
    vc, vc_q, dvc, dvc_q = _cell_map(nodes, bits, sc, 1, j0, i_n, k, recip)
    ud, ud_q, dud, dud_q = _cell_map(nodes, bits, sd, 0, j0, i_n, k, recip)
    vd, vd_q, dvd, dvd_q = _cell_map(nodes, bits, sd, 1, j0, i_n, k, recip)
    ba = sa * hw * ((bits >> sa) & 1)
    bb = sb * hw * ((bits >> sb) & 1)
    bc = sc * hw * ((bits >> sc) & 1)
    bd = sd * hw * ((bits >> sd) & 1)
    if cm == MODE_MESH_RAMP:
        # Weights step across the cell; the remainder to 256 goes to the slot of source r (its
        # weight is >= 1 all over the cell, so it stays >= 0). Coordinates clamped so a tap's
        # 2x2 footprint stays inside its image.
        wa, wa_q, dwa, dwa_q = _cell_map(nodes, bits, sa, 2, j0, i_n, k, recip)
        wb, wb_q, dwb, dwb_q = _cell_map(nodes, bits, sb, 2, j0, i_n, k, recip)
        wc, wc_q, dwc, dwc_q = _cell_map(nodes, bits, sc, 2, j0, i_n, k, recip)
        wd, wd_q, dwd, dwd_q = _cell_map(nodes, bits, sd, 2, j0, i_n, k, recip)
        umax = np.int64(((w_s - 1) << 16) - 1)
        vmax = np.int64(((h_s - 1) << 16) - 1)
        # The row starts are written out again for the plain cells below: one row loop for
        # both, testing for a ramp inside it, made the warp 1.3 % slower (measured side by side).
        for y in range(y0, y1):
            q = y - y0
            ua0 = ua + ua_q * q
            dua0 = dua + dua_q * q
            va0 = va + va_q * q
            dva0 = dva + dva_q * q
            ub0 = ub + ub_q * q
            dub0 = dub + dub_q * q
            vb0 = vb + vb_q * q
            dvb0 = dvb + dvb_q * q
            uc0 = uc + uc_q * q
            duc0 = duc + duc_q * q
            vc0 = vc + vc_q * q
            dvc0 = dvc + dvc_q * q
            ud0 = ud + ud_q * q
            dud0 = dud + dud_q * q
            vd0 = vd + vd_q * q
            dvd0 = dvd + dvd_q * q
            wa0 = wa + wa_q * q
            dwa0 = dwa + dwa_q * q
            wb0 = wb + wb_q * q
            dwb0 = dwb + dwb_q * q
            wc0 = wc + wc_q * q
            dwc0 = dwc + dwc_q * q
            wd0 = wd + wd_q * q
            dwd0 = dwd + dwd_q * q
            for x in range(x0, x1):
                t = x - x0
                wa_ = _ramp_w(wa0, dwa0, t)
                wb_ = _ramp_w(wb0, dwb0, t)
                wc_ = _ramp_w(wc0, dwc0, t)
                wd_ = _ramp_w(wd0, dwd0, t)
                left = 256 - wa_ - wb_ - wc_ - wd_
                if sa == r:
                    wa_ += left
                elif sb == r:
                    wb_ += left
                elif sc == r:
                    wc_ += left
                else:
                    wd_ += left
                acc = _acc_fx(flat, w_s, ba, _clamp(ua0 + dua0 * t, umax), _clamp(va0 + dva0 * t, vmax), wa_,
                              np.uint64(0))
                acc = _acc_fx(flat, w_s, bb, _clamp(ub0 + dub0 * t, umax), _clamp(vb0 + dvb0 * t, vmax), wb_, acc)
                acc = _acc_fx(flat, w_s, bc, _clamp(uc0 + duc0 * t, umax), _clamp(vc0 + dvc0 * t, vmax), wc_, acc)
                acc = _acc_fx(flat, w_s, bd, _clamp(ud0 + dud0 * t, umax), _clamp(vd0 + dvd0 * t, vmax), wd_, acc)
                _store_fx(out32, y, x, acc)
        return
    # The corners agree: constant weights (whole numbers at the nodes).
    wa_ = _node_fx(nodes, bits, sa, 2, j0, i_n) >> 16
    wb_ = _node_fx(nodes, bits, sb, 2, j0, i_n) >> 16
    wc_ = _node_fx(nodes, bits, sc, 2, j0, i_n) >> 16
    wd_ = _node_fx(nodes, bits, sd, 2, j0, i_n) >> 16
    for y in range(y0, y1):
        q = y - y0
        ua0 = ua + ua_q * q
        dua0 = dua + dua_q * q
        va0 = va + va_q * q
        dva0 = dva + dva_q * q
        ub0 = ub + ub_q * q
        dub0 = dub + dub_q * q
        vb0 = vb + vb_q * q
        dvb0 = dvb + dvb_q * q
        uc0 = uc + uc_q * q
        duc0 = duc + duc_q * q
        vc0 = vc + vc_q * q
        dvc0 = dvc + dvc_q * q
        ud0 = ud + ud_q * q
        dud0 = dud + dud_q * q
        vd0 = vd + vd_q * q
        dvd0 = dvd + dvd_q * q
        # One loop per tap count: a test on the count inside one loop made 4-source frames ~30 %
        # slower (measured side by side); 3 sources share the 4-tap loop (the 4th slot weighs 0).
        if n_used >= 3:
            for x in range(x0, x1):
                t = x - x0
                acc = _acc_fx(flat, w_s, ba, ua0 + dua0 * t, va0 + dva0 * t, wa_, np.uint64(0))
                acc = _acc_fx(flat, w_s, bb, ub0 + dub0 * t, vb0 + dvb0 * t, wb_, acc)
                acc = _acc_fx(flat, w_s, bc, uc0 + duc0 * t, vc0 + dvc0 * t, wc_, acc)
                acc = _acc_fx(flat, w_s, bd, ud0 + dud0 * t, vd0 + dvd0 * t, wd_, acc)
                _store_fx(out32, y, x, acc)
        elif n_used == 2:
            for x in range(x0, x1):
                t = x - x0
                acc = _acc_fx(flat, w_s, ba, ua0 + dua0 * t, va0 + dva0 * t, wa_, np.uint64(0))
                acc = _acc_fx(flat, w_s, bb, ub0 + dub0 * t, vb0 + dvb0 * t, wb_, acc)
                _store_fx(out32, y, x, acc)
        else:
            for x in range(x0, x1):
                t = x - x0
                acc = _acc_fx(flat, w_s, ba, ua0 + dua0 * t, va0 + dva0 * t, wa_, np.uint64(0))
                _store_fx(out32, y, x, acc)


@njit(inline="always")
def _clear(out32, y0, y1, x0, x1):
    """Target pixels [x0, x1) x [y0, y1) made transparent."""
    for y in range(y0, y1):
        for x in range(x0, x1):
            out32[y, x] = 0


@njit(inline="always")
def _mesh_band(flat, w_s, h_s, nodes, mode, used, rem, fmode, fused, frem, stride, split, jc, out32):
    """Step 3a of ``_warp`` for the band of target rows of coarse cell row jc: its EMPTY and MESH
    cells' pixels, a cell at a time (PIXEL cells are left to step 3b; a split cell's four fine
    cells each on its own). A function of its own so a test can check that LLVM vectorises it."""
    hw = h_s * w_s
    fine = stride // split
    recip_c = (65536 + stride // 2) // stride  # 1 / stride in 16.16
    recip_f = (65536 + fine // 2) // fine
    wn = mode.shape[1]
    ho, wo = out32.shape[0], out32.shape[1]
    y0 = jc * stride
    y1 = min(y0 + stride, ho)
    # EMPTY cells are cleared a run at a time: one loop (a memset) per row of the run instead of
    # one per cell; e0 is where the current run of them starts (-1: none open).
    e0 = -1
    for ic in range(wn - 1):
        x0 = ic * stride
        if x0 >= wo:
            break
        cm = mode[jc, ic]
        if cm == MODE_EMPTY:
            if e0 < 0:
                e0 = x0
            continue
        if e0 >= 0:
            _clear(out32, y0, y1, e0, x0)
            e0 = -1
        n_sub = 1
        if cm == MODE_PIXEL:
            n_sub = 4 if split == 2 else 0  # a split cell: its four fine cells
        for q in range(n_sub):
            if n_sub == 4:
                jn = 2 * jc + q // 2  # the cell's top-left node on the node arrays
                i_n = 2 * ic + q % 2
                sm = fmode[jn, i_n]
                bits = np.int64(fused[jn, i_n])
                r = np.int64(frem[jn, i_n])
                k = 1
                recip = recip_f
            else:
                jn = jc * split
                i_n = ic * split
                sm = cm
                bits = np.int64(used[jc, ic])
                r = np.int64(rem[jc, ic])
                k = split
                recip = recip_c
            sx0 = i_n * fine
            sy0 = jn * fine
            if sx0 >= wo or sy0 >= ho:
                continue
            sx1 = min(sx0 + k * fine, wo)
            sy1 = min(sy0 + k * fine, ho)
            if sm == MODE_EMPTY:
                _clear(out32, sy0, sy1, sx0, sx1)
            elif sm != MODE_PIXEL:
                _mesh_cell(flat, w_s, h_s, hw, nodes, sm, bits, r, jn, i_n, k, recip, sx0, sx1, sy0, sy1, out32)
    if e0 >= 0:
        _clear(out32, y0, y1, e0, wo)


@njit(inline="always")
def _pack_rgba(c0, c1, c2, c3):
    """Four channel values in [0, 255] (floats) -> one RGBA word, rounded."""
    return np.uint32(np.uint32(c0 + 0.5) | (np.uint32(c1 + 0.5) << 8) | (np.uint32(c2 + 0.5) << 16)
                     | (np.uint32(c3 + 0.5) << 24))


@njit(inline="always")
def _target_depth(zb, x, y, stride, disc):
    """(z, z_far, rim) of target pixel (x, y) from the coarse z-buffer: bilinear inside a
    surface; the nearest surface across a silhouette (rim: some cell around is empty, so z is an
    extrapolation); at a depth edge also the farthest (z_far, else 0); (0, 0, False) where no
    cell around has a surface."""
    hc, wc = zb.shape
    cu = (x + 0.5) / stride - 0.5
    cv = (y + 0.5) / stride - 0.5
    i0 = int(np.floor(cu))
    j0 = int(np.floor(cv))
    tu = cu - i0
    tv = cv - j0
    i0c = min(max(i0, 0), wc - 1)
    i1c = min(max(i0 + 1, 0), wc - 1)
    j0c = min(max(j0, 0), hc - 1)
    j1c = min(max(j0 + 1, 0), hc - 1)
    z00 = zb[j0c, i0c]
    z01 = zb[j0c, i1c]
    z10 = zb[j1c, i0c]
    z11 = zb[j1c, i1c]
    zmin = 1e30
    zmax = 0.0
    for z in (z00, z01, z10, z11):
        if z > 0:
            zmin = min(zmin, z)
        zmax = max(zmax, z)
    if zmax <= 0:
        return 0.0, 0.0, False
    full = z00 > 0 and z01 > 0 and z10 > 0 and z11 > 0
    if full and zmax - zmin <= disc * zmin:
        return ((1 - tv) * ((1 - tu) * z00 + tu * z01) + tv * ((1 - tu) * z10 + tu * z11)), 0.0, False
    return zmin, (zmax if zmax - zmin > disc * zmin else 0.0), not full


@njit(inline="always")
def _depth_under(depth, k, m, o, ax, ay, z):
    """(d, qz, inside) for the point at z-depth z on the target ray (ax, ay, 1): the source's
    depth d at the pixel the point falls in, the point's own source depth qz, and whether the
    point is in front of the source and inside its image (else d = qz = 0)."""
    qx = z * (m[0, 0] * ax + m[0, 1] * ay + m[0, 2]) + o[0]
    qy = z * (m[1, 0] * ax + m[1, 1] * ay + m[1, 2]) + o[1]
    qz = z * (m[2, 0] * ax + m[2, 1] * ay + m[2, 2]) + o[2]
    if qz <= 1e-6:
        return 0.0, 0.0, False
    h, w = depth.shape
    i = int(np.floor(k[0] * qx / qz + k[2]))
    j = int(np.floor(k[1] * qy / qz + k[3]))
    if i < 0 or j < 0 or i >= w or j >= h:
        return 0.0, 0.0, False
    return np.float64(depth[j, i]), qz, True


@njit(inline="always")
def _residual(depth, k, m, o, ax, ay, z):
    """|source depth at the projection - the point's source depth| / depth, for the point at
    z-depth z on the target ray (ax, ay, 1); 1 when the source sees nothing there."""
    d, qz, inside = _depth_under(depth, k, m, o, ax, ay, z)
    if not inside or d <= 0:
        return 1.0
    return abs(d - qz) / qz


@njit(inline="always")
def _misses(depth, k, m, o, ax, ay, z, tol):
    """True when the source, seeing the point at z-depth z on the target ray (ax, ay, 1) inside
    its image, holds no surface there (its ray through the point hits nothing: empty space) or
    a surface more than ``tol`` (relative) away from it. False where it cannot tell (the point
    is behind it or outside its image: the frame-edge rule of ``warp``)."""
    d, qz, inside = _depth_under(depth, k, m, o, ax, ay, z)
    return inside and (d <= 0 or abs(d - qz) > tol * qz)


@njit(inline="always")
def _pixel_depth(zb, stride, disc, n_refine, ref, src_depth, src_k, ms, os_, x, y, ax, ay):
    """Target z-depth at pixel (x, y) with ray (ax, ay, 1): coarse z-buffer, depth-edge candidate
    check and refinement on the reference view (see ``warp``). 0 = no surface."""
    h, w = src_depth.shape[1], src_depth.shape[2]
    z, zfar, rim = _target_depth(zb, x, y, stride, disc)
    if z <= 0 or ref < 0:
        return z
    if rim and _misses(src_depth[ref], src_k[ref], ms[ref], os_[ref], ax, ay, z, np.inf):
        # The splat footprint reaches a cell past the silhouette, and a pixel there gets the
        # nearest surface's depth; where the reference view sees nothing at that point, the
        # pixel is background, not surface (else it takes what the sources see behind it).
        return 0.0
    if zfar > z:
        # A depth edge: the nearest surface or the one behind it? Keep the candidate the
        # reference view agrees with (its depth at the projection matches).
        if _residual(src_depth[ref], src_k[ref], ms[ref], os_[ref], ax, ay, zfar) < \
                _residual(src_depth[ref], src_k[ref], ms[ref], os_[ref], ax, ay, z):
            z = zfar
    # Refine the coarse depth on the reference view's full-resolution depth: along the target
    # ray q_ref(z) = z * g + o; fixed point z <- (depth_ref(u(z), v(z)) - o_z) / g_z. Converges in
    # a step or two for the small baselines of a view grid; a step across a depth edge is refused.
    m = ms[ref]
    gx = m[0, 0] * ax + m[0, 1] * ay + m[0, 2]
    gy = m[1, 0] * ax + m[1, 1] * ay + m[1, 2]
    gz = m[2, 0] * ax + m[2, 1] * ay + m[2, 2]
    for _ in range(n_refine):
        qz = z * gz + os_[ref, 2]
        if qz <= 1e-6 or gz <= 1e-6:
            break
        u = src_k[ref, 0] * (z * gx + os_[ref, 0]) / qz + src_k[ref, 2] - 0.5
        v = src_k[ref, 1] * (z * gy + os_[ref, 1]) / qz + src_k[ref, 3] - 0.5
        i0 = int(np.floor(u))
        j0 = int(np.floor(v))
        if i0 < 0 or j0 < 0 or i0 + 1 >= w or j0 + 1 >= h:
            break
        d00 = src_depth[ref, j0, i0]
        d01 = src_depth[ref, j0, i0 + 1]
        d10 = src_depth[ref, j0 + 1, i0]
        d11 = src_depth[ref, j0 + 1, i0 + 1]
        tu = u - i0
        tv = v - j0
        # Bilinear over the taps that hold a surface: at the silhouette (where the coarse depth
        # is an extrapolation and most needs refining) some taps are empty.
        w00 = (1 - tv) * (1 - tu) if d00 > 0 else 0.0
        w01 = (1 - tv) * tu if d01 > 0 else 0.0
        w10 = tv * (1 - tu) if d10 > 0 else 0.0
        w11 = tv * tu if d11 > 0 else 0.0
        wsum = w00 + w01 + w10 + w11
        if wsum < 1e-6:
            break
        ds = (w00 * d00 + w01 * d01 + w10 * d10 + w11 * d11) / wsum
        zn = (ds - os_[ref, 2]) / gz
        if abs(zn - z) > disc * z:
            break
        z = zn
    if rim and _misses(src_depth[ref], src_k[ref], ms[ref], os_[ref], ax, ay, z, disc):
        # Extrapolated past the silhouette and not converged onto the reference view's surface:
        # the ray misses the subject.
        return 0.0
    return z


@njit(inline="always")
def _project(src_depth, src_k, ms, os_, s, ax, ay, z, ztol):
    """(u, v, vis, flag) of the target point (ax z, ay z, z) in source s: flag 0 = behind the
    source camera, 1 = outside its image, 2 = inside; vis = soft z-test against its depth."""
    h, w = src_depth.shape[1], src_depth.shape[2]
    px = ax * z
    py = ay * z
    qx = ms[s, 0, 0] * px + ms[s, 0, 1] * py + ms[s, 0, 2] * z + os_[s, 0]
    qy = ms[s, 1, 0] * px + ms[s, 1, 1] * py + ms[s, 1, 2] * z + os_[s, 1]
    qz = ms[s, 2, 0] * px + ms[s, 2, 1] * py + ms[s, 2, 2] * z + os_[s, 2]
    if qz <= 1e-6:
        return 0.0, 0.0, 0.0, 0
    iz = 1.0 / qz
    # Continuous source pixel coordinates, pixel centres on integers.
    u = src_k[s, 0] * qx * iz + src_k[s, 2] - 0.5
    v = src_k[s, 1] * qy * iz + src_k[s, 3] - 0.5
    if u < -1.0 or v < -1.0 or u > w or v > h:
        return u, v, 1.0, 1
    # Soft z-test: visible within ztol (relative), fading to invisible at 2 * ztol.
    ni = min(max(int(u + 0.5), 0), w - 1)
    nj = min(max(int(v + 0.5), 0), h - 1)
    ds = src_depth[s, nj, ni]
    vis = 1.0
    if ds > 0:
        excess = qz / ds - 1.0 - ztol
        if excess > 0:
            vis = max(0.0, 1.0 - excess / ztol)
    return u, v, vis, 2


# Step 3b's per-pixel state between its stages, rows of ``WarpScratch.pgeo[thread]``: the depth,
# and flags (1: a rim pixel, whose coarse depth is an extrapolation; 2: still refining).
_PG_Z, _PG_FLAGS = 0, 1


@njit(inline="always")
def _ray(tgt_k, x, y, axis):
    """Target ray (ax, ay, 1) through pixel (x, y): its x (axis 0) or y (axis 1) component."""
    return (x + 0.5 - tgt_k[2]) / tgt_k[0] if axis == 0 else (y + 0.5 - tgt_k[3]) / tgt_k[1]


@njit(inline="always")
def _ref_qz(ref, geo, ax, ay, z):
    """The point at z-depth z on the target ray (ax, ay, 1): its own depth in the reference view."""
    return z * (geo[ref, 2, 0] * ax + geo[ref, 2, 1] * ay + geo[ref, 2, 2]) + geo[ref, 3, 2]


@njit(inline="always")
def _under_ref(dflat, hw, h_s, w_s, ref, src_k, geo, ax, ay, z):
    """The reference view's depth under that point (``_depth_under`` without a tuple; -1 where the
    point is behind the view or outside its image)."""
    qx = z * (geo[ref, 0, 0] * ax + geo[ref, 0, 1] * ay + geo[ref, 0, 2]) + geo[ref, 3, 0]
    qy = z * (geo[ref, 1, 0] * ax + geo[ref, 1, 1] * ay + geo[ref, 1, 2]) + geo[ref, 3, 1]
    qz = _ref_qz(ref, geo, ax, ay, z)
    front = qz > 1e-6
    qs = qz if front else 1.0
    fi = np.floor(src_k[ref, 0] * qx / qs + src_k[ref, 2])
    fj = np.floor(src_k[ref, 1] * qy / qs + src_k[ref, 3])
    inside = front & (fi >= 0) & (fj >= 0) & (fi < w_s) & (fj < h_s)
    i = np.uint64(min(max(fi, 0.0), w_s - 1.0))
    j = np.uint64(min(max(fj, 0.0), h_s - 1.0))
    d = np.float64(dflat[np.uint64(ref * hw) + j * np.uint64(w_s) + i])
    return d if inside else -1.0


@njit(inline="always")
def _ref_residual(dflat, hw, h_s, w_s, ref, src_k, geo, ax, ay, z):
    """``_residual`` on the reference view: |its depth there - the point's| / the point's; 1
    where it sees nothing there."""
    d = _under_ref(dflat, hw, h_s, w_s, ref, src_k, geo, ax, ay, z)
    qz = _ref_qz(ref, geo, ax, ay, z)
    return abs(d - qz) / qz if d > 0 else 1.0


@njit(inline="always")
def _tap_word(flat, base, h_s, w_s, fu, fv, dj, di):
    """The RGBA word of the bilinear footprint's tap (dj, di) in {0, 1}^2, its top-left pixel at
    column fu, row fv (floats), each clamped to the image."""
    i = np.uint64(min(max(fu + di, 0.0), w_s - 1.0))
    j = np.uint64(min(max(fv + dj, 0.0), h_s - 1.0))
    return flat[base + j * np.uint64(w_s) + i]


@njit(inline="always")
def _channel(p00, p01, p10, p11, w00, w01, w10, w11, c):
    """Bilinear value (0..255 float) of channel c of four RGBA words."""
    sh = np.uint32(8 * c)
    m = np.uint32(255)
    return (w00 * ((p00 >> sh) & m) + w01 * ((p01 >> sh) & m) + w10 * ((p10 >> sh) & m)
            + w11 * ((p11 >> sh) & m))


@njit(inline="always")
def _pixels_depth(n, t, pts, pg, zb, zstride, disc, ref, dflat, h_s, w_s, src_k, geo, tgt_k):
    """Step 3b, stage 1 (``_pixel_batch``): the coarse depth (``_target_depth``); where the
    reference view sees nothing at a rim pixel's point, background; at a depth edge, the candidate
    it agrees with (``_pixel_depth``)."""
    hc, wc = zb.shape
    hw = h_s * w_s
    rf = max(ref, 0)
    for i in range(n):
        x = pts[t, 0, i]
        y = pts[t, 1, i]
        ax = _ray(tgt_k, x, y, 0)
        ay = _ray(tgt_k, x, y, 1)
        cu = (x + 0.5) / zstride - 0.5
        cv = (y + 0.5) / zstride - 0.5
        fu = np.floor(cu)
        fv = np.floor(cv)
        tu = cu - fu
        tv = cv - fv
        i0 = np.uint64(min(max(fu, 0.0), wc - 1.0))
        i1 = np.uint64(min(max(fu + 1.0, 0.0), wc - 1.0))
        j0 = np.uint64(min(max(fv, 0.0), hc - 1.0))
        j1 = np.uint64(min(max(fv + 1.0, 0.0), hc - 1.0))
        z00 = np.float64(zb[j0, i0])
        z01 = np.float64(zb[j0, i1])
        z10 = np.float64(zb[j1, i0])
        z11 = np.float64(zb[j1, i1])
        zmax = max(max(max(z00, z01), max(z10, z11)), 0.0)
        zmin = min(min(z00 if z00 > 0 else 1e30, z01 if z01 > 0 else 1e30),
                   min(z10 if z10 > 0 else 1e30, z11 if z11 > 0 else 1e30))
        has = zmax > 0
        full = (z00 > 0) & (z01 > 0) & (z10 > 0) & (z11 > 0)
        edge = zmax - zmin > disc * zmin
        bil = (1 - tv) * ((1 - tu) * z00 + tu * z01) + tv * ((1 - tu) * z10 + tu * z11)
        z = zmin if edge else (bil if full else zmin)
        z = z if has else 0.0
        zfar = zmax if has & edge else 0.0
        rim = 0.0 if full else (1.0 if has else 0.0)
        miss = (rim > 0) & (_under_ref(dflat, hw, h_s, w_s, rf, src_k, geo, ax, ay, z) == 0)
        far = (ref >= 0) & (zfar > z) & (_ref_residual(dflat, hw, h_s, w_s, rf, src_k, geo, ax, ay, zfar)
                            < _ref_residual(dflat, hw, h_s, w_s, rf, src_k, geo, ax, ay, z))
        z = zfar if far else z
        pg[t, _PG_Z, i] = z if ref < 0 else (0.0 if miss else z)
        pg[t, _PG_FLAGS, i] = rim + 2.0



@njit(inline="always")
def _pixels_refine(n, t, pts, pg, disc, ref, dflat, h_s, w_s, src_k, geo, tgt_k):
    """Step 3b, stage 2 (``_pixel_batch``): one refinement step of the depth on the reference
    view's depth (``_pixel_depth``); a pixel's first refused step ends its refinement (flag 2 off)."""
    hw = h_s * w_s
    rf = max(ref, 0)
    for i in range(n):
        x = pts[t, 0, i]
        y = pts[t, 1, i]
        ax = _ray(tgt_k, x, y, 0)
        ay = _ray(tgt_k, x, y, 1)
        z = pg[t, _PG_Z, i]
        flags = pg[t, _PG_FLAGS, i]
        gx = geo[rf, 0, 0] * ax + geo[rf, 0, 1] * ay + geo[rf, 0, 2]
        gy = geo[rf, 1, 0] * ax + geo[rf, 1, 1] * ay + geo[rf, 1, 2]
        gz = geo[rf, 2, 0] * ax + geo[rf, 2, 1] * ay + geo[rf, 2, 2]
        qz = z * gz + geo[rf, 3, 2]
        ok = (flags >= 2) & (z > 0) & (qz > 1e-6) & (gz > 1e-6)
        qs = qz if ok else 1.0
        u = src_k[rf, 0] * (z * gx + geo[rf, 3, 0]) / qs + src_k[rf, 2] - 0.5
        v = src_k[rf, 1] * (z * gy + geo[rf, 3, 1]) / qs + src_k[rf, 3] - 0.5
        fu = np.floor(u)
        fv = np.floor(v)
        ok = ok & (fu >= 0) & (fv >= 0) & (fu + 1 < w_s) & (fv + 1 < h_s)
        a = (np.uint64(rf * hw) + np.uint64(min(max(fv, 0.0), h_s - 2.0)) * np.uint64(w_s)
             + np.uint64(min(max(fu, 0.0), w_s - 2.0)))
        d00 = np.float64(dflat[a])
        d01 = np.float64(dflat[a + np.uint64(1)])
        d10 = np.float64(dflat[a + np.uint64(w_s)])
        d11 = np.float64(dflat[a + np.uint64(w_s + 1)])
        tu = u - fu
        tv = v - fv
        w00 = (1 - tv) * (1 - tu) if d00 > 0 else 0.0
        w01 = (1 - tv) * tu if d01 > 0 else 0.0
        w10 = tv * (1 - tu) if d10 > 0 else 0.0
        w11 = tv * tu if d11 > 0 else 0.0
        wsum = w00 + w01 + w10 + w11
        ok = ok & (wsum >= 1e-6)
        ds = (w00 * d00 + w01 * d01 + w10 * d10 + w11 * d11) / (wsum if ok else 1.0)
        zn = (ds - geo[rf, 3, 2]) / (gz if ok else 1.0)
        ok = ok & (abs(zn - z) <= disc * z)
        pg[t, _PG_Z, i] = zn if ok else z
        pg[t, _PG_FLAGS, i] = flags if ok else (flags - 2.0 if flags >= 2.0 else flags)



@njit(inline="always")
def _pixels_rim(n, t, pts, pg, disc, ref, dflat, h_s, w_s, src_k, geo, tgt_k):
    """Step 3b, stage 3 (``_pixel_batch``): a rim pixel extrapolated past the silhouette and not
    on the reference view's surface after refinement is background (``_pixel_depth``'s last test)."""
    hw = h_s * w_s
    rf = max(ref, 0)
    for i in range(n):
        x = pts[t, 0, i]
        y = pts[t, 1, i]
        ax = _ray(tgt_k, x, y, 0)
        ay = _ray(tgt_k, x, y, 1)
        z = pg[t, _PG_Z, i]
        d = _under_ref(dflat, hw, h_s, w_s, rf, src_k, geo, ax, ay, z)
        qr = _ref_qz(rf, geo, ax, ay, z)
        flags = pg[t, _PG_FLAGS, i]
        miss = ((flags == 1.0) | (flags == 3.0)) & (d >= 0) & ((d == 0) | (abs(d - qr) > disc * qr))
        pg[t, _PG_Z, i] = 0.0 if miss & (ref >= 0) else z


@njit(inline="always")
def _pixels_keep(n, t, pts, pg, out32):
    """Step 3b, between stages: every listed pixel is stored transparent, and only those with a
    surface (z > 0) stay on the list, in order; returns how many. A vector loop runs each
    pixel's whole rule (masked), and about two thirds of the PIXEL pixels (the background beside
    the silhouette) end up with none. Scalar (an appending loop does not vectorise), branch-free."""
    m = 0
    for i in range(n):
        x = pts[t, 0, i]
        y = pts[t, 1, i]
        z = pg[t, _PG_Z, i]
        f = pg[t, _PG_FLAGS, i]
        out32[y, x] = 0
        pts[t, 0, m] = x
        pts[t, 1, m] = y
        pg[t, _PG_Z, m] = z
        pg[t, _PG_FLAGS, m] = f
        m += 1 if z > 0 else 0
    return m


@njit(inline="always")
def _pixels_blend(n, t, pts, pg, ztol, dflat, flat, h_s, w_s, src_w, src_k, geo, tgt_k, out32):
    """Step 3b, last stage (``_pixel_batch``): each source's weight and sample, and the blend
    after the z-test, else the hole fill's, else transparent.

    The four sources are written out as slots 0-3 (a slot past the sources weighs 0, and reads
    source 0): a loop over them inside the pixels' loop stayed a loop, and the pixels' loop was
    then not vectorised; a helper per quantity instead took numba minutes to compile. The sums
    run in slot order, as the scalar path's loop over sources added them."""
    hw = h_s * w_s
    n_src = src_w.shape[0]
    s0 = 0
    s1 = min(1, n_src - 1)
    s2 = min(2, n_src - 1)
    s3 = min(3, n_src - 1)
    w0 = np.float64(src_w[s0])
    w1 = np.float64(src_w[s1]) if n_src > 1 else 0.0
    w2 = np.float64(src_w[s2]) if n_src > 2 else 0.0
    w3 = np.float64(src_w[s3]) if n_src > 3 else 0.0
    b0 = np.uint64(s0 * hw)
    b1 = np.uint64(s1 * hw)
    b2 = np.uint64(s2 * hw)
    b3 = np.uint64(s3 * hw)
    for i in range(n):
        x = pts[t, 0, i]
        y = pts[t, 1, i]
        ax = _ray(tgt_k, x, y, 0)
        ay = _ray(tgt_k, x, y, 1)
        z = pg[t, _PG_Z, i]
        px = ax * z
        py = ay * z
        # Slot 0: project (``_project``), soft z-test at the nearest pixel, bilinear taps.
        qz0 = geo[s0, 2, 0] * px + geo[s0, 2, 1] * py + geo[s0, 2, 2] * z + geo[s0, 3, 2]
        fr0 = qz0 > 1e-6
        iz0 = 1.0 / (qz0 if fr0 else 1.0)
        u0 = src_k[s0, 0] * (geo[s0, 0, 0] * px + geo[s0, 0, 1] * py + geo[s0, 0, 2] * z + geo[s0, 3, 0]) * iz0 \
            + src_k[s0, 2] - 0.5
        v0 = src_k[s0, 1] * (geo[s0, 1, 0] * px + geo[s0, 1, 1] * py + geo[s0, 1, 2] * z + geo[s0, 3, 1]) * iz0 \
            + src_k[s0, 3] - 0.5
        on0 = (w0 > 0) & (z > 0) & fr0 & (u0 >= -1.0) & (v0 >= -1.0) & (u0 <= w_s) & (v0 <= h_s)
        u0 = u0 if on0 else 0.0
        v0 = v0 if on0 else 0.0
        d0 = np.float64(dflat[b0 + np.uint64(min(max(np.int64(v0 + 0.5), 0), h_s - 1)) * np.uint64(w_s)
                              + np.uint64(min(max(np.int64(u0 + 0.5), 0), w_s - 1))])
        ex0 = qz0 / (d0 if d0 > 0 else 1.0) - 1.0 - ztol
        vis0 = max(0.0, 1.0 - ex0 / ztol) if (d0 > 0) & (ex0 > 0) else 1.0
        pa0 = w0 if on0 else 0.0
        pv0 = w0 * vis0 if on0 else 0.0
        fu0 = np.floor(u0)
        fv0 = np.floor(v0)
        tu0 = u0 - fu0
        tv0 = v0 - fv0
        p00_0 = _tap_word(flat, b0, h_s, w_s, fu0, fv0, 0, 0)
        p01_0 = _tap_word(flat, b0, h_s, w_s, fu0, fv0, 0, 1)
        p10_0 = _tap_word(flat, b0, h_s, w_s, fu0, fv0, 1, 0)
        p11_0 = _tap_word(flat, b0, h_s, w_s, fu0, fv0, 1, 1)
        w00_0 = (1 - tu0) * (1 - tv0)
        w01_0 = tu0 * (1 - tv0)
        w10_0 = (1 - tu0) * tv0
        w11_0 = tu0 * tv0
        c0_0 = _channel(p00_0, p01_0, p10_0, p11_0, w00_0, w01_0, w10_0, w11_0, 0)
        c1_0 = _channel(p00_0, p01_0, p10_0, p11_0, w00_0, w01_0, w10_0, w11_0, 1)
        c2_0 = _channel(p00_0, p01_0, p10_0, p11_0, w00_0, w01_0, w10_0, w11_0, 2)
        c3_0 = _channel(p00_0, p01_0, p10_0, p11_0, w00_0, w01_0, w10_0, w11_0, 3)
        # Slot 1: project (``_project``), soft z-test at the nearest pixel, bilinear taps.
        qz1 = geo[s1, 2, 0] * px + geo[s1, 2, 1] * py + geo[s1, 2, 2] * z + geo[s1, 3, 2]
        fr1 = qz1 > 1e-6
        iz1 = 1.0 / (qz1 if fr1 else 1.0)
        u1 = src_k[s1, 0] * (geo[s1, 0, 0] * px + geo[s1, 0, 1] * py + geo[s1, 0, 2] * z + geo[s1, 3, 0]) * iz1 \
            + src_k[s1, 2] - 0.5
        v1 = src_k[s1, 1] * (geo[s1, 1, 0] * px + geo[s1, 1, 1] * py + geo[s1, 1, 2] * z + geo[s1, 3, 1]) * iz1 \
            + src_k[s1, 3] - 0.5
        on1 = (w1 > 0) & (z > 0) & fr1 & (u1 >= -1.0) & (v1 >= -1.0) & (u1 <= w_s) & (v1 <= h_s)
        u1 = u1 if on1 else 0.0
        v1 = v1 if on1 else 0.0
        d1 = np.float64(dflat[b1 + np.uint64(min(max(np.int64(v1 + 0.5), 0), h_s - 1)) * np.uint64(w_s)
                              + np.uint64(min(max(np.int64(u1 + 0.5), 0), w_s - 1))])
        ex1 = qz1 / (d1 if d1 > 0 else 1.0) - 1.0 - ztol
        vis1 = max(0.0, 1.0 - ex1 / ztol) if (d1 > 0) & (ex1 > 0) else 1.0
        pa1 = w1 if on1 else 0.0
        pv1 = w1 * vis1 if on1 else 0.0
        fu1 = np.floor(u1)
        fv1 = np.floor(v1)
        tu1 = u1 - fu1
        tv1 = v1 - fv1
        p00_1 = _tap_word(flat, b1, h_s, w_s, fu1, fv1, 0, 0)
        p01_1 = _tap_word(flat, b1, h_s, w_s, fu1, fv1, 0, 1)
        p10_1 = _tap_word(flat, b1, h_s, w_s, fu1, fv1, 1, 0)
        p11_1 = _tap_word(flat, b1, h_s, w_s, fu1, fv1, 1, 1)
        w00_1 = (1 - tu1) * (1 - tv1)
        w01_1 = tu1 * (1 - tv1)
        w10_1 = (1 - tu1) * tv1
        w11_1 = tu1 * tv1
        c0_1 = _channel(p00_1, p01_1, p10_1, p11_1, w00_1, w01_1, w10_1, w11_1, 0)
        c1_1 = _channel(p00_1, p01_1, p10_1, p11_1, w00_1, w01_1, w10_1, w11_1, 1)
        c2_1 = _channel(p00_1, p01_1, p10_1, p11_1, w00_1, w01_1, w10_1, w11_1, 2)
        c3_1 = _channel(p00_1, p01_1, p10_1, p11_1, w00_1, w01_1, w10_1, w11_1, 3)
        # Slot 2: project (``_project``), soft z-test at the nearest pixel, bilinear taps.
        qz2 = geo[s2, 2, 0] * px + geo[s2, 2, 1] * py + geo[s2, 2, 2] * z + geo[s2, 3, 2]
        fr2 = qz2 > 1e-6
        iz2 = 1.0 / (qz2 if fr2 else 1.0)
        u2 = src_k[s2, 0] * (geo[s2, 0, 0] * px + geo[s2, 0, 1] * py + geo[s2, 0, 2] * z + geo[s2, 3, 0]) * iz2 \
            + src_k[s2, 2] - 0.5
        v2 = src_k[s2, 1] * (geo[s2, 1, 0] * px + geo[s2, 1, 1] * py + geo[s2, 1, 2] * z + geo[s2, 3, 1]) * iz2 \
            + src_k[s2, 3] - 0.5
        on2 = (w2 > 0) & (z > 0) & fr2 & (u2 >= -1.0) & (v2 >= -1.0) & (u2 <= w_s) & (v2 <= h_s)
        u2 = u2 if on2 else 0.0
        v2 = v2 if on2 else 0.0
        d2 = np.float64(dflat[b2 + np.uint64(min(max(np.int64(v2 + 0.5), 0), h_s - 1)) * np.uint64(w_s)
                              + np.uint64(min(max(np.int64(u2 + 0.5), 0), w_s - 1))])
        ex2 = qz2 / (d2 if d2 > 0 else 1.0) - 1.0 - ztol
        vis2 = max(0.0, 1.0 - ex2 / ztol) if (d2 > 0) & (ex2 > 0) else 1.0
        pa2 = w2 if on2 else 0.0
        pv2 = w2 * vis2 if on2 else 0.0
        fu2 = np.floor(u2)
        fv2 = np.floor(v2)
        tu2 = u2 - fu2
        tv2 = v2 - fv2
        p00_2 = _tap_word(flat, b2, h_s, w_s, fu2, fv2, 0, 0)
        p01_2 = _tap_word(flat, b2, h_s, w_s, fu2, fv2, 0, 1)
        p10_2 = _tap_word(flat, b2, h_s, w_s, fu2, fv2, 1, 0)
        p11_2 = _tap_word(flat, b2, h_s, w_s, fu2, fv2, 1, 1)
        w00_2 = (1 - tu2) * (1 - tv2)
        w01_2 = tu2 * (1 - tv2)
        w10_2 = (1 - tu2) * tv2
        w11_2 = tu2 * tv2
        c0_2 = _channel(p00_2, p01_2, p10_2, p11_2, w00_2, w01_2, w10_2, w11_2, 0)
        c1_2 = _channel(p00_2, p01_2, p10_2, p11_2, w00_2, w01_2, w10_2, w11_2, 1)
        c2_2 = _channel(p00_2, p01_2, p10_2, p11_2, w00_2, w01_2, w10_2, w11_2, 2)
        c3_2 = _channel(p00_2, p01_2, p10_2, p11_2, w00_2, w01_2, w10_2, w11_2, 3)
        # Slot 3: project (``_project``), soft z-test at the nearest pixel, bilinear taps.
        qz3 = geo[s3, 2, 0] * px + geo[s3, 2, 1] * py + geo[s3, 2, 2] * z + geo[s3, 3, 2]
        fr3 = qz3 > 1e-6
        iz3 = 1.0 / (qz3 if fr3 else 1.0)
        u3 = src_k[s3, 0] * (geo[s3, 0, 0] * px + geo[s3, 0, 1] * py + geo[s3, 0, 2] * z + geo[s3, 3, 0]) * iz3 \
            + src_k[s3, 2] - 0.5
        v3 = src_k[s3, 1] * (geo[s3, 1, 0] * px + geo[s3, 1, 1] * py + geo[s3, 1, 2] * z + geo[s3, 3, 1]) * iz3 \
            + src_k[s3, 3] - 0.5
        on3 = (w3 > 0) & (z > 0) & fr3 & (u3 >= -1.0) & (v3 >= -1.0) & (u3 <= w_s) & (v3 <= h_s)
        u3 = u3 if on3 else 0.0
        v3 = v3 if on3 else 0.0
        d3 = np.float64(dflat[b3 + np.uint64(min(max(np.int64(v3 + 0.5), 0), h_s - 1)) * np.uint64(w_s)
                              + np.uint64(min(max(np.int64(u3 + 0.5), 0), w_s - 1))])
        ex3 = qz3 / (d3 if d3 > 0 else 1.0) - 1.0 - ztol
        vis3 = max(0.0, 1.0 - ex3 / ztol) if (d3 > 0) & (ex3 > 0) else 1.0
        pa3 = w3 if on3 else 0.0
        pv3 = w3 * vis3 if on3 else 0.0
        fu3 = np.floor(u3)
        fv3 = np.floor(v3)
        tu3 = u3 - fu3
        tv3 = v3 - fv3
        p00_3 = _tap_word(flat, b3, h_s, w_s, fu3, fv3, 0, 0)
        p01_3 = _tap_word(flat, b3, h_s, w_s, fu3, fv3, 0, 1)
        p10_3 = _tap_word(flat, b3, h_s, w_s, fu3, fv3, 1, 0)
        p11_3 = _tap_word(flat, b3, h_s, w_s, fu3, fv3, 1, 1)
        w00_3 = (1 - tu3) * (1 - tv3)
        w01_3 = tu3 * (1 - tv3)
        w10_3 = (1 - tu3) * tv3
        w11_3 = tu3 * tv3
        c0_3 = _channel(p00_3, p01_3, p10_3, p11_3, w00_3, w01_3, w10_3, w11_3, 0)
        c1_3 = _channel(p00_3, p01_3, p10_3, p11_3, w00_3, w01_3, w10_3, w11_3, 1)
        c2_3 = _channel(p00_3, p01_3, p10_3, p11_3, w00_3, w01_3, w10_3, w11_3, 2)
        c3_3 = _channel(p00_3, p01_3, p10_3, p11_3, w00_3, w01_3, w10_3, w11_3, 3)
        wa = pa0 + pa1 + pa2 + pa3
        wv = pv0 + pv1 + pv2 + pv3
        use_v = (wv > 1e-3 * wa) & (wv > 0)
        k = 1.0 / (wv if use_v else (wa if wa > 0 else 1.0))
        q0 = pv0 if use_v else pa0
        q1 = pv1 if use_v else pa1
        q2 = pv2 if use_v else pa2
        q3 = pv3 if use_v else pa3
        word = _pack_rgba((q0 * c0_0 + q1 * c0_1 + q2 * c0_2 + q3 * c0_3) * k,
                          (q0 * c1_0 + q1 * c1_1 + q2 * c1_2 + q3 * c1_3) * k,
                          (q0 * c2_0 + q1 * c2_1 + q2 * c2_2 + q3 * c2_3) * k,
                          (q0 * c3_0 + q1 * c3_1 + q2 * c3_2 + q3 * c3_3) * k)
        out32[y, x] = word if wa > 0 else np.uint32(0)


@njit(inline="always")
def _pixel_batch(n, t, pts, pg, zb, zstride, disc, n_refine, ref, ztol, dflat, flat, h_s, w_s, src_w, src_k,
                 geo, tgt_k, out32):
    """Step 3b of ``_warp`` for the n PIXEL-cell pixels listed in pts[t] (x, y): the per-pixel
    rule of ``_pixel_depth`` and ``_project`` then a bilinear sample per source, in stages
    (depth, refinement steps, the rim test, the blend), each one loop over the pixels with no
    branch that differs between them, so LLVM vectorises it (one scalar pixel at a time cost
    ~140 ns at 512 px). Between stages only the depth and the flags go through memory (pg[t]): a
    loop that updated more rows of one array would need more runtime overlap checks than LLVM
    makes and stay scalar; so the sources' sums are locals, in four slots written out
    (``_pixels_blend``). Pixels left with no surface are stored transparent and dropped before
    the refinement and before the blend (``_pixels_keep``): about a third are left for the
    blend at 512 px, and the warp took 0.88x the time. No tuples, no subarrays: see ``_warp``,
    step 3."""
    _pixels_depth(n, t, pts, pg, zb, zstride, disc, ref, dflat, h_s, w_s, src_k, geo, tgt_k)
    n = _pixels_keep(n, t, pts, pg, out32)
    for _ in range(n_refine if ref >= 0 else 0):
        _pixels_refine(n, t, pts, pg, disc, ref, dflat, h_s, w_s, src_k, geo, tgt_k)
    _pixels_rim(n, t, pts, pg, disc, ref, dflat, h_s, w_s, src_k, geo, tgt_k)
    n = _pixels_keep(n, t, pts, pg, out32)
    _pixels_blend(n, t, pts, pg, ztol, dflat, flat, h_s, w_s, src_w, src_k, geo, tgt_k, out32)


@njit(inline="always")
def _node(zb, zstride, disc, n_refine, ref, ztol, src_depth, src_k, ms, os_, tgt_k, vw8, x, y,
          nodes, node_z, see, jn, i_n):
    """Geometry at the lattice node (jn, i_n), target pixel (x, y): its depth, and per source
    (u, v, blend weight in 1/256) into nodes[:, :, jn, i_n] and the bit masks into see[:, jn, i_n]
    (see ``_warp``, step 1)."""
    n_src = src_depth.shape[0]
    h_s, w_s = src_depth.shape[1], src_depth.shape[2]
    ax = (x + 0.5 - tgt_k[2]) / tgt_k[0]
    ay = (y + 0.5 - tgt_k[3]) / tgt_k[1]
    z = _pixel_depth(zb, zstride, disc, n_refine, ref, src_depth, src_k, ms, os_, x, y, ax, ay)
    node_z[jn, i_n] = z
    safe = 0
    inside = 0
    front = 0
    tot_v = 0.0  # the z-tested view weights of the sources the node projects inside
    tot_a = 0.0  # the plain ones (hole fill)
    for s in range(n_src):
        nodes[s, 2, jn, i_n] = 0.0
        if z <= 0 or vw8[s] <= 0:  # no surface, or a source the frame does not use
            continue
        u, v, vis, flag = _project(src_depth, src_k, ms, os_, s, ax, ay, z, ztol)
        nodes[s, 0, jn, i_n] = u
        nodes[s, 1, jn, i_n] = v
        if flag != 0:
            front |= 1 << s
        if flag != 2:
            continue
        inside |= 1 << s
        if 0.0 <= u < w_s - 1.01 and 0.0 <= v < h_s - 1.01:
            safe |= 1 << s
        nodes[s, 2, jn, i_n] = vw8[s] * vis  # unnormalised until the pass below
        tot_v += vw8[s] * vis
        tot_a += vw8[s]
    # Normalised to 1/256 like ``_weights_256`` (the last source takes the remainder).
    weighted = 0
    if inside:
        use_v = tot_v > 1e-3 * tot_a and tot_v > 0
        scale = 256.0 / (tot_v if use_v else tot_a)
        acc = 0
        last = -1
        for s in range(n_src):
            if not (inside >> s) & 1:
                continue
            xw = nodes[s, 2, jn, i_n] if use_v else np.float64(vw8[s])
            if xw > 0:
                q = int(xw * scale + 0.5)
                nodes[s, 2, jn, i_n] = q
                acc += q
                last = s
                if q > 0:
                    weighted |= 1 << s
            else:
                nodes[s, 2, jn, i_n] = 0.0
        if last >= 0:
            q = nodes[last, 2, jn, i_n] + (256 - acc)
            nodes[last, 2, jn, i_n] = q
            weighted = (weighted | (1 << last)) if q > 0 else (weighted & ~(1 << last))
    see[0, jn, i_n] = safe
    see[1, jn, i_n] = weighted
    see[2, jn, i_n] = front


@njit(inline="always")
def _cell_mode(nodes, node_z, see, zb, zstride, disc, mesh, ref, jn, i_n, k, y0, y1, x0, x1):
    """(mode, used, rem) of the lattice cell with corner nodes (jn, i_n) and k nodes on, covering
    target pixels [y0, y1) x [x0, x1) (see ``_warp``, step 2)."""
    n_src = nodes.shape[0]
    m = MODE_PIXEL
    bits = 0
    best = -1
    j1 = jn + k
    i1 = i_n + k
    if mesh and ref >= 0:
        z00 = node_z[jn, i_n]
        z01 = node_z[jn, i1]
        z10 = node_z[j1, i_n]
        z11 = node_z[j1, i1]
        zlo = min(min(z00, z01), min(z10, z11))
        zhi = max(max(z00, z01), max(z10, z11))
        ok = zlo > 0 and zhi - zlo <= disc * zlo
        if ok:
            # No fold: the nearest view's coordinates advance along both axes.
            ok = (nodes[ref, 0, jn, i1] > nodes[ref, 0, jn, i_n]
                  and nodes[ref, 0, j1, i1] > nodes[ref, 0, j1, i_n]
                  and nodes[ref, 1, j1, i_n] > nodes[ref, 1, jn, i_n]
                  and nodes[ref, 1, j1, i1] > nodes[ref, 1, jn, i1])
        if ok:
            w00 = np.int64(see[1, jn, i_n])
            w01 = np.int64(see[1, jn, i1])
            w10 = np.int64(see[1, j1, i_n])
            w11 = np.int64(see[1, j1, i1])
            bits = w00 | w01 | w10 | w11
            safe = np.int64(see[0, jn, i_n] & see[0, jn, i1] & see[0, j1, i_n] & see[0, j1, i1])
            front = np.int64(see[2, jn, i_n] & see[2, jn, i1] & see[2, j1, i_n] & see[2, j1, i1])
            ok = w00 != 0 and w01 != 0 and w10 != 0 and w11 != 0 and bits & ~front == 0
        if ok:
            m = MODE_MESH if bits & ~safe == 0 else MODE_MESH_RAMP
            best_w = 0.0
            for s in range(n_src):
                if not (bits >> s) & 1:
                    continue
                c = nodes[s, 2, jn, i_n]
                if nodes[s, 2, jn, i1] != c or nodes[s, 2, j1, i_n] != c or nodes[s, 2, j1, i1] != c:
                    m = MODE_MESH_RAMP
                lo = min(min(c, nodes[s, 2, jn, i1]), min(nodes[s, 2, j1, i_n], nodes[s, 2, j1, i1]))
                if lo > best_w:
                    best = s
                    best_w = lo
            if m == MODE_MESH_RAMP and best < 0:
                m = MODE_PIXEL
    if m == MODE_PIXEL:
        bits = 0
        # Empty: no coarse cell that the cell's pixels read holds a surface.
        # (The z-buffer cells that ``_target_depth`` reads for the cell's pixels.)
        hc, wc = zb.shape
        empty = True
        j_lo = max(int(np.floor((y0 + 0.5) / zstride - 0.5)), 0)
        j_hi = min(int(np.floor((y1 - 0.5) / zstride - 0.5)) + 2, hc)
        i_lo = max(int(np.floor((x0 + 0.5) / zstride - 0.5)), 0)
        i_hi = min(int(np.floor((x1 - 0.5) / zstride - 0.5)) + 2, wc)
        for jj in range(j_lo, j_hi):
            for ii in range(i_lo, i_hi):
                if zb[jj, ii] > 0:
                    empty = False
        if empty:
            m = MODE_EMPTY
    return m, bits, max(best, 0)


@njit("void(u1[:,:,:,::1], f4[:,:,::1], f4[::1], f8[:,::1], f8[:,:,::1], f8[:,::1], f8[::1], "
      "f8[:,::1], f8[::1], f4[:,::1], i8, i8, i8, f8, f8, i8, b1, f8[:,:,:,::1], f8[:,::1], u1[:,:,::1], "
      "u1[:,::1], u1[:,::1], u1[:,::1], u1[:,::1], u1[:,::1], u1[:,::1], f8[:,:,::1], i8[::1], i8[:,:,::1], "
      "f8[:,:,::1], u1[:,:,::1])",
      cache=True, nogil=True, parallel=True, fastmath=True)
def _warp(src_rgba, src_depth, src_w, src_k, src_r, src_c, tgt_k, tgt_r, tgt_c, zb, zstride, stride, split,
          ztol, disc, n_refine, mesh, nodes, node_z, see, mode, used, rem, fmode, fused, frem, geo, vw8, pts, pgeo,
          out):
    n_src = src_depth.shape[0]
    # One 32-bit load per RGBA tap instead of four byte loads (little-endian: R in the low byte).
    flat = src_rgba.view(np.uint32).reshape(-1)
    h_s, w_s = src_rgba.shape[1], src_rgba.shape[2]
    ho, wo = out.shape[0], out.shape[1]
    out32 = out.view(np.uint32).reshape((ho, wo))  # one store per RGBA pixel
    _weights_256(src_w, (1 << n_src) - 1, vw8)
    fine = stride // split  # the fine lattice's spacing; node arrays are indexed on it
    hn, wn = mode.shape  # the coarse lattice (every stride-th pixel)
    # Target camera -> each source camera: q = Rs^T (Rt p + Ct - Cs).
    for s in range(n_src):
        _relative(src_r[s], src_c[s], tgt_r, tgt_c, geo[s])
    ms = geo[:, :3]  # [S, 3, 3]
    os_ = geo[:, 3]  # [S, 3]
    ref = -1  # the source with the largest weight: the nearest view, best for depth refinement
    for s in range(n_src):
        if src_w[s] > 0 and (ref < 0 or src_w[s] > src_w[ref]):
            ref = s
    # 1. Geometry on the node lattice (every stride-th pixel): nodes[s] = (u, v, weight) with the
    #    blend weight in 1/256 that the pixel rule gives the node (view weight x z-test over the
    #    sources that see it inside their image, else the hole fill's view weights; summing to
    #    256, 0 for every source where it has no surface), and per node the bit masks of the
    #    sources whose bilinear footprint lies whole inside their image (see[0]), of those with
    #    a weight (see[1]) and of those it lies in front of (see[2]: coordinates to interpolate).
    for jn in prange(hn):
        for i_n in range(wn):
            _node(zb, zstride, disc, n_refine, ref, ztol, src_depth, src_k, ms, os_, tgt_k, vw8,
                  i_n * stride, jn * stride, nodes, node_z, see, jn * split, i_n * split)
    # 2. Cell modes: EMPTY (no surface near: transparent), MESH (pixels interpolate the corners'
    #    source coordinates and blend weights) or PIXEL (projected one by one). A cell is MESH
    #    when its corners lie on one surface (no depth edge between them, no fold), every corner
    #    has weights, and each source weighted at some corner is in front of it at all 4: ``used``
    #    holds those sources. MESH cells whose corners' weights differ (a z-test, the hole fill or
    #    the image edge changes across the cell), or where a used source's footprint reaches past
    #    its image edge (a neck cut by the frame), are MESH_RAMP: the weights step across the cell
    #    in fixed point and the coordinates are clamped to the image (a source's weight is 0 at a
    #    corner outside its image, as in the per-pixel rule), the rounding remainder going
    #    to ``rem``, the source with the largest smallest corner weight (PIXEL when that is 0:
    #    the remainder could then land on a source with no weight).
    for jn in prange(hn - 1):
        for i_n in range(wn - 1):
            m, bits, r = _cell_mode(nodes, node_z, see, zb, zstride, disc, mesh, ref, jn * split, i_n * split,
                                    split, jn * stride, (jn + 1) * stride, i_n * stride, (i_n + 1) * stride)
            mode[jn, i_n] = m
            used[jn, i_n] = bits
            rem[jn, i_n] = r
    if split == 2:
        # 1b, 2b. A PIXEL cell (a depth edge, a fold, an edge of some view's visibility crosses
        # it) is split into four on the fine lattice (its 5 midpoint nodes), each classified
        # as above: most of it is then MESH again, the rest renders exactly as a lattice at the
        # fine spacing would. Each midpoint is computed once: a cell takes its top, left and
        # centre ones, its right and bottom ones only where the neighbour there is not split.
        for jn in prange(hn - 1):
            for i_n in range(wn - 1):
                if mode[jn, i_n] != MODE_PIXEL:
                    continue
                right = i_n + 1 == wn - 1 or mode[jn, i_n + 1] != MODE_PIXEL
                below = jn + 1 == hn - 1 or mode[jn + 1, i_n] != MODE_PIXEL
                for q in range(5):
                    dj = (0, 1, 1, 1, 2)[q]
                    di = (1, 0, 1, 2, 1)[q]
                    if (q == 3 and not right) or (q == 4 and not below):
                        continue
                    _node(zb, zstride, disc, n_refine, ref, ztol, src_depth, src_k, ms, os_, tgt_k, vw8,
                          (2 * i_n + di) * fine, (2 * jn + dj) * fine, nodes, node_z, see, 2 * jn + dj,
                          2 * i_n + di)
        for jf in prange(2 * (hn - 1)):
            for i_f in range(2 * (wn - 1)):
                if mode[jf // 2, i_f // 2] != MODE_PIXEL:
                    continue
                m, bits, r = _cell_mode(nodes, node_z, see, zb, zstride, disc, mesh, ref, jf, i_f, 1,
                                        jf * fine, (jf + 1) * fine, i_f * fine, (i_f + 1) * fine)
                fmode[jf, i_f] = m
                fused[jf, i_f] = bits
                frem[jf, i_f] = r
    # 3. Pixels, a band of cell rows at a time, in two passes. 3a: EMPTY and MESH cells, cell by
    #    cell, whose source coordinates follow the cell's bilinear map (no per-pixel
    #    projection). 3b: PIXEL cells, one projection per pixel and source.
    #    Apart because numba marks a prange body's arrays as not aliasing one another only when
    #    its alias analysis finds no array view, tuple or boolean copy in the body (the scalar
    #    PIXEL path had many); only then may LLVM vectorise the MESH loops' taps (gathers): the
    #    whole warp of a 512 px bake then took 0.86x the time (bench/warp_ab.py). So neither
    #    body (``_mesh_band``, ``_pixel_batch``) takes a subarray or calls a helper that returns
    #    a tuple; tests check that both compile to vector loops. 3b as vectorised stages over a
    #    band's list of pixels: the warp took 0.92x the time of one scalar pixel at a time.
    for jc in prange(-(-ho // stride)):
        _mesh_band(flat, w_s, h_s, nodes, mode, used, rem, fmode, fused, frem, stride, split, jc, out32)
    # 3b. PIXEL cells, a band of ``fine`` rows at a time: the pixels of its PIXEL (fine) cells
    #     listed in the thread's pts, then run through ``_pixel_batch``'s stages.
    dflat = src_depth.reshape(-1)
    for jb in prange(-(-ho // fine)):
        t = get_thread_id()
        n = 0
        jc = jb // split
        for ic in range(wn - 1):
            if ic * stride >= wo:
                break
            if mode[jc, ic] != MODE_PIXEL:
                continue
            for q in range(split):
                x0 = (split * ic + q) * fine
                if x0 >= wo:
                    break
                if split == 2 and fmode[jb, 2 * ic + q] != MODE_PIXEL:
                    continue
                for y in range(jb * fine, min(jb * fine + fine, ho)):
                    for x in range(x0, min(x0 + fine, wo)):
                        pts[t, 0, n] = x
                        pts[t, 1, n] = y
                        n += 1
        _pixel_batch(n, t, pts, pgeo, zb, zstride, disc, n_refine, ref, ztol, dflat, flat, h_s, w_s, src_w, src_k,
                     geo, tgt_k, out32)


class WarpScratch(NamedTuple):
    """Every buffer ``warp`` (and ``splat_depth``) works in, allocated once per output size.

    The node arrays hold the fine lattice (every stride / split-th pixel); the coarse lattice's
    node (j, i) is their node (split j, split i). Cell arrays: coarse ones [Hn, Wn], fine ones
    [Hf, Wf] (meaningful inside split cells only; [1, 1] placeholders when split is 1)."""
    nodes: np.ndarray  # float64 [S, 3, Hf, Wf]: per source (u, v, blend weight in 1/256) at the nodes
    node_z: np.ndarray  # float64 [Hf, Wf]: target depth at the nodes (0 = no surface)
    see: np.ndarray  # uint8 [3, Hf, Wf]: bit masks of the sources whose taps lie inside / that weigh / seen inside
    mode: np.ndarray  # uint8 [Hn, Wn]: MODE_PIXEL / MODE_EMPTY / MODE_MESH / MODE_MESH_RAMP per cell
    used: np.ndarray  # uint8 [Hn, Wn]: bit mask of the sources a MESH cell blends
    rem: np.ndarray  # uint8 [Hn, Wn]: the source a MESH_RAMP cell gives the weights' rounding remainder
    fmode: np.ndarray  # uint8 [Hf, Wf]: mode of the fine cells inside a split (PIXEL) cell
    fused: np.ndarray  # uint8 [Hf, Wf]: their ``used``
    frem: np.ndarray  # uint8 [Hf, Wf]: their ``rem``
    geo: np.ndarray  # float64 [S, 4, 3]: camera-to-camera affine maps (rows 0-2 M, row 3 o)
    vw8: np.ndarray  # int64 [S]: view weights in 1/256
    pts: np.ndarray  # int64 [T, 2, N]: per thread, the (x, y) of a band's PIXEL-cell pixels (step 3b)
    pgeo: np.ndarray  # float64 [T, 2, N]: their depth and flags between stages (``_pixel_batch``)
    split: int  # 2: PIXEL cells split into four on a lattice at half the stride; 1: no split


def warp_split(stride: int) -> int:
    """2 where ``warp`` splits PIXEL cells (an even stride of at least 8), else 1. Splitting 4 px
    cells into 2 px ones cost more than it spared (bench/warp_ab.py: 256 px output, 7 % slower)."""
    return 2 if stride >= 8 and stride % 2 == 0 else 1


def warp_scratch(n_src: int, out_shape: tuple[int, int], stride: int, split: bool = True) -> WarpScratch:
    """Buffers for ``warp`` at output size ``out_shape`` [Ho, Wo] and lattice ``stride``; split:
    split PIXEL cells where the stride allows (``warp_split``)."""
    hn = (out_shape[0] - 1) // stride + 2
    wn = (out_shape[1] - 1) // stride + 2
    k = warp_split(stride) if split else 1
    hf, wf = k * (hn - 1) + 1, k * (wn - 1) + 1
    fine = (hf, wf) if k == 2 else (1, 1)
    u8 = np.uint8
    # Step 3b lists the PIXEL pixels of a band of fine cells (all of its pixels at most) per thread.
    threads = config.NUMBA_NUM_THREADS
    cap = (stride // k) * out_shape[1]
    return WarpScratch(np.zeros((n_src, 3, hf, wf)), np.zeros((hf, wf)), np.zeros((3, hf, wf), u8),
                       np.zeros((hn, wn), u8), np.zeros((hn, wn), u8), np.zeros((hn, wn), u8),
                       np.zeros(fine, u8), np.zeros(fine, u8), np.zeros(fine, u8),
                       np.zeros((n_src, 4, 3)), np.zeros(n_src, np.int64),
                       np.zeros((threads, 2, cap), np.int64), np.zeros((threads, 2, cap)), k)


def warp(src_rgba: np.ndarray, src_depth: np.ndarray, src_w: np.ndarray, src_cams, tgt_cam,
         coarse: np.ndarray, stride: int, out: np.ndarray, ztol: float = 0.02,
         disc: float = 0.05, n_refine: int = 2, scratch=None, mesh: bool = True,
         zstride: int | None = None) -> None:
    """Backward-warp the sources into the target view.

    src_rgba uint8 [S, H, W, 4] premultiplied RGBA; src_depth float32 [S, H, W]; src_w float32 [S];
    coarse float32 [2, Hc, Wc] from ``splat_depth`` at cell size ``zstride`` (default ``stride``;
    only ``coarse[0]`` is read); stride: the node lattice spacing;
    out uint8 [Ho, Wo, 4] premultiplied RGBA, rows top-down; scratch from ``warp_scratch`` (it
    says whether PIXEL cells split; a fresh one when None does).
    ztol: relative z-test tolerance; disc: relative depth jump treated as an edge;
    n_refine: fixed-point steps refining the coarse depth on the nearest source's depth tile;
    mesh: False projects every pixel (slower; for comparison).

    Per target pixel: depth from the coarse z-buffer (refined), back-projected to a 3-D point,
    projected into each source, sampled bilinearly, weighted by view weight x soft z-test;
    where no source sees the point the plain view weights fill the hole (sources the point projects
    outside of take no part; none left = transparent); the blend rounded to 8 bits per channel.
    Cells of the stride lattice whose corners
    lie on one surface, every source weighted at a corner projecting inside its image at all 4,
    are MESH cells: their pixels step the corners' source coordinates and blend weights (the
    rule above evaluated at the corners, in 1/256) linearly and blend in fixed point (within
    1 LSB of the float blend where the corners' weights agree). With a split scratch
    (``warp_split``) the other non-empty cells are split into four cells of half the stride
    under the same rule. At most 4 sources.
    """
    sk, sr, sc = src_cams
    tk, tr, tc = tgt_cam
    assert src_rgba.ndim == 4 and src_rgba.shape[3] == 4 and src_rgba.dtype == np.uint8, src_rgba.shape
    assert src_depth.shape == src_rgba.shape[:3], (src_depth.shape, src_rgba.shape)
    assert out.ndim == 3 and out.shape[2] == 4 and out.dtype == np.uint8, (out.shape, out.dtype)
    zstride = int(zstride or stride)
    assert coarse.shape[1] * zstride >= out.shape[0] and coarse.shape[2] * zstride >= out.shape[1], \
        (coarse.shape, zstride, out.shape)
    sc_ = scratch if scratch is not None else warp_scratch(src_rgba.shape[0], out.shape[:2], stride)
    k = sc_.split
    hn, wn = (out.shape[0] - 1) // stride + 2, (out.shape[1] - 1) // stride + 2
    fine = (k * (hn - 1) + 1, k * (wn - 1) + 1)
    assert k in (1, warp_split(stride)), (k, stride)
    assert sc_.mode.shape == sc_.used.shape == sc_.rem.shape == (hn, wn), (sc_.mode.shape, (hn, wn), stride)
    assert sc_.nodes.shape == (src_rgba.shape[0], 3) + fine and sc_.node_z.shape == fine \
        and sc_.see.shape == (3,) + fine, (sc_.nodes.shape, fine)
    assert k == 1 or sc_.fmode.shape == sc_.fused.shape == sc_.frem.shape == fine, (sc_.fmode.shape, fine)
    assert sc_.geo.shape == (src_rgba.shape[0], 4, 3), sc_.geo.shape
    assert src_rgba.shape[0] <= 4, "at most 4 sources (the MESH path has 4 slots)"
    _warp(src_rgba, src_depth, src_w, sk, sr, sc, tk, tr, tc, coarse[0], zstride, int(stride), int(k),
          float(ztol), float(disc), int(n_refine), bool(mesh), sc_.nodes, sc_.node_z, sc_.see, sc_.mode,
          sc_.used, sc_.rem, sc_.fmode, sc_.fused, sc_.frem, sc_.geo, sc_.vw8, sc_.pts, sc_.pgeo, out)


# --- (d) crossfade, (e) composite ----------------------------------------------------------------

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
    assert a.shape == b.shape == out.shape and a.ndim == 3 and a.shape[2] == 4, (a.shape, b.shape)
    assert a.dtype == b.dtype == out.dtype == np.uint8, (a.dtype, b.dtype, out.dtype)
    h, w = a.shape[:2]
    _crossfade(a.view(np.uint32).reshape(h, w), b.view(np.uint32).reshape(h, w), blend_steps(t),
               out.view(np.uint32).reshape(h, w))


def composite_tables(background) -> np.ndarray:
    """uint32 [2, 256]: what an RGB background (3 floats in [0, 1]) adds under coverage a,
    round((255 - a) bg) per channel, as R|B words (16-bit lanes) and G words, so that a
    composited pixel is two adds and a saturation, not three float ops. Built once per
    background: ``composite`` then allocates nothing per frame."""
    bg = np.asarray(background, dtype=np.float64)
    assert bg.shape == (3,) and (bg >= 0).all() and (bg <= 1).all(), bg
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
    assert tables.shape == (2, 256) and tables.dtype == np.uint32 and tables.flags.c_contiguous, tables.shape
    assert src.ndim == 3 and src.shape[2] == 4 and out.shape == src.shape, (src.shape, out.shape)
    assert src.dtype == out.dtype == np.uint8, (src.dtype, out.dtype)
    h, w = src.shape[:2]
    if spans is None:
        spans = np.zeros((h, 2), np.int32)
        spans[:, 1] = w
    assert spans.shape == (h, 2) and spans.dtype == np.int32, (spans.shape, spans.dtype)
    _composite(src.view(np.uint32).reshape(h, w), tables, spans, out.view(np.uint32).reshape(h, w))


@njit("void(u1[:,::1], i8, i8, i4[:,::1])", cache=True, nogil=True)
def _warp_spans(mode, stride, wo, out):
    ho = out.shape[0]
    for jc in range(mode.shape[0] - 1):
        lo = wo
        hi = 0
        for ic in range(mode.shape[1] - 1):
            if mode[jc, ic] != MODE_EMPTY and ic * stride < wo:
                lo = min(lo, ic * stride)
                hi = max(hi, min((ic + 1) * stride, wo))
        for y in range(jc * stride, min((jc + 1) * stride, ho)):
            out[y, 0] = lo
            out[y, 1] = hi


def warp_spans(scratch: WarpScratch, stride: int, width: int, out: np.ndarray) -> None:
    """out int32 [Ho, 2]: the row spans ((width, 0) = an empty row) of the last ``warp`` with
    ``scratch`` at lattice ``stride`` into a frame ``width`` pixels wide: per output row, the
    columns from its first to its last cell that is not EMPTY. Outside them the warped frame is 0
    (EMPTY cells are cleared), so ``composite`` need not go there."""
    hn, wn = scratch.mode.shape
    assert out.ndim == 2 and out.shape[1] == 2 and out.dtype == np.int32, (out.shape, out.dtype)
    assert hn == (out.shape[0] - 1) // stride + 2 and wn == (width - 1) // stride + 2, (scratch.mode.shape, stride)
    _warp_spans(scratch.mode, int(stride), int(width), out)


# --- cameras and warm-up -------------------------------------------------------------------------

def camera_arrays(intrinsics, cam_to_head) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K [4] = fx, fy, cx, cy; R [3, 3]; C [3]) float64 contiguous, for the kernels."""
    k = np.array([intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy], dtype=np.float64)
    m = np.asarray(cam_to_head, dtype=np.float64)
    return k, np.ascontiguousarray(m[:3, :3]), np.ascontiguousarray(m[:3, 3])


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
