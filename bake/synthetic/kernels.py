"""Numba kernels of the synthetic head: signed distance, materials, shading and the sphere tracer.

The head is a signed distance field built from the oriented ellipsoids of head.py (smooth unions
for the skin, subtractions for the eye sockets, ear cups and mouth, hard unions for eyes, lids,
teeth, hair and shirt). ``render_into`` sphere-traces every pixel to a tolerance of a thousandth
of a pixel, shades the hit once (procedural albedo x fixed head-frame light x a little ambient
occlusion) and writes premultiplied colour, alpha and camera z-depth.

Speed comes from: per-ray culling against bounding volumes, skipping every primitive whose
bounding sphere proves it cannot change the distance (exact, not an approximation), and
threads over rows. ``bake/synthetic/naive.py`` is the slow numpy twin that tests check this
module against.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from bake.synthetic.head import (
    BROW_RIDGE, CAVITY, CHEEK_L, CHEEK_R, CHIN, CORNER_L, CORNER_R, CRANIUM, EAR_L, EAR_R,
    EARCUP_L, EARCUP_R, EYE_L, EYE_R, FACE, HAIR, JAW, LOWER_LIP, NECK, NOSE_BRIDGE, NOSE_TIP,
    NOSTRIL_L, NOSTRIL_R, S_BEND, S_BEND_X, S_BENDK, S_BROW_FROWN, S_BROW_UP, S_GAZE, S_HAIR,
    S_LID, S_LIGHT, S_RLID, SOCKET_L, SOCKET_R, TEETH_LOW, TEETH_UP, TONGUE, TORSO,
    UPPER_LIP, G_MID, G_NOSE, G_MOUTH, G_EAR_L, G_EAR_R, S_GROUP,
)

# Smooth-union radii (m): how wide each blend fillet is.
K_FACE, K_JAW, K_CHIN, K_CHEEK, K_RIDGE = 0.035, 0.030, 0.020, 0.025, 0.020
K_BRIDGE, K_TIP, K_NOSTRIL, K_LIP, K_CORNER = 0.012, 0.010, 0.006, 0.006, 0.010
K_EAR, K_EARCUP, K_NECK, K_SOCKET, K_CAVITY = 0.008, 0.003, 0.022, 0.004, 0.003

MAT_NONE, MAT_SKIN, MAT_MOUTH, MAT_EYE, MAT_LID, MAT_TEETH, MAT_TONGUE, MAT_HAIR, MAT_SHIRT = range(9)

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

_JIT = dict(cache=True, fastmath=True, nogil=True, error_model="numpy")  # no zero-division checks


# ----------------------------------------------------------------------------------------------
# Distance primitives


@njit(**_JIT)
def _ell(P, i, x, y, z):
    """Approximate signed distance to ellipsoid row i of P [N, PRIM_COLS] (exact on the axes).

    k0 = |q / r|, k1 = |q / r^2| in the ellipsoid's frame; d = k0 (k0 - 1) / k1.
    """
    qx = x - P[i, 0]
    qy = y - P[i, 1]
    qz = z - P[i, 2]
    ax = P[i, 3] * qx + P[i, 4] * qy + P[i, 5] * qz
    ay = P[i, 6] * qx + P[i, 7] * qy + P[i, 8] * qz
    az = P[i, 9] * qx + P[i, 10] * qy + P[i, 11] * qz
    k0 = math.sqrt(ax * ax + ay * ay + az * az)
    bx = ax * P[i, 16]
    by = ay * P[i, 17]
    bz = az * P[i, 18]
    k1 = math.sqrt(bx * bx + by * by + bz * bz)
    if k1 < 1e-12:
        return -min(P[i, 12], min(P[i, 13], P[i, 14]))
    return k0 * (k0 - 1.0) / k1


@njit(**_JIT)
def _beyond(cx, cy, cz, radius, elong, x, y, z, thr):
    """Whether the sphere (c, radius) proves an ellipsoid distance >= thr, without a sqrt.

    With s = |p - c| - R (R the largest radius) the approximate ellipsoid distance is >= s
    inside and >= s * rmin / R outside (k0 >= |q| / R and k0 / k1 >= rmin), so the test is
    s >= thr for thr <= 0 and s >= thr * elong for thr > 0 (elong = R / rmin).
    """
    if thr > 0.0:
        thr *= elong
    r = thr + radius
    if r <= 0.0:
        return True
    dx = x - cx
    dy = y - cy
    dz = z - cz
    return dx * dx + dy * dy + dz * dz >= r * r


@njit(**_JIT)
def _prim_beyond(P, i, x, y, z, thr):
    """The primitive's bounding sphere proves _ell(P, i, p) >= thr."""
    return _beyond(P[i, 0], P[i, 1], P[i, 2], P[i, 15], P[i, 19], x, y, z, thr)


