"""How a reprojected captured frame and the field's render become one tile: the source's weight
(visibility x mask x the angle between the rays, feathered at its edge) and a low-frequency
colour transfer that matches the field's fill to the capture. Pure numpy / OpenCV."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AnchorConfig:
    ztol: float = 0.02
    """relative soft z-test tolerance against the source's proxy depth (fades out at 2 ztol)"""
    angle_full: float = 12.0
    """degrees between the source's and the target's rays up to which the source has full weight"""
    angle_zero: float = 40.0
    """... and beyond which it has none: a frame seen far off its own view stretches and blurs"""
    feather: float = 3.0 / 256
    """width of the weight's ramp at the edge of what the source sees, as a share of the tile's
    width (3 px at 256): no seam where the field takes over"""
    colour_sigma: float = 10.0 / 256
    """the colour transfer's low-pass scale, as a share of the tile's width: only shading and
    white balance move, never detail"""

    def __post_init__(self):
        if not 0 < self.ztol < 1:
            raise ValueError(f"ztol must be in (0, 1), got {self.ztol}")
        if not 0 <= self.angle_full < self.angle_zero <= 90:
            raise ValueError(f"need 0 <= angle_full < angle_zero <= 90, got {self.angle_full}, {self.angle_zero}")
        if self.feather < 0 or self.colour_sigma <= 0:
            raise ValueError("feather must be >= 0 and colour_sigma > 0")


def angle_weight(cos: np.ndarray, full_deg: float, zero_deg: float) -> np.ndarray:
    """1 up to ``full_deg`` between the rays, 0 from ``zero_deg``, a smoothstep between.

    >>> angle_weight(np.cos(np.radians([0.0, 26.0, 50.0])), 12, 40).round(3).tolist()
    [1.0, 0.5, 0.0]
    """
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    t = np.clip((zero_deg - ang) / (zero_deg - full_deg), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def feathered(weight: np.ndarray, px: float) -> np.ndarray:
    """``weight`` ramped down to 0 over ``px`` pixels towards the edge of where it is > 1/2 (and
    0 outside): the source hands over to the field gradually, not at a step."""
    if px <= 0:
        return weight
    inside = (weight > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    return (weight * np.clip(dist / px, 0.0, 1.0)).astype(np.float32)


def colour_transfer(field_rgb: np.ndarray, source_rgb: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """The field's straight colour [H, W, 3] moved towards the source's by their difference
    low-passed at ``sigma`` pixels (a weighted, normalised Gaussian), over pixels where the source
    counts (weight > 1/2); spread beyond them by the same filter, and unchanged far from any."""
    m = (weight > 0.5).astype(np.float32)
    if not m.any():
        return field_rgb
    diff = (source_rgb - field_rgb) * m[..., None]
    k = int(2 * np.ceil(3 * sigma) + 1)
    num = cv2.GaussianBlur(diff, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(m, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    # Where no source pixel lies within a few sigma the correction fades to none.
    shift = num / np.maximum(den, 1e-6)[..., None] * np.clip(den / 0.05, 0, 1)[..., None]
    return np.clip(field_rgb + shift, 0.0, 1.0).astype(np.float32)


def compose(field_rgb: np.ndarray, field_alpha: np.ndarray, source_rgb: np.ndarray, weight: np.ndarray,
            cfg: AnchorConfig) -> np.ndarray:
    """Premultiplied colour float32 [H, W, 3]: the source's straight colour where it counts
    (``weight``: visibility x mask x angle, feathered here), the colour-matched field elsewhere,
    both under the field's alpha."""
    h, w = field_alpha.shape
    a = field_alpha[..., None]
    straight = np.where(a > 1e-4, field_rgb / np.maximum(a, 1e-4), 0.0).astype(np.float32)
    wt = feathered(weight, cfg.feather * w)
    fill = colour_transfer(straight, source_rgb, wt, cfg.colour_sigma * w)
    out = wt[..., None] * source_rgb + (1 - wt[..., None]) * fill
    return (np.clip(out, 0, 1) * a).astype(np.float32)
