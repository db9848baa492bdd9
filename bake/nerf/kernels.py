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


@njit(inline="always")
def _first_occupied(o, d, near, dt_t, n_steps, occ, g, gf, r, k, offset):
    """Ray r's first step from k on whose sample (at near + (k + offset) dt) lies in an occupied
    cell: (found, the step after it, t, x, y, z)."""
    t = np.float32(0.0)
    x0, x1, x2 = np.float32(0.0), np.float32(0.0), np.float32(0.0)
    while k < n_steps[r]:
        t = near[r] + (np.float32(k) + offset) * dt_t[r]
        x0, x1, x2 = o[r, 0] + t * d[r, 0], o[r, 1] + t * d[r, 1], o[r, 2] + t * d[r, 2]
        cx = min(max(int(np.floor(x0 * gf)), 0), g - 1)
        cy = min(max(int(np.floor(x1 * gf)), 0), g - 1)
        cz = min(max(int(np.floor(x2 * gf)), 0), g - 1)
        k += 1
        if occ[(cx * g + cy) * g + cz]:
            return True, k, t, x0, x1, x2
    return False, k, t, x0, x1, x2


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
        while cnt < s_max:
            found, k, _, _, _, _ = _first_occupied(o, d, near, dt_t, n_steps, occ, g, gf, r, k, jit[r])
            if not found:
                break
            out_k[j, cnt] = k - 1
            cnt += 1
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


# --- fused inference: march + encode + MLPs + SH colour + composite -------------------------------------------
#
# Each thread keeps a wavefront of SLOTS rays: every round, each slot's ray walks to its next occupied
# step and is encoded into one row of a small tile; both MLPs run on the tile as BLAS matrix products
# (np.dot: 64 rows is where a 64x64 sgemm runs near peak and single-threaded); then each row is
# composited into its ray, and a ray that turns opaque or leaves the box hands its slot to the thread's
# next ray. One sample per ray per round, so nothing is evaluated behind an opaque surface; the tile
# rows (a few kB) are the only intermediate, reused every round.

_SLOTS = 64
_LANES = 16
_BLOCK = 256


