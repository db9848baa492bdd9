"""The head-following square crop, as a virtual camera.

A plain moving crop window would give every frame its own principal point, which one dataset
intrinsics cannot describe. Instead each output frame is what a virtual camera at the same centre,
rotated to look at the head, would see: the image warp is the homography
``H = K_out R_v K_src^-1`` (exact for a rotation about the optical centre), the dataset keeps one
intrinsics ``K_out`` (principal point at the centre, fixed focal = fixed scale for the video) and
the pose becomes ``[R_v | 0] @ pose``. For the small angles of a crop it looks like a shifted
window.
"""

from __future__ import annotations

import cv2
import numpy as np

from bake.track.pose import gaussian_smooth


def look_rotations(targets: np.ndarray) -> np.ndarray:
    """[T, 3, 3] rotations (source camera -> virtual camera, OpenCV axes) whose optical axis points
    at ``targets`` [T, 3] (source-camera coordinates) with no roll: the virtual x axis stays in
    the source camera's horizontal plane."""
    z = targets / np.linalg.norm(targets, axis=-1, keepdims=True)
    x = np.cross(np.array([0.0, 1.0, 0.0]), z)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-2)  # rows = virtual axes in source coordinates


def follow_targets(targets: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Directions [T, 3] the crop looks along: the head's direction, smoothed more strongly than
    the pose so the crop glides instead of shaking with every landmark jitter."""
    d = targets / np.linalg.norm(targets, axis=-1, keepdims=True)
    d = gaussian_smooth(d, sigma_frames)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def crop_focal(size: int, depth_m: float, extent_m: float, src_focal: float, src_short_side: int) -> float:
    """Output focal (pixels) so that ``extent_m`` metres at ``depth_m`` span ``size`` pixels, but
    never wider than the source's short side (else most of the crop would be outside the video)."""
    want = size * depth_m / extent_m
    floor = size * src_focal / src_short_side
    return float(max(want, floor))


def homography(k_src: np.ndarray, k_out: np.ndarray, r_v: np.ndarray) -> np.ndarray:
    """[3, 3] map of source pixels to output pixels (edge-origin continuous coordinates)."""
    return k_out @ r_v @ np.linalg.inv(k_src)


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """[N, 2] -> [N, 2]."""
    p = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ h.T
    return p[:, :2] / p[:, 2:3]


def warp(image: np.ndarray, h: np.ndarray, size: int, border_value=0) -> np.ndarray:
    """Resample ``image`` into the size x size output through ``h`` (edge-origin coordinates;
    converted here to OpenCV's pixel-index coordinates where pixel i's centre is at i)."""
    s = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    h_idx = np.linalg.inv(s) @ h @ s
    return cv2.warpPerspective(image, h_idx, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