@njit(**_JIT)
def _group_beyond(S, g, x, y, z, thr):
    """Group g's bounding sphere proves every member's distance >= thr."""
    o = S_GROUP + 5 * g
    return _beyond(S[o], S[o + 1], S[o + 2], S[o + 3], S[o + 4], x, y, z, thr)


@njit(**_JIT)
def _scaled_thr(thr, scale):
    """Threshold t' with (x >= t') => (x >= thr and scale * x >= thr), for 0 < scale <= 1."""
    return max(thr, thr / scale)


@njit(**_JIT)
def _smin(a, b, k):
    """Polynomial smooth minimum; equals min(a, b) once |a - b| >= k."""
    h = max(k - abs(a - b), 0.0) / k
    return min(a, b) - h * h * k * 0.25


@njit(**_JIT)
def _smax(a, b, k):
    return -_smin(-a, -b, k)


@njit(**_JIT)
def _blend(P, i, d, x, y, z, k, scale):
    """smin(d, scale * ell_i, k), skipped when ell_i provably cannot reach into the fillet."""
    if _prim_beyond(P, i, x, y, z, _scaled_thr(d + k, scale)):
        return d
    return _smin(d, scale * _ell(P, i, x, y, z), k)


@njit(**_JIT)
def _carve(P, i, d, x, y, z, k, scale):
    """smax(d, -scale * ell_i, k), skipped when the carve provably cannot touch d."""
    if _prim_beyond(P, i, x, y, z, _scaled_thr(k - d, scale)):
        return d
    return _smax(d, -scale * _ell(P, i, x, y, z), k)


@njit(**_JIT)
def _hair(P, S, x, y, z):
    """Hair volume: an ellipsoid shell kept above a hairline surface (1-Lipschitz)."""
    cut = (S[S_HAIR] + S[S_HAIR + 1] * z + S[S_HAIR + 2] * max(abs(x) - S[S_HAIR + 3], 0.0) - y)
    return max(_ell(P, HAIR, x, y, z), cut * S[S_HAIR + 4])


@njit(**_JIT)
def _mouth_y(S, x, y):
    """y in mouth space: bending it by b x^2 curves lips and slit up at the corners."""
    xc = min(max(x, -S[S_BEND_X]), S[S_BEND_X])
    return y - S[S_BEND] * xc * xc


@njit(**_JIT)
def _skin_open(P, S, x, y, z):
    """Skin before the mouth slit is cut: head, face, nose, lips, ears, neck, eye sockets.

    Groups whose bounding sphere lies beyond the widest fillet are skipped whole: the result is
    the same number, only cheaper.
    """
    d = _ell(P, CRANIUM, x, y, z)
    d = _smin(d, _ell(P, FACE, x, y, z), K_FACE)
    d = _smin(d, _ell(P, JAW, x, y, z), K_JAW)
    if not _group_beyond(S, G_MID, x, y, z, d + K_CHEEK):
        d = _blend(P, CHIN, d, x, y, z, K_CHIN, 1.0)
        d = _blend(P, CHEEK_L, d, x, y, z, K_CHEEK, 1.0)
        d = _blend(P, CHEEK_R, d, x, y, z, K_CHEEK, 1.0)
        d = _blend(P, BROW_RIDGE, d, x, y, z, K_RIDGE, 1.0)
    if not _group_beyond(S, G_NOSE, x, y, z, d + K_BRIDGE):
        d = _blend(P, NOSE_BRIDGE, d, x, y, z, K_BRIDGE, 1.0)
        d = _blend(P, NOSE_TIP, d, x, y, z, K_TIP, 1.0)
        d = _blend(P, NOSTRIL_L, d, x, y, z, K_NOSTRIL, 1.0)
        d = _blend(P, NOSTRIL_R, d, x, y, z, K_NOSTRIL, 1.0)
    sc = S[S_BENDK]
    if not _group_beyond(S, G_MOUTH, x, y, z, _scaled_thr(d + K_CORNER, sc)):
        my = _mouth_y(S, x, y)
        d = _blend(P, UPPER_LIP, d, x, my, z, K_LIP, sc)
        d = _blend(P, LOWER_LIP, d, x, my, z, K_LIP, sc)
        d = _blend(P, CORNER_L, d, x, y, z, K_CORNER, 1.0)
        d = _blend(P, CORNER_R, d, x, y, z, K_CORNER, 1.0)
    # Ears: the blend lowers d and the cup raises it, so test both against d before either.
    if not (_group_beyond(S, G_EAR_L, x, y, z, d + K_EAR)
            and _group_beyond(S, G_EAR_L, x, y, z, K_EARCUP - d)):
        d = _blend(P, EAR_L, d, x, y, z, K_EAR, 1.0)
        d = _carve(P, EARCUP_L, d, x, y, z, K_EARCUP, 1.0)
    if not (_group_beyond(S, G_EAR_R, x, y, z, d + K_EAR)
            and _group_beyond(S, G_EAR_R, x, y, z, K_EARCUP - d)):
        d = _blend(P, EAR_R, d, x, y, z, K_EAR, 1.0)
        d = _carve(P, EARCUP_R, d, x, y, z, K_EARCUP, 1.0)
    d = _blend(P, NECK, d, x, y, z, K_NECK, 1.0)
    d = _carve(P, SOCKET_L, d, x, y, z, K_SOCKET, 1.0)
    d = _carve(P, SOCKET_R, d, x, y, z, K_SOCKET, 1.0)
    return d


