"""A portrait with no training: a head shell fitted to a tracked dataset's masks stands in for
the learned field (``ShellField``), so ``bake DATASET/`` shows a user their portrait before an
hour of ``bake train``.

The shell is the geometry proxy: an ellipsoid for the head (and hair) on an elliptic cylinder
for the neck, in the head frame, its width and height fitted to the masks (``fit_shell``), its
depth a head's. Its "render" at a camera is the captured frame seen from nearest that camera,
reprojected through the shell, with that frame's matte as alpha: what the anchored bake
(``bake.anchor.tiles``) fills with where the keyframe's own frame does not see.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field

import numpy as np

from bake.anchor.kernels import reproject
from bake.anchor.tiles import load_source, view_directions
from bake.fields.base import Capture
from formats.camera import Camera, pixel_rays, view_angles

SHELL_KIND = "shell"


@dataclass(frozen=True)
class HeadShell:
    """Head-frame metres (``formats.camera`` axes: x to the subject's left, y up, z out of the
    face)."""

    centre: tuple  # (x, y, z) of the head ellipsoid
    radii: tuple  # its half-axes (x, y, z)
    neck_radii: tuple = (0.06, 0.06)  # the neck cylinder's half-axes (x, z), about the ellipsoid's axis
    neck_bottom: float = -0.25  # head-frame y where the neck cylinder ends

    def depth(self, camera: Camera) -> np.ndarray:
        """float32 [H, W]: camera z-depth of the nearest point of the shell on each pixel's ray,
        0 where the ray misses it."""
        o, d = pixel_rays(camera)
        c, r = np.asarray(self.centre), np.asarray(self.radii)
        t_head = _nearest_hit((o - c) / r, d / r)
        # The neck: x and z only (an infinite elliptic cylinder), kept between its ends.
        nr = np.array([self.neck_radii[0], 1.0, self.neck_radii[1]])
        oc, dc = (o - c) / nr, d / nr
        oc[..., 1], dc[..., 1] = 0.0, 0.0
        t_neck = _nearest_hit(oc, dc)
        y = o[..., 1] + np.where(np.isfinite(t_neck), t_neck, 0.0) * d[..., 1]
        t_neck = np.where((y <= c[1]) & (y >= self.neck_bottom), t_neck, np.inf)
        t = np.minimum(t_head, t_neck)
        return np.where(np.isfinite(t), t, 0.0).astype(np.float32)


def _nearest_hit(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Smallest t > 0 with |o + t d| = 1 (the unit sphere), inf where there is none."""
    a = (d * d).sum(-1)
    b = (o * d).sum(-1)
    cc = (o * o).sum(-1) - 1.0
    disc = b * b - a * cc
    root = np.sqrt(np.maximum(disc, 0.0))
    t0, t1 = (-b - root) / a, (-b + root) / a
    t = np.where(t0 > 1e-6, t0, t1)
    return np.where((disc >= 0) & (t > 1e-6), t, np.inf)


def fit_shell(dataset, n_frames: int = 24, face_depth: float = 0.095, back_depth: float = 0.12,
              chin_y: float = -0.12) -> HeadShell:
    """The shell of a tracked dataset: each of ``n_frames`` frames spread over the clip has its
    mask's pixels cast onto the head frame's z = 0 plane through its camera; the ellipsoid spans
    the median over frames of their robust extents across at eye height and from the top of the
    head down to ``chin_y``, grown to hold the hair below the eyes, the neck's cylinder their
    width 13-20 cm below the head centre and reaches down to their lowest point. Depth is not
    seen from a selfie's narrow range of views: the ellipsoid reaches ``face_depth`` before the
    head centre (the nose tip is ~9 cm before it, ``bake.track.pose``) and ``back_depth`` behind
    it (the back of the skull and the hair on it)."""
    n = len(dataset.frames)
    picks = np.unique(np.linspace(0, n - 1, min(n_frames, n)).round().astype(int))
    spans, necks, tops, bottoms, heads = [], [], [], [], []
    for i in picks:
        m = (dataset.load_mask(int(i)) > 127) & dataset.valid_mask(int(i))
        if m.sum() < 50:
            continue
        cam = Camera(dataset.intrinsics, np.linalg.inv(dataset.frames[int(i)].pose))
        o, d = pixel_rays(cam)
        t = -o[..., 2] / np.where(np.abs(d[..., 2]) > 1e-9, d[..., 2], 1e-9)
        pts = (o + t[..., None] * d)[m & (t > 0)]  # on z = 0
        eye = pts[np.abs(pts[:, 1]) < 0.03]
        if len(eye) < 10:
            continue
        spans.append(np.percentile(eye[:, 0], [1, 99]))
        heads.append(pts[pts[:, 1] > chin_y])
        neck = pts[(pts[:, 1] < -0.13) & (pts[:, 1] > -0.2)]
        if len(neck) >= 10:
            necks.append(np.percentile(neck[:, 0], [1, 99]))
        tops.append(np.percentile(pts[:, 1], 99.5))
        bottoms.append(np.percentile(pts[:, 1], 0.5))
    if not tops:
        raise ValueError(f"{dataset.root}: the masks show no head to fit a shell to")
    (x0, x1), top = np.median(spans, axis=0), float(np.median(tops))
    cx, cy = float(x0 + x1) / 2, (top + chin_y) / 2
    rx, ry = float(x1 - x0) / 2, (top - chin_y) / 2
    # Hair below the eyes can reach wider than at them: grow the ellipse (same shape) until it
    # holds 99 % of the mask above the chin in the median frame.
    reach = [np.percentile(np.hypot((h[:, 0] - cx) / rx, (h[:, 1] - cy) / ry), 99) for h in heads if len(h)]
    grow = max(1.0, float(np.median(reach))) if reach else 1.0
    rx, ry = rx * grow, ry * grow
    cz, rz = (face_depth - back_depth) / 2, (face_depth + back_depth) / 2
    neck_x = float(np.clip(np.diff(np.median(necks, axis=0))[0] / 2, 0.04, 0.12)) if necks else 0.06
    return HeadShell(centre=(cx, cy, cz), radii=(rx, ry, rz),
                     neck_radii=(neck_x, 0.06), neck_bottom=min(float(np.median(bottoms)), chin_y))


