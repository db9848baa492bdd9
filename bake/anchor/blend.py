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
    extra_sources: int = 2
    """captured frames besides the keyframe's own that may lend a tile pixels: the usable frames
    seen from nearest the tile's view (angle plus ``expression_weight`` x the RMS expression
    difference); 0 = the keyframe's own frame alone"""
    source_pool: int = 48
    """frames spread evenly over the clip that, with the keyframes' own, may be extra sources:
    each costs one render of the field at its camera per bake"""
    expression_weight: float = 20.0
    """degrees of view per unit of RMS expression difference when the extra sources are chosen:
    small, since they lend the face only where their expression is the keyframe's; what they are
    for is the hair, ears and far cheek that a frame seen from nearer the view shows best"""
    expression_sigma: float = 0.05
    """RMS expression difference at which another frame's weight on the face falls to 1/e: its
    mouth and eyes are another moment's"""
    face_cone: tuple = (55.0, 75.0)
    """degrees from the head frame's +z, seen from just below the head centre, up to which a point
    is face (where expressions act: another frame lends it only with a like expression) and from
    which it is hair, ear or neck, which any frame may lend (a smoothstep between)"""
    stretch: tuple = (0.25, 0.6)
    """a source pixel magnified onto the tile (its surface seen more obliquely by the source than
    by the tile's view: the ratio of the footprints' foreshortening) weighs nothing below
    ``stretch[0]`` and fully from ``stretch[1]``: a cheek seen edge-on smears its few pixels,
    and the room's colour mixed into them, over the tile"""
    stretch_sigma: float = 4.0 / 256
    """the proxy is smoothed at this scale (a share of the tile's width) before the footprint is
    measured: a learned depth's blotches would make cracks of it, and foreshortening is a
    property of the surface at that scale, not of its bumps"""
    core: float = 1.5
    """source pixels within this many pixels of the frame's matte edge weigh less (a ramp): their
    colour is part room, and the field's colour-matched fill shows the edge better"""
    sharpness: float = 4.0
    """sources are averaged with their weights to this power: the best placed one dominates,
    so that two frames' small misregistrations do not blur into one another"""

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
        if (self.extra_sources < 0 or self.source_pool < 0 or self.expression_weight < 0 or self.expression_sigma <= 0
                or self.sharpness < 1):
            raise ValueError("need extra_sources >= 0, source_pool >= 0, expression_weight >= 0, expression_sigma > 0, "
                             "sharpness >= 1")
        if not 0 <= self.stretch[0] < self.stretch[1] or self.core < 0 or self.stretch_sigma < 0:
            raise ValueError(f"need 0 <= stretch[0] < stretch[1] and core >= 0, got {self.stretch}, {self.core}")
        if not 0 <= self.face_cone[0] < self.face_cone[1] <= 180:
            raise ValueError(f"face_cone must be two angles 0 <= a < b <= 180, got {self.face_cone}")


def angle_weight(cos: np.ndarray, full_deg: float, zero_deg: float) -> np.ndarray:
    """1 up to ``full_deg`` between the rays, 0 from ``zero_deg``, a smoothstep between.

    >>> angle_weight(np.cos(np.radians([0.0, 26.0, 50.0])), 12, 40).round(3).tolist()
    [1.0, 0.5, 0.0]
    """
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    t = np.clip((zero_deg - ang) / (zero_deg - full_deg), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def face_share(points: np.ndarray, cone: tuple) -> np.ndarray:
    """float32 [...] in [0, 1]: how much a head-frame point [..., 3] belongs to the face, where
    expressions move the surface: 1 within ``cone[0]`` degrees of +z seen from 3 cm below the
    head centre (eyes, brows, mouth, chin), 0 beyond ``cone[1]`` (hair on top, ears, the sides
    and back of the head, the neck), a smoothstep between.

    >>> face_share(np.array([[0, 0, 0.09], [0.08, 0.0, 0.0], [0, 0.12, 0.03]]), (55, 75)).round(2).tolist()
    [1.0, 0.0, 0.0]
    """
    v = points - np.array([0.0, -0.03, 0.0])
    cos = v[..., 2] / np.maximum(np.linalg.norm(v, axis=-1), 1e-9)
    return angle_weight(cos, cone[0], cone[1])


def surface_normals(points: np.ndarray, on: np.ndarray) -> np.ndarray:
    """float32 [H, W, 3]: unit normals of a depth map's surface from its head-frame points
    [H, W, 3] (central differences, one-sided at the edge of ``on`` [H, W], the pixels with a
    surface); NaN where a pixel has no neighbour on the surface across or down.

    >>> y, x = np.mgrid[0:3, 0:3].astype(float)
    >>> surface_normals(np.stack([x, y, 0.5 * x], -1), np.ones((3, 3), bool))[1, 1].astype(float).round(3).tolist()
    [-0.447, 0.0, 0.894]
    """
    p = np.where(on[..., None], points, np.nan).astype(np.float32)

    def diff(axis):
        fwd = np.roll(p, -1, axis) - p
        bwd = p - np.roll(p, 1, axis)
        edge = [slice(None)] * 3
        edge[axis] = -1
        fwd[tuple(edge)] = np.nan
        edge[axis] = 0
        bwd[tuple(edge)] = np.nan
        both = 0.5 * (fwd + bwd)
        return np.where(np.isnan(both), np.where(np.isnan(fwd), bwd, fwd), both)

    n = np.cross(diff(1), diff(0))  # its sign does not matter to ``foreshortening``
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)


