"""Numba kernels of the synthetic head's shape: the signed distance and the material at a point.

The head is a signed distance field built from the oriented ellipsoids of head.py (smooth unions
for the skin, subtractions for the eye sockets, ear cups and mouth, hard unions for eyes, lids,
teeth, hair and shirt). Speed comes from skipping every primitive whose bounding sphere proves it
cannot change the distance (exact, not an approximation). The colour of each material is
``albedo.py``; the tracer that finds surfaces is ``kernels.py``; ``naive.py`` is the slow numpy
twin that tests check all three against.
"""

from __future__ import annotations

import math

from numba import njit

from bake.synthetic.head import (
    BROW_RIDGE, CAVITY, CHEEK_L, CHEEK_R, CHIN, CORNER_L, CORNER_R, CRANIUM, EARCUP_L, EARCUP_R,
    EAR_L, EAR_R, EYE_L, EYE_R, FACE, G_EAR_L, G_EAR_R, G_MID, G_MOUTH, G_NOSE, HAIR, JAW,
    LOWER_LIP, NECK, NOSE_BRIDGE, NOSE_TIP, NOSTRIL_L, NOSTRIL_R, SOCKET_L, SOCKET_R, S_BEND,
    S_BENDK, S_BEND_X, S_GROUP, S_HAIR, S_LID, S_RLID, TEETH_LOW, TEETH_UP, TONGUE, TORSO,
    UPPER_LIP,
)

# Smooth-union radii (m): how wide each blend fillet is.
K_FACE, K_JAW, K_CHIN, K_CHEEK, K_RIDGE = 0.035, 0.030, 0.020, 0.025, 0.020
K_BRIDGE, K_TIP, K_NOSTRIL, K_LIP, K_CORNER = 0.012, 0.010, 0.006, 0.006, 0.010
K_EAR, K_EARCUP, K_NECK, K_SOCKET, K_CAVITY = 0.008, 0.003, 0.022, 0.004, 0.003

MAT_NONE, MAT_SKIN, MAT_MOUTH, MAT_EYE, MAT_LID, MAT_TEETH, MAT_TONGUE, MAT_HAIR, MAT_SHIRT = range(9)


# Every kernel of the synthetic head (sdf, albedo, kernels) compiles with these: cached across runs,
# and error_model="numpy" drops the zero-division checks from the inner loops.
JIT = dict(cache=True, fastmath=True, nogil=True, error_model="numpy")

# ----------------------------------------------------------------------------------------------
# Distance primitives


@njit(**JIT)
def ell(P, i, x, y, z):
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


@njit(**JIT)
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


@njit(**JIT)
def _prim_beyond(P, i, x, y, z, thr):
    """The primitive's bounding sphere proves ell(P, i, p) >= thr."""
    return _beyond(P[i, 0], P[i, 1], P[i, 2], P[i, 15], P[i, 19], x, y, z, thr)


@njit(**JIT)
def _group_beyond(S, g, x, y, z, thr):
    """Group g's bounding sphere proves every member's distance >= thr."""
    o = S_GROUP + 5 * g
    return _beyond(S[o], S[o + 1], S[o + 2], S[o + 3], S[o + 4], x, y, z, thr)


@njit(**JIT)
def _scaled_thr(thr, scale):
    """Threshold t' with (x >= t') => (x >= thr and scale * x >= thr), for 0 < scale <= 1."""
    return max(thr, thr / scale)


@njit(**JIT)
def _smin(a, b, k):
    """Polynomial smooth minimum; equals min(a, b) once |a - b| >= k."""
    h = max(k - abs(a - b), 0.0) / k
    return min(a, b) - h * h * k * 0.25


@njit(**JIT)
def _smax(a, b, k):
    return -_smin(-a, -b, k)


@njit(**JIT)
def _blend(P, i, d, x, y, z, k, scale):
    """smin(d, scale * ell_i, k), skipped when ell_i provably cannot reach into the fillet."""
    if _prim_beyond(P, i, x, y, z, _scaled_thr(d + k, scale)):
        return d
    return _smin(d, scale * ell(P, i, x, y, z), k)


@njit(**JIT)
def _carve(P, i, d, x, y, z, k, scale):
    """smax(d, -scale * ell_i, k), skipped when the carve provably cannot touch d."""
    if _prim_beyond(P, i, x, y, z, _scaled_thr(k - d, scale)):
        return d
    return _smax(d, -scale * ell(P, i, x, y, z), k)


@njit(**JIT)
def _hair(P, S, x, y, z):
    """Hair volume: an ellipsoid shell kept above a hairline surface (1-Lipschitz)."""
    cut = (S[S_HAIR] + S[S_HAIR + 1] * z + S[S_HAIR + 2] * max(abs(x) - S[S_HAIR + 3], 0.0) - y)
    return max(ell(P, HAIR, x, y, z), cut * S[S_HAIR + 4])


@njit(**JIT)
def mouth_y(S, x, y):
    """y in mouth space: bending it by b x^2 curves lips and slit up at the corners."""
    xc = min(max(x, -S[S_BEND_X]), S[S_BEND_X])
    return y - S[S_BEND] * xc * xc


@njit(**JIT)
def _skin_open(P, S, x, y, z):
    """Skin before the mouth slit is cut: head, face, nose, lips, ears, neck, eye sockets.

    Groups whose bounding sphere lies beyond the widest fillet are skipped whole: the result is
    the same number, only cheaper.
    """
    d = ell(P, CRANIUM, x, y, z)
    d = _smin(d, ell(P, FACE, x, y, z), K_FACE)
    d = _smin(d, ell(P, JAW, x, y, z), K_JAW)
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
        my = mouth_y(S, x, y)
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


@njit(**JIT)
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


@njit(**JIT)
def sdf(P, S, x, y, z):
    """Signed distance (m) of the whole head at a head-frame point (approximate, conservative)."""
    d = _skin_open(P, S, x, y, z)
    d = _carve(P, CAVITY, d, x, mouth_y(S, x, y), z, K_CAVITY, S[S_BENDK])
    d = _eye(P, S, EYE_L, S_LID, d, x, y, z)
    d = _eye(P, S, EYE_R, S_LID + 6, d, x, y, z)
    for i in (TEETH_UP, TEETH_LOW, TONGUE, TORSO):
        if not _prim_beyond(P, i, x, y, z, d):
            d = min(d, ell(P, i, x, y, z))
    if not _prim_beyond(P, HAIR, x, y, z, d):
        d = min(d, _hair(P, S, x, y, z))
    return d


@njit(**JIT)
def material(P, S, x, y, z):
    """Material id (MAT_*) of the component nearest to a point on (or near) the surface."""
    skin0 = _skin_open(P, S, x, y, z)
    cav = -S[S_BENDK] * ell(P, CAVITY, x, mouth_y(S, x, y), z)
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
            t = ell(P, i, x, y, z)
            if t < best:
                best, mat = t, MAT_TEETH
    if not _prim_beyond(P, TONGUE, x, y, z, best):
        t = ell(P, TONGUE, x, y, z)
        if t < best:
            best, mat = t, MAT_TONGUE
    if not _prim_beyond(P, HAIR, x, y, z, best):
        t = _hair(P, S, x, y, z)
        if t < best:
            best, mat = t, MAT_HAIR
    if not _prim_beyond(P, TORSO, x, y, z, best):
        t = ell(P, TORSO, x, y, z)
        if t < best:
            best, mat = t, MAT_SHIRT
    return mat