@njit(**_JIT)
def _eye(P, S, e, lid0, d, x, y, z):
    """min(d, eyeball, upper lid, lower lid) of eye row e; lids are the lid sphere cut by planes."""
    qx = x - P[e, 0]
    qy = y - P[e, 1]
    qz = z - P[e, 2]
    rl = S[S_RLID]
    if _beyond(P[e, 0], P[e, 1], P[e, 2], rl, 1.0, x, y, z, d):  # spheres: exact
        return d
    r = math.sqrt(qx * qx + qy * qy + qz * qz)
    d = min(d, r - P[e, 12])
    up = -(S[lid0] * qx + S[lid0 + 1] * qy + S[lid0 + 2] * qz)
    low = -(S[lid0 + 3] * qx + S[lid0 + 4] * qy + S[lid0 + 5] * qz)
    return min(d, max(r - rl, up), max(r - rl, low))


@njit(**_JIT)
def sdf(P, S, x, y, z):
    """Signed distance (m) of the whole head at a head-frame point (approximate, conservative)."""
    d = _skin_open(P, S, x, y, z)
    d = _carve(P, CAVITY, d, x, _mouth_y(S, x, y), z, K_CAVITY, S[S_BENDK])
    d = _eye(P, S, EYE_L, S_LID, d, x, y, z)
    d = _eye(P, S, EYE_R, S_LID + 6, d, x, y, z)
    for i in (TEETH_UP, TEETH_LOW, TONGUE, TORSO):
        if not _prim_beyond(P, i, x, y, z, d):
            d = min(d, _ell(P, i, x, y, z))
    if not _prim_beyond(P, HAIR, x, y, z, d):
        d = min(d, _hair(P, S, x, y, z))
    return d


@njit(**_JIT)
def material(P, S, x, y, z):
    """Material id (MAT_*) of the component nearest to a point on (or near) the surface."""
    skin0 = _skin_open(P, S, x, y, z)
    cav = -S[S_BENDK] * _ell(P, CAVITY, x, _mouth_y(S, x, y), z)
    skin = _smax(skin0, cav, K_CAVITY)
    best = skin
    mat = MAT_SKIN
    if cav > skin0 - 2e-4:
        mat = MAT_MOUTH
    rl = S[S_RLID]
    for e in range(2):
        row = EYE_L if e == 0 else EYE_R
        lid0 = S_LID + 6 * e
        if _beyond(P[row, 0], P[row, 1], P[row, 2], rl, 1.0, x, y, z, best):
            continue
        qx = x - P[row, 0]
        qy = y - P[row, 1]
        qz = z - P[row, 2]
        r = math.sqrt(qx * qx + qy * qy + qz * qz)
        ball = r - P[row, 12]
        if ball < best:
            best, mat = ball, MAT_EYE
        up = max(r - rl, -(S[lid0] * qx + S[lid0 + 1] * qy + S[lid0 + 2] * qz))
        low = max(r - rl, -(S[lid0 + 3] * qx + S[lid0 + 4] * qy + S[lid0 + 5] * qz))
        lid = min(up, low)
        if lid < best:
            best, mat = lid, MAT_LID
    # Bounding spheres that prove a part no nearer than ``best`` skip it (same answer).
    for i in (TEETH_UP, TEETH_LOW):
        if not _prim_beyond(P, i, x, y, z, best):
            t = _ell(P, i, x, y, z)
            if t < best:
                best, mat = t, MAT_TEETH
    if not _prim_beyond(P, TONGUE, x, y, z, best):
        t = _ell(P, TONGUE, x, y, z)
        if t < best:
            best, mat = t, MAT_TONGUE
    if not _prim_beyond(P, HAIR, x, y, z, best):
        t = _hair(P, S, x, y, z)
        if t < best:
            best, mat = t, MAT_HAIR
    if not _prim_beyond(P, TORSO, x, y, z, best):
        t = _ell(P, TORSO, x, y, z)
        if t < best:
            best, mat = t, MAT_SHIRT
    return mat


