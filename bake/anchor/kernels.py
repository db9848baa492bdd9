"""Numba kernel of the capture-anchored bake: a captured frame backward-warped into a grid view
through the geometry proxy (its slow numpy twin: ``testkit/naive/anchor.py``)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _tap(img, mask, u, v):
    """(r, g, b, m) at continuous pixel coordinates (u, v) (centres on integers) of ``img`` uint8
    [H, W, 3] and ``mask`` float32 [H, W] in [0, 1]: bilinear, the colour taps weighted by the
    mask too, so that a pixel beside the person's edge takes the person's colour, not the room's
    (m = 0 where no tap has mask)."""
    h, w = mask.shape
    i0 = int(np.floor(u))
    j0 = int(np.floor(v))
    fu = u - i0
    fv = v - j0
    r = 0.0
    g = 0.0
    b = 0.0
    m = 0.0
    cw = 0.0
    for dj in range(2):
        j = min(max(j0 + dj, 0), h - 1)
        wv = fv if dj == 1 else 1.0 - fv
        for di in range(2):
            i = min(max(i0 + di, 0), w - 1)
            wt = wv * (fu if di == 1 else 1.0 - fu)
            mk = mask[j, i]
            m += wt * mk
            c = wt * mk
            cw += c
            r += c * img[j, i, 0]
            g += c * img[j, i, 1]
            b += c * img[j, i, 2]
    if cw <= 1e-9:
        return 0.0, 0.0, 0.0, 0.0
    return r / cw, g / cw, b / cw, m


@njit(inline="always")
def _cr_weights(t):
    """Catmull-Rom weights of the taps at -1, 0, 1, 2 for a point t in [0, 1) past tap 0."""
    t2 = t * t
    t3 = t2 * t
    return (0.5 * (-t3 + 2.0 * t2 - t), 0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
            0.5 * (-3.0 * t3 + 4.0 * t2 + t), 0.5 * (t3 - t2))


@njit(inline="always")
def _tap_cubic(img, mask, u, v):
    """(r, g, b, ok) at (u, v) of ``img``: Catmull-Rom over the 4 x 4 taps around the point,
    clamped to [0, 255], where all 16 taps lie inside the image and the mask (>= 0.999); ok = 0
    elsewhere (the caller keeps the mask-weighted bilinear colour). A second resampling blurs
    less than bilinear's, and the mask's edge keeps bilinear's guard against the room."""
    h, w = mask.shape
    i0 = int(np.floor(u))
    j0 = int(np.floor(v))
    if i0 < 1 or j0 < 1 or i0 + 2 > w - 1 or j0 + 2 > h - 1:
        return 0.0, 0.0, 0.0, 0.0
    for j in range(j0 - 1, j0 + 3):
        for i in range(i0 - 1, i0 + 3):
            if mask[j, i] < 0.999:
                return 0.0, 0.0, 0.0, 0.0
    wu = _cr_weights(u - i0)
    wv = _cr_weights(v - j0)
    r = 0.0
    g = 0.0
    b = 0.0
    for dj in range(4):
        for di in range(4):
            wt = wv[dj] * wu[di]
            r += wt * img[j0 - 1 + dj, i0 - 1 + di, 0]
            g += wt * img[j0 - 1 + dj, i0 - 1 + di, 1]
            b += wt * img[j0 - 1 + dj, i0 - 1 + di, 2]
    return min(max(r, 0.0), 255.0), min(max(g, 0.0), 255.0), min(max(b, 0.0), 255.0), 1.0


@njit("void(f4[:,::1], f8[::1], f8[:,::1], u1[:,:,::1], f4[:,::1], f4[:,::1], f8[::1], f8, "
      "f4[:,:,::1], f4[:,::1], f4[:,::1], f4[:,::1])", cache=True, nogil=True, parallel=True)
