"""How a reprojected captured frame and the field's render become one tile: the source's weight
(visibility x mask x the angle between the rays, feathered at its edge) and a low-frequency
colour transfer that matches the field's fill to the capture. Pure numpy / OpenCV."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AnchorConfig:
    ztol: float = 0.04
    """relative soft z-test tolerance against the source's proxy depth (fades out at 2 ztol): a
    learned field's depth is noisy by centimetres (d9 after 1,200 steps, views 12 degrees apart:
    66 % of the head passed at 0.02, 85 % at 0.05), and a nose hides a cheek by more"""
    angle_full: float = 15.0
    """degrees between the source's and the target's rays up to which the source has full weight"""
    angle_zero: float = 45.0
    """... and beyond which it has none: a frame seen far off its own view stretches and blurs,
    though on a real head still less than a soft field blurs"""
    matte_angle_full: float = 5.0
    """degrees between the rays up to which the frame's matte draws the tile's alpha outright ..."""
    matte_angle_zero: float = 15.0
    """... and beyond which the field's alpha stays: an outline moves with the proxy's error times
    the angle, and a matte reprojected from 20 degrees away cuts cheeks and lifts hair into blobs
    (d9), where a few pixels of colour misplaced inside the head do not show"""
    feather: float = 3.0 / 256
    """width of the weight's ramp at the edge of what the source sees, as a share of the tile's
    width (3 px at 256): no seam where the field takes over"""
    colour_sigma: float = 10.0 / 256
    """the colour transfer's low-pass scale, as a share of the tile's width: only shading and
    white balance move, never detail"""
    shell: float = 8.0 / 256
    """how far beyond the field's silhouette the frame's matte may draw the head (hair the field
    cut, a smoother outline), as a share of the tile's width: the proxy there is the depth of the
    nearest point of the silhouette"""

    def __post_init__(self):
        if not 0 < self.ztol < 1:
            raise ValueError(f"ztol must be in (0, 1), got {self.ztol}")
        if not 0 <= self.angle_full < self.angle_zero <= 90:
            raise ValueError(f"need 0 <= angle_full < angle_zero <= 90, got {self.angle_full}, {self.angle_zero}")
        if not 0 <= self.matte_angle_full < self.matte_angle_zero <= 90:
            raise ValueError(f"need 0 <= matte_angle_full < matte_angle_zero <= 90, got {self.matte_angle_full}, "
                             f"{self.matte_angle_zero}")
        if self.feather < 0 or self.colour_sigma <= 0 or self.shell < 0:
            raise ValueError("feather and shell must be >= 0 and colour_sigma > 0")


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


def nearest_inside(inside: np.ndarray, band_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) int [H, W]: for each pixel within ``band_px`` of the True pixels of
    ``inside`` [H, W] the nearest True pixel (itself inside), and -1 beyond the band or when
    none is True."""
    h, w = inside.shape
    if not inside.any():
        return np.full((h, w), -1), np.full((h, w), -1)
    dist, lab = cv2.distanceTransformWithLabels((~inside).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(inside)
    idx = np.zeros(lab.max() + 1, np.int64)
    idx[lab[inside]] = np.arange(len(ys))  # each inside pixel carries its own label: label -> its (y, x)
    near = idx[lab]
    ok = dist <= band_px
    return np.where(ok, ys[near], -1), np.where(ok, xs[near], -1)


def compose(field_rgb: np.ndarray, field_alpha: np.ndarray, source_rgb: np.ndarray, vis: np.ndarray,
            vis_matte: np.ndarray, mask: np.ndarray, near: tuple[np.ndarray, np.ndarray],
            cfg: AnchorConfig) -> tuple[np.ndarray, np.ndarray]:
    """(premultiplied colour float32 [H, W, 3], alpha float32 [H, W]) of a tile from the field's
    render and a source reprojected into it: ``vis`` (soft z-test x the angle weight for colour),
    ``vis_matte`` (the same with the matte's narrower angle weight) and ``mask`` (the frame's
    matte at the point) from ``kernels.reproject``. Alpha is the frame's matte where the frame
    sees the point from close by (feathered into the field's alpha); colour the frame's where its
    matte has the person, the colour-matched field's elsewhere (the field's colour carried
    outwards from its silhouette over the shell, where ``near``, from ``nearest_inside``, says)."""
    h, w = field_alpha.shape
    a = field_alpha[..., None]
    straight = np.where(a > 1e-4, field_rgb / np.maximum(a, 1e-4), 0.0).astype(np.float32)
    ny, nx = near
    out_of = (field_alpha <= 1e-4) & (ny >= 0)
    straight[out_of] = straight[ny[out_of], nx[out_of]]
    feather = cfg.feather * w
    wa = feathered(vis_matte, feather)
    wc = feathered(vis * mask, feather)
    fill = colour_transfer(straight, source_rgb, wc, cfg.colour_sigma * w)
    colour = wc[..., None] * source_rgb + (1 - wc[..., None]) * fill
    alpha = np.clip(wa * mask + (1 - wa) * field_alpha, 0.0, 1.0).astype(np.float32)
    return (np.clip(colour, 0, 1) * alpha[..., None]).astype(np.float32), alpha
