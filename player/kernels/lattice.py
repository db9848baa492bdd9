"""Frame step 4, parts 1 and 2 (see ``warp``): the geometry at the warp's lattice nodes (each
node's depth, and per source its coordinates and blend weight) and each cell's mode, from the
per-point rule (coarse depth, refinement on the nearest view, projection, soft z-test)."""

from __future__ import annotations

import numpy as np
from numba import njit

MODE_PIXEL, MODE_EMPTY, MODE_MESH, MODE_MESH_RAMP = 0, 1, 2, 3  # how ``warp`` fills a lattice cell


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
