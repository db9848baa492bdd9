"""Slow numpy twin of bake/synthetic/ (sdf.py, albedo.py and kernels.py), written for clarity:
tests check the kernels against it.

Same head, same formulas, but vectorised over points and with none of the kernels' speed-ups
(no bounding-sphere skipping, no groups, no cone pre-pass, no over-relaxation), so agreement
also proves those speed-ups exact. Shapes: points [N, 3] float64 in the head frame.
"""

from __future__ import annotations

import numpy as np

from bake.synthetic import kernels as K
from bake.synthetic import sdf as SH
from bake.synthetic.head import (
    BROW_RIDGE, CAVITY, CHEEK_L, CHEEK_R, CHIN, CORNER_L, CORNER_R, CRANIUM, EAR_L, EAR_R,
    EARCUP_L, EARCUP_R, EYE_L, EYE_R, FACE, HAIR, JAW, LOWER_LIP, NECK, NOSE_BRIDGE, NOSE_TIP,
    NOSTRIL_L, NOSTRIL_R, S_BEND, S_BEND_X, S_BENDK, S_BROW_FROWN, S_BROW_UP, S_GAZE, S_HAIR,
    S_LID, S_LIGHT, S_RLID, SOCKET_L, SOCKET_R, TEETH_LOW, TEETH_UP, TONGUE, TORSO, UPPER_LIP,
)


