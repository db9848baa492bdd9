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


def lobe(d: np.ndarray, wrap: float = 0.0) -> np.ndarray:
    """SH coefficients [9] (its order-2 projection) of the key lobe k_w(n.d) around unit direction
    d: k_w(t) = max((t + w) / (1 + w), 0), the clamped cosine at w = 0 (``LAMBERT``), light that
    reaches past the terminator for w > 0 (skin scatters it)."""
    return wrapped_bands(wrap)[_BAND] * sh_basis(np.asarray(d, np.float64) / np.linalg.norm(d))


def wrapped_bands(wrap: float) -> np.ndarray:
    """Funk-Hecke eigenvalues [3] of k_w: 2 pi * integral of k_w(t) P_l(t) dt over [-1, 1]
    (Gauss-Legendre on [-w, 1], where k_w is a polynomial: exact)."""
    if wrap == 0.0:
        return np.asarray(LAMBERT)
    x, wt = np.polynomial.legendre.leggauss(8)
    t = -wrap + (x + 1.0) * (1.0 + wrap) / 2.0
    k = (t + wrap) / (1.0 + wrap)
    p = (np.ones_like(t), t, 1.5 * t * t - 0.5)
    return np.array([2.0 * math.pi * (1.0 + wrap) / 2.0 * float((wt * k * pl).sum()) for pl in p])


def key_shading(n: np.ndarray, d: np.ndarray, wrap: float) -> np.ndarray:
    """k_w(n.d) for unit normals [..., 3] -> [...] (the key lobe itself, not its projection)."""
    return np.maximum((np.asarray(n) @ np.asarray(d, np.float64) + wrap) / (1.0 + wrap), 0.0)


def ambient(sh: np.ndarray, key) -> np.ndarray:
    """The captured light without its key: sh - amount * lobe(d, wrap) [9] (what a relight keeps)."""
    yaw, pitch, amount, wrap = key
    return np.asarray(sh, np.float64) - amount * lobe(direction(yaw, pitch), wrap)


def shading(n: np.ndarray, sh: np.ndarray, key, yaw: float | None = None, pitch: float | None = None,
            strength: float | None = None) -> np.ndarray:
    """Light reaching unit normals [..., 3]: the ambient's SH plus the key lobe itself (not its
    order-2 projection, which rings past the terminator), the key at (yaw, pitch) when given,
    else where the capture had it, of ``key_amount(sh, key, strength)``."""
    ky, kp, _, wrap = key
    d = direction(ky if yaw is None else yaw, kp if pitch is None else pitch)
    return sh_basis(n) @ ambient(sh, key) + key_amount(sh, key, strength) * key_shading(n, d, wrap)


def key_amount(sh: np.ndarray, key, strength: float | None = None) -> float:
    """The key's amount for a relight of ``strength``: the captured key's own when None, else
    strength x the captured mean light (sh[0] Y00). In units of the mean light, so that a capture
    in flat light (a weak key) can still be given a key: strength 1 is a key as bright as all the
    light the capture had on average."""
    return float(key[2]) if strength is None else float(strength) * float(sh[0]) * 0.282095


def relight_table(sh: np.ndarray, key, yaw: float, pitch: float, strength: float | None = None) -> np.ndarray:
    """float32 [65536]: the gain shading_new(n) / shading_captured(n) for every packed normal code
    (``pack_codes``), clamped to [0, GAIN_MAX]; captured shading is floored at FLOOR x its mean
    (sh[0] * Y00) so a side the capture left dark is not divided by noise."""
    u, v = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    n = oct_decode(np.stack([u, v], -1)).reshape(-1, 3)
    floor = max(FLOOR * float(sh[0]) * 0.282095, 1e-6)
    gain = np.maximum(shading(n, sh, key, yaw, pitch, strength), 0.0) / np.maximum(shading(n, sh, key), floor)
    return np.clip(gain, 0.0, GAIN_MAX).astype(np.float32)
