"""Head + hair + neck mask: a person segmenter or GrabCut, cut to the head by a coarse 3-D head model.

Two ways, the same cut (``MaskConfig.method``):
- ``segmenter`` (default): the bundled selfie segmentation model (``bake.track.segment``) says
  where the person is (hair included, whatever its colour against the room); everything outside
  the allowed region below is cut (shoulders, clothes, the wall), and the largest blob holding
  the face is kept with its small holes filled (``person_head_mask``).
- ``grabcut``: GrabCut decides from colour alone (``head_mask``), at a working size of ``work``
  pixels; thin strands are opened away, the largest blob touching the face kept, small holes
  filled, and the result upsampled with a smooth edge.
The seeds and the cut, placed with the head pose so they turn with the head:
- sure foreground: the face's landmark hull (slightly eroded);
- probable foreground: an ellipse around the skull (hair) and a neck column below the chin;
- allowed region: a larger ellipse and a wider neck column; everything outside is sure background,
  which also cuts the neck off above the shoulders and keeps clothes out.
All sizes are in head-frame metres (``formats.camera`` conventions).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from bake.track.pose import project

MASK_METHODS = ("segmenter", "grabcut")


@dataclass(frozen=True)
class MaskConfig:
    work: int = 160
    """GrabCut working size in pixels (cost grows with its square)."""
    skull_centre: tuple = (0.0, 0.02, -0.005)
    """Centre of the hair ellipsoid in the head frame (m)."""
    skull_radii: tuple = (0.09, 0.125)
    """Probable-foreground ellipse half-axes (m, across and along the head's up axis): skull plus
    flat hair."""
    allowed_radii: tuple = (0.13, 0.17)
    """Nothing outside this ellipse (or the wide neck column) is head: big hair fits, a beige wall
    beside the ear and the shoulders don't."""
    neck_half_width: float = 0.05
    neck_allowed_half_width: float = 0.075
    neck_top: float = -0.04
    neck_bottom: float = -0.20
    """Neck column from ``neck_top`` down to ``neck_bottom`` (head-frame y, m); below is cut."""
    iterations: int = 2
    """GrabCut iterations (a third changed masks by < 0.2 % IoU on d9 and d14 and cost ~40 %)."""
    roi_margin: int = 8
    """Sure-background band (working pixels) kept around the probable region for GrabCut."""
    hair_radii: tuple = (0.20, 0.24)
    """Segmenter masks with the crop's colours: outside the allowed ellipse, person pixels of the
    hair's colour (``hair_like``) are kept out to this ellipse (m, across and along the head's up
    axis) and, below the chin, within ``hair_half_width`` of the head's axis down to
    ``shoulder_y``: a big bun and hair on the shoulders stay, a sweater's shoulders do not."""
    hair_half_width: float = 0.20
    shoulder_y: float = -0.25
    """Head-frame y (m) below which nothing is head, hair included."""
    hair_sigmas: float = 3.0
    """How far (robust sigmas of chroma, YCrCb Cr and Cb) a pixel may lie from the hair's colour,
    sampled where the head is surely hair (person, inside the skull ellipse, above the chin, away
    from the face, not skin). 0 = off: the allowed ellipse and neck column alone."""
    hair_luma_margin: float = 25.0
    """Luma levels a hair pixel may lie beyond the sampled hair's 5th-95th percentiles
    (highlights and shade)."""
    neck_skin_sigmas: float = 3.0
    """Segmenter masks: below the chin only skin is neck. A person pixel there is kept when its
    chroma (YCrCb Cr, Cb) lies within this many robust sigmas of the face's skin; shirts,
    collars and jackets, which the segmenter counts as person, do not. 0 = keep all."""
    method: str = "segmenter"
    """"segmenter" (the person segmentation model, cut to the head) or "grabcut" (colour only:
    black hair against a dark room goes to the room)."""
    vote_half_window_s: float = 0.07
    """Each mask is the majority of the masks within this many seconds of its frame, aligned on
    the head (``temporal_vote``): each frame is segmented afresh, and the edge flickers by pixels
    that no model can predict. 0 = off; at 30 frames/s the default votes over 5 frames."""

    def __post_init__(self) -> None:
        if self.method not in MASK_METHODS:
            raise ValueError(f"mask method must be one of {MASK_METHODS}, got {self.method!r}")
        if not 0 <= self.vote_half_window_s <= 1:
            raise ValueError(f"vote_half_window_s must be between 0 and 1 seconds, got {self.vote_half_window_s}")
        if not 16 <= self.work <= 2048:
            raise ValueError(f"work must be between 16 and 2048 pixels, got {self.work}")
        if self.hair_sigmas < 0 or self.hair_luma_margin < 0 or not self.shoulder_y < self.neck_top:
            raise ValueError("hair_sigmas >= 0, hair_luma_margin >= 0 and shoulder_y < neck_top, got "
                             f"{self.hair_sigmas}, {self.hair_luma_margin}, {self.shoulder_y}")
        if self.iterations < 1 or self.roi_margin < 0 or self.neck_skin_sigmas < 0:
            raise ValueError("iterations >= 1, roi_margin >= 0 and neck_skin_sigmas >= 0, got "
                             f"{self.iterations}, {self.roi_margin}, {self.neck_skin_sigmas}")
        if not self.neck_bottom < self.neck_top:
            raise ValueError(f"neck_bottom ({self.neck_bottom}) must lie below neck_top ({self.neck_top})")


def _head_ellipse(centre_h: np.ndarray, radii: tuple, pose: np.ndarray, k: np.ndarray):
    """cv2.ellipse box ((cx, cy), (w, h), angle) of a head-frame ellipsoid's image: half-axes
    ``radii`` (m) across and along the head's up axis, projected at the centre's depth and rolled
    with the head's image-space up direction (first order in size/depth)."""
    c_cam = pose[:3, :3] @ centre_h + pose[:3, 3]
    uv = project(np.stack([centre_h, centre_h + [0.0, 0.05, 0.0]]), pose, k)
    up = uv[1] - uv[0]
    angle = float(np.degrees(np.arctan2(up[0], -up[1])))  # 0 when the head is upright
    s = k[0, 0] / max(c_cam[2], 1e-6)
    return (float(uv[0, 0] - 0.5), float(uv[0, 1] - 0.5)), (2 * radii[0] * s, 2 * radii[1] * s), angle


def _neck_quad(half_w: float, top: float, bottom: float, pose: np.ndarray, k: np.ndarray) -> np.ndarray:
    pts = np.array([[-half_w, top, -0.02], [half_w, top, -0.02],
                    [half_w, bottom, -0.02], [-half_w, bottom, -0.02]])
    return project(pts, pose, k)


def seed_labels(landmarks: np.ndarray, pose: np.ndarray, k: np.ndarray, size: int,
                cfg: MaskConfig) -> np.ndarray:
    """GrabCut label image uint8 [w, w] (GC_BGD / GC_PR_BGD / GC_PR_FGD / GC_FGD) at the working
    size, from landmarks [478, 2] and pose [4, 4] in an output image of ``size`` pixels."""
    w = cfg.work
    s = w / size
    ks = k.copy()
    ks[:2] *= s  # intrinsics at the working size (edge-origin coordinates scale exactly)
    lab = np.full((w, w), cv2.GC_BGD, np.uint8)

    def to_px(p):  # edge-origin continuous -> integer pixel grid for drawing
        return np.round(np.asarray(p) - 0.5).astype(np.int32)

    centre = np.asarray(cfg.skull_centre, dtype=np.float64)
    cv2.ellipse(lab, _head_ellipse(centre, cfg.allowed_radii, pose, ks), cv2.GC_PR_BGD, -1)
    q = _neck_quad(cfg.neck_allowed_half_width, cfg.neck_top, cfg.neck_bottom, pose, ks)
    cv2.fillConvexPoly(lab, to_px(q), cv2.GC_PR_BGD)
    cv2.ellipse(lab, _head_ellipse(centre, cfg.skull_radii, pose, ks), cv2.GC_PR_FGD, -1)
    q = _neck_quad(cfg.neck_half_width, cfg.neck_top, cfg.neck_bottom + 0.03, pose, ks)
    cv2.fillConvexPoly(lab, to_px(q), cv2.GC_PR_FGD)
    hull = cv2.convexHull(to_px(landmarks[:468] * s).reshape(-1, 1, 2))
    face = np.zeros((w, w), np.uint8)
    cv2.fillConvexPoly(face, hull, 1)
    face = cv2.erode(face, np.ones((3, 3), np.uint8))
    lab[face > 0] = cv2.GC_FGD
    return lab


def _largest_with(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    n, cc = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if n <= 1:
        return mask
    counts = np.bincount(cc[seed > 0].ravel(), minlength=n)
    counts[0] = 0
    keep = int(np.argmax(counts)) if counts.max() > 0 else 0
    return cc == keep


def _fill_small_holes(mask: np.ndarray, seeded_fg: np.ndarray, max_frac: float) -> np.ndarray:
    """Fill background islands smaller than ``max_frac`` of the image that lie mostly in the
    seeded (probable) foreground (glints on hair or skin); enclosed background outside the head
    seeds (a picture frame beside the ear that GrabCut outlined) stays background."""
    inv = (~mask).astype(np.uint8)
    n, cc, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    h, w = mask.shape
    out = mask.copy()
    for c in range(1, n):
        x, y, bw, bh, area = stats[c]
        touches = x == 0 or y == 0 or x + bw == w or y + bh == h
        if not touches and area <= max_frac * h * w and seeded_fg[cc == c].mean() > 0.5:
            out[cc == c] = True
    return out


def head_shift(pose_from: np.ndarray, pose_to: np.ndarray, k: np.ndarray,
               centre_h: tuple = MaskConfig.skull_centre) -> np.ndarray:
    """[2, 3] affine (cv2 pixel-centre convention) taking frame ``from``'s image onto frame
    ``to``'s so that the head-frame point ``centre_h`` lands on itself, scaled by the ratio of
    its depths: the head's own motion within a crop, to first order, without its turns."""
    centre = np.asarray(centre_h, np.float64)
    a, b = project(centre[None], pose_from, k)[0], project(centre[None], pose_to, k)[0]
    za = (pose_from[:3, :3] @ centre + pose_from[:3, 3])[2]
    zb = (pose_to[:3, :3] @ centre + pose_to[:3, 3])[2]
    s = float(za / max(zb, 1e-9))
    # x_to = s (x_from - a) + b in edge-origin pixels; cv2 puts pixel centres on integers.
    t = b - s * a + 0.5 * s - 0.5
    return np.array([[s, 0.0, t[0]], [0.0, s, t[1]]])


def temporal_vote(masks: list[np.ndarray], valids: list[np.ndarray], shifts: list[np.ndarray],
                  centre: int) -> np.ndarray:
    """uint8 mask (255 = head) of frame ``centre``: per pixel the majority of the window's masks
    [H, W] uint8, each moved by its ``head_shift`` [2, 3] onto the centre frame; a frame votes only
    where it showed the video (``valids`` bool [H, W]), a tie keeps the centre's own label, and the
    centre's padding stays background."""
    h, w = masks[centre].shape
    acc = np.zeros((h, w), np.float32)
    cnt = np.zeros((h, w), np.float32)
    for m, v, a in zip(masks, valids, shifts):
        mw = cv2.warpAffine((m > 127).astype(np.float32), a, (w, h), flags=cv2.INTER_LINEAR)
        vw = cv2.warpAffine(v.astype(np.float32), a, (w, h), flags=cv2.INTER_NEAREST)
        acc += mw * vw
        cnt += vw
    own = masks[centre] > 127
    twice = 2 * acc
    out = (twice > cnt + 1e-4) | ((np.abs(twice - cnt) <= 1e-4) & own)
    return (out & valids[centre]).astype(np.uint8) * 255


def skin_like(rgb: np.ndarray, face: np.ndarray, sigmas: float) -> np.ndarray:
    """bool [H, W]: pixels of ``rgb`` whose chroma (YCrCb Cr, Cb) lies within ``sigmas`` robust
    standard deviations (1.4826 MAD, at least 3 levels) of the median over ``face`` (bool)."""
    crcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(np.float32)
    ref = crcb[face]
    med = np.median(ref, axis=0)
    sd = np.maximum(1.4826 * np.median(np.abs(ref - med), axis=0), 3.0)
    return (((crcb - med) / sd) ** 2).sum(-1) <= sigmas ** 2


def hair_like(rgb: np.ndarray, ref: np.ndarray, sigmas: float, luma_margin: float) -> np.ndarray:
    """bool [H, W]: pixels of ``rgb`` whose chroma (YCrCb Cr, Cb) lies within ``sigmas`` robust
    standard deviations (1.4826 MAD, held to 4-8 levels) of the median over ``ref`` (bool) and
    whose luma lies within ``luma_margin`` of the 5th-95th percentiles there. Luma gets a range,
    not a sigma: hair runs from shade to highlight at one hue. The cap on the chroma's spread
    keeps a sample that caught some wall (d12: red-brown hair before a wooden wall) from
    calling a green sweater hair."""
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    r = ycc[ref]
    lo, hi = np.percentile(r[:, 0], [5, 95])
    med = np.median(r[:, 1:], axis=0)
    sd = np.clip(1.4826 * np.median(np.abs(r[:, 1:] - med), axis=0), 4.0, 8.0)
    near = (((ycc[..., 1:] - med) / sd) ** 2).sum(-1) <= sigmas ** 2
    return near & (ycc[..., 0] >= lo - luma_margin) & (ycc[..., 0] <= hi + luma_margin)


def hair_reach(pose: np.ndarray, k: np.ndarray, size: int, cfg: MaskConfig) -> np.ndarray:
    """bool [size, size]: where hair may be (``MaskConfig.hair_radii`` ellipse, and the band
    ``hair_half_width`` either side of the head's axis from the top of the image down to
    ``shoulder_y``), turned with the head."""
    reach = np.zeros((size, size), np.uint8)
    centre = np.asarray(cfg.skull_centre, dtype=np.float64)
    cv2.ellipse(reach, _head_ellipse(centre, cfg.hair_radii, pose, k), 1, -1)
    w = cfg.hair_half_width
    band = np.array([[-w, cfg.shoulder_y, -0.02], [w, cfg.shoulder_y, -0.02], [w, 0.5, -0.02], [-w, 0.5, -0.02]])
    cv2.fillConvexPoly(reach, np.round(project(band, pose, k) - 0.5).astype(np.int32), 1)
    return reach > 0


def below_chin(landmarks: np.ndarray, pose: np.ndarray, k: np.ndarray, size: int) -> np.ndarray:
    """bool [size, size]: pixels below the chin along the head's up direction in the image (the
    line across the head, rolled with it, through the face landmark lowest along that
    direction: the chin)."""
    c = np.asarray(MaskConfig.skull_centre, np.float64)
    uv = project(np.stack([c, c + [0.0, 0.05, 0.0]]), pose, k)
    up = (uv[1] - uv[0]) / max(np.linalg.norm(uv[1] - uv[0]), 1e-9)
    yy, xx = np.mgrid[:size, :size] + 0.5
    face = landmarks[:468]
    chin = face[np.argmin(face @ up)]
    return (xx - chin[0]) * up[0] + (yy - chin[1]) * up[1] < 0


def person_head_mask(person: np.ndarray, landmarks: np.ndarray, pose: np.ndarray, k: np.ndarray,
                     valid: np.ndarray | None = None, cfg: MaskConfig = MaskConfig(),
                     rgb: np.ndarray | None = None) -> np.ndarray:
    """uint8 [S, S] mask (255 = head, hair, neck) from a person probability map ``person`` float
    [S, S] of the crop: the person (p >= 0.5) inside the allowed region of ``seed_labels`` (skull
    ellipse and neck column, turned with the head: no shoulders, no clothes below the neck, no
    other person or object beside the head), joined with the face hull, the largest blob holding
    the face kept and its small holes filled; ``valid`` [S, S] bool: padding is background.
    With the crop ``rgb`` uint8 [S, S, 3], person pixels below the chin must be skin-coloured
    (``skin_like``, ``cfg.neck_skin_sigmas``) or hair-coloured (``hair_like``): the segmenter
    counts clothes as person. Hair-coloured person pixels beyond the allowed region are kept out
    to ``hair_reach`` (a bun, long hair falling on the shoulders)."""
    size = person.shape[0]
    lab = seed_labels(landmarks, pose, k, size, replace(cfg, work=size))
    face = lab == cv2.GC_FGD
    allowed = lab != cv2.GC_BGD
    p = person >= 0.5
    if valid is not None:
        p &= valid
    keep = allowed
    if rgb is not None and face.any():
        below = below_chin(landmarks, pose, k, size)
        skin = skin_like(rgb, face, cfg.neck_skin_sigmas) if cfg.neck_skin_sigmas > 0 else np.ones_like(p)
        hair = np.zeros_like(p)
        if cfg.hair_sigmas > 0:
            near_face = cv2.dilate(face.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
            ref = p & (lab == cv2.GC_PR_FGD) & ~below & ~skin & ~near_face
            if ref.sum() >= 50:  # too little hair to sample (bald, hat): the ellipse alone
                hair = hair_like(rgb, ref, cfg.hair_sigmas, cfg.hair_luma_margin) & ~skin
        # Below the chin only skin (the neck) or hair is head; clothes the segmenter counts as
        # person are not. Beyond the allowed ellipse only hair is, in blobs wider than a
        # shadow line along a collar or a sleeve (a 5x5 opening).
        keep = np.where(below, allowed & (skin | hair), allowed)
        beyond = p & hair & hair_reach(pose, k, size, cfg) & ~keep
        m = cv2.morphologyEx((p & keep).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
        m |= cv2.morphologyEx(beyond.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)) > 0
    else:
        m = p & keep
    m = _largest_with(m | face, face)
    m = _fill_small_holes(m, face | (lab == cv2.GC_PR_FGD), 0.01)
    if valid is not None:
        m &= valid
    return m.astype(np.uint8) * 255


def head_mask(rgb: np.ndarray, landmarks: np.ndarray, pose: np.ndarray, k: np.ndarray,
              valid: np.ndarray | None = None, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """uint8 [S, S] mask (255 = head, hair, neck) of the output crop ``rgb`` uint8 [S, S, 3].

    landmarks [478, 2] and pose [4, 4] are in the crop's camera ``k`` [3, 3]; ``valid`` [S, S]
    bool marks pixels that came from inside the source video (the rest is padding)."""
    size = rgb.shape[0]
    lab = seed_labels(landmarks, pose, k, size, cfg)
    small = cv2.resize(rgb, (cfg.work, cfg.work), interpolation=cv2.INTER_AREA)
    if valid is not None:
        vsmall = cv2.resize(valid.astype(np.uint8), (cfg.work, cfg.work),
                            interpolation=cv2.INTER_NEAREST) > 0
        lab[~vsmall & (lab != cv2.GC_FGD)] = cv2.GC_BGD
    fg0 = (lab == cv2.GC_FGD)
    seeded = fg0 | (lab == cv2.GC_PR_FGD)
    # GrabCut only where labels can change, plus a band of sure background for its colour
    # model: a local background model, and 2-3x less work than the whole crop.
    ys, xs = np.nonzero(lab != cv2.GC_BGD)
    if fg0.any() and len(ys):
        mg, w = cfg.roi_margin, cfg.work
        y0, y1 = max(ys.min() - mg, 0), min(ys.max() + mg + 1, w)
        x0, x1 = max(xs.min() - mg, 0), min(xs.max() + mg + 1, w)
        sub = lab[y0:y1, x0:x1].copy()
        if np.any((sub == cv2.GC_BGD) | (sub == cv2.GC_PR_BGD)):
            bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
            try:
                cv2.grabCut(np.ascontiguousarray(small[y0:y1, x0:x1, ::-1]), sub, None, bgd, fgd,
                            cfg.iterations, cv2.GC_INIT_WITH_MASK)
                lab[y0:y1, x0:x1] = sub
            except cv2.error:  # degenerate colour statistics: fall back to the seeds
                pass
    m = ((lab == cv2.GC_FGD) | (lab == cv2.GC_PR_FGD)).astype(np.uint8)
    # Opening removes thin structures GrabCut grabs along edges (picture frames, door jambs).
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    m = _largest_with(m | fg0, fg0)
    m = _fill_small_holes(m, seeded, 0.01)
    # Smooth edge: upsample a slightly blurred soft mask, threshold at 0.5.
    soft = cv2.GaussianBlur(m.astype(np.float32), (3, 3), 0)
    big = cv2.resize(soft, (size, size), interpolation=cv2.INTER_LINEAR)
    out = big >= 0.5
    if valid is not None:
        out &= valid
    return out.astype(np.uint8) * 255