@njit(inline="always")
def _block(n_rays):
    """Rays per block: up to _BLOCK neighbours (cache locality), and at least 4 blocks a lane."""
    return max(1, min(_BLOCK, n_rays // (4 * _LANES)))
_ROUND = 32  # render.march's default seg: the rounds training's marcher sums transmittance over


@njit(inline="always")
def _encode_level(x0, x1, x2, table, res, dense, lv, out):
    """Level lv of the hash encoding of one point (normalised box, float32) from one table [L, T, F]
    into out[lv*F:(lv+1)*F].

    The same corners and weights as ``_hash_fwd``, in float32 and uint32 hashing (the hash's low bits,
    all the mask keeps, are those of the int64 products), with a level's features summed in registers
    when F = 2: 2.7x faster per point than ``_hash_fwd``'s loop.
    """
    n_ft = table.shape[2]
    tmask = np.uint32(table.shape[1] - 1)
    prime_y, prime_z = np.uint32(PRIME_Y), np.uint32(PRIME_Z)
    one = np.float32(1.0)
    rl = res[lv]
    rf = np.float32(rl)
    px, py, pz = x0 * rf, x1 * rf, x2 * rf
    ix = max(min(np.int32(np.floor(px)), rl - 1), 0)
    iy = max(min(np.int32(np.floor(py)), rl - 1), 0)
    iz = max(min(np.int32(np.floor(pz)), rl - 1), 0)
    fx, fy, fz = px - np.float32(ix), py - np.float32(iy), pz - np.float32(iz)
    gx, gy, gz = one - fx, one - fy, one - fz
    tl = table[lv]
    r1 = rl + 1
    a0 = np.float32(0.0)
    a1 = np.float32(0.0)
    if n_ft != 2:
        for f in range(n_ft):
            out[lv * n_ft + f] = 0.0
    for c in range(8):
        ox, oy, oz = c & 1, (c >> 1) & 1, (c >> 2) & 1
        wgt = (fx if ox else gx) * (fy if oy else gy) * (fz if oz else gz)
        if dense[lv]:
            idx = np.int64((ix + ox) + (iy + oy) * r1 + (iz + oz) * r1 * r1)
        else:
            idx = np.int64((np.uint32(ix + ox) ^ (np.uint32(iy + oy) * prime_y)
                            ^ (np.uint32(iz + oz) * prime_z)) & tmask)
        if n_ft == 2:
            a0 += wgt * tl[idx, 0]
            a1 += wgt * tl[idx, 1]
        else:
            for f in range(n_ft):
                out[lv * n_ft + f] += wgt * tl[idx, f]
    if n_ft == 2:
        out[2 * lv] = a0
        out[2 * lv + 1] = a1


@njit(inline="always")
def _encode_point(x0, x1, x2, table, res, dense, out):
    """The hash encoding of one point from one table [L, T, F] into out [L*F]."""
    for lv in range(table.shape[0]):
        _encode_level(x0, x1, x2, table, res, dense, lv, out)


@njit(inline="always")
def _sh16(x, y, z, out):
    """Real SH, bands 0..3, of the direction (x, y, z) (any length) into out [16]: ``sh.sh_encode``."""
    n = max(np.sqrt(x * x + y * y + z * z), np.float32(1e-9))
    x, y, z = x / n, y / n, z / n
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    out[0] = 0.28209479177387814
    out[1] = -0.48860251190291987 * y
    out[2] = 0.48860251190291987 * z
    out[3] = -0.48860251190291987 * x
    out[4] = 1.0925484305920792 * xy
    out[5] = -1.0925484305920792 * yz
    out[6] = 0.94617469575755997 * zz - 0.31539156525251999
    out[7] = -1.0925484305920792 * xz
    out[8] = 0.54627421529603959 * (xx - yy)
    out[9] = 0.59004358992664352 * y * (-3.0 * xx + yy)
    out[10] = 2.8906114426405538 * xy * z
    out[11] = 0.45704579946446572 * y * (1.0 - 5.0 * zz)
    out[12] = 0.3731763325901154 * z * (5.0 * zz - 3.0)
    out[13] = 0.45704579946446572 * x * (1.0 - 5.0 * zz)
    out[14] = 1.4453057213202769 * z * (xx - yy)
    out[15] = 0.59004358992664352 * x * (-xx + 3.0 * yy)


@njit(inline="always")
def _layer(w, woff, lyr, dims):
    """Layer lyr's W^T [dims[lyr], dims[lyr + 1]] as a 2D view of the flat weights."""
    n_in, n_out = dims[lyr], dims[lyr + 1]
    return w[woff[lyr]:woff[lyr] + n_in * n_out].reshape((n_in, n_out))


@njit(inline="always")
def _mlp_tail(h, w, b, dims, woff, boff):
    """Layers 1.. of an MLP on h [M, dims[1]] (layer 0's output, before its ReLU): ReLU, matmul, bias, ..."""
    n_layers = dims.shape[0] - 1
    for lyr in range(1, n_layers):
        for i in range(h.shape[0]):
            for j in range(h.shape[1]):
                h[i, j] = max(h[i, j], np.float32(0.0))
        h = np.dot(h, _layer(w, woff, lyr, dims))
        for i in range(h.shape[0]):
            for j in range(h.shape[1]):
                h[i, j] += b[boff[lyr] + j]
    return h


@njit(inline="always")
def _finish_ray(r, cr, cg, cb, a, acc_kept, nk, buf_t, buf_tau, dt_t, rgb, alpha, depth):
    """Write ray r's outputs: clamped colour and alpha, and the median depth (where the optical depth
    reaches the half-opacity point, exact inside a step; 0 where alpha <= 1e-3)."""
    rgb[r, 0] = min(max(cr, 0.0), 1.0)
    rgb[r, 1] = min(max(cg, 0.0), 1.0)
    rgb[r, 2] = min(max(cb, 0.0), 1.0)
    alpha[r] = min(max(a, 0.0), 1.0)
    z = 0.0
    if a > 1e-3:
        half = -np.log1p(-0.5 * -np.expm1(-acc_kept))
        before = 0.0
        for i in range(nk):
            tau_i = buf_tau[i]
            if before < half and before + tau_i >= half and tau_i > 0:
                z = buf_t[i] + (min(max((half - before) / tau_i, 0.0), 1.0) - 0.5) * dt_t[r]
                break
            before += tau_i
    depth[r] = z


@njit(inline="always")
def _pull_ray(next_ray, n_rays, block):
    """(ray, next) for a lane that walks blocks lane, lane + _LANES, ... of ``block`` consecutive
    rays: the ray to start, -1 when the lane has none left."""
    if next_ray >= n_rays:
        return -1, next_ray
    r = next_ray
    next_ray += 1
    if next_ray % block == 0:
        next_ray += (_LANES - 1) * block
    return r, next_ray


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _render_lane(lane, block, max_steps, o, d, near, dt_t, n_steps, occ, g, table, res, dense,
                 w_d, b_d, dims_d, woff_d, boff_d, w_c, b_c, dims_c, woff_c, boff_c, w_sh,
                 density_scale, dt, t_threshold, rgb, alpha, depth):
    """One thread's share of ``_render_fused``: blocks lane, lane + _LANES, ... of ``block`` rays."""
    n_rays = o.shape[0]
    n_enc = table.shape[0] * table.shape[2]
    n_geo = dims_d[dims_d.shape[0] - 1] - 1
    n_hid_c = dims_c[1]
    gf = np.float32(g)
    slot_ray = np.full(_SLOTS, -1, np.int64)
    slot_k = np.zeros(_SLOTS, np.int64)
    trans_all = np.ones(_SLOTS)  # transmittance in front of the next sample (termination)
    trans_kept = np.ones(_SLOTS)  # the same over the samples that add weight (compositing)
    acc_kept = np.zeros(_SLOTS)  # optical depth of those (median depth)
    col = np.zeros((_SLOTS, 4))  # premultiplied r, g, b and alpha
    nk = np.zeros(_SLOTS, np.int64)
    buf_t = np.empty((_SLOTS, max_steps), np.float32)
    buf_tau = np.empty((_SLOTS, max_steps), np.float64)
    x = np.empty((_SLOTS, n_enc), np.float32)
    geo = np.empty((_SLOTS, n_geo), np.float32)
    row_slot = np.empty(_SLOTS, np.int64)
    row_t = np.empty(_SLOTS, np.float32)
    row_tau = np.empty(_SLOTS, np.float32)
    slot_bias = np.empty((_SLOTS, n_hid_c), np.float32)  # the colour MLP's first bias + SH(view) share
    sh = np.empty(16, np.float32)
    next_ray = np.int64(lane) * block  # blocks lane, lane + _LANES, ... of consecutive rays (pixels)
    while True:
        # 1. each slot's ray to its next occupied step (pulling in new rays as slots free up)
        m = 0
        for s in range(_SLOTS):
            while True:
                r = slot_ray[s]
                if r < 0:
                    r, next_ray = _pull_ray(next_ray, n_rays, block)
                    if r < 0:
                        break
                    slot_ray[s] = r
                    slot_k[s] = 0
                    trans_all[s] = 1.0
                    trans_kept[s] = 1.0
                    acc_kept[s] = 0.0
                    col[s, 0], col[s, 1], col[s, 2], col[s, 3] = 0.0, 0.0, 0.0, 0.0
                    nk[s] = 0
                    if n_steps[r] > 0:
                        _sh16(d[r, 0], d[r, 1], d[r, 2], sh)
                        for j in range(n_hid_c):
                            acc = w_sh[16, j]
                            for q in range(16):
                                acc += sh[q] * w_sh[q, j]
                            slot_bias[s, j] = acc
                found, k, t, x0, x1, x2 = _first_occupied(o, d, near, dt_t, n_steps, occ, g, gf, r, slot_k[s],
                                                          np.float32(0.5))
                slot_k[s] = k
                if found:
                    _encode_point(x0, x1, x2, table, res, dense, x[m])
                    row_slot[m] = s
                    row_t[m] = t
                    m += 1
                    break
                _finish_ray(r, col[s, 0], col[s, 1], col[s, 2], col[s, 3], acc_kept[s], nk[s], buf_t[s],
                            buf_tau[s], dt_t, rgb, alpha, depth)
                slot_ray[s] = -1
        if m == 0:
            break
        # 2. density MLP on the tile
        h = np.dot(x[:m], _layer(w_d, woff_d, 0, dims_d))
        for i in range(m):
            for j in range(h.shape[1]):
                h[i, j] += b_d[j]
        h = _mlp_tail(h, w_d, b_d, dims_d, woff_d, boff_d)
        mc = 0
        for i in range(m):
            raw = h[i, 0]
            sp = raw if raw > 20.0 else np.log1p(np.exp(raw))
            tau = np.float32(np.float32(density_scale * sp) * dt)
            row_tau[i] = tau
            if tau > 1e-5:
                for j in range(n_geo):
                    geo[mc, j] = h[i, 1 + j]
                mc += 1
        # 3. colour MLP on the rows that add weight (first layer's bias + SH share per ray)
        c = np.dot(geo[:mc], _layer(w_c, woff_c, 0, dims_c))
        ci = 0
        for i in range(m):
            if row_tau[i] > 1e-5:
                for j in range(n_hid_c):
                    c[ci, j] += slot_bias[row_slot[i], j]
                ci += 1
        c = _mlp_tail(c, w_c, b_c, dims_c, woff_c, boff_c)
        # 4. composite each row into its ray, in step order (a ray has one row per round)
        ci = 0
        for i in range(m):
            s = row_slot[i]
            tau = row_tau[i]
            e = np.exp(-np.float64(tau))
            if tau > 1e-5:
                wt = trans_kept[s] * (1.0 - e)
                for j in range(3):
                    col[s, j] += wt * (np.float32(1.0) / (np.float32(1.0) + np.exp(-c[ci, j])))
                col[s, 3] += wt
                trans_kept[s] *= e
                buf_t[s, nk[s]] = row_t[i]
                buf_tau[s, nk[s]] = tau
                nk[s] += 1
                acc_kept[s] += tau
                ci += 1
            trans_all[s] *= e
            if trans_all[s] <= t_threshold:
                _finish_ray(slot_ray[s], col[s, 0], col[s, 1], col[s, 2], col[s, 3], acc_kept[s], nk[s],
                            buf_t[s], buf_tau[s], dt_t, rgb, alpha, depth)
                slot_ray[s] = -1


@njit("void(f4[:, ::1], f4[:, ::1], f4[::1], f4[::1], i8[::1], u1[::1], i8, f4[:, :, ::1], i4[::1], u1[::1], "
      "f4[::1], f4[::1], i8[::1], i8[::1], i8[::1], f4[::1], f4[::1], i8[::1], i8[::1], i8[::1], f4[:, ::1], "
      "f8, f8, f8, f4[:, ::1], f4[::1], f4[::1])", parallel=True, cache=True, nogil=True,
      fastmath={"reassoc", "contract", "nsz", "arcp"})
def _render_fused(o, d, near, dt_t, n_steps, occ, g, table, res, dense,
                  w_d, b_d, dims_d, woff_d, boff_d, w_c, b_c, dims_c, woff_c, boff_c, w_sh,
                  density_scale, dt, t_threshold, rgb, alpha, depth):
    """Render rays through one blended table.

    o, d [R, 3] normalised-box rays; near, dt_t [R], n_steps [R] (step k at t = near + (k + 0.5) dt_t);
    occ [G^3] flat occupancy; table [L, T, F] the expression's blended table; res, dense [L].
    Density MLP: w_d holds each layer's W^T [in, out] flat at woff_d[l], b_d its bias at boff_d[l],
    dims_d [n+1] = (L*F, hidden.., 1 + geo). Colour MLP likewise on the geometry features; w_sh
    [17, H]: its first layer's SH columns transposed (rows 0..15) and bias (row 16), which make a
    per-ray term (SH of the ray's direction, computed once per ray).
    Writes rgb [R, 3] premultiplied, alpha [R], depth [R] (median depth, 0 where alpha <= 1e-3).

    Per ray, in step order: skip steps in empty cells; sigma = density_scale softplus(raw); a sample
    adds weight when tau = sigma dt > 1e-5; the ray stops once the transmittance falls to t_threshold.
    The same samples and sums as ``march`` + ``composite`` + ``median_depth`` (the torch twin).
    """
    max_steps = 1
    for r in range(o.shape[0]):
        max_steps = max(max_steps, n_steps[r])
    block = _block(o.shape[0])
    for lane in prange(_LANES):
        # every lane draws blocks of rays from the whole image, so the threads stay balanced
        _render_lane(lane, block, max_steps, o, d, near, dt_t, n_steps, occ, g, table, res, dense,
                     w_d, b_d, dims_d, woff_d, boff_d, w_c, b_c, dims_c, woff_c, boff_c, w_sh,
                     density_scale, dt, t_threshold, rgb, alpha, depth)


@njit("void(f4[:, ::1], i4[::1], f4[:, :, :, ::1], i4[::1], u1[::1], f4[::1], f4[::1], i8[::1], i8[::1], i8[::1], "
      "f8, f4[::1])", parallel=True, cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _density_fused(x, bidx, tables, res, dense, w_d, b_d, dims_d, woff_d, boff_d, density_scale, sigma):
    """sigma [N] = density_scale * softplus(density MLP(hash encoding of x [N, 3] in table bidx [N] of
    tables [B, L, T, F]))[:, 0], without grad: the density the marcher and the occupancy updates need,
    in tiles of _SLOTS points (encoding, then the MLP as BLAS products on the tile). MLP weights as in
    ``_render_fused``."""
    n = x.shape[0]
    n_lvl = tables.shape[1]
    n_enc = n_lvl * tables.shape[3]
    n_tiles = (n + _SLOTS - 1) // _SLOTS
    for tile in prange(n_tiles):
        s0 = tile * _SLOTS
        m = min(_SLOTS, n - s0)
        enc = np.empty((m, n_enc), np.float32)
        for i in range(m):
            tb = tables[bidx[s0 + i]]
            for lv in range(n_lvl):
                _encode_level(x[s0 + i, 0], x[s0 + i, 1], x[s0 + i, 2], tb, res, dense, lv, enc[i])
        h = np.dot(enc, _layer(w_d, woff_d, 0, dims_d))
        for i in range(m):
            for j in range(h.shape[1]):
                h[i, j] += b_d[j]
        h = _mlp_tail(h, w_d, b_d, dims_d, woff_d, boff_d)
        for i in range(m):
            raw = h[i, 0]
            sigma[s0 + i] = np.float32(density_scale * (raw if raw > 20.0 else np.log1p(np.exp(raw))))


@njit(cache=True, nogil=True)
def _march_lane(lane, block, o, d, near, dt_t, jit, n_steps, bidx, occ, g, tables, res, dense,
                w_d, b_d, dims_d, woff_d, boff_d, density_scale, dt, t_threshold, out_k, out_n):
    """One thread's share of ``_march_fused``: blocks lane, lane + _LANES, ... of ``block`` rays."""
    n_rays = o.shape[0]
    n_enc = tables.shape[1] * tables.shape[3]
    n_lvl = tables.shape[1]
    gf = np.float32(g)
    slot_ray = np.full(_SLOTS, -1, np.int64)
    slot_k = np.zeros(_SLOTS, np.int64)
    # Transmittance as ``march`` + ``_transmit`` keep it, bit for bit: float32, per round of
    # _ROUND occupied steps a ray's transmittance at the round's start times exp(-optical depth so far).
    tr_round = np.ones(_SLOTS, np.float32)
    acc_round = np.zeros(_SLOTS, np.float32)
    in_round = np.zeros(_SLOTS, np.int64)
    x = np.empty((_SLOTS, n_enc), np.float32)
    row_slot = np.empty(_SLOTS, np.int64)
    row_k = np.empty(_SLOTS, np.int64)
    next_ray = np.int64(lane) * block
    while True:
        m = 0
        for s in range(_SLOTS):
            while True:
                r = slot_ray[s]
                if r < 0:
                    r, next_ray = _pull_ray(next_ray, n_rays, block)
                    if r < 0:
                        break
                    slot_ray[s] = r
                    slot_k[s] = 0
                    tr_round[s] = 1.0
                    acc_round[s] = 0.0
                    in_round[s] = 0
                    out_n[r] = 0
                found, k, t, x0, x1, x2 = _first_occupied(o, d, near, dt_t, n_steps, occ, g, gf, r, slot_k[s], jit[r])
                slot_k[s] = k
                if found:
                    tb = tables[bidx[r]]
                    for lv in range(n_lvl):
                        _encode_level(x0, x1, x2, tb, res, dense, lv, x[m])
                    row_slot[m] = s
                    row_k[m] = k - 1
                    m += 1
                    break
                slot_ray[s] = -1
        if m == 0:
            break
        h = np.dot(x[:m], _layer(w_d, woff_d, 0, dims_d))
        for i in range(m):
            for j in range(h.shape[1]):
                h[i, j] += b_d[j]
        h = _mlp_tail(h, w_d, b_d, dims_d, woff_d, boff_d)
        for i in range(m):
            s = row_slot[i]
            r = slot_ray[s]
            raw = h[i, 0]
            sigma = np.float32(density_scale * (raw if raw > 20.0 else np.log1p(np.exp(raw))))
            tau = np.float32(sigma * np.float32(dt))
            out_k[r, out_n[r]] = row_k[i]  # in front of it the ray is still visible (else it would have stopped)
            out_n[r] += 1
            acc_round[s] += tau
            in_round[s] += 1
            if in_round[s] == _ROUND:
                tr_round[s] = tr_round[s] * np.exp(-acc_round[s])
                acc_round[s] = 0.0
                in_round[s] = 0
            if not tr_round[s] * np.exp(-acc_round[s]) > t_threshold:
                slot_ray[s] = -1


@njit("void(f4[:, ::1], f4[:, ::1], f4[::1], f4[::1], f4[::1], i8[::1], i4[::1], u1[::1], i8, f4[:, :, :, ::1], "
      "i4[::1], u1[::1], f4[::1], f4[::1], i8[::1], i8[::1], i8[::1], f8, f8, f8, i8[:, ::1], i8[::1])",
      parallel=True, cache=True, nogil=True)
def _march_fused(o, d, near, dt_t, jit, n_steps, bidx, occ, g, tables, res, dense,
                 w_d, b_d, dims_d, woff_d, boff_d, density_scale, dt, t_threshold, out_k, out_n):
    """The samples that matter of each ray, without grad (training's first pass): the steps in
    occupied cells in front of the point where the transmittance falls to t_threshold.

    o, d [R, 3] normalised-box rays; near, dt_t, jit [R] (step k at t = near + (k + jit) dt_t); n_steps
    [R]; bidx [R] the table of each ray in tables [B, L, T, F]; occ [G^3] flat; density MLP weights as
    in ``_render_fused``. Writes out_k [R, S] the kept step indices of each ray in step order and
    out_n [R] how many (S >= max n_steps). The same samples as ``render.march`` with the model's
    density (its torch twin), found one sample per ray per round, so none is evaluated behind the
    point where the ray stops.
    """
    block = _block(o.shape[0])
    for lane in prange(_LANES):
        _march_lane(lane, block, o, d, near, dt_t, jit, n_steps, bidx, occ, g, tables, res, dense,
                    w_d, b_d, dims_d, woff_d, boff_d, density_scale, dt, t_threshold, out_k, out_n)
