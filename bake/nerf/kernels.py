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


# --- fused inference: march + encode + MLPs + SH colour + composite, one ray at a time --------------------------


@njit(inline="always")
def _mlp(x, w, b, dims, woff, boff, ya, yb, first_bias):
    """Run the layers ``dims`` [n_layers + 1] (ReLU between, none on the output) on x; returns the
    buffer holding the output. Layer l's W [dims[l+1], dims[l]] (torch's layout, row-major) sits at
    w[woff[l]:], its bias at b[boff[l]:]; ``first_bias`` [dims[1]] replaces layer 0's bias (the colour
    MLP's per-ray part).

    Dot products over 2D views: indices that are loop variables let LLVM drop numba's negative-index
    wraparound and vectorise the inner loop (3.5x faster here than flat ``w[base + i]`` indexing).
    """
    n_layers = dims.shape[0] - 1
    src = x
    for lyr in range(n_layers):
        dst = ya if lyr % 2 == 0 else yb
        n_in, n_out = dims[lyr], dims[lyr + 1]
        wl = w[woff[lyr]:woff[lyr] + n_in * n_out].reshape((n_out, n_in))
        bl = first_bias if lyr == 0 else b[boff[lyr]:boff[lyr] + n_out]
        relu = lyr < n_layers - 1
        for j in range(n_out):
            acc = bl[j]
            for i in range(n_in):
                acc += wl[j, i] * src[i]
            dst[j] = max(acc, np.float32(0.0)) if relu else acc
        src = dst
    return src


@njit("void(f4[:, ::1], f4[:, ::1], f4[::1], f4[::1], i8[::1], u1[::1], i8, f4[:, :, ::1], i4[::1], u1[::1], "
      "f4[::1], f4[::1], i8[::1], i8[::1], i8[::1], f4[::1], f4[::1], i8[::1], i8[::1], i8[::1], f4[:, ::1], "
      "f8, f8, f8, f4[:, ::1], f4[::1], f4[::1])", parallel=True, cache=True, nogil=True,
      fastmath={"reassoc", "contract", "nsz", "arcp"})
