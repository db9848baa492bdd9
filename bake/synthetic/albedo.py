"""Numba kernels of the synthetic head's colour: procedural albedo per material (skin, lips,
brows, eyes, teeth, hair, shirt) from lattice noise, identical in the numpy twin ``naive.py``."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bake.synthetic.head import (
    CHEEK_L, CHEEK_R, EARCUP_L, EARCUP_R, EYE_L, EYE_R, LOWER_LIP, NOSE_TIP, NOSTRIL_L, NOSTRIL_R,
    S_BENDK, S_BROW_FROWN, S_BROW_UP, S_GAZE, S_LID, UPPER_LIP,
)
from bake.synthetic.sdf import (
    JIT, MAT_EYE, MAT_HAIR, MAT_LID, MAT_MOUTH, MAT_SHIRT, MAT_SKIN, MAT_TEETH, MAT_TONGUE, ell, mouth_y,
)

# ----------------------------------------------------------------------------------------------
# Procedural colour


@njit(**JIT)
def _hash(ix, iy, iz):
    """Integer lattice -> [0, 1); wrapping int64 arithmetic, identical in numpy."""
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF) / 16777216.0


@njit(**JIT)
def _fade(t):
    return t * t * (3.0 - 2.0 * t)


@njit(**JIT)
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


@njit(**JIT)
def _smooth(e0, e1, v):
    t = min(max((v - e0) / (e1 - e0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@njit(**JIT)
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


@njit(**JIT)
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
        my = mouth_y(S, x, y)
        dl = S[S_BENDK] * min(ell(P, UPPER_LIP, x, my, z), ell(P, LOWER_LIP, x, my, z))
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
            w = 1.0 - _smooth(0.0, 0.004, ell(P, i, x, y, z))
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
