"""A baked portrait against the video it was made from (``bake eval-portrait``).

Every figure is taken inside the dataset's head mask less its outermost pixel (there a frame
pixel mixes the head and the room behind it, which no portrait drawn over black can match: on the
exact synthetic subject that ring alone holds the field to 28 dB at 128 px, 36 dB without it), at
the dataset's image size, with the portrait drawn by the player's own renderer (``player.render.Renderer.render_camera``: the bake
may use the player's room, never the other way round) at the full camera of a captured frame: its
tracked pose with roll and distance, and the dataset's intrinsics.

- replay: each keyframe at the camera of the frame captured at its time, against that frame
  (not for the frames the bake left out of its sources, ``bake --leave-out``);
- held-out: each frame b of the test split (the tail of the video that ``bake train`` never sees)
  against the keyframe nearest to b in expression among those whose own frame lies outside the
  test split, drawn at b's camera: the same protocol for every kind of portrait, so two bakes
  compare like for like, and no frame is scored against itself;
- sharpness: mean absolute Laplacian inside the eroded head mask, as a ratio to the video
  frame's (1 = as sharp as the video; a blurred head scores well below 1, aliasing or cracks
  above it). PSNR alone prefers a blurred head to a sharp one a pixel off, so both are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bake.job.keyframes import keyframe_frames
from bake.nerf.metrics import psnr, ssim
from formats.errors import UsageError

__all__ = ["Score", "score", "sharpness", "keyframe_frames", "replay_pairs", "heldout_pairs", "summarise",
           "PortraitEvaluation", "field_heldout_psnr", "sheet", "worst_and_median", "OUTLINE_PX",
           "SHARPNESS_ERODE_PX"]

OUTLINE_PX = 1  # the mask's outline left out of every figure: pixels that mix head and room
SHARPNESS_ERODE_PX = 3  # ... and of sharpness a wider one (hair against the room, the matte's edge)


@dataclass(frozen=True)
class Score:
    """One drawn frame against its video frame."""

    frame: int  # position in the dataset's frame list
    keyframe: int
    psnr: float  # dB, inside the head mask
    ssim: float
    sharpness: float  # the portrait's mean |Laplacian| / the video's, inside the eroded mask


def sharpness(img: np.ndarray, mask: np.ndarray, erode_px: int = SHARPNESS_ERODE_PX) -> float:
    """Mean absolute Laplacian (3x3) of the luminance of ``img`` (float [H, W, 3] in [0, 1]) over
    ``mask`` [H, W] bool eroded by ``erode_px``; NaN when nothing is left.

    >>> flat, m = np.full((9, 9, 3), 0.5), np.ones((9, 9), bool)
    >>> sharpness(flat, m), round(sharpness(np.indices((9, 9)).sum(0)[..., None].repeat(3, 2) % 2 * 1.0, m), 2)
    (0.0, 4.0)
    """
    gray = np.asarray(img, np.float64) @ np.array([0.299, 0.587, 0.114])
    inner = cv2.erode(mask.astype(np.uint8), np.ones((2 * erode_px + 1,) * 2, np.uint8),
                      borderType=cv2.BORDER_REPLICATE).astype(bool) if erode_px > 0 else mask
    if not inner.any():
        return float("nan")
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_64F, ksize=1))[inner].mean())


def score(image: np.ndarray, truth: np.ndarray, mask: np.ndarray, frame: int = -1, keyframe: int = -1) -> Score:
    """``image`` against ``truth`` (float [H, W, 3] in [0, 1], the head over black) inside ``mask``
    [H, W] bool."""
    ref = sharpness(truth, mask)
    return Score(frame, keyframe, psnr(image, truth, mask), ssim(image, truth, mask),
                 sharpness(image, mask) / ref if ref > 0 else float("nan"))


def replay_pairs(kf_frames: np.ndarray, left_out=()) -> list[tuple[int, int]]:
    """(keyframe, frame) for replay: every keyframe at the frame captured at its time, but for
    the frames the bake left out of its sources (``left_out``): scored against a keyframe the
    bake did not anchor there, such a frame is a held-out frame, not a replay.

    >>> replay_pairs(np.array([0, 5, 9]), left_out=[9])
    [(0, 0), (1, 5)]
    """
    skip = set(int(i) for i in left_out)
    return [(k, int(i)) for k, i in enumerate(kf_frames) if int(i) not in skip]


def heldout_pairs(kf_frames: np.ndarray, expressions: np.ndarray, test: list[int]) -> list[tuple[int, int]]:
    """(keyframe, frame) for the held-out score: each test frame b with the keyframe whose own
    frame is nearest to b in expression (L2 over the tracked coefficients), among the keyframes
    whose frame lies outside the test split. Empty when no keyframe qualifies.

    >>> heldout_pairs(np.array([0, 1, 2, 3]), np.array([[0.0], [1.0], [0.9], [0.2]]), [2, 3])
    [(1, 2), (0, 3)]
    """
    held = set(int(b) for b in test)
    allowed = [k for k, i in enumerate(kf_frames) if int(i) not in held]
    if not allowed:
        return []
    e = np.asarray(expressions, np.float64)
    cand = e[[int(kf_frames[k]) for k in allowed]]
    return [(allowed[int(np.argmin(((cand - e[b]) ** 2).sum(1)))], int(b)) for b in test]


def summarise(scores: list[Score], prefix: str) -> dict:
    """``{prefix}_psnr, _psnr_p10, _ssim, _sharpness, _frames}``: means (and the PSNR's 10th
    percentile) over the scored frames."""
    if not scores:
        return {f"{prefix}_frames": 0}
    p = np.array([s.psnr for s in scores])
    sh = np.array([s.sharpness for s in scores])
    return {f"{prefix}_psnr": float(p.mean()), f"{prefix}_psnr_p10": float(np.percentile(p, 10)),
            f"{prefix}_ssim": float(np.mean([s.ssim for s in scores])),
            f"{prefix}_sharpness": float(np.nanmean(sh)) if np.isfinite(sh).any() else float("nan"),
            f"{prefix}_frames": len(scores)}


@dataclass
class Drawn:
    """A scored frame with its images, for the sheet."""

    score: Score
    image: np.ndarray  # float [H, W, 3]: the portrait over black
    truth: np.ndarray  # the video frame, the head over black


class PortraitEvaluation:
    """Draws a portrait (a ``formats.P4DReader``) at a dataset's captured cameras and scores it."""

    def __init__(self, reader, dataset):
        from player.cache import TileCache
        from player.render import RenderConfig, Renderer
        kf = reader.meta["keyframes"]
        if kf.get("source", "capture") != "capture":
            raise UsageError("this portrait's keyframes come from another video (bake --drive): there is no "
                             "captured frame to compare each with")
        self.reader, self.ds = reader, dataset
        w, h = dataset.width, dataset.height
        self.cache = TileCache(reader, prefetch=False)
        self.renderer = Renderer(reader.meta, self.cache, RenderConfig(size=max(w, h), background=(0.0, 0.0, 0.0)))
        if self.renderer.out_shape != (h, w):
            raise UsageError(f"the portrait's tiles ({reader.tile_shape[1]}x{reader.tile_shape[0]}) and the dataset's "
                             f"frames ({w}x{h}) differ in aspect")
        self.kf_frames = keyframe_frames(kf["times"], dataset.times())

    def truth(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(the head over black, float [H, W, 3]; the mask less its outline, bool [H, W]) of frame
        position i."""
        from bake.nerf.trainer import load_frame_at
        img, m = load_frame_at(self.ds, i, self.ds.width, self.ds.height)
        gt = img.astype(np.float64) / 255.0 * (m.astype(np.float64) / 255.0)[..., None]
        inside = ((m > 127) & self.ds.valid_mask(i)).astype(np.uint8)
        k = np.ones((2 * OUTLINE_PX + 1,) * 2, np.uint8)
        return gt, cv2.erode(inside, k, borderType=cv2.BORDER_REPLICATE).astype(bool)

    def draw(self, k: int, i: int) -> np.ndarray:
        """Keyframe k drawn at the camera of frame position i: float [H, W, 3] over black."""
        cam_to_head = np.linalg.inv(self.ds.frames[i].pose)
        rgba = self.renderer.render_camera(self.ds.intrinsics, cam_to_head, [(k, k, 0.0, 1.0)])
        return rgba[::-1, :, :3].astype(np.float64) / 255.0

    def run(self, pairs: list[tuple[int, int]], bar=None) -> list[Drawn]:
        out = []
        for k, i in pairs:
            truth, mask = self.truth(i)
            image = self.draw(k, i) * self.ds.valid_mask(i)[..., None]
            out.append(Drawn(score(image, truth, mask, i, k), image, truth))
            if bar is not None:
                bar.update(1)
        return out

    def close(self) -> None:
        self.cache.close()


def field_heldout_psnr(field, dataset, test: list[int], truth) -> float:
    """Mean masked PSNR of the learned field rendering each test frame's camera with that frame's
    own expression: the best a portrait drawn from that field can do on the held-out frames."""
    from formats.camera import Camera
    vals = []
    for b in test:
        gt, mask = truth(b)
        if not mask.any():
            continue
        rgb, _, _ = field.render(Camera(dataset.intrinsics, np.linalg.inv(dataset.frames[b].pose)),
                                 dataset.frames[b].expression)
        vals.append(psnr(np.asarray(rgb, np.float64) * dataset.valid_mask(b)[..., None], gt, mask))
    return float(np.mean(vals)) if vals else float("nan")


def sheet(rows: list[tuple[str, Drawn]]) -> np.ndarray:
    """uint8 RGB: per row the video frame, the portrait and 4 x their difference, labelled."""
    tiles = []
    for label, d in rows:
        row = np.concatenate([d.truth, d.image, np.clip(np.abs(d.image - d.truth) * 4, 0, 1)], 1)
        row = (row * 255 + 0.5).astype(np.uint8)
        text = f"{label}: frame {d.score.frame}, keyframe {d.score.keyframe}, {d.score.psnr:.1f} dB, " \
               f"sharpness {d.score.sharpness:.2f}"
        strip = np.zeros((18, row.shape[1], 3), np.uint8)
        cv2.putText(strip, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles += [strip, row]
    return np.concatenate(tiles, 0)


def worst_and_median(drawn: list[Drawn]) -> list[tuple[str, Drawn]]:
    """The worst and the median case by PSNR (one row when they are the same)."""
    if not drawn:
        return []
    order = sorted(drawn, key=lambda d: d.score.psnr)
    worst, median = order[0], order[len(order) // 2]
    return [("worst", worst)] + ([("median", median)] if median is not worst else [])