def _reproject(tgt_depth, tk, t2s, src_img, src_mask, src_depth, sk, ztol, out_rgb, out_vis, out_m, out_cos):
    h, w = tgt_depth.shape
    hs, ws = src_mask.shape
    # The source camera's centre in target camera coordinates: c = -R^T o.
    cx = -(t2s[0, 0] * t2s[0, 3] + t2s[1, 0] * t2s[1, 3] + t2s[2, 0] * t2s[2, 3])
    cy = -(t2s[0, 1] * t2s[0, 3] + t2s[1, 1] * t2s[1, 3] + t2s[2, 1] * t2s[2, 3])
    cz = -(t2s[0, 2] * t2s[0, 3] + t2s[1, 2] * t2s[1, 3] + t2s[2, 2] * t2s[2, 3])
    for y in prange(h):
        for x in range(w):
            out_rgb[y, x, 0] = 0.0
            out_rgb[y, x, 1] = 0.0
            out_rgb[y, x, 2] = 0.0
            out_vis[y, x] = 0.0
            out_m[y, x] = 0.0
            out_cos[y, x] = 0.0
            z = tgt_depth[y, x]
            if z <= 0:
                continue
            px = (x + 0.5 - tk[2]) / tk[0] * z
            py = (y + 0.5 - tk[3]) / tk[1] * z
            qx = t2s[0, 0] * px + t2s[0, 1] * py + t2s[0, 2] * z + t2s[0, 3]
            qy = t2s[1, 0] * px + t2s[1, 1] * py + t2s[1, 2] * z + t2s[1, 3]
            qz = t2s[2, 0] * px + t2s[2, 1] * py + t2s[2, 2] * z + t2s[2, 3]
            if qz <= 1e-6:
                continue
            u = sk[0] * qx / qz + sk[2] - 0.5
            v = sk[1] * qy / qz + sk[3] - 0.5
            if u < -0.5 or v < -0.5 or u > ws - 0.5 or v > hs - 0.5:
                continue
            # Soft z-test against the source's proxy depth: seen within ztol (relative), fading
            # out at 2 ztol; where the proxy has no surface nothing is known to hide the point.
            ni = min(max(int(np.floor(u + 0.5)), 0), ws - 1)
            nj = min(max(int(np.floor(v + 0.5)), 0), hs - 1)
            ds = src_depth[nj, ni]
            vis = 1.0
            if ds > 0:
                excess = qz / ds - 1.0 - ztol
                if excess > 0:
                    vis = max(0.0, 1.0 - excess / ztol)
            if vis <= 0:
                continue
            out_vis[y, x] = vis
            # Angle between the target's and the source's rays through the point.
            dx = px - cx
            dy = py - cy
            dz = z - cz
            out_cos[y, x] = (px * dx + py * dy + z * dz) / (np.sqrt(px * px + py * py + z * z)
                                                            * np.sqrt(dx * dx + dy * dy + dz * dz))
            r, g, b, m = _tap(src_img, src_mask, u, v)
            if m >= 0.999:
                rc, gc, bc, ok = _tap_cubic(src_img, src_mask, u, v)
                if ok > 0:
                    r, g, b = rc, gc, bc
            out_m[y, x] = m  # 0: the frame sees the point and shows no person there
            out_rgb[y, x, 0] = r / 255.0
            out_rgb[y, x, 1] = g / 255.0
            out_rgb[y, x, 2] = b / 255.0


@njit("void(f4[:,:,::1], f4[:,:,::1], f4[:,::1], b1[:,::1], f8[:,::1], f8[::1], f4[:,::1], f8, f8, f4[:,::1])",
      cache=True, nogil=True)
def _footprint(points, normals, seen, on, c2h, sk, core, lo, hi, out):
    # One thread: 0.4 ms at 256 px, where a parallel launch waits on OpenMP's sleeping threads
    # for longer than that on a busy machine.
    h, w = seen.shape
    hs, ws = core.shape
    cx, cy, cz = c2h[0, 3], c2h[1, 3], c2h[2, 3]  # the source camera's centre ...
    ax, ay, az = c2h[0, 2], c2h[1, 2], c2h[2, 2]  # ... and its axis, in the head frame
    for y in range(h):
        for x in range(w):
            out[y, x] = 1.0
            if not on[y, x]:
                continue
            px, py, pz = points[y, x, 0], points[y, x, 1], points[y, x, 2]
            dx, dy, dz = cx - px, cy - py, cz - pz
            # The point in the source camera's coordinates: R^T (p - c).
            qx = -(c2h[0, 0] * dx + c2h[1, 0] * dy + c2h[2, 0] * dz)
            qy = -(c2h[0, 1] * dx + c2h[1, 1] * dy + c2h[2, 1] * dz)
            qz = -(ax * dx + ay * dy + az * dz)
            if qz <= 1e-6:
                continue
            wt = 1.0
            nx, ny, nz = normals[y, x, 0], normals[y, x, 1], normals[y, x, 2]
            if np.isfinite(nx) and np.isfinite(ny) and np.isfinite(nz):
                ratio = abs(nx * dx + ny * dy + nz * dz) / qz / max(seen[y, x], 1e-9)
                t = min(max((ratio - lo) / (hi - lo), 0.0), 1.0)
                wt = t * t * (3.0 - 2.0 * t)
            ui = min(max(int(np.floor(sk[0] * qx / qz + sk[2])), 0), ws - 1)
            vi = min(max(int(np.floor(sk[1] * qy / qz + sk[3])), 0), hs - 1)
            out[y, x] = wt * core[vi, ui]