def foreshortening(points: np.ndarray, normals: np.ndarray, centre: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """float32 [H, W]: |n . (C - P)| / z for the surface points P [H, W, 3] with normals n seen by
    a camera at ``centre`` C looking along ``axis`` (unit, head frame), z the points' z-depth: a
    camera's pixels per unit of surface, up to f^2 / z^2 (cos of the angle to the normal x
    distance / z-depth). The ratio of two cameras' values is how much one magnifies the other's
    footprint beyond what distance and focal length account for."""
    to_c = centre - points
    z = -(to_c @ axis)
    return (np.abs((normals * to_c).sum(-1)) / np.maximum(z, 1e-9)).astype(np.float32)


def stretch_weight(ratio: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """float32 [H, W] in [0, 1]: 0 where the source's footprint of a tile pixel is foreshortened
    to less than ``lo`` of the tile's own (``ratio``, of two ``foreshortening``), 1 from ``hi``,
    a smoothstep between; 1 where the ratio is unknown (NaN: no normal).

    >>> stretch_weight(np.array([0.2, 0.425, 0.9, np.nan]), 0.25, 0.6).round(3).tolist()
    [0.0, 0.5, 1.0, 1.0]
    """
    t = np.clip((ratio - lo) / (hi - lo), 0.0, 1.0)
    return np.where(np.isfinite(t), t * t * (3 - 2 * t), 1.0).astype(np.float32)


def smooth_depth(depth: np.ndarray, sigma: float) -> np.ndarray:
    """float32 [H, W]: ``depth`` [H, W] (0 = no surface) low-passed at ``sigma`` pixels over its
    surface only (a normalised Gaussian: the background does not pull the rim away), 0 where it
    was 0."""
    if sigma <= 0:
        return depth.astype(np.float32)
    on = (depth > 0).astype(np.float32)
    k = int(2 * np.ceil(3 * sigma) + 1)
    num = cv2.GaussianBlur(depth.astype(np.float32) * on, (k, k), sigma)
    den = cv2.GaussianBlur(on, (k, k), sigma)
    return np.where(on > 0, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def core_weight(mask: np.ndarray, px: float) -> np.ndarray:
    """float32 [H, W]: a frame's matte ``mask`` [H, W] in [0, 1] ramped from 0 at its edge (the
    first pixel below 1/2) to 1 at ``px`` pixels inside: how pure a pixel's colour is of the room.

    >>> core_weight(np.pad(np.ones((5, 5)), 1), 2.0)[1:6, 3].tolist()
    [0.5, 1.0, 1.0, 1.0, 0.5]
    """
    if px <= 0:
        return (mask > 0.5).astype(np.float32)
    dist = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.clip(dist / px, 0.0, 1.0).astype(np.float32)


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
            cfg: AnchorConfig, matte: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(premultiplied colour float32 [H, W, 3], alpha float32 [H, W]) of a tile from the field's
    render and a source reprojected into it: ``vis`` (soft z-test x the angle weight for colour),
    ``vis_matte`` (the same with the matte's narrower angle weight) and ``mask`` (the frame's
    matte at the point) from ``kernels.reproject``. Alpha is the frame's matte where the frame
    sees the point from close by (feathered into the field's alpha); colour the frame's where its
    matte has the person, the colour-matched field's elsewhere (the field's colour carried
    outwards from its silhouette over the shell, where ``near``, from ``nearest_inside``, says).
    ``matte``: the matte that draws the alpha when it is not ``mask`` (the sources' colours
    blended from several frames, the outline from one)."""
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
    matte = mask if matte is None else matte
    alpha = np.clip(wa * matte + (1 - wa) * field_alpha, 0.0, 1.0).astype(np.float32)
    return (np.clip(colour, 0, 1) * alpha[..., None]).astype(np.float32), alpha