@dataclass
class ShellField:
    """The field interface (``bake.fields.base``) over a tracked dataset and its shell: a
    camera's render is the frame (not left out) captured nearest to its view and the
    expression (``nearest_frame``), reprojected through the shell, premultiplied by that frame's
    matte: what the keyframe's own frame does not show comes from the frame that saw it best."""

    dataset: object  # bake.data.dataset.Dataset
    shell: HeadShell
    leave_out: frozenset = frozenset()
    ztol: float = 0.04
    expression_weight: float = 100.0  # degrees of view per unit of RMS expression difference
    kind: str = SHELL_KIND
    capture: Capture = dataclass_field(init=False)
    _views: np.ndarray = dataclass_field(init=False, repr=False)
    _cache: dict = dataclass_field(default_factory=dict, repr=False)
    _depths: dict = dataclass_field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.capture = Capture.from_dataset(self.dataset)
        self._views = self.capture.view_angles()
        self._usable = np.array([i not in self.leave_out for i in range(len(self.dataset.frames))])
        if not self._usable.any():
            raise ValueError("every frame is left out: nothing to build the portrait from")

    def nearest_frame(self, camera: Camera, expression: np.ndarray | None = None) -> int:
        """Dataset position of the usable frame nearest to ``camera``'s view and ``expression``:
        the angle between the view directions (degrees) plus ``expression_weight`` x the RMS
        difference of the expression coefficients, so that the fill seldom shows another
        mouth or another gaze than the keyframe's own frame beside it."""
        yaw, pitch, _ = view_angles(camera.cam_to_head)
        dirs = view_directions(self._views)
        want = view_directions(np.array([[yaw, pitch]]))[0]
        cost = np.degrees(np.arccos(np.clip(dirs @ want, -1.0, 1.0)))
        if expression is not None:
            diff = self.capture.expressions - np.asarray(expression, np.float32)[None]
            cost = cost + self.expression_weight * np.sqrt((diff ** 2).mean(axis=1))
        return int(np.argmin(np.where(self._usable, cost, np.inf)))

    def depth(self, camera: Camera) -> np.ndarray:
        """The shell's depth at ``camera`` (``HeadShell.depth``), kept for the last cameras
        asked: a bake asks for the same grid views at every keyframe."""
        key = (camera.cam_to_head.tobytes(), camera.intrinsics)
        if key not in self._depths:
            if len(self._depths) >= 64:
                self._depths.pop(next(iter(self._depths)))
            self._depths[key] = self.shell.depth(camera)
        return self._depths[key]

    def source(self, i: int):
        """Frame i as a ``bake.anchor.tiles.SourceFrame`` with the shell as its proxy depth (the
        last 32 are kept: the nearest frame changes with the view, and comes back)."""
        if i not in self._cache:
            if len(self._cache) >= 32:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = load_source(self.dataset, i, self.shell.depth)
        return self._cache[i]

    def render(self, camera: Camera, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = self.source(self.nearest_frame(camera, expression))
        depth = self.depth(camera)
        rgb, vis, mask, _ = reproject(depth, camera, src.image, src.mask, src.depth, src.camera, self.ztol)
        alpha = (vis * mask).astype(np.float32)
        return (rgb * alpha[..., None]).astype(np.float32), alpha, depth