# ----------------------------------------------------------------------------------------------
# Procedural colour


@njit(**_JIT)
def _hash(ix, iy, iz):
    """Integer lattice -> [0, 1); wrapping int64 arithmetic, identical in numpy."""
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF) / 16777216.0


@njit(**_JIT)
def _fade(t):
    return t * t * (3.0 - 2.0 * t)


@njit(**_JIT)
def noise(x, y, z):
    """Trilinear value noise in [0, 1) with unit lattice spacing."""
    fx = math.floor(x)
    fy = math.floor(y)
    fz = math.floor(z)
    ix = np.int64(fx)
    iy = np.int64(fy)
    iz = np.int64(fz)
    tx = _fade(x - fx)
    ty = _fade(y - fy)
    tz = _fade(z - fz)
    c000 = _hash(ix, iy, iz)
    c100 = _hash(ix + 1, iy, iz)
    c010 = _hash(ix, iy + 1, iz)
    c110 = _hash(ix + 1, iy + 1, iz)
    c001 = _hash(ix, iy, iz + 1)
    c101 = _hash(ix + 1, iy, iz + 1)
    c011 = _hash(ix, iy + 1, iz + 1)
    c111 = _hash(ix + 1, iy + 1, iz + 1)
    a = c000 + (c100 - c000) * tx
    b = c010 + (c110 - c010) * tx
    c = c001 + (c101 - c001) * tx
    e = c011 + (c111 - c011) * tx
    f = a + (b - a) * ty
    g = c + (e - c) * ty
    return f + (g - f) * tz


