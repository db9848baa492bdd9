"""SyntheticField: the analytic head behind the field interface of bake/fields/base.py."""

from __future__ import annotations

import numpy as np

from bake.fields.base import Capture, CheckpointError
from bake.synthetic import kernels
from bake.synthetic.head import EXPRESSION_NAMES, HeadConfig, head_params
from formats.camera import Camera, Intrinsics, orbit_pose


class SyntheticField:
    """Exact renders of the synthetic head: ``render(camera, expression) -> rgb, alpha, depth``.

    ``rgb`` float32 [H, W, 3] premultiplied, ``alpha`` float32 [H, W] coverage, ``depth`` float32
    [H, W] camera z-depth in metres of the pixel centre, 0 where empty. Deterministic: same
    inputs, same bytes.

    ``supersample`` s > 1 averages colour and alpha over s x s rays per pixel, as a camera
    integrates light over its pixel: point samples of the procedural texture alias, and no view
    interpolation can reproduce aliasing (it costs ~1.5 dB at grid-cell centres in
    bench/interp_quality.py). Depth stays the pixel centre's, or the nearest sub-sample hit where
    the centre misses. With s = 1 every pixel is one ray (1 where it hits, edge coverage in
    (0, 0.5) just outside the silhouette): the sphere tracer's own contract.

    >>> from formats.camera import Camera, Intrinsics, orbit_pose
    >>> f = SyntheticField()
    >>> rgb, a, d = f.render(Camera(Intrinsics.from_fov(40, 64, 64), orbit_pose(0, 0, 0.5)), np.zeros(8))
    >>> rgb.shape, a.dtype, round(float(d[32, 32]), 2)
    ((64, 64, 3), dtype('float32'), 0.39)
    """

    kind = "synthetic"

    def __init__(self, config: HeadConfig | None = None, capture: Capture | None = None, supersample: int = 2):
        if int(supersample) < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.config = config or HeadConfig()
        self.capture = capture
        self.supersample = int(supersample)
        self.expression_names = list(EXPRESSION_NAMES)

    @staticmethod
    def from_checkpoint(ckpt: dict) -> "SyntheticField":
        try:
            cfg = HeadConfig.from_dict(dict(ckpt.get("config") or {}))
            capture = Capture.from_dict(ckpt["capture"]) if ckpt.get("capture") is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"synthetic checkpoint is malformed ({type(exc).__name__}: {exc})") from None
        if capture is not None and list(capture.expression_names) != EXPRESSION_NAMES:
            raise CheckpointError(f"synthetic checkpoint names expressions {capture.expression_names}, "
                                  f"this build's head has {EXPRESSION_NAMES}")
        return SyntheticField(cfg, capture)

    def params(self, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(prims [N_PRIMS, 16], scalars [N_SCALARS]) of the head at ``expression`` [8]."""
        return head_params(expression, self.config)

    def render(self, camera: Camera, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = camera.intrinsics
        prims, scalars = self.params(expression)
        c2h = np.ascontiguousarray(camera.cam_to_head, dtype=np.float64)
        if c2h.shape != (4, 4):
            raise ValueError(f"cam_to_head must be [4, 4], got {c2h.shape}")
        rgb, alpha, depth = _trace(prims, scalars, c2h, k)
        s = self.supersample
        if s == 1:
            return rgb, alpha, depth
        h, w = k.height, k.width
        rgb_s, alpha_s, depth_s = _trace(prims, scalars, c2h, k.scaled(w * s, h * s))
        rgb = rgb_s.reshape(h, s, w, s, 3).mean((1, 3), dtype=np.float32)
        alpha = alpha_s.reshape(h, s, w, s).mean((1, 3), dtype=np.float32)
        nearest = np.where(depth_s > 0, depth_s, np.inf).reshape(h, s, w, s).min((1, 3))
        depth = np.where(depth > 0, depth, np.where(np.isfinite(nearest), nearest, 0.0))
        depth = np.where(alpha > 0, depth, 0.0).astype(np.float32)
        return rgb, alpha, depth

    def sdf(self, points: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """Signed distance (m) at head-frame points [..., 3] -> [...]."""
        prims, scalars = self.params(expression)
        pts = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
        out = np.empty(len(pts))
        kernels.sdf_points(prims, scalars, pts, out)
        return out.reshape(np.shape(points)[:-1])

    def warmup(self) -> None:
        """Compile (or load from the numba cache) every kernel once."""
        self.render(Camera(Intrinsics.from_fov(40, 8, 8), orbit_pose(0, 0, 0.5)),
                    np.zeros(len(EXPRESSION_NAMES)))


def _trace(prims: np.ndarray, scalars: np.ndarray, c2h: np.ndarray, k) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ray per pixel of intrinsics ``k``: rgb [H, W, 3], alpha [H, W], depth [H, W]."""
    rgb = np.empty((k.height, k.width, 3), np.float32)
    alpha = np.empty((k.height, k.width), np.float32)
    depth = np.empty((k.height, k.width), np.float32)
    kernels.render_into(prims, scalars, c2h, float(k.fx), float(k.fy), float(k.cx), float(k.cy),
                        rgb, alpha, depth)
    return rgb, alpha, depth