def _render_fused(o, d, near, dt_t, n_steps, occ, g, table, res, dense,
                  w_d, b_d, dims_d, woff_d, boff_d, w_c, b_c, dims_c, woff_c, boff_c, per_ray,
                  density_scale, dt, t_threshold, rgb, alpha, depth):
    """Render rays through one blended table with no intermediate arrays.

    o, d [R, 3] normalised-box rays; near, dt_t [R], n_steps [R] (sample k at t = near + (k + 0.5) dt_t);
    occ [G^3] flat occupancy; table [L, T, F] the expression's blended table; res, dense [L].
    Density MLP: weights w_d (each layer's W [out, in] flat at woff_d[l]), biases b_d (at boff_d[l]),
    dims_d [n+1] = (L*F, hidden.., 1 + geo). Colour MLP likewise on the geometry features, with its
    first layer's bias replaced by per_ray [R, H] (bias + SH(view) share, computed once per ray).
    Writes rgb [R, 3] premultiplied, alpha [R], depth [R] (median depth, 0 where alpha <= 1e-3).

    Per ray, in step order: skip steps in empty cells; sigma = density_scale softplus(raw); a sample
    adds weight when tau = sigma dt > 1e-5; the ray stops once the transmittance falls to t_threshold.
    The same samples and sums as ``march`` + ``composite`` + ``median_depth`` (the torch twin), per ray.
    """
    n_rays = o.shape[0]
    n_lvl, n_tab, n_ft = table.shape[0], table.shape[1], table.shape[2]
    tmask = n_tab - 1
    n_geo = dims_d[dims_d.shape[0] - 1] - 1
    wmax = 1
    for v in dims_d:
        wmax = max(wmax, v)
    for v in dims_c:
        wmax = max(wmax, v)
    max_steps = 1
    for r in range(n_rays):
        max_steps = max(max_steps, n_steps[r])
    gf = np.float32(g)
    n_lanes = min(n_rays, 256)
    for lane in prange(n_lanes):
        # Rays lane, lane + n_lanes, ...: interleaved, so the threads share the image's empty and busy rows.
        enc = np.empty(n_lvl * n_ft, np.float32)
        ya = np.empty(wmax, np.float32)
        yb = np.empty(wmax, np.float32)
        yc = np.empty(wmax, np.float32)
        yd = np.empty(wmax, np.float32)
        geo = np.empty(max(n_geo, 1), np.float32)
        buf_t = np.empty(max_steps, np.float32)
        buf_tau = np.empty(max_steps, np.float64)
        for r in range(lane, n_rays, n_lanes):
            acc_all = 0.0
            acc_kept = 0.0
            cr, cg, cb, a = 0.0, 0.0, 0.0, 0.0
            nk = 0
            for k in range(n_steps[r]):
                t = near[r] + (np.float32(k) + np.float32(0.5)) * dt_t[r]
                x0, x1, x2 = o[r, 0] + t * d[r, 0], o[r, 1] + t * d[r, 1], o[r, 2] + t * d[r, 2]
                cx = min(max(int(np.floor(x0 * gf)), 0), g - 1)
                cy = min(max(int(np.floor(x1 * gf)), 0), g - 1)
                cz = min(max(int(np.floor(x2 * gf)), 0), g - 1)
                if not occ[(cx * g + cy) * g + cz]:
                    continue
                # hash encoding
                for lv in range(n_lvl):
                    rl = res[lv]
                    px, py, pz = x0 * rl, x1 * rl, x2 * rl
                    ix = max(min(int(np.floor(px)), rl - 1), 0)
                    iy = max(min(int(np.floor(py)), rl - 1), 0)
                    iz = max(min(int(np.floor(pz)), rl - 1), 0)
                    fx, fy, fz = px - ix, py - iy, pz - iz
                    for f in range(n_ft):
                        enc[lv * n_ft + f] = 0.0
                    for c in range(8):
                        ox, oy, oz = c & 1, (c >> 1) & 1, (c >> 2) & 1
                        wgt = (fx if ox else 1.0 - fx) * (fy if oy else 1.0 - fy) * (fz if oz else 1.0 - fz)
                        idx = _corner_index(ix + ox, iy + oy, iz + oz, rl + 1, dense[lv], tmask)
                        for f in range(n_ft):
                            enc[lv * n_ft + f] += wgt * table[lv, idx, f]
                h = _mlp(enc, w_d, b_d, dims_d, woff_d, boff_d, ya, yb, b_d)
                raw = h[0]
                sp = raw if raw > 20.0 else np.log1p(np.exp(raw))
                tau = np.float32(np.float32(density_scale * sp) * dt)
                if tau > 1e-5:
                    for j in range(n_geo):
                        geo[j] = h[1 + j]
                    hc = _mlp(geo, w_c, b_c, dims_c, woff_c, boff_c, yc, yd, per_ray[r])
                    wt = np.exp(-acc_kept) * (1.0 - np.exp(-np.float64(tau)))
                    cr += wt / (1.0 + np.exp(-np.float64(hc[0])))
                    cg += wt / (1.0 + np.exp(-np.float64(hc[1])))
                    cb += wt / (1.0 + np.exp(-np.float64(hc[2])))
                    a += wt
                    buf_t[nk] = t
                    buf_tau[nk] = tau
                    nk += 1
                    acc_kept += tau
                acc_all += tau
                if np.exp(-acc_all) <= t_threshold:
                    break
            rgb[r, 0] = min(max(cr, 0.0), 1.0)
            rgb[r, 1] = min(max(cg, 0.0), 1.0)
            rgb[r, 2] = min(max(cb, 0.0), 1.0)
            alpha[r] = min(max(a, 0.0), 1.0)
            # median depth: where the optical depth reaches the half-opacity point (exact inside a step)
            z = 0.0
            if a > 1e-3:
                half = -np.log1p(-0.5 * -np.expm1(-acc_kept))
                before = 0.0
                for i in range(nk):
                    tau_i = buf_tau[i]
                    if before < half and before + tau_i >= half and tau_i > 0:
                        frac = min(max((half - before) / tau_i, 0.0), 1.0)
                        z = buf_t[i] + (frac - 0.5) * dt_t[r]
                        break
                    before += tau_i
            depth[r] = z
