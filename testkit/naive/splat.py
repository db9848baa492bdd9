"""Twin of ``player.kernels.splat``."""

from __future__ import annotations

import numpy as np

from .cameras import _relative


def splat_depth(src_depth, src_w, src_cams, tgt_cam, stride, n_dilate, coarse_shape):
    """Coarse target z-buffer [Hc, Wc] (0 = empty)."""
    sk, sr, sc = src_cams
    tk, tr, tc = tgt_cam
    hc, wc = coarse_shape
    zb = np.full((hc, wc), np.inf)
    n_src, h, w = src_depth.shape
    for s in range(n_src):
        if src_w[s] <= 0:
            continue
        sstride = max(1, int(stride * sk[s, 0] / tk[0] + 0.5))
        ys, xs = np.mgrid[sstride // 2:h:sstride, sstride // 2:w:sstride]
        d = src_depth[s, ys, xs].astype(np.float64)
        keep = d > 0
        x, y, d = xs[keep], ys[keep], d[keep]
        p = np.stack([(x + 0.5 - sk[s, 2]) * (1.0 / sk[s, 0]) * d, (y + 0.5 - sk[s, 3]) / sk[s, 1] * d, d], -1)
        m, o = _relative(tr, tc, sr[s], sc[s])
        q = p @ m.T + o
        ok = q[:, 2] > 1e-6
        q = q[ok]
        iz = 1.0 / q[:, 2]  # the kernel's arithmetic, so both pick the same cells
        cu = q[:, 0] * iz * (tk[0] / stride) + (tk[2] / stride - 0.5)
        cv = q[:, 1] * iz * (tk[1] / stride) + (tk[3] / stride - 0.5)
        z = q[:, 2].astype(np.float32).astype(np.float64)
        i0, j0 = np.floor(cu).astype(int), np.floor(cv).astype(int)
        for dj in (0, 1):
            for di in (0, 1):
                ii, jj = i0 + di, j0 + dj
                inb = (ii >= 0) & (ii < wc) & (jj >= 0) & (jj < hc)
                np.minimum.at(zb, (jj[inb], ii[inb]), z[inb])
    zb[np.isinf(zb)] = 0.0
    for _ in range(n_dilate):
        pad, edge = np.pad(zb, 1), np.pad(zb, 1, mode="edge")  # the kernel's crack test clamps
        acc = sum(pad[1 + dj:1 + dj + hc, 1 + di:1 + di + wc] for dj in (-1, 0, 1) for di in (-1, 0, 1))
        cnt = sum((pad[1 + dj:1 + dj + hc, 1 + di:1 + di + wc] > 0).astype(float)
                  for dj in (-1, 0, 1) for di in (-1, 0, 1))
        nb = {(dj, di): edge[1 + dj:1 + dj + hc, 1 + di:1 + di + wc] for dj in (-1, 0, 1) for di in (-1, 0, 1)}
        crack = np.zeros_like(zb, bool)
        for a, b in (((0, -1), (0, 1)), ((-1, 0), (1, 0)), ((-1, -1), (1, 1)), ((-1, 1), (1, -1))):
            crack |= (nb[a] > 0) & (nb[b] > 0)
        fill = np.where(crack & (cnt > 0), acc / np.maximum(cnt, 1), 0.0)
        zb = np.where(zb > 0, zb, fill)
    return zb.astype(np.float32)
