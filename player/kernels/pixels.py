"""Frame step 4, part 3b (see ``warp``): the pixels of PIXEL cells, each projected on its own, as
vectorised stages over a list of pixels."""

from __future__ import annotations

import numpy as np
from numba import njit

from .slots import define, per_slot, terms


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
def _pack_rgba(c0, c1, c2, c3):
    """Four channel values in [0, 255] (floats) -> one RGBA word, rounded."""
    return np.uint32(np.uint32(c0 + 0.5) | (np.uint32(c1 + 0.5) << 8) | (np.uint32(c2 + 0.5) << 16)
                     | (np.uint32(c3 + 0.5) << 24))


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


# ``_pixels_blend``, generated from one slot's code (``slots``). Slot s blends source
# s{s} = min(s, n_src - 1): a slot past the sources weighs 0 and reads source 0.
_BLEND_SETUP = """\
    s{s} = min({s}, n_src - 1)
    w{s} = np.float64(src_w[s{s}]) if n_src > {s} else 0.0
    b{s} = np.uint64(s{s} * hw)
"""
_BLEND_SLOT = """\
        # Slot {s}: project (``_project``), soft z-test at the nearest pixel, bilinear taps.
        qz{s} = geo[s{s}, 2, 0] * px + geo[s{s}, 2, 1] * py + geo[s{s}, 2, 2] * z + geo[s{s}, 3, 2]
        fr{s} = qz{s} > 1e-6
        iz{s} = 1.0 / (qz{s} if fr{s} else 1.0)
        u{s} = src_k[s{s}, 0] * (geo[s{s}, 0, 0] * px + geo[s{s}, 0, 1] * py + geo[s{s}, 0, 2] * z
                               + geo[s{s}, 3, 0]) * iz{s} + src_k[s{s}, 2] - 0.5
        v{s} = src_k[s{s}, 1] * (geo[s{s}, 1, 0] * px + geo[s{s}, 1, 1] * py + geo[s{s}, 1, 2] * z
                               + geo[s{s}, 3, 1]) * iz{s} + src_k[s{s}, 3] - 0.5
        on{s} = (w{s} > 0) & (z > 0) & fr{s} & (u{s} >= -1.0) & (v{s} >= -1.0) & (u{s} <= w_s) & (v{s} <= h_s)
        u{s} = u{s} if on{s} else 0.0
        v{s} = v{s} if on{s} else 0.0
        d{s} = np.float64(dflat[b{s} + np.uint64(min(max(np.int64(v{s} + 0.5), 0), h_s - 1)) * np.uint64(w_s)
                              + np.uint64(min(max(np.int64(u{s} + 0.5), 0), w_s - 1))])
        ex{s} = qz{s} / (d{s} if d{s} > 0 else 1.0) - 1.0 - ztol
        vis{s} = max(0.0, 1.0 - ex{s} / ztol) if (d{s} > 0) & (ex{s} > 0) else 1.0
        pa{s} = w{s} if on{s} else 0.0
        pv{s} = w{s} * vis{s} if on{s} else 0.0
        fu{s} = np.floor(u{s})
        fv{s} = np.floor(v{s})
        tu{s} = u{s} - fu{s}
        tv{s} = v{s} - fv{s}
        p00_{s} = _tap_word(flat, b{s}, h_s, w_s, fu{s}, fv{s}, 0, 0)
        p01_{s} = _tap_word(flat, b{s}, h_s, w_s, fu{s}, fv{s}, 0, 1)
        p10_{s} = _tap_word(flat, b{s}, h_s, w_s, fu{s}, fv{s}, 1, 0)
        p11_{s} = _tap_word(flat, b{s}, h_s, w_s, fu{s}, fv{s}, 1, 1)
        w00_{s} = (1 - tu{s}) * (1 - tv{s})
        w01_{s} = tu{s} * (1 - tv{s})
        w10_{s} = (1 - tu{s}) * tv{s}
        w11_{s} = tu{s} * tv{s}
        c0_{s} = _channel(p00_{s}, p01_{s}, p10_{s}, p11_{s}, w00_{s}, w01_{s}, w10_{s}, w11_{s}, 0)
        c1_{s} = _channel(p00_{s}, p01_{s}, p10_{s}, p11_{s}, w00_{s}, w01_{s}, w10_{s}, w11_{s}, 1)
        c2_{s} = _channel(p00_{s}, p01_{s}, p10_{s}, p11_{s}, w00_{s}, w01_{s}, w10_{s}, w11_{s}, 2)
        c3_{s} = _channel(p00_{s}, p01_{s}, p10_{s}, p11_{s}, w00_{s}, w01_{s}, w10_{s}, w11_{s}, 3)
"""
_BLEND_PICK = "        q{s} = pv{s} if use_v else pa{s}\n"  # the z-tested weights, else the hole fill's
_PIXELS_BLEND = f'''\
def _pixels_blend(n, t, pts, pg, ztol, dflat, flat, h_s, w_s, src_w, src_k, geo, tgt_k, out32):
    """Step 3b, last stage (``_pixel_batch``): each source's weight and sample, and the blend
    after the z-test, else the hole fill's, else transparent.

    The four sources are four slots of locals, generated from one slot's code (``slots``: a loop
    over them inside the pixels' loop stayed a loop, and the pixels' loop was then not
    vectorised; a helper per quantity took numba minutes to compile). The sums run in slot
    order, as the scalar path's loop over sources added them."""
    hw = h_s * w_s
    n_src = src_w.shape[0]
{per_slot(_BLEND_SETUP)}\
    for i in range(n):
        x = pts[t, 0, i]
        y = pts[t, 1, i]
        ax = _ray(tgt_k, x, y, 0)
        ay = _ray(tgt_k, x, y, 1)
        z = pg[t, _PG_Z, i]
        px = ax * z
        py = ay * z
{per_slot(_BLEND_SLOT)}\
        wa = {terms("pa{s}")}
        wv = {terms("pv{s}")}
        use_v = (wv > 1e-3 * wa) & (wv > 0)
        k = 1.0 / (wv if use_v else (wa if wa > 0 else 1.0))
{per_slot(_BLEND_PICK)}\
        word = _pack_rgba(({terms("q{s} * c0_{s}")}) * k,
                          ({terms("q{s} * c1_{s}")}) * k,
                          ({terms("q{s} * c2_{s}")}) * k,
                          ({terms("q{s} * c3_{s}")}) * k)
        out32[y, x] = word if wa > 0 else np.uint32(0)
'''
_pixels_blend = njit(inline="always")(define(_PIXELS_BLEND, "_pixels_blend", globals()))


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
