"""Twin of ``player.kernels.reprojection`` (with its parts ``lattice``, ``mesh`` and ``pixels``)."""

from __future__ import annotations

import numpy as np

from .cameras import _relative


def _target_depth(zb, x, y, stride, disc):
    hc, wc = zb.shape
    cu = (x + 0.5) / stride - 0.5
    cv = (y + 0.5) / stride - 0.5
    i0, j0 = np.floor(cu).astype(int), np.floor(cv).astype(int)
    tu, tv = cu - i0, cv - j0
    i0c, i1c = np.clip(i0, 0, wc - 1), np.clip(i0 + 1, 0, wc - 1)
    j0c, j1c = np.clip(j0, 0, hc - 1), np.clip(j0 + 1, 0, hc - 1)
    z = np.stack([zb[j0c, i0c], zb[j0c, i1c], zb[j1c, i0c], zb[j1c, i1c]], -1).astype(np.float64)
    zmax = z.max(-1)
    zmin = np.where(z > 0, z, np.inf).min(-1)
    bil = (1 - tv) * ((1 - tu) * z[..., 0] + tu * z[..., 1]) + tv * ((1 - tu) * z[..., 2] + tu * z[..., 3])
    smooth = (z > 0).all(-1) & (zmax - zmin <= disc * zmin)
    near = np.where(zmax <= 0, 0.0, np.where(smooth, bil, zmin))
    far = np.where((zmax > 0) & ~smooth & (zmax - zmin > disc * zmin), zmax, 0.0)
    rim = (zmax > 0) & ~(z > 0).all(-1)
    return near, far, rim


def _project(k, m, o, ax, ay, z):
    q = z[..., None] * (np.stack([ax, ay, np.ones_like(ax)], -1) @ m.T) + o
    qz = np.where(q[..., 2] > 1e-6, q[..., 2], np.nan)
    return k[0] * q[..., 0] / qz + k[2], k[1] * q[..., 1] / qz + k[3], qz


def _depth_under(depth, k, m, o, ax, ay, z):
    """(source depth at the pixel each point falls in, the points' source depths, inside): inside
    = in front of the source and inside its image (elsewhere the depths read 0 and 1)."""
    h, w = depth.shape
    u, v, qz = _project(k, m, o, ax, ay, z)
    with np.errstate(invalid="ignore"):
        i, j = np.floor(u), np.floor(v)
        ok = np.isfinite(qz) & (i >= 0) & (j >= 0) & (i < w) & (j < h)
    ii, jj = np.where(ok, i, 0).astype(int), np.where(ok, j, 0).astype(int)
    return np.where(ok, depth[jj, ii], 0.0).astype(np.float64), np.where(ok, qz, 1.0), ok


def _residual(depth, k, m, o, ax, ay, z):
    d, qz, ok = _depth_under(depth, k, m, o, ax, ay, z)
    ok &= d > 0
    return np.where(ok, np.abs(d - qz) / qz, 1.0)


def _misses(depth, k, m, o, ax, ay, z, tol):
    """True where the source sees the point inside its image and holds no surface there, or one
    more than tol (relative) away (kernels._misses)."""
    d, qz, ok = _depth_under(depth, k, m, o, ax, ay, z)
    with np.errstate(invalid="ignore"):
        return ok & ((d <= 0) | (np.abs(d - qz) > tol * qz))


def _refine(depth, k, m, o, ax, ay, z, disc, n_refine):
    h, w = depth.shape
    g = np.stack([ax, ay, np.ones_like(ax)], -1) @ m.T
    active = z > 0
    for _ in range(n_refine):
        qz = z * g[..., 2] + o[2]
        active &= (qz > 1e-6) & (g[..., 2] > 1e-6)
        qs = np.where(active, qz, 1.0)
        u = k[0] * (z * g[..., 0] + o[0]) / qs + k[2] - 0.5
        v = k[1] * (z * g[..., 1] + o[1]) / qs + k[3] - 0.5
        i0, j0 = np.floor(u).astype(int), np.floor(v).astype(int)
        active &= (i0 >= 0) & (j0 >= 0) & (i0 + 1 < w) & (j0 + 1 < h)
        i0, j0 = np.where(active, i0, 0), np.where(active, j0, 0)
        d = [depth[j0 + a, i0 + b].astype(np.float64) for a in (0, 1) for b in (0, 1)]
        tu, tv = u - i0, v - j0
        wt = [(1 - tv) * (1 - tu) * (d[0] > 0), (1 - tv) * tu * (d[1] > 0),
              tv * (1 - tu) * (d[2] > 0), tv * tu * (d[3] > 0)]
        wsum = wt[0] + wt[1] + wt[2] + wt[3]
        active &= wsum >= 1e-6
        ds = (wt[0] * d[0] + wt[1] * d[1] + wt[2] * d[2] + wt[3] * d[3]) / np.where(active, wsum, 1.0)
        zn = (ds - o[2]) / np.where(g[..., 2] > 1e-6, g[..., 2], 1.0)
        active &= np.abs(zn - z) <= disc * z
        z = np.where(active, zn, z)
    return z


