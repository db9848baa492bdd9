"""Frame step 4, ``warp``: the sources backward-warped into the target view (the driver of the lattice,
mesh and pixel parts), its scratch buffers, and the row spans of what it drew."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import config, get_thread_id, njit, prange

from .checks import require
from .cameras import _relative
from .lattice import MODE_EMPTY, MODE_PIXEL, _cell_mode, _node, _weights_256
from .mesh import _mesh_band
from .pixels import _pixel_batch


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
    require(src_rgba.ndim == 4 and src_rgba.shape[3] == 4 and src_rgba.dtype == np.uint8,
            "sources uint8 RGBA [S, H, W, 4]", src_rgba.shape)
    require(src_depth.shape == src_rgba.shape[:3],
            "source depths [S, H, W] of the sources' size", (src_depth.shape, src_rgba.shape))
    require(out.ndim == 3 and out.shape[2] == 4 and out.dtype == np.uint8,
            "out uint8 RGBA [Ho, Wo, 4]", (out.shape, out.dtype))
    zstride = int(zstride or stride)
    require(coarse.shape[1] * zstride >= out.shape[0] and coarse.shape[2] * zstride >= out.shape[1],
            "a z-buffer that covers the output at zstride", (coarse.shape, zstride, out.shape))
    sc_ = scratch if scratch is not None else warp_scratch(src_rgba.shape[0], out.shape[:2], stride)
    k = sc_.split
    hn, wn = (out.shape[0] - 1) // stride + 2, (out.shape[1] - 1) // stride + 2
    fine = (k * (hn - 1) + 1, k * (wn - 1) + 1)
    require(k in (1, warp_split(stride)), "a scratch split that the stride allows (warp_split)", (k, stride))
    require(sc_.mode.shape == sc_.used.shape == sc_.rem.shape == (hn, wn),
            "a scratch for this output size and stride (warp_scratch)", (sc_.mode.shape, (hn, wn), stride))
    require(sc_.nodes.shape == (src_rgba.shape[0], 3) + fine and sc_.node_z.shape == fine \
        and sc_.see.shape == (3,) + fine,
            "a scratch for this output size and stride (warp_scratch)", (sc_.nodes.shape, fine))
    require(k == 1 or sc_.fmode.shape == sc_.fused.shape == sc_.frem.shape == fine,
            "a scratch for this output size and stride (warp_scratch)", (sc_.fmode.shape, fine))
    require(sc_.geo.shape == (src_rgba.shape[0], 4, 3), "a scratch for this many sources (warp_scratch)", sc_.geo.shape)
    require(src_rgba.shape[0] <= 4, "at most 4 sources (the MESH path has 4 slots)")
    _warp(src_rgba, src_depth, src_w, sk, sr, sc, tk, tr, tc, coarse[0], zstride, int(stride), int(k),
          float(ztol), float(disc), int(n_refine), bool(mesh), sc_.nodes, sc_.node_z, sc_.see, sc_.mode,
          sc_.used, sc_.rem, sc_.fmode, sc_.fused, sc_.frem, sc_.geo, sc_.vw8, sc_.pts, sc_.pgeo, out)


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
    require(out.ndim == 2 and out.shape[1] == 2 and out.dtype == np.int32,
            "spans int32 [Ho, 2]", (out.shape, out.dtype))
    require(hn == (out.shape[0] - 1) // stride + 2 and wn == (width - 1) // stride + 2,
            "the scratch of a warp at this size and stride", (scratch.mode.shape, stride))
    _warp_spans(scratch.mode, int(stride), int(width), out)
