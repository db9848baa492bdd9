"""Numba kernels of the multiresolution hash encoding (Müller et al. 2022), forward and backward.

The encoding of a point ``x`` in [0, 1]^3 at level ``l`` trilinearly interpolates the features of the
8 grid corners around ``x * res[l]``; a corner's row in the level's table is its dense index when the
level's ``(res + 1)^3`` corners fit in ``T`` entries, else the spatial hash
``(ix * 1) ^ (iy * 2654435761) ^ (iz * 805459861) mod T`` (T a power of two).

Each point carries ``bidx``: the row of a batch of blended tables it is looked up in, so the one call
serves B images with B different expressions. ``encoding.hash_encode_torch`` is the readable
pure-torch twin these kernels are tested against (tests/test_nerf_encoding.py).

Kernels are private; call them through ``bake.nerf.encoding.hash_encode``, which checks dtypes and
layouts first.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

PRIME_Y = 2654435761
PRIME_Z = 805459861


@njit(inline="always")
def _corner_index(cx, cy, cz, r1, dense, tmask):
    if dense:
        return cx + cy * r1 + cz * r1 * r1
    return (cx ^ (cy * PRIME_Y) ^ (cz * PRIME_Z)) & tmask


@njit("void(f4[:, ::1], i4[::1], f4[:, :, :, ::1], i4[::1], u1[::1], f4[:, ::1])",
      parallel=True, cache=True, nogil=True)
def _hash_fwd(x, bidx, table, res, dense, out):
    """x [N, 3] in [0, 1]; bidx [N]; table [B, L, T, F]; res, dense [L]; out [N, L*F] (accumulated;
    pass zeros).

    Level-major: one level's B tables (~0.5 MB at T=2^14) stay in cache while all points read it,
    4x faster here than point-major, and levels are independent so threads never share an output.
    """
    n_pts = x.shape[0]
    n_lvl, n_tab, n_ft = table.shape[1], table.shape[2], table.shape[3]
    tmask = n_tab - 1
    for lv in prange(n_lvl):
        r = res[lv]
        for n in range(n_pts):
            b = bidx[n]
            px, py, pz = x[n, 0] * r, x[n, 1] * r, x[n, 2] * r
            ix, iy, iz = min(int(np.floor(px)), r - 1), min(int(np.floor(py)), r - 1), min(int(np.floor(pz)), r - 1)
            ix, iy, iz = max(ix, 0), max(iy, 0), max(iz, 0)
            fx, fy, fz = px - ix, py - iy, pz - iz
            for c in range(8):
                ox, oy, oz = c & 1, (c >> 1) & 1, (c >> 2) & 1
                w = (fx if ox else 1.0 - fx) * (fy if oy else 1.0 - fy) * (fz if oz else 1.0 - fz)
                idx = _corner_index(ix + ox, iy + oy, iz + oz, r + 1, dense[lv], tmask)
                for f in range(n_ft):
                    out[n, lv * n_ft + f] += w * table[b, lv, idx, f]


@njit("void(f4[:, ::1], i4[::1], f4[:, ::1], i4[::1], u1[::1], f4[:, :, :, ::1])",
      parallel=True, cache=True, nogil=True)
def _hash_bwd(x, bidx, grad_out, res, dense, grad_table):
    """grad_out [N, L*F] -> grad_table [B, L, T, F] (accumulated; zero it first).

    Parallel over levels: each level owns a disjoint slice of ``grad_table``, so the scatter-add
    needs no atomics and the result does not depend on the thread count.
    """
    n_pts = x.shape[0]
    n_lvl, n_tab, n_ft = grad_table.shape[1], grad_table.shape[2], grad_table.shape[3]
    tmask = n_tab - 1
    for lv in prange(n_lvl):
        r = res[lv]
        for n in range(n_pts):
            b = bidx[n]
            px, py, pz = x[n, 0] * r, x[n, 1] * r, x[n, 2] * r
            ix, iy, iz = min(int(np.floor(px)), r - 1), min(int(np.floor(py)), r - 1), min(int(np.floor(pz)), r - 1)
            ix, iy, iz = max(ix, 0), max(iy, 0), max(iz, 0)
            fx, fy, fz = px - ix, py - iy, pz - iz
            for c in range(8):
                ox, oy, oz = c & 1, (c >> 1) & 1, (c >> 2) & 1
                w = (fx if ox else 1.0 - fx) * (fy if oy else 1.0 - fy) * (fz if oz else 1.0 - fz)
                idx = _corner_index(ix + ox, iy + oy, iz + oz, r + 1, dense[lv], tmask)
                for f in range(n_ft):
                    grad_table[b, lv, idx, f] += w * grad_out[n, lv * n_ft + f]


@njit("void(f4[:, ::1], f4[:, ::1], f4[::1], f4[::1], f4[::1], i8[::1], i8[::1], i8[::1], u1[::1], i8, "
      "i8[:, ::1], i8[::1])", parallel=True, cache=True, nogil=True)
def _next_occupied(o, d, near, dt_t, jit, n_steps, cursor, active, occ, g, out_k, out_n):
    """For each active ray, the next ``S`` march steps that fall in occupied cells.

    o, d [R, 3] normalised-box rays; near, dt_t, jit [R] (first step t = near + (k + jit) dt_t);
    n_steps, cursor [R] (cursor: next step to look at, advanced in place); active [A] ray ids;
    occ [G^3] flat (x, y, z order). Writes out_k [A, S] step indices and out_n [A] how many were
    found. Empty steps are skipped here instead of being evaluated as torch tensors: the marcher's
    torch ops then only touch samples that matter.
    """
    s_max = out_k.shape[1]
    gf = np.float32(g)
    for j in prange(active.shape[0]):
        r = active[j]
        k = cursor[r]
        cnt = 0
        while k < n_steps[r] and cnt < s_max:
            t = near[r] + (np.float32(k) + jit[r]) * dt_t[r]
            cx = min(max(int(np.floor((o[r, 0] + t * d[r, 0]) * gf)), 0), g - 1)
            cy = min(max(int(np.floor((o[r, 1] + t * d[r, 1]) * gf)), 0), g - 1)
            cz = min(max(int(np.floor((o[r, 2] + t * d[r, 2]) * gf)), 0), g - 1)
            if occ[(cx * g + cy) * g + cz]:
                out_k[j, cnt] = k
                cnt += 1
            k += 1
        cursor[r] = k
        out_n[j] = cnt


@njit("void(i8[::1], f4[::1], f4[::1], i8[::1], f8, b1, b1[::1])", parallel=True, cache=True, nogil=True)
def _transmit(start, tau, trans, active, t_threshold, keep_values, keep):
    """Front-to-back transmittance over one round of packed samples.

    start [A+1]: active ray j owns samples start[j]:start[j+1] of tau [M] (optical depth sigma dt,
    in step order); trans [R]: transmittance in front of the round, advanced in place for the rays
    ``active`` [A]. keep [M]: the sample is still visible (transmittance in front > t_threshold) and,
    with keep_values, adds weight (tau > 1e-5).
    """
    for j in prange(active.shape[0]):
        r = active[j]
        tr = trans[r]
        acc = np.float32(0.0)
        for i in range(start[j], start[j + 1]):
            k = tr * np.exp(-acc) > t_threshold
            if keep_values:
                k = k and tau[i] > 1e-5
            keep[i] = k
            acc += tau[i]
        trans[r] = tr * np.exp(-acc)
