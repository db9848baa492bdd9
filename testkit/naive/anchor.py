"""Twins of ``bake.anchor.kernels``: the reprojection of a captured frame and a source's footprint weight,
in numpy."""

from __future__ import annotations

import numpy as np

from bake.anchor.blend import foreshortening, stretch_weight
from bake.anchor.kernels import intrinsics_array, target_to_source


def reproject(tgt_depth, tgt_cam, src_img, src_mask, src_depth, src_cam, ztol=0.02):
    h, w = tgt_depth.shape
    hs, ws = src_mask.shape
    tk, sk = intrinsics_array(tgt_cam.intrinsics), intrinsics_array(src_cam.intrinsics)
    m = target_to_source(tgt_cam.cam_to_head, src_cam.cam_to_head)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    z = tgt_depth.astype(np.float64)
    p = np.stack([(x + 0.5 - tk[2]) / tk[0] * z, (y + 0.5 - tk[3]) / tk[1] * z, z], -1)
    q = p @ m[:, :3].T + m[:, 3]
    qz = np.where(q[..., 2] > 1e-6, q[..., 2], 1.0)
    u = sk[0] * q[..., 0] / qz + sk[2] - 0.5
    v = sk[1] * q[..., 1] / qz + sk[3] - 0.5
    ok = (z > 0) & (q[..., 2] > 1e-6) & (u >= -0.5) & (v >= -0.5) & (u <= ws - 0.5) & (v <= hs - 0.5)
    ni = np.clip(np.floor(np.where(ok, u, 0) + 0.5).astype(int), 0, ws - 1)
    nj = np.clip(np.floor(np.where(ok, v, 0) + 0.5).astype(int), 0, hs - 1)
    ds = src_depth[nj, ni].astype(np.float64)
    excess = np.where(ds > 0, qz / np.where(ds > 0, ds, 1.0) - 1 - ztol, 0.0)
    vis = np.where(excess > 0, np.maximum(0.0, 1 - excess / ztol), 1.0)
    ok &= vis > 0
    uu, vv = np.where(ok, u, 0.0), np.where(ok, v, 0.0)
    i0, j0 = np.floor(uu).astype(int), np.floor(vv).astype(int)
    fu, fv = uu - i0, vv - j0
    col = np.zeros((h, w, 3))
    cw = np.zeros((h, w))
    mk = np.zeros((h, w))
    for dj in (0, 1):
        for di in (0, 1):
            j, i = np.clip(j0 + dj, 0, hs - 1), np.clip(i0 + di, 0, ws - 1)
            wt = (fv if dj else 1 - fv) * (fu if di else 1 - fu)
            mm = src_mask[j, i].astype(np.float64)
            mk += wt * mm
            cw += wt * mm
            col += (wt * mm)[..., None] * src_img[j, i].astype(np.float64)
    has = ok & (cw > 1e-9)
    col = col / np.where(cw > 1e-9, cw, 1.0)[..., None]
    # Catmull-Rom where all 16 taps are inside the image and the mask.
    def cr(t):
        return [0.5 * (-t ** 3 + 2 * t ** 2 - t), 0.5 * (3 * t ** 3 - 5 * t ** 2 + 2),
                0.5 * (-3 * t ** 3 + 4 * t ** 2 + t), 0.5 * (t ** 3 - t ** 2)]
    inner = has & (mk >= 0.999) & (i0 >= 1) & (j0 >= 1) & (i0 + 2 <= ws - 1) & (j0 + 2 <= hs - 1)
    cub = np.zeros((h, w, 3))
    wu, wv = cr(fu), cr(fv)
    for dj in range(4):
        for di in range(4):
            j, i = np.clip(j0 - 1 + dj, 0, hs - 1), np.clip(i0 - 1 + di, 0, ws - 1)
            inner &= src_mask[j, i] >= 0.999
            cub += (wv[dj] * wu[di])[..., None] * src_img[j, i].astype(np.float64)
    col = np.where(inner[..., None], np.clip(cub, 0, 255), col)
    rgb = np.where(has[..., None], col / 255.0, 0.0)
    c = -(m[:, :3].T @ m[:, 3])
    d = p - c
    cos = (p * d).sum(-1) / np.maximum(np.linalg.norm(p, axis=-1) * np.linalg.norm(d, axis=-1), 1e-30)
    return (rgb.astype(np.float32), np.where(ok, vis, 0.0).astype(np.float32), np.where(ok, mk, 0.0).astype(np.float32),
            np.where(ok, cos, 0.0).astype(np.float32))


def footprint(points, normals, seen, on, src_cam, core, lo, hi):
    c2h = np.asarray(src_cam.cam_to_head, np.float64)
    ratio = foreshortening(points.astype(np.float64), normals.astype(np.float64), c2h[:3, 3], c2h[:3, 2]) / \
        np.maximum(seen, 1e-9)
    wt = stretch_weight(ratio, lo, hi)
    h2s = np.linalg.inv(c2h)
    q = points.astype(np.float64) @ h2s[:3, :3].T + h2s[:3, 3]
    qz = np.maximum(q[..., 2], 1e-6)
    k = src_cam.intrinsics
    hs, ws = core.shape
    ui = np.clip(np.floor(k.fx * q[..., 0] / qz + k.cx), 0, ws - 1).astype(np.int64)
    vi = np.clip(np.floor(k.fy * q[..., 1] / qz + k.cy), 0, hs - 1).astype(np.int64)
    return np.where(on & (q[..., 2] > 1e-6), wt * core[vi, ui], 1.0).astype(np.float32)
