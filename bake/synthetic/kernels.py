"""Numba kernels of the synthetic head's rendering: normals, shading and the sphere tracer, and
the entry points the rest of the package calls (``render_into``, ``*_points``, ``trace_stats``).

``render_into`` sphere-traces every pixel to a tolerance of a thousandth of a pixel against the
distance of ``sdf.py``, shades the hit once (``albedo.py`` x fixed head-frame light x a little
ambient occlusion) and writes premultiplied colour, alpha and camera z-depth.

Speed comes from: per-ray culling against bounding volumes, the exact primitive skipping of
``sdf.py``, cone-marched tiles and threads over rows. ``testkit/naive/synthetic.py`` is the slow
numpy twin that tests check this module against.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from bake.synthetic.albedo import albedo
from bake.synthetic.head import S_LIGHT
from bake.synthetic.sdf import JIT, material, sdf

# Bounding volumes of everything the SDF can produce (m): an ellipsoid round the head (hair,
# ears, open jaw, pucker and puff included, with 3 mm to spare for edge coverage) and two boxes
# for neck and shirt. Rays missing all three are background without a single SDF evaluation.
HEAD_CENTER = (0.0, 0.005, -0.004)
HEAD_RADII = (0.107, 0.153, 0.145)
NECK_BOX = (-0.075, -0.245, -0.095, 0.075, -0.04, 0.055)
TORSO_BOX = (-0.21, -0.41, -0.15, 0.21, -0.17, 0.08)

HIT_PIXELS = 4e-3  # a ray hits when the distance is below this fraction of its pixel footprint
HIT_MIN = 5e-6  # ... and never coarser than 5 micrometres
NEAR = 8.0  # pixels: closer than this, steps aim at the surface by the secant rule
SECANT_MAX = 4.0  # ... but never jump more than this many distances
JUMP_MAX = 1e-3  # ... nor more than 1 mm, thinner than any part of the head seen edge-on
REFINE_STEPS = 24
GOLDEN_STEPS = 10
MAX_STEPS = 160
NORMAL_EPS = 1.5e-4
AO_PROBE = 0.006
AO_GAIN = 45.0
TILE = 8  # pixels per side of a cone-marched tile
CONE_STEPS = 48
SCENE_RADIUS = 0.6  # metres: every bounding volume lies this close to the origin

# ----------------------------------------------------------------------------------------------
# Shading and tracing


@njit(**JIT)
def normal(P, S, x, y, z):
    """Unit SDF gradient by the four-tap tetrahedron rule (needs no value at the point, so
    how exactly the hit was polished does not leak into the shading)."""
    e = NORMAL_EPS
    a = sdf(P, S, x + e, y - e, z - e)
    b = sdf(P, S, x - e, y - e, z + e)
    c = sdf(P, S, x - e, y + e, z - e)
    d = sdf(P, S, x + e, y + e, z + e)
    nx = a - b - c + d
    ny = -a - b + c + d
    nz = -a + b - c + d
    n = math.sqrt(nx * nx + ny * ny + nz * nz) + 1e-30
    return nx / n, ny / n, nz / n


@njit(**JIT)
def shade(P, S, x, y, z):
    """Lit colour (r, g, b) at a surface point: albedo x (ambient occlusion x sky + key light)."""
    nx, ny, nz = normal(P, S, x, y, z)
    mat = material(P, S, x, y, z)
    ar, ag, ab = albedo(P, S, mat, x, y, z)
    # Ambient occlusion from one probe 6 mm out along the normal: in a crease the field there
    # is well below 6 mm.
    occ = AO_PROBE - sdf(P, S, x + nx * AO_PROBE, y + ny * AO_PROBE, z + nz * AO_PROBE)
    ao = min(max(1.0 - AO_GAIN * occ, 0.25), 1.0)
    ndl = nx * S[S_LIGHT] + ny * S[S_LIGHT + 1] + nz * S[S_LIGHT + 2]
    key = max((ndl + 0.25) / 1.25, 0.0)  # wrapped Lambert: skin scatters light past the terminator
    sky = 0.38 + 0.12 * ny
    lum = ao * sky + 0.72 * key * (0.55 + 0.45 * ao)
    return min(ar * lum, 1.0), min(ag * lum, 1.0), min(ab * lum, 1.0)


@njit(**JIT)
def _slab(o, d, lo, hi, t0, t1):
    if abs(d) < 1e-15:
        if o < lo or o > hi:
            return 1.0, 0.0
        return t0, t1
    a = (lo - o) / d
    b = (hi - o) / d
    if a > b:
        a, b = b, a
    return max(t0, a), min(t1, b)


@njit(**JIT)
def _box(ox, oy, oz, dx, dy, dz, bx):
    t0, t1 = _slab(ox, dx, bx[0], bx[3], 0.0, 1e30)
    t0, t1 = _slab(oy, dy, bx[1], bx[4], t0, t1)
    t0, t1 = _slab(oz, dz, bx[2], bx[5], t0, t1)
    return t0, t1


@njit(**JIT)
def ray_bounds(ox, oy, oz, dx, dy, dz):
    """[t0, t1] covering every bounding volume the ray crosses; t0 > t1 means a miss."""
    # The head ellipsoid, as the unit sphere after scaling by 1 / radii.
    cx = (ox - HEAD_CENTER[0]) / HEAD_RADII[0]
    cy = (oy - HEAD_CENTER[1]) / HEAD_RADII[1]
    cz = (oz - HEAD_CENTER[2]) / HEAD_RADII[2]
    ex = dx / HEAD_RADII[0]
    ey = dy / HEAD_RADII[1]
    ez = dz / HEAD_RADII[2]
    a = ex * ex + ey * ey + ez * ez
    b = cx * ex + cy * ey + cz * ez
    c = cx * cx + cy * cy + cz * cz - 1.0
    disc = b * b - a * c
    t0, t1 = 1e30, -1e30
    if disc > 0.0:
        s = math.sqrt(disc)
        t0 = max((-b - s) / a, 0.0)
        t1 = (-b + s) / a
    n0, n1 = _box(ox, oy, oz, dx, dy, dz, NECK_BOX)
    if n0 <= n1:
        t0, t1 = min(t0, n0), max(t1, n1)
    n0, n1 = _box(ox, oy, oz, dx, dy, dz, TORSO_BOX)
    if n0 <= n1:
        t0, t1 = min(t0, n0), max(t1, n1)
    return t0, t1


@njit(**JIT)
def _refine(P, S, ox, oy, oz, dx, dy, dz, inv_len, a, fa, b, fb, eps):
    """Root of the distance along the ray inside [a, b] with fa > 0 > fb (Illinois method)."""
    side = 0
    for _ in range(REFINE_STEPS):
        c = b - fb * (b - a) / (fb - fa)
        fc = sdf(P, S, ox + c * dx, oy + c * dy, oz + c * dz) * inv_len
        if abs(fc) < eps:
            return c
        if fc > 0.0:
            a, fa = c, fc
            if side == 1:
                fb *= 0.5
            side = 1
        else:
            b, fb = c, fc
            if side == -1:
                fa *= 0.5
            side = -1
    return b - fb * (b - a) / (fb - fa)


@njit(**JIT)
def trace(P, S, ox, oy, oz, dx, dy, dz, foot, t_min):
    """Sphere-trace one ray. Returns (t, alpha): t the z-depth of the hit (alpha 1) or of the
    closest approach (alpha = edge coverage in [0, 0.5)), t = 0 for nothing; and the number of
    marching steps (MAX_STEPS when the ray left or ran out, for statistics only).

    ``foot`` is the pixel footprint per unit z-depth (1 / focal length in pixels); directions
    are scaled so that t is camera z-depth; marching starts at ``t_min`` (from the cone
    pre-pass, known free of surface) or later.

    Far from the surface the steps are plain sphere-tracing steps. Within NEAR pixels of it a
    secant step aims at the surface (the blended field underestimates distance there, so plain
    steps crawl); it may jump at most SECANT_MAX distances and at most JUMP_MAX, so only a
    feature thinner than 1 mm along the ray could hide in a jump (the lids, the thinnest
    part, are 1.3 mm). A step that lands inside is refined
    to the crossing by regula falsi.
    """
    t0, t1 = ray_bounds(ox, oy, oz, dx, dy, dz)
    if t0 > t1:
        return 0.0, 0.0, 0
    if t_min > t1:
        return 0.0, 0.0, 0
    inv_len = 1.0 / math.sqrt(dx * dx + dy * dy + dz * dz)
    t = max(t0, t_min)
    best = 1e30
    tbest = 0.0
    prev_t = -1.0
    prev_d = 0.0
    steps = 0
    for _ in range(MAX_STEPS):
        steps += 1
        d = sdf(P, S, ox + t * dx, oy + t * dy, oz + t * dz) * inv_len  # in units of t
        px = t * foot
        eps = max(HIT_PIXELS * px, HIT_MIN * inv_len)
        if d < eps:
            if d < -eps and prev_t >= 0.0:
                t = _refine(P, S, ox, oy, oz, dx, dy, dz, inv_len, prev_t, prev_d, t, d, eps)
            elif prev_t >= 0.0 and prev_d > d:
                # Polish: one secant step to the root, so where the marching steps happened to
                # fall (which depends on far-away geometry through the cone) leaves no trace.
                t += min(d * (t - prev_t) / (prev_d - d), SECANT_MAX * abs(d))
            return t, 1.0, steps
        if d < best * px:
            best = d / px
            tbest = t
        step = d
        if prev_t >= 0.0 and d < NEAR * px and d < prev_d:
            jump = min(d * (t - prev_t) / (prev_d - d), SECANT_MAX * d, JUMP_MAX * inv_len)
            step = max(d, jump)
        prev_t = t
        prev_d = d
        t += step
        if t > t1:
            break
    if best >= 0.5:
        return 0.0, 0.0, steps
    # A silhouette ray: pin its closest approach down by golden-section search so coverage and
    # colour do not depend on where the steps happened to fall.
    r = best * tbest * foot
    a = tbest - r
    b = tbest + r
    g = 0.3819660112501051
    c = a + g * (b - a)
    e = b - g * (b - a)
    fc = sdf(P, S, ox + c * dx, oy + c * dy, oz + c * dz) / c
    fe = sdf(P, S, ox + e * dx, oy + e * dy, oz + e * dz) / e
    for _ in range(GOLDEN_STEPS):
        if fc < fe:
            b, e, fe = e, c, fc
            c = a + g * (b - a)
            fc = sdf(P, S, ox + c * dx, oy + c * dy, oz + c * dz) / c
        else:
            a, c, fc = c, e, fe
            e = b - g * (b - a)
            fe = sdf(P, S, ox + e * dx, oy + e * dy, oz + e * dz) / e
    if fc < fe:
        tm, fm = c, fc
    else:
        tm, fm = e, fe
    if fm * inv_len / foot < best:
        best = fm * inv_len / foot
        tbest = tm
    return tbest, min(0.5 - best, 0.5), steps


@njit(**JIT)
def cone_start(P, S, ox, oy, oz, dx, dy, dz, spread, margin, t, t_far):
    """How far a bundle of rays can skip: from ``t`` (already known free) to a t such that
    every ray whose direction differs from (dx, dy, dz) by at most ``spread`` (per unit t)
    stays at least ``margin * t`` away from the surface before it. Cone marching on the
    bundle's centre ray; stops at ``t_far``, beyond everything. Returns (t, number of
    distance evaluations).
    """
    dlen = math.sqrt(dx * dx + dy * dy + dz * dz)
    n = 0
    for _ in range(CONE_STEPS):
        n += 1
        d = sdf(P, S, ox + t * dx, oy + t * dy, oz + t * dz)
        free = d - t * (spread + margin)
        if free < t * margin:
            break
        # A point of any bundle ray at t' moves at most (dlen + spread + margin) per unit t.
        t += free / (dlen + spread + margin)
        if t > t_far:
            break
    return t, n


@njit(**JIT)
def _t_far(c2h):
    """A z-depth beyond every bounding volume for this camera (an upper bound suffices)."""
    return math.sqrt(c2h[0, 3] ** 2 + c2h[1, 3] ** 2 + c2h[2, 3] ** 2) + SCENE_RADIUS


@njit(**JIT)
def _pixel(P, S, c2h, fx, fy, cx, cy, foot, u, v, t_start, rgb, alpha, depth):
    """Trace and shade pixel (u, v) from t_start; returns the marching steps taken."""
    xc = (u + 0.5 - cx) / fx
    yc = (v + 0.5 - cy) / fy
    dx = c2h[0, 0] * xc + c2h[0, 1] * yc + c2h[0, 2]
    dy = c2h[1, 0] * xc + c2h[1, 1] * yc + c2h[1, 2]
    dz = c2h[2, 0] * xc + c2h[2, 1] * yc + c2h[2, 2]
    ox, oy, oz = c2h[0, 3], c2h[1, 3], c2h[2, 3]
    t, a, steps = trace(P, S, ox, oy, oz, dx, dy, dz, foot, t_start)
    if a <= 0.0:
        rgb[v, u, 0] = 0.0
        rgb[v, u, 1] = 0.0
        rgb[v, u, 2] = 0.0
        alpha[v, u] = 0.0
        depth[v, u] = 0.0
        return steps
    r, g, b = shade(P, S, ox + t * dx, oy + t * dy, oz + t * dz)
    rgb[v, u, 0] = r * a
    rgb[v, u, 1] = g * a
    rgb[v, u, 2] = b * a
    alpha[v, u] = a
    depth[v, u] = t
    return steps


@njit(**JIT)
def _tile(P, S, c2h, fx, fy, cx, cy, u0, v0, size, t_parent, rgb, alpha, depth, counts):
    """Cone-march the size x size tile at (u0, v0) from t_parent, then its quarters, down to
    single pixels: each level starts where its parent stopped. counts [3] += (cone evals,
    trace steps, shaded pixels)."""
    h, w = alpha.shape
    if u0 >= w or v0 >= h:
        return
    foot = 1.0 / math.sqrt(fx * fy)
    if size == 1:
        counts[1] += _pixel(P, S, c2h, fx, fy, cx, cy, foot, u0, v0, t_parent, rgb, alpha, depth)
        counts[2] += 1
        return
    reach = max(1.0 / fx, 1.0 / fy)
    xc = (u0 + 0.5 * size - cx) / fx
    yc = (v0 + 0.5 * size - cy) / fy
    dx = c2h[0, 0] * xc + c2h[0, 1] * yc + c2h[0, 2]
    dy = c2h[1, 0] * xc + c2h[1, 1] * yc + c2h[1, 2]
    dz = c2h[2, 0] * xc + c2h[2, 1] * yc + c2h[2, 2]
    t, n = cone_start(P, S, c2h[0, 3], c2h[1, 3], c2h[2, 3], dx, dy, dz,
                      reach * size * 0.7072, reach, t_parent, _t_far(c2h))
    counts[0] += n
    half = size // 2
    for k in range(4):
        _tile_leaf(P, S, c2h, fx, fy, cx, cy, u0 + half * (k % 2), v0 + half * (k // 2), half, t,
                   rgb, alpha, depth, counts)


@njit(**JIT)
def _tile_leaf(P, S, c2h, fx, fy, cx, cy, u0, v0, size, t_parent, rgb, alpha, depth, counts):
    """Second level of _tile without recursion (numba compiles recursion poorly)."""
    h, w = alpha.shape
    if u0 >= w or v0 >= h:
        return
    foot = 1.0 / math.sqrt(fx * fy)
    reach = max(1.0 / fx, 1.0 / fy)
    if size >= 2:
        xc = (u0 + 0.5 * size - cx) / fx
        yc = (v0 + 0.5 * size - cy) / fy
        dx = c2h[0, 0] * xc + c2h[0, 1] * yc + c2h[0, 2]
        dy = c2h[1, 0] * xc + c2h[1, 1] * yc + c2h[1, 2]
        dz = c2h[2, 0] * xc + c2h[2, 1] * yc + c2h[2, 2]
        t_parent, n = cone_start(P, S, c2h[0, 3], c2h[1, 3], c2h[2, 3], dx, dy, dz,
                                 reach * size * 0.7072, reach, t_parent, _t_far(c2h))
        counts[0] += n
    for v in range(v0, min(v0 + size, h)):
        for u in range(u0, min(u0 + size, w)):
            counts[1] += _pixel(P, S, c2h, fx, fy, cx, cy, foot, u, v, t_parent, rgb, alpha, depth)
            counts[2] += 1


@njit(parallel=True, **JIT)
def render_into(P, S, c2h, fx, fy, cx, cy, rgb, alpha, depth):
    """Render the head into preallocated rgb [H, W, 3], alpha [H, W], depth [H, W] (float32).

    P [N_PRIMS, PRIM_COLS] and S [N_SCALARS] come from head.head_params; c2h [4, 4] is
    cam_to_head. Pixels go in TILE x TILE tiles: one cone march skips the empty space in front
    of the whole tile, a second one per quarter tile goes on from there, then each ray is
    traced from where its quarter stopped.
    """
    h, w = alpha.shape
    nty = (h + TILE - 1) // TILE
    ntx = (w + TILE - 1) // TILE
    for ty in prange(nty):
        counts = np.zeros(3, np.int64)
        for tx in range(ntx):
            _tile(P, S, c2h, fx, fy, cx, cy, tx * TILE, ty * TILE, TILE, 0.0, rgb, alpha, depth, counts)


def trace_stats(P, S, c2h, fx, fy, cx, cy, h, w) -> np.ndarray:
    """Work counts of one render (for benchmarks): [cone evals, trace steps, pixels]."""
    counts = np.zeros(3, np.int64)
    rgb = np.empty((h, w, 3), np.float32)
    alpha = np.empty((h, w), np.float32)
    depth = np.empty((h, w), np.float32)
    for v0 in range(0, h, TILE):
        for u0 in range(0, w, TILE):
            _tile(P, S, c2h, fx, fy, cx, cy, u0, v0, TILE, 0.0, rgb, alpha, depth, counts)
    return counts


@njit(**JIT)
def sdf_points(P, S, pts, out):
    """sdf at many points: pts [N, 3] float64 -> out [N]."""
    for i in range(pts.shape[0]):
        out[i] = sdf(P, S, pts[i, 0], pts[i, 1], pts[i, 2])


@njit(**JIT)
def material_points(P, S, pts, out):
    """material at many points: pts [N, 3] float64 -> out [N] int64."""
    for i in range(pts.shape[0]):
        out[i] = material(P, S, pts[i, 0], pts[i, 1], pts[i, 2])


@njit(**JIT)
def albedo_points(P, S, mats, pts, out):
    """albedo of materials mats [N] at pts [N, 3] -> out [N, 3]."""
    for i in range(pts.shape[0]):
        r, g, b = albedo(P, S, mats[i], pts[i, 0], pts[i, 1], pts[i, 2])
        out[i, 0] = r
        out[i, 1] = g
        out[i, 2] = b