@njit(**_JIT)
def _smooth(e0, e1, v):
    t = min(max((v - e0) / (e1 - e0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@njit(**_JIT)
def _brow(S, x, y, z):
    """Eyebrow coverage in [0, 1] at a skin point (both brows, mirrored in x)."""
    if z < 0.035 or y < 0.0 or y > 0.07:
        return 0.0
    ax = abs(x)
    u = (ax - 0.011 + 0.003 * S[S_BROW_FROWN]) / 0.045  # 0 at the inner end, 1 at the outer
    if u < 0.0 or u > 1.0:
        return 0.0
    yc = (0.0265 + 0.0065 * math.sin(math.pi * min(u * 1.25, 1.0)) + 0.007 * S[S_BROW_UP]
          - 0.0045 * S[S_BROW_FROWN] * (1.0 - u))
    half = 0.0042 * (1.0 - 0.6 * u)
    cover = 1.0 - _smooth(half * 0.6, half, abs(y - yc))
    cover *= _smooth(0.0, 0.08, u) * (1.0 - _smooth(0.9, 1.0, u))
    # Individual hairs: fine streaks slanted outward.
    streak = noise(ax * 2600.0 + y * 900.0, y * 240.0, z * 240.0)
    return cover * (0.55 + 0.45 * streak)


@njit(**_JIT)
def albedo(P, S, mat, x, y, z):
    """Base colour (r, g, b) in [0, 1] of material ``mat`` at a surface point."""
    if mat == MAT_SKIN:
        n1 = noise(x * 70.0 + 3.1, y * 70.0, z * 70.0)
        n2 = noise(x * 900.0, y * 900.0 + 7.7, z * 900.0)
        v = 0.94 + 0.10 * n1 + 0.05 * n2
        r, g, b = 0.86 * v, 0.64 * v, 0.53 * v
        # Warmth on cheeks, nose tip and ears.
        for i in (CHEEK_L, CHEEK_R, NOSE_TIP):
            dx = x - P[i, 0]
            dy = y - P[i, 1]
            dz = z - P[i, 2]
            w = math.exp(-(dx * dx + dy * dy + dz * dz) / (0.022 * 0.022)) * 0.6
            r += 0.03 * w
            g -= 0.06 * w
            b -= 0.04 * w
        # Lips by closeness to the lip ellipsoids (in mouth space).
        my = _mouth_y(S, x, y)
        dl = S[S_BENDK] * min(_ell(P, UPPER_LIP, x, my, z), _ell(P, LOWER_LIP, x, my, z))
        wl = 1.0 - _smooth(0.0006, 0.0026, dl)
        wl *= 1.0 - _smooth(0.022, 0.03, abs(x))
        r = r + (0.70 - r) * wl
        g = g + (0.34 - g) * wl
        b = b + (0.34 - b) * wl
        # Brows.
        wb = _brow(S, x, y, z)
        r = r + (0.20 - r) * wb
        g = g + (0.13 - g) * wb
        b = b + (0.08 - b) * wb
        # Forehead lines when the brows go up, a crease between them when they frown.
        if z > 0.04 and abs(x) < 0.045:
            lines = 0.0
            for k in range(3):
                yk = 0.052 + 0.008 * k + 0.0015 * math.sin(x * 90.0 + k)
                lines += math.exp(-((y - yk) / 0.0009) ** 2)
            shade = 1.0 - 0.10 * S[S_BROW_UP] * lines
            fr = math.exp(-((abs(x) - 0.005) / 0.0012) ** 2) * _smooth(0.022, 0.03, y) * (
                1.0 - _smooth(0.045, 0.052, y))
            shade *= 1.0 - 0.18 * S[S_BROW_FROWN] * fr
            r *= shade
            g *= shade
            b *= shade
        # Nostril openings under the nose tip.
        for i in (NOSTRIL_L, NOSTRIL_R):
            dx = x - (P[i, 0] * 0.75)
            dy = y - (P[i, 1] - 0.005)
            dz = z - P[i, 2]
            w = 1.0 - _smooth(0.0025, 0.004, math.sqrt(dx * dx + 2.0 * dy * dy + dz * dz))
            r *= 1.0 - 0.75 * w
            g *= 1.0 - 0.8 * w
            b *= 1.0 - 0.8 * w
        # Inner ear: darker and pinker in the cup.
        for i in (EARCUP_L, EARCUP_R):
            w = 1.0 - _smooth(0.0, 0.004, _ell(P, i, x, y, z))
            r *= 1.0 - 0.25 * w
            g *= 1.0 - 0.4 * w
            b *= 1.0 - 0.35 * w
        return r, g, b
    if mat == MAT_MOUTH:
        depth = min(max((0.09 - z) / 0.04, 0.0), 1.0)
        v = 1.0 - 0.8 * depth
        return 0.42 * v, 0.10 * v, 0.11 * v
    if mat == MAT_EYE:
        row = EYE_L if x > 0.0 else EYE_R
        qx = x - P[row, 0]
        qy = y - P[row, 1]
        qz = z - P[row, 2]
        r0 = math.sqrt(qx * qx + qy * qy + qz * qz) + 1e-12
        c = (qx * S[S_GAZE] + qy * S[S_GAZE + 1] + qz * S[S_GAZE + 2]) / r0
        if c > 0.986:  # pupil
            return 0.03, 0.03, 0.035
        if c > 0.880:  # iris: radial streaks, a dark limbal ring
            ang = math.atan2(qy, qx)
            streak = noise(ang * 9.0 + 20.0, c * 60.0, 1.0 + 10.0 * row)
            t = (0.986 - c) / (0.986 - 0.880)
            v = (0.65 + 0.5 * streak) * (1.0 - 0.55 * _smooth(0.75, 1.0, t))
            return 0.34 * v, 0.42 * v, 0.50 * v
        v = 0.92 - 0.12 * _smooth(0.6, 0.2, c)
        spots = noise(qx * 1500.0, qy * 1500.0, qz * 1500.0)
        return v, (0.86 - 0.08 * spots) * v, (0.84 - 0.08 * spots) * v
    if mat == MAT_LID:
        row = EYE_L if x > 0.0 else EYE_R
        lid0 = S_LID if x > 0.0 else S_LID + 6
        qx = x - P[row, 0]
        qy = y - P[row, 1]
        qz = z - P[row, 2]
        up = -(S[lid0] * qx + S[lid0 + 1] * qy + S[lid0 + 2] * qz)
        low = -(S[lid0 + 3] * qx + S[lid0 + 4] * qy + S[lid0 + 5] * qz)
        edge = min(abs(up), abs(low))
        lash = 1.0 - _smooth(0.0006, 0.0014, edge)
        if abs(up) > abs(low):
            lash *= 0.5  # the lower lashes are sparser
        n1 = noise(x * 900.0, y * 900.0, z * 900.0)
        v = 0.92 + 0.06 * n1
        r, g, b = 0.80 * v, 0.58 * v, 0.50 * v
        return r + (0.06 - r) * lash, g + (0.04 - g) * lash, b + (0.035 - b) * lash
    if mat == MAT_TEETH:
        f = x / 0.0052 + 0.5
        gap = abs(f - math.floor(f) - 0.5)
        v = 0.93 - 0.35 * (1.0 - _smooth(0.03, 0.08, gap))
        return v, 0.95 * v, 0.86 * v
    if mat == MAT_TONGUE:
        n1 = noise(x * 600.0, y * 600.0, z * 600.0)
        return 0.66 + 0.06 * n1, 0.30 + 0.04 * n1, 0.33
    if mat == MAT_HAIR:
        # Combed back from a parting: a strand keeps its angle about the z axis, with waves,
        # clumps and single hairs.
        ang = math.atan2(x - 0.012, y + 0.03)
        wave = noise(x * 50.0, y * 50.0, z * 50.0)
        s = 0.5 + 0.5 * math.sin(ang * 150.0 + 6.0 * wave)
        clump = noise(ang * 25.0, z * 40.0, 3.0)
        fine = noise(ang * 600.0, z * 20.0, 0.5)
        v = 0.35 + 0.35 * s * s + 0.2 * clump + 0.25 * fine
        sheen = 0.25 * math.exp(-((y - 0.085) / 0.018) ** 2)
        return 0.24 * v + sheen * 0.5, 0.15 * v + sheen * 0.35, 0.09 * v + sheen * 0.25
    if mat == MAT_SHIRT:
        rib = 0.5 + 0.5 * math.sin(x * 1100.0)
        n1 = noise(x * 300.0, y * 300.0, z * 300.0)
        v = 0.80 + 0.12 * rib + 0.12 * n1
        return 0.20 * v, 0.33 * v, 0.46 * v
    return 0.0, 0.0, 0.0


# ----------------------------------------------------------------------------------------------
# Shading and tracing


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
def _box(ox, oy, oz, dx, dy, dz, bx):
    t0, t1 = _slab(ox, dx, bx[0], bx[3], 0.0, 1e30)
    t0, t1 = _slab(oy, dy, bx[1], bx[4], t0, t1)
    t0, t1 = _slab(oz, dz, bx[2], bx[5], t0, t1)
    return t0, t1


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
def _t_far(c2h):
    """A z-depth beyond every bounding volume for this camera (an upper bound suffices)."""
    return math.sqrt(c2h[0, 3] ** 2 + c2h[1, 3] ** 2 + c2h[2, 3] ** 2) + SCENE_RADIUS


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(parallel=True, **_JIT)
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


@njit(**_JIT)
def sdf_points(P, S, pts, out):
    """sdf at many points: pts [N, 3] float64 -> out [N]."""
    for i in range(pts.shape[0]):
        out[i] = sdf(P, S, pts[i, 0], pts[i, 1], pts[i, 2])


@njit(**_JIT)
def material_points(P, S, pts, out):
    """material at many points: pts [N, 3] float64 -> out [N] int64."""
    for i in range(pts.shape[0]):
        out[i] = material(P, S, pts[i, 0], pts[i, 1], pts[i, 2])


@njit(**_JIT)
def albedo_points(P, S, mats, pts, out):
    """albedo of materials mats [N] at pts [N, 3] -> out [N, 3]."""
    for i in range(pts.shape[0]):
        r, g, b = albedo(P, S, mats[i], pts[i, 0], pts[i, 1], pts[i, 2])
        out[i, 0] = r
        out[i, 1] = g
        out[i, 2] = b
