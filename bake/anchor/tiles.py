"""``CaptureAnchor``: the captured frame at each keyframe's time carries that keyframe's tiles.

For keyframe k and grid view v the frame captured nearest to k's time (its own frame) is
reprojected into v through the proxy (the field's depth at v), its pixels weighted as an
unstructured lumigraph weighs them: a soft z-test against the proxy seen from the frame's own
camera, the frame's person mask, the angle between the rays, and the footprint (a surface the
frame saw edge-on, or the room-tinted rim of its matte, weighs little). A few other frames, seen
from nearest v, lend what the own frame sees badly: hair, ears, neck and the far cheek anywhere,
the face only where their expression is the keyframe's. The field's render fills the rest,
colour-matched (``blend``). Alpha is the own frame's matte where it sees the point from close to
its own view, the field's elsewhere; the proxy reaches a shell beyond the field's silhouette
(``AnchorConfig.shell``) so the matte can draw hair and an outline the field cut.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field as dataclass_field

import cv2
import numpy as np

from bake.anchor.blend import (AnchorConfig, angle_weight, compose, core_weight, face_share, foreshortening,
                               nearest_inside, smooth_depth, surface_normals)
from bake.anchor.kernels import footprint, reproject
from bake.fields.base import Capture
from bake.job.keyframes import keyframe_frames
from bake.job.surface import solid_depth
from formats.camera import Camera, pixel_rays, view_angles


def view_directions(angles: np.ndarray) -> np.ndarray:
    """float64 [N, 3] unit view directions in the head frame of (yaw, pitch) degrees [N, 2]."""
    y, p = np.radians(angles[:, 0]), np.radians(angles[:, 1])
    return np.stack([np.sin(y) * np.cos(p), np.sin(p), np.cos(y) * np.cos(p)], axis=-1)


@dataclass
class SourceFrame:
    """A captured frame ready to reproject: its image, mask, camera and proxy depth."""

    index: int  # list position in the dataset
    image: np.ndarray  # uint8 RGB [H, W, 3]
    mask: np.ndarray  # float32 [H, W] in [0, 1]: the person, inside the part that shows the video
    camera: Camera
    depth: np.ndarray  # float32 [H, W]: the proxy (field) seen from this camera
    core: np.ndarray | None = None  # float32 [H, W]: ``blend.core_weight`` of the mask (``load_source``)


def load_source(ds, i: int, proxy_depth, core_px: float = AnchorConfig.core) -> SourceFrame:
    """Frame i of dataset ``ds`` at the dataset's size, its mask cut to where it shows the video,
    with ``proxy_depth(camera)`` (float32 [H, W]) seen from its own camera and its matte's core
    (``core_px``, ``blend.core_weight``)."""
    cam = Camera(ds.intrinsics, np.linalg.inv(ds.frames[i].pose))
    image = ds.load_image(i)
    mask = ds.load_mask(i).astype(np.float32) / 255.0 * ds.valid_mask(i)
    if image.shape[:2] != (ds.height, ds.width):
        image = cv2.resize(image, (ds.width, ds.height), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (ds.width, ds.height), interpolation=cv2.INTER_AREA)
    return SourceFrame(i, image, mask.astype(np.float32), cam, np.asarray(proxy_depth(cam), np.float32),
                       core_weight(mask, core_px))


@dataclass
class TileSurface:
    """A tile's proxy as the footprint weights see it: head-frame points of the proxy smoothed at
    ``AnchorConfig.stretch_sigma`` (a learned depth's blotches would make cracks of the weights,
    and foreshortening is a property of the surface at that scale), their normals, and the tile
    camera's ``foreshortening`` of them; and the points of the proxy itself."""

    proxy: np.ndarray  # float32 [H, W, 3]: head-frame points of the proxy as it is
    points: np.ndarray  # float32 [H, W, 3]: ... of the smoothed proxy
    normals: np.ndarray  # float32 [H, W, 3] (NaN: none)
    seen: np.ndarray  # float32 [H, W]: the tile camera's foreshortening
    on: np.ndarray  # bool [H, W]: where the proxy has a surface

    @staticmethod
    def of(depth: np.ndarray, camera: Camera, cfg: AnchorConfig) -> "TileSurface":
        sm = smooth_depth(depth, cfg.stretch_sigma * depth.shape[1])
        o, d = pixel_rays(camera)
        pts = (o + d * sm[..., None]).astype(np.float32)
        on = sm > 0
        normals = surface_normals(pts, on)
        c2h = camera.cam_to_head
        return TileSurface((o + d * depth[..., None]).astype(np.float32), pts, normals,
                           foreshortening(pts, normals, c2h[:3, 3], c2h[:3, 2]), on)


