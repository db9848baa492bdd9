"""Relighting math shared by the bake and the player (format 1.2): octahedral normal codes, the
order-2 real spherical harmonics of the captured light, the key light in them, and the quotient
relight table.

Conventions (docs/p4d-format.md, "Normals and lighting"): normals are unit vectors in the head
frame (+x towards the subject's left, +y up, +z out of the face); a direction given as (yaw,
pitch) in degrees is the one from the head centre towards the orbit camera at that yaw and pitch
(``formats.camera.orbit_position``), the sign conventions of ``bake render``. SH order: Y00,
Y1-1 (y), Y10 (z), Y11 (x), Y2-2 (xy), Y2-1 (yz), Y20 (3z^2-1), Y21 (xz), Y22 (x^2-y^2).
"""

from __future__ import annotations

import math

import numpy as np

N_SH = 9
# Funk-Hecke eigenvalues of the clamped cosine max(n.d, 0) per band: its SH coefficients are
# LAMBERT[l] * Y_lm(d) (Ramamoorthi and Hanrahan 2001).
LAMBERT = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)
_BAND = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2])
GAIN_MAX = 4.0  # the relight never brightens a pixel more than this (shadowed sides have little signal)
FLOOR = 0.1  # captured shading below this fraction of its mean counts as this (no division by ~0)


# ----------------------------------------------------------------------------- normal codes

def oct_encode(n: np.ndarray) -> np.ndarray:
    """Unit normals [..., 3] -> uint8 codes [..., 2] (octahedral map, round to nearest).

    >>> oct_encode(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])).tolist()
    [[128, 128], [255, 128]]
    """
    n = np.asarray(n, np.float64)
    s = np.abs(n).sum(-1, keepdims=True)
    p = n[..., :2] / np.where(s > 0, s, 1.0)
    back = n[..., 2:3] < 0  # lower hemisphere folds over the diagonals
    sign = np.where(p >= 0, 1.0, -1.0)
    p = np.where(back, (1.0 - np.abs(p[..., ::-1])) * sign, p)
    return np.clip(np.rint((p + 1.0) * 127.5), 0, 255).astype(np.uint8)


def oct_decode(code: np.ndarray) -> np.ndarray:
    """uint8 codes [..., 2] -> unit normals float64 [..., 3] (inverse of ``oct_encode``)."""
    f = np.asarray(code, np.float64) / 127.5 - 1.0
    x, y = f[..., 0], f[..., 1]
    z = 1.0 - np.abs(x) - np.abs(y)
    t = np.maximum(-z, 0.0)
    x = x - np.where(x >= 0, t, -t)
    y = y - np.where(y >= 0, t, -t)
    n = np.stack([x, y, z], -1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def pack_codes(code: np.ndarray) -> np.ndarray:
    """uint8 codes [..., 2] (a normal tile's first two channels) -> uint16 u * 256 + v [...]: the
    index into ``relight_table``."""
    code = np.asarray(code)
    return (code[..., 0].astype(np.uint16) << 8) | code[..., 1].astype(np.uint16)


# ---------------------------------------------------------------------------- SH and lights

def sh_basis(n: np.ndarray) -> np.ndarray:
    """Unit directions [..., 3] -> the 9 real SH basis values [..., 9] (order in the module doc)."""
    n = np.asarray(n, np.float64)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    return np.stack([np.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x,
                     1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
                     0.546274 * (x * x - y * y)], -1)


def direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(yaw, pitch) in degrees -> unit head-frame direction (yaw > 0 towards the subject's left,
    pitch > 0 above; ``formats.camera.orbit_position`` at radius 1).

    >>> np.round(direction(90, 0), 6).tolist(), np.round(direction(0, 90), 6).tolist()
    ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    """
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([math.cos(p) * math.sin(y), math.sin(p), math.cos(p) * math.cos(y)])


def angles(d: np.ndarray) -> tuple[float, float]:
    """Unit direction -> (yaw, pitch) in degrees; inverse of ``direction``."""
    d = np.asarray(d, np.float64) / np.linalg.norm(d)
    return float(math.degrees(math.atan2(d[0], d[2]))), float(math.degrees(math.asin(np.clip(d[1], -1, 1))))


def lobe(d: np.ndarray) -> np.ndarray:
    """SH coefficients [9] of the clamped cosine max(n.d, 0) around unit direction d."""
    return np.asarray(LAMBERT)[_BAND] * sh_basis(np.asarray(d, np.float64) / np.linalg.norm(d))


def key_light(sh: np.ndarray) -> tuple[float, float, float]:
    """The captured light's key: (yaw, pitch, amount) with ``amount * lobe(direction)`` the part of
    ``sh`` a single distant light explains best: direction from the linear band, amount by least
    squares over bands 1 and 2 (>= 0). What the relight moves; the rest (ambient) stays."""
    sh = np.asarray(sh, np.float64)
    lin = np.array([sh[3], sh[1], sh[2]])  # (x, y, z) from Y11, Y1-1, Y10
    if not np.linalg.norm(lin) > 1e-12:
        return 0.0, 0.0, 0.0
    d = lin / np.linalg.norm(lin)
    z = lobe(d)[1:]
    amount = max(float(sh[1:] @ z / (z @ z)), 0.0)
    return (*angles(d), amount)


def relit_sh(sh: np.ndarray, key: tuple[float, float, float], yaw: float, pitch: float,
             strength: float = 1.0) -> np.ndarray:
    """The captured ``sh`` [9] with its key light (``key`` = (yaw, pitch, amount)) moved to
    (yaw, pitch) and scaled by ``strength``: sh + amount * (strength * lobe(new) - lobe(key))."""
    ky, kp, amount = key
    return np.asarray(sh, np.float64) + amount * (strength * lobe(direction(yaw, pitch)) - lobe(direction(ky, kp)))


def relight_table(sh: np.ndarray, sh_new: np.ndarray) -> np.ndarray:
    """float32 [65536]: the gain SH_new(n) / SH_captured(n) for every packed normal code
    (``pack_codes``), clamped to [0, GAIN_MAX]; captured shading is floored at FLOOR x its mean
    (sh[0] * Y00) so a side the capture left dark is not divided by noise."""
    sh, sh_new = np.asarray(sh, np.float64), np.asarray(sh_new, np.float64)
    u, v = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    basis = sh_basis(oct_decode(np.stack([u, v], -1)))  # [256, 256, 9], row u, column v
    cap = basis @ sh
    floor = max(FLOOR * sh[0] * 0.282095, 1e-6)
    gain = np.maximum(basis @ sh_new, 0.0) / np.maximum(cap, floor)
    return np.clip(gain, 0.0, GAIN_MAX).astype(np.float32).reshape(-1)
