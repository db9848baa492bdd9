"""``CaptureAnchor``: the captured frame at each keyframe's time carries that keyframe's tiles.

For keyframe k and grid view v the frame captured nearest to k's time is reprojected into v
through the proxy (the field's depth at v), its pixels weighted by a soft z-test against the
proxy seen from the frame's own camera, the frame's person mask and the angle between the rays;
the field's render fills the rest, colour-matched (``blend``). Alpha is the frame's matte where
the frame sees the point from close to its own view, the field's elsewhere; the proxy reaches a shell beyond the field's
silhouette (``AnchorConfig.shell``) so the matte can draw hair and an outline the field cut.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field as dataclass_field

import cv2
import numpy as np

from bake.anchor.blend import AnchorConfig, angle_weight, compose, nearest_inside
from bake.anchor.kernels import reproject
from bake.job.keyframes import keyframe_frames
from formats.camera import Camera


@dataclass
class SourceFrame:
    """A captured frame ready to reproject: its image, mask, camera and proxy depth."""

    index: int  # list position in the dataset
    image: np.ndarray  # uint8 RGB [H, W, 3]
    mask: np.ndarray  # float32 [H, W] in [0, 1]: the person, inside the part that shows the video
    camera: Camera
    depth: np.ndarray  # float32 [H, W]: the proxy (field) seen from this camera


def load_source(ds, i: int, proxy_depth) -> SourceFrame:
    """Frame i of dataset ``ds`` at the dataset's size, its mask cut to where it shows the video,
    with ``proxy_depth(camera)`` (float32 [H, W]) seen from its own camera."""
    cam = Camera(ds.intrinsics, np.linalg.inv(ds.frames[i].pose))
    image = ds.load_image(i)
    mask = ds.load_mask(i).astype(np.float32) / 255.0 * ds.valid_mask(i)
    if image.shape[:2] != (ds.height, ds.width):
        image = cv2.resize(image, (ds.width, ds.height), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (ds.width, ds.height), interpolation=cv2.INTER_AREA)
    return SourceFrame(i, image, mask.astype(np.float32), cam, np.asarray(proxy_depth(cam), np.float32))


@dataclass
class CaptureAnchor:
    """Anchors a bake's tiles on a tracked dataset's frames (see the module docstring).

    ``leave_out``: dataset list positions that never contribute a pixel (a keyframe whose frame
    is left out keeps the field's tile). ``for_keyframes`` binds it to a bake's keyframe times."""

    dataset: object  # bake.data.dataset.Dataset: the capture the field was trained on
    cfg: AnchorConfig = AnchorConfig()
    leave_out: frozenset = frozenset()
    frames: np.ndarray | None = None  # [K] dataset position of each keyframe (``for_keyframes``)
    _cache: SourceFrame | None = dataclass_field(default=None, repr=False)
    _depths: dict = dataclass_field(default_factory=dict, repr=False)  # frame -> proxy depth (256 KB at 256²)

    def __post_init__(self):
        self.leave_out = frozenset(int(i) for i in self.leave_out)
        bad = [i for i in self.leave_out if not 0 <= i < len(self.dataset.frames)]
        if bad:
            raise ValueError(f"frames to leave out must be dataset positions 0..{len(self.dataset.frames) - 1}, "
                             f"got {bad[:3]}")

    def for_keyframes(self, keyframe_times) -> "CaptureAnchor":
        """This anchor with each keyframe (seconds from the capture's first frame) given the
        frame captured nearest to it in time."""
        return CaptureAnchor(self.dataset, self.cfg, self.leave_out,
                             keyframe_frames(keyframe_times, self.dataset.times()))

    def describe(self) -> dict:
        """What decides the anchored tiles besides the field and the bake's options (a resumed
        bake must have the same)."""
        return {"dataset": str(self.dataset.root), "frames": len(self.dataset.frames),
                "left_out": sorted(self.leave_out), "config": asdict(self.cfg)}

    def frame_of(self, k: int) -> int | None:
        """The dataset position whose pixels anchor keyframe k, None when it is left out."""
        if self.frames is None:
            raise ValueError("an anchor needs the bake's keyframes first (for_keyframes)")
        i = int(self.frames[k])
        return None if i in self.leave_out else i

    def source(self, field, k: int, expression: np.ndarray) -> SourceFrame | None:
        """Keyframe k's source frame (the last one is kept), its proxy depth rendered once per
        frame and kept for the whole bake."""
        i = self.frame_of(k)
        if i is None:
            return None
        if self._cache is not None and self._cache.index == i:
            return self._cache
        if i not in self._depths:  # the graph's frontal renders ask first, the tiles again later
            self._depths[i] = np.asarray(field.render(Camera(self.dataset.intrinsics,
                                                             np.linalg.inv(self.dataset.frames[i].pose)),
                                                      expression)[2], np.float32)
        self._cache = load_source(self.dataset, i, lambda cam: self._depths[i])
        return self._cache

    def tile(self, field, k: int, expression: np.ndarray, camera: Camera, rgb: np.ndarray, alpha: np.ndarray,
             depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(premultiplied colour float32 [H, W, 3], alpha, depth) of keyframe k at ``camera``, from
        the field's render there (rgb premultiplied, alpha, depth) and keyframe k's source frame:
        the field's own when the frame is left out."""
        src = self.source(field, k, expression)
        if src is None:
            return rgb, alpha, depth
        near = nearest_inside(depth > 0, self.cfg.shell * depth.shape[1])
        shell = np.where(near[0] >= 0, depth[np.maximum(near[0], 0), np.maximum(near[1], 0)], 0).astype(np.float32)
        s_rgb, vis, mask, cos = reproject(shell, camera, src.image, src.mask, src.depth, src.camera, self.cfg.ztol)
        c = self.cfg
        out_rgb, out_a = compose(np.asarray(rgb, np.float32), np.asarray(alpha, np.float32), s_rgb,
                                 vis * angle_weight(cos, c.angle_full, c.angle_zero),
                                 vis * angle_weight(cos, c.matte_angle_full, c.matte_angle_zero), mask, near, c)
        return out_rgb, out_a, np.where(out_a > 0, shell, 0).astype(np.float32)