def source_footprint(surface: TileSurface, src: SourceFrame, cfg: AnchorConfig) -> np.ndarray:
    """float32 [H, W]: how much each tile pixel may trust the source's pixel it lands on, apart
    from visibility: ``blend.stretch_weight`` of the source's foreshortening of the ``surface``
    against the tile camera's, times the source's ``core`` there (1 off the surface;
    ``kernels.footprint``)."""
    return footprint(surface.points, surface.normals, surface.seen, surface.on, src.camera, src.core, *cfg.stretch)


@dataclass
class CaptureAnchor:
    """Anchors a bake's tiles on a tracked dataset's frames (see the module docstring).

    ``leave_out``: dataset list positions that never contribute a pixel (a keyframe whose frame
    is left out keeps the field's tile). ``for_keyframes`` binds it to a bake's keyframe times."""

    dataset: object  # bake.data.dataset.Dataset: the capture the field was trained on
    cfg: AnchorConfig = AnchorConfig()
    leave_out: frozenset = frozenset()
    frames: np.ndarray | None = None  # [K] dataset position of each keyframe (``for_keyframes``)
    _sources: dict = dataclass_field(default_factory=dict, repr=False)  # frame -> SourceFrame (the last 32)
    _depths: dict = dataclass_field(default_factory=dict, repr=False)  # frame -> proxy depth (256 KB at 256²)
    _views: np.ndarray | None = dataclass_field(default=None, repr=False)  # [N, 3] the frames' view directions
    _expressions: np.ndarray | None = dataclass_field(default=None, repr=False)
    _pool: np.ndarray | None = dataclass_field(default=None, repr=False)  # bool [N]: ``pool()``

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

    def _frame(self, field, i: int, expression: np.ndarray) -> SourceFrame:
        """Dataset frame i as a source, its proxy depth (``field`` at the frame's camera and
        ``expression``) rendered once per bake; the last 32 frames' images are kept."""
        if i not in self._depths:  # the graph's frontal renders ask first, the tiles again later
            _, alpha, depth = field.render(Camera(self.dataset.intrinsics, np.linalg.inv(self.dataset.frames[i].pose)),
                                           expression)
            self._depths[i] = solid_depth(depth, alpha)
        if i not in self._sources:
            if len(self._sources) >= 32:
                self._sources.pop(next(iter(self._sources)))
            self._sources[i] = load_source(self.dataset, i, lambda cam: self._depths[i], self.cfg.core)
        return self._sources[i]

    def source(self, field, k: int, expression: np.ndarray) -> SourceFrame | None:
        """Keyframe k's own source frame (None when it is left out)."""
        i = self.frame_of(k)
        return None if i is None else self._frame(field, i, expression)

    def pool(self) -> np.ndarray:
        """bool [N]: the dataset frames an extra source may be: the keyframes' own frames and
        ``cfg.source_pool`` more spread evenly over the clip (each costs one render of the proxy
        per bake), none left out."""
        n = len(self.dataset.frames)
        ok = np.zeros(n, bool)
        ok[np.unique(np.linspace(0, n - 1, min(self.cfg.source_pool, n)).round().astype(int))] = True
        if self.frames is not None:
            ok[self.frames] = True
        ok[list(self.leave_out)] = False
        return ok

    def extra_frames(self, k: int, camera: Camera, expression: np.ndarray) -> list[int]:
        """Up to ``cfg.extra_sources`` frames of the ``pool`` besides keyframe k's own, seen from
        nearest ``camera``'s view: the angle between the view directions (degrees) plus
        ``cfg.expression_weight`` x the RMS expression difference, nearest first."""
        n = self.cfg.extra_sources
        if n == 0:
            return []
        if self._views is None:
            cap = Capture.from_dataset(self.dataset)
            self._views = view_directions(cap.view_angles())
            self._expressions = cap.expressions
            self._pool = self.pool()
        yaw, pitch, _ = view_angles(camera.cam_to_head)
        want = view_directions(np.array([[yaw, pitch]]))[0]
        cost = np.degrees(np.arccos(np.clip(self._views @ want, -1.0, 1.0)))
        diff = self._expressions - np.asarray(expression, np.float32)[None]
        cost = cost + self.cfg.expression_weight * np.sqrt((diff ** 2).mean(axis=1))
        cost[~self._pool] = np.inf
        own = self.frame_of(k)
        if own is not None:
            cost[own] = np.inf
        order = np.argsort(cost, kind="stable")[:n]
        return [int(i) for i in order if np.isfinite(cost[i])]

    def gather(self, field, k: int, expression: np.ndarray, camera: Camera, shell: np.ndarray):
        """Keyframe k's sources (its own frame, then ``extra_frames``) reprojected through the
        proxy ``shell`` [H, W] at ``camera`` and blended: (straight colour [H, W, 3], the largest
        colour weight, the own frame's matte weight and matte, the blended matte behind the colour,
        {frame: colour weight}).

        A source's colour weight is the soft z-test x the angle weight x ``source_footprint``;
        for an extra frame also x (1 - the own frame's weight) and, on the face (``face_share``),
        x its expression's likeness to the keyframe's. Colours and mattes are averaged with the
        weights to the power ``cfg.sharpness``."""
        c = self.cfg
        own = self.source(field, k, expression)
        extra = self.extra_frames(k, camera, expression)
        surface = TileSurface.of(shell, camera, c)
        face = face_share(surface.proxy, c.face_cone) if extra else None
        num = np.zeros(shell.shape + (3,), np.float32)
        num_m = np.zeros(shell.shape, np.float32)
        den = np.zeros(shell.shape, np.float32)
        vis = np.zeros(shell.shape, np.float32)
        weights = {}
        for src in [own] + [self._frame(field, i, self._expressions[i]) for i in extra]:
            s_rgb, s_vis, s_mask, cos = reproject(shell, camera, src.image, src.mask, src.depth, src.camera, c.ztol)
            if src is not own:
                rms = float(np.sqrt(((self._expressions[src.index] - expression) ** 2).mean()))
                s_vis = s_vis * (1.0 - face * (1.0 - np.exp(-(rms / c.expression_sigma) ** 2)))
            wc = s_vis * angle_weight(cos, c.angle_full, c.angle_zero) * source_footprint(surface, src, c)
            if src is own:
                own_w = wc
            else:
                # The keyframe's own frame carries its moment; the others lend only what it sees badly.
                wc = wc * (1.0 - own_w)
            weights[src.index] = wc
            p = wc ** c.sharpness
            num += p[..., None] * s_rgb
            num_m += p * s_mask
            den += p
            vis = np.maximum(vis, wc)
            if src is own:
                # Only the keyframe's own frame draws the outline: hair moves between moments, and
                # another frame's matte through the proxy leaves strands in the air (d12).
                vis_matte = s_vis * angle_weight(cos, c.matte_angle_full, c.matte_angle_zero)
                matte = s_mask
        safe = np.maximum(den, 1e-12)
        return num / safe[..., None], vis, vis_matte, matte, num_m / safe, weights

    def tile(self, field, k: int, expression: np.ndarray, camera: Camera, rgb: np.ndarray, alpha: np.ndarray,
             depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(premultiplied colour float32 [H, W, 3], alpha, depth) of keyframe k at ``camera``, from
        the field's render there (rgb premultiplied, alpha, depth), keyframe k's own frame and the
        extra frames (``extra_frames``): the field's own when the keyframe's frame is left out.

        The largest colour weight of the sources (``gather``) decides how far they cover the
        field, the own frame's matte weight how far its matte draws the alpha."""
        own = self.source(field, k, expression)
        if own is None:
            return rgb, alpha, depth
        near = nearest_inside(depth > 0, self.cfg.shell * depth.shape[1])
        shell = np.where(near[0] >= 0, depth[np.maximum(near[0], 0), np.maximum(near[1], 0)], 0).astype(np.float32)
        s_rgb, vis, vis_matte, matte, mask, _ = self.gather(field, k, expression, camera, shell)
        out_rgb, out_a = compose(np.asarray(rgb, np.float32), np.asarray(alpha, np.float32), s_rgb, vis, vis_matte,
                                 mask, near, self.cfg, matte)
        return out_rgb, out_a, np.where(out_a > 0, shell, 0).astype(np.float32)
