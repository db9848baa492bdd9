"""The one camera model shared by the bake and the player.

Head frame (all stages): origin at the head's centre, metres, +x towards the subject's left
(image right in a frontal view), +y up, +z out of the face towards a frontal camera.

Cameras use OpenCV axes (x right, y down, z forward). A camera is a pinhole with intrinsics in
pixels and a 4x4 ``cam_to_head`` pose. Depth everywhere means z-depth in the camera frame
(distance along the optical axis), never ray length.

View angles: a camera at ``center + radius * (cos(p) sin(y), sin(p), cos(p) cos(y))`` has yaw
``y`` and pitch ``p`` (degrees in every file and on every command line). Yaw > 0 moves the
camera towards the subject's left, pitch > 0 moves it above the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of ``width`` x ``height``."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def scaled(self, width: int, height: int) -> "Intrinsics":
        """The same field of view at another image size."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height)

    def to_dict(self) -> dict:
        # Plain Python numbers: numpy scalars would not load under torch's weights_only.
        return {"fx": float(self.fx), "fy": float(self.fy), "cx": float(self.cx), "cy": float(self.cy),
                "width": int(self.width), "height": int(self.height)}

    @staticmethod
    def from_dict(d: dict) -> "Intrinsics":
        return Intrinsics(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]),
                          int(d["width"]), int(d["height"]))

    @staticmethod
    def from_fov(fov_deg: float, width: int, height: int) -> "Intrinsics":
        """Square pixels, principal point at the centre, ``fov_deg`` across the width."""
        f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
        return Intrinsics(f, f, width / 2, height / 2, width, height)


@dataclass(frozen=True)
class Camera:
    intrinsics: Intrinsics
    cam_to_head: np.ndarray  # [4, 4] float64, OpenCV axes


def orbit_position(yaw_deg: float, pitch_deg: float, radius: float,
                   center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Camera centre for view angles (degrees) on a sphere around ``center``. Shape [3]."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    d = np.array([np.cos(p) * np.sin(y), np.sin(p), np.cos(p) * np.cos(y)])
    return np.asarray(center, dtype=np.float64) + radius * d


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b of two 3-vectors, by np.cross's own formula: np.cross costs ~0.1 ms a call on this
    machine, and the player builds a target camera every frame."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """cam_to_head [4, 4] of a camera at ``eye`` looking at ``target``, head +y up in the image."""
    eye = np.asarray(eye, dtype=np.float64)
    f = np.asarray(target, dtype=np.float64) - eye
    f /= np.linalg.norm(f)
    x = _cross(f, np.asarray(up, dtype=np.float64))
    n = np.linalg.norm(x)
    if n < 1e-9:  # looking straight up/down: any right vector works, keep it continuous in x
        x = np.array([1.0, 0.0, 0.0])
    else:
        x /= n
    y = _cross(f, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, f, eye
    return m


def orbit_pose(yaw_deg: float, pitch_deg: float, radius: float, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """cam_to_head [4, 4] of the orbit camera at (yaw, pitch) looking at ``center``.

    >>> np.round(orbit_pose(0, 0, 0.5)[:3], 3).tolist()
    [[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.5]]
    """
    return look_at(orbit_position(yaw_deg, pitch_deg, radius, center), center)


def view_angles(cam_to_head: np.ndarray, center=(0.0, 0.0, 0.0)) -> tuple[float, float, float]:
    """(yaw_deg, pitch_deg, radius) of a camera's centre around ``center``; inverse of orbit_position."""
    d = np.asarray(cam_to_head)[:3, 3] - np.asarray(center, dtype=np.float64)
    r = float(np.linalg.norm(d))
    yaw = float(np.degrees(np.arctan2(d[0], d[2])))
    pitch = float(np.degrees(np.arcsin(np.clip(d[1] / max(r, 1e-12), -1.0, 1.0))))
    return yaw, pitch, r


def pixel_rays(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Rays through pixel centres, in the head frame.

    Returns origins [H, W, 3] and directions [H, W, 3] scaled so that a point at parameter t
    along a ray has camera z-depth t (directions are not unit length).
    """
    k = camera.intrinsics
    u = (np.arange(k.width, dtype=np.float64) + 0.5 - k.cx) / k.fx
    v = (np.arange(k.height, dtype=np.float64) + 0.5 - k.cy) / k.fy
    uu, vv = np.meshgrid(u, v)
    d_cam = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
    rot = camera.cam_to_head[:3, :3]
    dirs = d_cam @ rot.T
    origins = np.broadcast_to(camera.cam_to_head[:3, 3], dirs.shape).copy()
    return origins, dirs