def ell(P: np.ndarray, i: int, p: np.ndarray) -> np.ndarray:
    """Ellipsoid distance k0 (k0 - 1) / k1 at p [N, 3] -> [N], from centre, rotation, radii."""
    r = P[i, 12:15]
    world_to_local = P[i, 3:12].reshape(3, 3) * r[:, None]  # undo the packed 1/r scaling
    q = (p - P[i, 0:3]) @ world_to_local.T
    k0 = np.linalg.norm(q / r, axis=-1)
    k1 = np.linalg.norm(q / (r * r), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = k0 * (k0 - 1.0) / k1
    return np.where(k1 < 1e-12, -r.min(), d)


def smin(a, b, k):
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def smax(a, b, k):
    return -smin(-a, -b, k)


def mouth(S: np.ndarray, p: np.ndarray) -> np.ndarray:
    xc = np.clip(p[:, 0], -S[S_BEND_X], S[S_BEND_X])
    return np.stack([p[:, 0], p[:, 1] - S[S_BEND] * xc * xc, p[:, 2]], axis=-1)


def hair(P, S, p):
    h0, s, u, x0, inv = S[S_HAIR:S_HAIR + 5]
    cut = h0 + s * p[:, 2] + u * np.maximum(np.abs(p[:, 0]) - x0, 0.0) - p[:, 1]
    return np.maximum(ell(P, HAIR, p), cut * inv)


def skin_open(P, S, p):
    d = ell(P, CRANIUM, p)
    for i, k in ((FACE, SH.K_FACE), (JAW, SH.K_JAW), (CHIN, SH.K_CHIN), (CHEEK_L, SH.K_CHEEK),
                 (CHEEK_R, SH.K_CHEEK), (BROW_RIDGE, SH.K_RIDGE), (NOSE_BRIDGE, SH.K_BRIDGE),
                 (NOSE_TIP, SH.K_TIP), (NOSTRIL_L, SH.K_NOSTRIL), (NOSTRIL_R, SH.K_NOSTRIL)):
        d = smin(d, ell(P, i, p), k)
    pm = mouth(S, p)
    d = smin(d, S[S_BENDK] * ell(P, UPPER_LIP, pm), SH.K_LIP)
    d = smin(d, S[S_BENDK] * ell(P, LOWER_LIP, pm), SH.K_LIP)
    d = smin(d, ell(P, CORNER_L, p), SH.K_CORNER)
    d = smin(d, ell(P, CORNER_R, p), SH.K_CORNER)
    d = smin(d, ell(P, EAR_L, p), SH.K_EAR)
    d = smax(d, -ell(P, EARCUP_L, p), SH.K_EARCUP)
    d = smin(d, ell(P, EAR_R, p), SH.K_EAR)
    d = smax(d, -ell(P, EARCUP_R, p), SH.K_EARCUP)
    d = smin(d, ell(P, NECK, p), SH.K_NECK)
    d = smax(d, -ell(P, SOCKET_L, p), SH.K_SOCKET)
    d = smax(d, -ell(P, SOCKET_R, p), SH.K_SOCKET)
    return d


def components(P, S, p) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """(skin before the mouth cut, mouth cut term, {material: distance}) at p [N, 3]."""
    skin0 = skin_open(P, S, p)
    cav = -S[S_BENDK] * ell(P, CAVITY, mouth(S, p))
    parts = {SH.MAT_SKIN: smax(skin0, cav, SH.K_CAVITY)}
    balls, lids = [], []
    for e, row in enumerate((EYE_L, EYE_R)):
        q = p - P[row, 0:3]
        r = np.linalg.norm(q, axis=-1)
        n_up = S[S_LID + 6 * e: S_LID + 6 * e + 3]
        n_low = S[S_LID + 6 * e + 3: S_LID + 6 * e + 6]
        balls.append(r - P[row, 12])
        lids.append(np.minimum(np.maximum(r - S[S_RLID], -(q @ n_up)),
                               np.maximum(r - S[S_RLID], -(q @ n_low))))
    parts[SH.MAT_EYE] = np.minimum(*balls)
    parts[SH.MAT_LID] = np.minimum(*lids)
    parts[SH.MAT_TEETH] = np.minimum(ell(P, TEETH_UP, p), ell(P, TEETH_LOW, p))
    parts[SH.MAT_TONGUE] = ell(P, TONGUE, p)
    parts[SH.MAT_HAIR] = hair(P, S, p)
    parts[SH.MAT_SHIRT] = ell(P, TORSO, p)
    return skin0, cav, parts


def sdf(P, S, p):
    """Signed distance [N] at p [N, 3]: the minimum over all components."""
    return np.min(np.stack(list(components(P, S, p)[2].values())), axis=0)


def material(P, S, p):
    """Material id [N] at p [N, 3] (sdf.MAT_*), first-minimum order as in the kernel."""
    skin0, cav, parts = components(P, S, p)
    order = [SH.MAT_SKIN, SH.MAT_EYE, SH.MAT_LID, SH.MAT_TEETH, SH.MAT_TONGUE, SH.MAT_HAIR, SH.MAT_SHIRT]
    stack = np.stack([parts[m] for m in order])
    mat = np.asarray(order)[np.argmin(stack, axis=0)]
    return np.where((mat == SH.MAT_SKIN) & (cav > skin0 - 2e-4), SH.MAT_MOUTH, mat)


def _hash(ix, iy, iz):
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF) / 16777216.0


def noise(x, y, z):
    f = [np.floor(np.asarray(c, dtype=np.float64)) for c in (x, y, z)]
    i = [a.astype(np.int64) for a in f]
    t = [(np.asarray(c) - a) for c, a in zip((x, y, z), f)]
    t = [a * a * (3.0 - 2.0 * a) for a in t]
    c = {(a, b, e): _hash(i[0] + a, i[1] + b, i[2] + e) for a in (0, 1) for b in (0, 1) for e in (0, 1)}
    lerp = lambda a, b, s: a + (b - a) * s  # noqa: E731
    f00 = lerp(c[0, 0, 0], c[1, 0, 0], t[0])
    f10 = lerp(c[0, 1, 0], c[1, 1, 0], t[0])
    f01 = lerp(c[0, 0, 1], c[1, 0, 1], t[0])
    f11 = lerp(c[0, 1, 1], c[1, 1, 1], t[0])
    return lerp(lerp(f00, f10, t[1]), lerp(f01, f11, t[1]), t[2])


