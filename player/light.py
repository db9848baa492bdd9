"""The play-time light (format 1.2): what `--light` and the window's light drag set, and the gain
table the relight kernel reads. The math is ``formats.lighting``'s; this holds the state."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from formats.errors import UsageError
from formats.lighting import (FLOOR, GAIN_MAX, ambient, direction, key_amount, key_shading, oct_decode, sh_basis,
                              shading)


@dataclass(frozen=True)
class Light:
    """A key light in the head frame: it turns with the head."""

    yaw: float
    """degrees, > 0 towards the subject's left (as `bake render`'s yaw)"""
    pitch: float
    """degrees, > 0 above"""
    strength: float | None = None
    """the key's amount in units of the captured mean light (0 = the ambient only, 1 = a key as
    bright as the capture's average light); None = the captured key's own amount"""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.yaw) and math.isfinite(self.pitch)
                and (self.strength is None or math.isfinite(self.strength))):
            raise ValueError(f"light needs finite numbers, got {self}")
        if not -90 <= self.pitch <= 90:
            raise ValueError(f"light pitch must be in [-90, 90] degrees, got {self.pitch:g}")
        if self.strength is not None and not 0 <= self.strength <= 4:
            raise ValueError(f"light strength must be in [0, 4], got {self.strength:g}")

    def moved(self, dyaw: float, dpitch: float) -> "Light":
        """This light dragged by (dyaw, dpitch) degrees: yaw wraps, pitch stops at the poles."""
        yaw = (self.yaw + dyaw + 180.0) % 360.0 - 180.0
        return Light(yaw, min(max(self.pitch + dpitch, -90.0), 90.0), self.strength)


def parse_light(text: str) -> Light | None:
    """'YAW,PITCH[,STRENGTH]' -> Light; 'off' -> None; UsageError otherwise."""
    if text.strip().lower() == "off":
        return None
    try:
        values = [float(x) for x in text.split(",")]
        if len(values) not in (2, 3):
            raise ValueError
        return Light(*values)
    except ValueError as exc:
        why = f" ({exc})" if str(exc) else ""
        raise UsageError(f"--light {text!r}: expected YAW,PITCH[,STRENGTH] in degrees or 'off'{why}") from None


def unavailable(meta: dict) -> str | None:
    """Why a file cannot be relit (one line), or None when it can."""
    if "normal" in meta["tiles"]["kinds"] and "lighting" in meta:
        return None
    return "this file has no normals (format 1.2; rebake, or add them with `bake normals`), so it plays in its captured light"


class Relighter:
    """Gain tables for one file's captured light: ``table(light)`` -> float32 [65536] per packed
    normal code (``formats.lighting.relight_table``'s rule). The ambient and the captured shading
    per code are computed once; a new light costs one lobe over the 65536 normals (~2 ms), cheap
    enough for every drag event."""

    def __init__(self, lighting: dict):
        self.sh = np.asarray(lighting["sh"], np.float64)
        self.key = tuple(float(x) for x in lighting["key"])
        u, v = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
        self.normals = oct_decode(np.stack([u, v], -1)).reshape(-1, 3)
        self.ambient = sh_basis(self.normals) @ ambient(self.sh, self.key)
        floor = max(FLOOR * self.sh[0] * 0.282095, 1e-6)
        self.inv_cap = 1.0 / np.maximum(shading(self.normals, self.sh, self.key), floor)

    def table(self, light: Light) -> np.ndarray:
        amount = key_amount(self.sh, self.key, light.strength)
        new = self.ambient + amount * key_shading(self.normals, direction(light.yaw, light.pitch), self.key[3])
        return np.clip(np.maximum(new, 0.0) * self.inv_cap, 0.0, GAIN_MAX).astype(np.float32)

    def captured(self) -> Light:
        """The captured key light as a Light (where a light drag starts)."""
        return Light(self.key[0], min(max(self.key[1], -90.0), 90.0))