def footprint(points: np.ndarray, normals: np.ndarray, seen: np.ndarray, on: np.ndarray, src_cam, core: np.ndarray,
              lo: float, hi: float) -> np.ndarray:
    """float32 [H, W]: a source's footprint weight at the tile's surface (``bake.anchor.tiles.TileSurface``:
    head-frame ``points`` and unit ``normals`` [H, W, 3] (NaN: none), the tile camera's
    ``seen`` foreshortening [H, W], ``on`` bool [H, W]): the smoothstep from ``lo`` to ``hi`` of
    the source camera's foreshortening |n . (C - P)| / z over ``seen`` (1 without a normal),
    times the source's ``core`` [Hs, Ws] at the pixel the point falls in; 1 off the surface and
    behind the source."""
    h, w = seen.shape
    if points.shape != (h, w, 3) or normals.shape != (h, w, 3) or on.shape != (h, w):
        raise ValueError(f"points and normals [H, W, 3], seen and on [H, W], got {points.shape}, {normals.shape}, "
                         f"{seen.shape}, {on.shape}")
    out = np.empty((h, w), np.float32)
    _footprint(np.ascontiguousarray(points, np.float32), np.ascontiguousarray(normals, np.float32),
               np.ascontiguousarray(seen, np.float32), np.ascontiguousarray(on, np.bool_),
               np.ascontiguousarray(src_cam.cam_to_head, np.float64), intrinsics_array(src_cam.intrinsics),
               np.ascontiguousarray(core, np.float32), float(lo), float(hi), out)
    return out


def intrinsics_array(k) -> np.ndarray:
    """float64 [4] (fx, fy, cx, cy) of a ``formats.camera.Intrinsics``."""
    return np.array([k.fx, k.fy, k.cx, k.cy], np.float64)


def target_to_source(tgt_cam_to_head: np.ndarray, src_cam_to_head: np.ndarray) -> np.ndarray:
    """float64 [3, 4]: target camera coordinates -> source camera coordinates."""
    m = np.linalg.inv(np.asarray(src_cam_to_head, np.float64)) @ np.asarray(tgt_cam_to_head, np.float64)
    return np.ascontiguousarray(m[:3])


def reproject(tgt_depth: np.ndarray, tgt_cam, src_img: np.ndarray, src_mask: np.ndarray, src_depth: np.ndarray,
              src_cam, ztol: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A captured frame seen from a target camera through the target's proxy depth.

    tgt_depth float32 [H, W] (camera z-depth, 0 = no surface) at ``tgt_cam``
    (``formats.camera.Camera``); the source: ``src_img`` uint8 RGB [Hs, Ws, 3], ``src_mask``
    float32 [Hs, Ws] in [0, 1] (where the frame shows the person), ``src_depth`` float32 [Hs, Ws]
    its proxy depth, at ``src_cam``. Returns float32 arrays:
    rgb [H, W, 3] in [0, 1], the source's straight colour at each target pixel (Catmull-Rom inside
    the mask, bilinear with the taps weighted by the mask within 2 px of its edge: 0 where the
    mask is 0); vis [H, W] in [0, 1], the soft z-test against the source's
    proxy (0 where the point is hidden from the source, behind it or outside its image); mask
    [H, W], the source's mask at the point where vis > 0 (0 elsewhere); cos [H, W], the cosine of
    the angle between the two cameras' rays through the point where vis > 0 (0 elsewhere)."""
    h, w = tgt_depth.shape
    if src_img.shape[:2] != src_mask.shape or src_mask.shape != src_depth.shape or src_img.shape[2:] != (3,):
        raise ValueError(f"source image [H, W, 3], mask and depth [H, W] of one size, got "
                         f"{src_img.shape}, {src_mask.shape}, {src_depth.shape}")
    rgb = np.empty((h, w, 3), np.float32)
    vis = np.empty((h, w), np.float32)
    mask = np.empty((h, w), np.float32)
    cos = np.empty((h, w), np.float32)
    _reproject(np.ascontiguousarray(tgt_depth, np.float32), intrinsics_array(tgt_cam.intrinsics),
               target_to_source(tgt_cam.cam_to_head, src_cam.cam_to_head),
               np.ascontiguousarray(src_img, np.uint8), np.ascontiguousarray(src_mask, np.float32),
               np.ascontiguousarray(src_depth, np.float32), intrinsics_array(src_cam.intrinsics), float(ztol),
               rgb, vis, mask, cos)
    return rgb, vis, mask, cos