def smooth(e0, e1, v):
    t = np.clip((v - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def brow(S, p):
    x, y, z = p.T
    ax = np.abs(x)
    u = (ax - 0.011 + 0.003 * S[S_BROW_FROWN]) / 0.045
    yc = (0.0265 + 0.0065 * np.sin(np.pi * np.minimum(u * 1.25, 1.0)) + 0.007 * S[S_BROW_UP]
          - 0.0045 * S[S_BROW_FROWN] * (1.0 - u))
    half = 0.0042 * (1.0 - 0.6 * u)
    cover = 1.0 - smooth(half * 0.6, half, np.abs(y - yc))
    cover = cover * smooth(0.0, 0.08, u) * (1.0 - smooth(0.9, 1.0, u))
    streak = noise(ax * 2600.0 + y * 900.0, y * 240.0, z * 240.0)
    inside = (z >= 0.035) & (y >= 0.0) & (y <= 0.07) & (u >= 0.0) & (u <= 1.0)
    return np.where(inside, cover * (0.55 + 0.45 * streak), 0.0)


def albedo(P, S, mat, p):
    """Base colour [N, 3] of materials mat [N] at surface points p [N, 3]."""
    x, y, z = p.T
    out = np.zeros((len(p), 3))

    # skin
    v = 0.94 + 0.10 * noise(x * 70.0 + 3.1, y * 70.0, z * 70.0) + 0.05 * noise(x * 900.0, y * 900.0 + 7.7, z * 900.0)
    c = np.stack([0.86 * v, 0.64 * v, 0.53 * v], axis=-1)
    for i in (CHEEK_L, CHEEK_R, NOSE_TIP):
        w = np.exp(-np.sum((p - P[i, 0:3]) ** 2, axis=-1) / 0.022 ** 2) * 0.6
        c += np.stack([0.03 * w, -0.06 * w, -0.04 * w], axis=-1)
    pm = mouth(S, p)
    dl = S[S_BENDK] * np.minimum(ell(P, UPPER_LIP, pm), ell(P, LOWER_LIP, pm))
    wl = (1.0 - smooth(0.0006, 0.0026, dl)) * (1.0 - smooth(0.022, 0.03, np.abs(x)))
    c += (np.array([0.70, 0.34, 0.34]) - c) * wl[:, None]
    wb = brow(S, p)
    c += (np.array([0.20, 0.13, 0.08]) - c) * wb[:, None]
    lines = sum(np.exp(-((y - (0.052 + 0.008 * k + 0.0015 * np.sin(x * 90.0 + k))) / 0.0009) ** 2)
                for k in range(3))
    fr = (np.exp(-((np.abs(x) - 0.005) / 0.0012) ** 2) * smooth(0.022, 0.03, y)
          * (1.0 - smooth(0.045, 0.052, y)))
    shade = (1.0 - 0.10 * S[S_BROW_UP] * lines) * (1.0 - 0.18 * S[S_BROW_FROWN] * fr)
    c *= np.where((z > 0.04) & (np.abs(x) < 0.045), shade, 1.0)[:, None]
    for i in (NOSTRIL_L, NOSTRIL_R):
        dx, dy, dz = x - P[i, 0] * 0.75, y - (P[i, 1] - 0.005), z - P[i, 2]
        w = 1.0 - smooth(0.0025, 0.004, np.sqrt(dx * dx + 2.0 * dy * dy + dz * dz))
        c *= np.stack([1.0 - 0.75 * w, 1.0 - 0.8 * w, 1.0 - 0.8 * w], axis=-1)
    for i in (EARCUP_L, EARCUP_R):
        w = 1.0 - smooth(0.0, 0.004, ell(P, i, p))
        c *= np.stack([1.0 - 0.25 * w, 1.0 - 0.4 * w, 1.0 - 0.35 * w], axis=-1)
    out = np.where((mat == SH.MAT_SKIN)[:, None], c, out)

    # mouth interior
    v = 1.0 - 0.8 * np.clip((0.09 - z) / 0.04, 0.0, 1.0)
    out = np.where((mat == SH.MAT_MOUTH)[:, None], np.stack([0.42 * v, 0.10 * v, 0.11 * v], -1), out)

    # eyes
    row = np.where(x > 0.0, EYE_L, EYE_R)
    q = p - P[row, 0:3]
    r0 = np.linalg.norm(q, axis=-1) + 1e-12
    cg = (q @ S[S_GAZE:S_GAZE + 3]) / r0
    ang = np.arctan2(q[:, 1], q[:, 0])
    streak = noise(ang * 9.0 + 20.0, cg * 60.0, 1.0 + 10.0 * row)
    t = (0.986 - cg) / (0.986 - 0.880)
    vi = (0.65 + 0.5 * streak) * (1.0 - 0.55 * smooth(0.75, 1.0, t))
    iris = np.stack([0.34 * vi, 0.42 * vi, 0.50 * vi], -1)
    vs = 0.92 - 0.12 * smooth(0.6, 0.2, cg)
    spots = noise(q[:, 0] * 1500.0, q[:, 1] * 1500.0, q[:, 2] * 1500.0)
    sclera = np.stack([vs, (0.86 - 0.08 * spots) * vs, (0.84 - 0.08 * spots) * vs], -1)
    eye = np.where((cg > 0.986)[:, None], np.array([0.03, 0.03, 0.035]),
                   np.where((cg > 0.880)[:, None], iris, sclera))
    out = np.where((mat == SH.MAT_EYE)[:, None], eye, out)

    # lids
    lid0 = np.where(x > 0.0, S_LID, S_LID + 6)
    n_up = S[lid0[:, None] + np.arange(3)]
    n_low = S[lid0[:, None] + 3 + np.arange(3)]
    up = -np.sum(n_up * q, axis=-1)
    low = -np.sum(n_low * q, axis=-1)
    lash = 1.0 - smooth(0.0006, 0.0014, np.minimum(np.abs(up), np.abs(low)))
    lash = np.where(np.abs(up) > np.abs(low), 0.5 * lash, lash)
    v = 0.92 + 0.06 * noise(x * 900.0, y * 900.0, z * 900.0)
    base = np.stack([0.80 * v, 0.58 * v, 0.50 * v], -1)
    lid = base + (np.array([0.06, 0.04, 0.035]) - base) * lash[:, None]
    out = np.where((mat == SH.MAT_LID)[:, None], lid, out)

    # teeth, tongue
    f = x / 0.0052 + 0.5
    v = 0.93 - 0.35 * (1.0 - smooth(0.03, 0.08, np.abs(f - np.floor(f) - 0.5)))
    out = np.where((mat == SH.MAT_TEETH)[:, None], np.stack([v, 0.95 * v, 0.86 * v], -1), out)
    n1 = noise(x * 600.0, y * 600.0, z * 600.0)
    tongue = np.stack([0.66 + 0.06 * n1, 0.30 + 0.04 * n1, np.full_like(n1, 0.33)], -1)
    out = np.where((mat == SH.MAT_TONGUE)[:, None], tongue, out)

    # hair
    ang = np.arctan2(x - 0.012, y + 0.03)
    s = 0.5 + 0.5 * np.sin(ang * 150.0 + 6.0 * noise(x * 50.0, y * 50.0, z * 50.0))
    v = (0.35 + 0.35 * s ** 2 + 0.2 * noise(ang * 25.0, z * 40.0, np.full_like(z, 3.0))
         + 0.25 * noise(ang * 600.0, z * 20.0, np.full_like(z, 0.5)))
    sheen = 0.25 * np.exp(-((y - 0.085) / 0.018) ** 2)
    h = np.stack([0.24 * v + sheen * 0.5, 0.15 * v + sheen * 0.35, 0.09 * v + sheen * 0.25], -1)
    out = np.where((mat == SH.MAT_HAIR)[:, None], h, out)

    # shirt
    v = 0.80 + 0.12 * (0.5 + 0.5 * np.sin(x * 1100.0)) + 0.12 * noise(x * 300.0, y * 300.0, z * 300.0)
    out = np.where((mat == SH.MAT_SHIRT)[:, None], np.stack([0.20 * v, 0.33 * v, 0.46 * v], -1), out)
    return out


def normal(P, S, p):
    """Unit gradient [N, 3] by the tetrahedron rule."""
    e = K.NORMAL_EPS
    taps = np.array([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], dtype=np.float64)
    n = sum(k[None, :] * sdf(P, S, p + e * k)[:, None] for k in taps)
    return n / (np.linalg.norm(n, axis=-1, keepdims=True) + 1e-30)


def shade(P, S, p):
    """Lit colour [N, 3] at surface points p [N, 3]."""
    n = normal(P, S, p)
    a = albedo(P, S, material(P, S, p), p)
    occ = K.AO_PROBE - sdf(P, S, p + n * K.AO_PROBE)
    ao = np.clip(1.0 - K.AO_GAIN * occ, 0.25, 1.0)
    key = np.maximum((n @ S[S_LIGHT:S_LIGHT + 3] + 0.25) / 1.25, 0.0)
    lum = ao * (0.38 + 0.12 * n[:, 1]) + 0.72 * key * (0.55 + 0.45 * ao)
    return np.minimum(a * lum[:, None], 1.0)


def render(P, S, origins, dirs, foot, max_steps: int = 400):
    """Plain sphere tracing of rays origins/dirs [N, 3] (t = z-depth) from t = 0, to the same
    hit tolerance as the kernel (no cone pre-pass, no secant steps, no bounding volumes).

    Returns (rgb [N, 3] premultiplied, alpha [N], depth [N]) like kernels.render_into.
    """
    n = len(origins)
    inv_len = 1.0 / np.linalg.norm(dirs, axis=-1)
    t = np.zeros(n)
    best = np.full(n, 1e30)
    tbest = np.zeros(n)
    hit = np.zeros(n, bool)
    live = np.ones(n, bool)
    t_prev = np.zeros(n)
    for _ in range(max_steps):
        if not live.any():
            break
        idx = np.nonzero(live)[0]
        d = sdf(P, S, origins[idx] + t[idx, None] * dirs[idx]) * inv_len[idx]
        px = t[idx] * foot
        eps = np.maximum(K.HIT_PIXELS * px, K.HIT_MIN * inv_len[idx])
        done = d < eps
        hit[idx[done]] = True
        # The ellipsoid distance is not a strict bound, so a step can land inside: bisect back
        # to the crossing between the last two samples.
        inside = idx[d < -eps]
        lo, hi = t_prev[inside], t[inside].copy()
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            out = sdf(P, S, origins[inside] + mid[:, None] * dirs[inside]) > 0
            lo, hi = np.where(out, mid, lo), np.where(out, hi, mid)
        t[inside] = 0.5 * (lo + hi)
        closer = ~done & (d < best[idx] * px)
        best[idx[closer]] = d[closer] / px[closer]
        tbest[idx[closer]] = t[idx[closer]]
        t_prev[idx] = t[idx]
        t[idx] += np.where(done, 0.0, d)
        live[idx] = ~done & (t[idx] < 2.0)
    cover = np.where(hit, 1.0, np.clip(0.5 - best, 0.0, None))
    tt = np.where(hit, t, np.where(cover > 0, tbest, 0.0))
    rgb = np.zeros((n, 3))
    on = cover > 0
    if on.any():
        rgb[on] = shade(P, S, origins[on] + tt[on, None] * dirs[on]) * cover[on, None]
    return rgb, cover, tt