def _sample(img, u, v):
    """Bilinear [.., 4] of img [H, W, 4] (float64) at continuous (u, v), clamped."""
    h, w = img.shape[:2]
    i0, j0 = np.floor(u).astype(int), np.floor(v).astype(int)
    tu, tv = (u - i0)[..., None], (v - j0)[..., None]
    i0c, i1c = np.clip(i0, 0, w - 1), np.clip(i0 + 1, 0, w - 1)
    j0c, j1c = np.clip(j0, 0, h - 1), np.clip(j0 + 1, 0, h - 1)
    return ((1 - tu) * (1 - tv) * img[j0c, i0c] + tu * (1 - tv) * img[j0c, i1c]
            + (1 - tu) * tv * img[j1c, i0c] + tu * tv * img[j1c, i1c])


def _geometry(src_depth, src_w, src_cams, tgt_cam, zb, zstride, x, y, ztol, disc, n_refine):
    """z [N] and per source (u, v, vis, flag) [S, N] at target pixels (x, y) [N]
    (flag 0 behind, 1 outside the source image, 2 inside)."""
    sk, sr, sc = src_cams
    tk, tr, tc = tgt_cam
    n_src, h, w = src_depth.shape
    z, zfar, rim = _target_depth(zb, x, y, zstride, disc)
    ax, ay = (x + 0.5 - tk[2]) / tk[0], (y + 0.5 - tk[3]) / tk[1]
    ref = int(np.argmax(np.where(src_w > 0, src_w, -1))) if (src_w > 0).any() else -1
    if ref >= 0:
        m, o = _relative(sr[ref], sc[ref], tr, tc)
        empty = rim & _misses(src_depth[ref], sk[ref], m, o, ax, ay, z, np.inf)
        z, zfar = np.where(empty, 0.0, z), np.where(empty, 0.0, zfar)
        pick_far = (zfar > z) & (_residual(src_depth[ref], sk[ref], m, o, ax, ay, zfar)
                                 < _residual(src_depth[ref], sk[ref], m, o, ax, ay, z))
        z = np.where(pick_far, zfar, z)
        z = _refine(src_depth[ref], sk[ref], m, o, ax, ay, z, disc, n_refine)
        z = np.where(rim & (z > 0) & _misses(src_depth[ref], sk[ref], m, o, ax, ay, z, disc), 0.0, z)
    p = np.stack([ax * z, ay * z, z], -1)
    geo = np.zeros((n_src, 4) + np.shape(x))
    for s in range(n_src):
        m, o = _relative(sr[s], sc[s], tr, tc)
        q = p @ m.T + o
        front = q[..., 2] > 1e-6
        qz = np.where(front, q[..., 2], 1.0)
        u = sk[s, 0] * q[..., 0] / qz + sk[s, 2] - 0.5
        v = sk[s, 1] * q[..., 1] / qz + sk[s, 3] - 0.5
        outside = front & ((u < -1) | (v < -1) | (u > w) | (v > h))
        inside = front & ~outside
        ni = np.clip((u + 0.5).astype(int), 0, w - 1)
        nj = np.clip((v + 0.5).astype(int), 0, h - 1)
        ds = src_depth[s, nj, ni].astype(np.float64)
        excess = np.where(ds > 0, qz / np.where(ds > 0, ds, 1) - 1 - ztol, 0.0)
        vis = np.where(excess > 0, np.maximum(0.0, 1 - excess / ztol), 1.0)
        geo[s] = np.stack([u, v, np.where(inside, vis, 1.0), np.where(inside, 2, np.where(outside, 1, 0))])
    return z, geo, ref


