"""Frame step 3: the source depth tiles forward-splatted into a coarse z-buffer of the target view."""

from __future__ import annotations

import numpy as np
from numba import njit

from .checks import require
from .cameras import _relative


_EMPTY = np.float32(0.0)  # depth value meaning "nothing here"


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
    require(src_depth.ndim == 3 and src_depth.dtype == np.float32,
            "source depths float32 [S, H, W]", (src_depth.shape, src_depth.dtype))
    s, h, w = src_depth.shape
    require(src_w.shape == (s,) and sk.shape == (s, 4) and sr.shape == (s, 3, 3) and sc.shape == (s, 3),
            "S weights and S cameras (K [S, 4], R [S, 3, 3], C [S, 3])")
    require(coarse.ndim == 3 and coarse.shape[0] == 2 and coarse.dtype == np.float32,
            "a z-buffer float32 [2, Hc, Wc]", coarse.shape)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    geo = np.zeros((s, 4, 3)) if geo is None else geo
    require(geo.shape == (s, 4, 3) and geo.dtype == np.float64, "geo float64 [S, 4, 3]", geo.shape)
    if spans is None:
        spans = np.zeros((s, h, 2), np.int32)
        spans[:, :, 1] = w
    require(spans.shape == (s, h, 2) and spans.dtype == np.int32,
            "row spans int32 [S, H, 2]", (spans.shape, spans.dtype))
    ci, cj, zrow = splat_rows(w) if rows is None else rows
    require(ci.shape[0] >= w and cj.shape[0] >= w and zrow.shape[0] >= w,
            "row scratch at least W long (splat_rows)", (ci.shape, cj.shape, zrow.shape, w))
    _splat_depth(src_depth, spans, src_w, sk, sr, sc, tk, tr, tc, int(stride), int(n_dilate), coarse, geo, ci, cj,
                 zrow)


def splat_rows(w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scratch for ``splat_depth`` on tiles W pixels wide: one sample row's footprint cells
    (column, row) and depths."""
    return np.zeros(w, np.int64), np.zeros(w, np.int64), np.zeros(w, np.float32)