def warp(src_rgba, src_depth, src_w, src_cams, tgt_cam, zb, stride, out_shape, ztol=0.02, disc=0.05,
         n_refine=2, mesh=True, zstride=None, split=True):
    """Premultiplied float32 RGBA [Ho, Wo, 4] of the sources warped into the target view
    (zb: the coarse z-buffer at cell size zstride, default stride; stride: the node lattice;
    split: where the stride is even and at least 8, cells that are not MESH take the MESH cells
    of the lattice at half the stride)."""
    zstride = zstride or stride
    ho, wo = out_shape
    n_src = src_depth.shape[0]
    y, x = np.mgrid[0:ho, 0:wo]
    z, geo, ref = _geometry(src_depth, src_w, src_cams, tgt_cam, zb, zstride, x, y, ztol, disc, n_refine)
    imgs = src_rgba.astype(np.float64)
    acc_v = np.zeros((ho, wo, 4))
    acc_a = np.zeros((ho, wo, 4))
    wv = np.zeros((ho, wo))
    wa = np.zeros((ho, wo))
    for s in range(n_src):
        ws = float(src_w[s])
        if ws <= 0:
            continue
        u, v, vis, flag = geo[s]
        inside = flag == 2
        col = np.where(inside[..., None], _sample(imgs[s], u, v), 0.0)
        acc_a += ws * col
        acc_v += (ws * vis)[..., None] * col
        wa += np.where(inside, ws, 0.0)  # outside the source image: no part (not transparent)
        wv += np.where(inside, ws * vis, 0.0)
    use_v = (wv > 1e-3 * wa) & (wv > 0)
    res = np.where(use_v[..., None], acc_v / np.maximum(wv, 1e-30)[..., None],
                   np.where((wa > 0)[..., None], acc_a / np.maximum(wa, 1e-30)[..., None], 0.0)) / 255.0
    res[z <= 0] = 0.0
    # MESH cells of the node lattice interpolate the nodes' source coordinates, in the kernel's
    # fixed-point arithmetic (see kernels._warp). Split: the pixels of the other cells take the
    # MESH cells of the lattice at half the stride, where there are.
    done = np.zeros((ho, wo), bool)
    for st in (stride, stride // 2) if split and stride >= 8 and stride % 2 == 0 else (stride,):
        m, val = _mesh_cells(src_rgba, src_depth, src_w, src_cams, tgt_cam, zb, st, (ho, wo), ztol, disc,
                             n_refine, mesh, zstride, ref)
        res[m & ~done] = val[m & ~done]
        done |= m
    return res.astype(np.float32)


def _mesh_cells(src_rgba, src_depth, src_w, src_cams, tgt_cam, zb, stride, out_shape, ztol, disc, n_refine,
                mesh, zstride, ref):
    """(bool [Ho, Wo]: the pixel lies in a MESH cell of the lattice at ``stride``, float [Ho, Wo, 4]:
    its value there)."""
    ho, wo = out_shape
    n_src = src_depth.shape[0]
    y, x = np.mgrid[0:ho, 0:wo]
    hn, wn = (ho - 1) // stride + 2, (wo - 1) // stride + 2
    yn, xn = np.mgrid[0:hn, 0:wn] * stride
    zn, gn, _ = _geometry(src_depth, src_w, src_cams, tgt_cam, zb, zstride, xn, yn, ztol, disc, n_refine)
    zn = np.where(zn > 0, zn, 0.0)
    h, w = src_depth.shape[1:]
    vw8 = weights_256(src_w)
    # Node blend weights in 1/256: the pixel rule (z-tested view weights of the sources the node
    # projects inside, else the plain ones) on the integer view weights, normalised like
    # weights_256 (the last weighted source takes the remainder).
    inside = np.stack([(gn[s, 3] == 2) & (vw8[s] > 0) & (zn > 0) for s in range(n_src)])
    xv = np.where(inside, vw8[:, None, None] * gn[:, 2], 0.0)
    xa = np.where(inside, vw8[:, None, None].astype(float), 0.0)
    use_v = (xv.sum(0) > 1e-3 * xa.sum(0)) & (xv.sum(0) > 0)
    xw = np.where(use_v, xv, xa)
    tot = xw.sum(0)
    nw = np.where(xw > 0, np.floor(xw * (256.0 / np.where(tot > 0, tot, 1)) + 0.5), 0).astype(np.int64)
    last = np.where(xw > 0, np.arange(n_src)[:, None, None], -1).max(0)
    for s in range(n_src):
        nw[s] += np.where(last == s, 256 - nw.sum(0), 0)
    corners = lambda a: np.stack([a[:-1, :-1], a[:-1, 1:], a[1:, :-1], a[1:, 1:]])  # [4, Hn-1, Wn-1]
    zc = corners(zn)
    ok = (zc.min(0) > 0) & (zc.max(0) - zc.min(0) <= disc * zc.min(0))
    bits = np.zeros((hn - 1, wn - 1), np.int64)
    rem = np.zeros((hn - 1, wn - 1), np.int64)
    if ref >= 0 and mesh:
        u, v = gn[ref, 0], gn[ref, 1]
        ok &= (u[:-1, 1:] > u[:-1, :-1]) & (u[1:, 1:] > u[1:, :-1])  # no fold
        ok &= (v[1:, :-1] > v[:-1, :-1]) & (v[1:, 1:] > v[:-1, 1:])
        ok &= (corners(nw.sum(0)) > 0).all(0)  # every corner has weights
        best_w = np.zeros((hn - 1, wn - 1))
        ramp = np.zeros((hn - 1, wn - 1), bool)
        for s in range(n_src):
            wc = corners(nw[s])
            weighted = (wc > 0).any(0)
            u, v, flag = (corners(g) for g in (gn[s, 0], gn[s, 1], gn[s, 3]))
            safe = ((flag == 2) & (u >= 0) & (u < w - 1.01) & (v >= 0) & (v < h - 1.01)).all(0)
            ok &= ~weighted | (flag != 0).all(0)  # in front at every corner: coordinates to step
            bits |= np.where(weighted, 1 << s, 0)
            # Weights that differ across the cell, or taps past the image edge (clamped).
            ramp |= weighted & ((wc != wc[0]).any(0) | ~safe)
            lo = wc.min(0)
            rem = np.where(lo > best_w, s, rem)
            best_w = np.maximum(best_w, lo)
        ok &= ~ramp | (best_w > 0)  # a ramp's remainder needs a source weighted all over the cell
    else:
        ok[:] = False
    cell_mesh = ok & (bits != 0)
    jn, i_n = y // stride, x // stride
    q = y - jn * stride
    t = x - i_n * stride
    m = cell_mesh[jn, i_n]
    b = bits[jn, i_n]
    recip = (65536 + stride // 2) // stride

    def row_fx(g):  # a node quantity on its cell's integer bilinear map (kernels._cell_map), 16.16
        i1 = np.minimum(i_n + 1, wn - 1)
        tl, tr, bl, br = (np.floor(c * 65536.0 + 0.5).astype(np.int64)
                          for c in (g[jn, i_n], g[jn, i1], g[jn + 1, i_n], g[jn + 1, i1]))
        per = lambda a, b: ((b - a) * recip) >> 16  # the step from a to b over the cell's width
        top = per(tl, tr)
        return tl + per(tl, bl) * q + (top + per(top, per(bl, br)) * q) * t

    # Per-pixel weights: each weighted source's ramp floored at 0, the remainder to 256 to rem.
    wpx = np.stack([np.where(m & ((b >> s) & 1 == 1), np.maximum(row_fx(nw[s].astype(float)) >> 16, 0), 0)
                    for s in range(n_src)])
    r = rem[jn, i_n]
    left = 256 - wpx.sum(0)
    for s in range(n_src):
        wpx[s] += np.where(m & (r == s), left, 0)
    acc = np.zeros((ho, wo, 4), np.int64)
    for s in range(n_src):
        use = m & ((b >> s) & 1 == 1)
        if not use.any():
            continue
        # Clamped so the 2x2 footprint stays inside the image (a no-op where the taps are safe).
        uf = np.clip(np.where(use, row_fx(gn[s, 0]), 0), 0, ((w - 1) << 16) - 1)
        vf = np.clip(np.where(use, row_fx(gn[s, 1]), 0), 0, ((h - 1) << 16) - 1)
        fu, fv = (uf >> 8) & 255, (vf >> 8) & 255
        w01 = ((256 - fv) * fu) >> 8
        w00 = 256 - fv - w01
        w11 = (fv * fu) >> 8
        w10 = fv - w11
        i0, j0 = uf >> 16, vf >> 16
        img = src_rgba[s].astype(np.int64)
        tap = (img[j0, i0] * w00[..., None] + img[j0, i0 + 1] * w01[..., None]
               + img[j0 + 1, i0] * w10[..., None] + img[j0 + 1, i0 + 1] * w11[..., None])
        acc += np.where(use[..., None], ((tap + 128) >> 8) * wpx[s][..., None], 0)
    return m, ((acc + 128) >> 8).astype(np.float32) / np.float32(255.0)


def weights_256(src_w):
    """View weights in 1/256 summing to exactly 256 over the sources with weight > 0 (the last
    takes the rounding remainder), as integers [S]; all 0 when none has weight."""
    w = np.asarray(src_w, np.float64)
    out = np.zeros(len(w), np.int64)
    pos = np.flatnonzero(w > 0)
    if len(pos):
        out[pos] = np.floor(w[pos] / w[pos].sum() * 256.0 + 0.5).astype(np.int64)
        out[pos[-1]] += 256 - out[pos].sum()
    return out
