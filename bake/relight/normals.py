"""Head-frame surface normals of a tile: exact from the synthetic head's SDF, else from the tile's
depth (the bake's proxy or field depth), smoothed so they carry no noise; and their stored codes.

Shapes: depth float32 [H, W] camera z-depth in metres (0 = empty), normals float64 [H, W, 3] unit
head-frame vectors (0 where empty), codes uint8 [ceil(H/n), ceil(W/n), 3].
"""

from __future__ import annotations

import cv2
import numpy as np

from formats.camera import Camera, pixel_rays
from formats.lighting import oct_encode
from formats.p4d import downscale_depth

SDF_EPS = 2e-4  # metres: central differences of the SDF, finer than any crease the shading shows


def hit_points(camera: Camera, depth: np.ndarray) -> np.ndarray:
    """Head-frame points [H, W, 3] where each pixel's ray reaches its depth (pixel centres)."""
    origins, dirs = pixel_rays(camera)
    return origins + dirs * np.asarray(depth, np.float64)[..., None]


def sdf_normals(sdf, camera: Camera, depth: np.ndarray) -> np.ndarray:
    """Unit SDF gradients at the depth's hit points: ``sdf(points [N, 3]) -> [N]`` (the synthetic
    head's ``SyntheticField.sdf`` bound to an expression). Exact, so nothing is smoothed."""
    valid = np.asarray(depth) > 0
    p = hit_points(camera, depth)[valid]
    g = np.empty_like(p)
    for axis in range(3):
        e = np.zeros(3)
        e[axis] = SDF_EPS
        g[:, axis] = sdf(p + e) - sdf(p - e)
    out = np.zeros(depth.shape + (3,))
    out[valid] = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return out


def _masked_blur(x: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of x [H, W, C] over the mask only (normalised convolution): the empty
    background does not pull the silhouette's values towards 0."""
    m = mask.astype(np.float32)
    num = cv2.GaussianBlur(x.astype(np.float32) * m[..., None], (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    den = cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return np.where(den[..., None] > 1e-3, num / np.maximum(den, 1e-3)[..., None], 0.0)


def depth_normals(camera: Camera, depth: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Normals from a depth map: the hit points smoothed over the surface (Gaussian, ``sigma``
    pixels; default size / 128, 2 px at 256²), their cross-product of central differences,
    smoothed again and facing the camera. Smoothing the points first keeps the 8-bit depth's
    2.4 mm steps (and a learned depth's noise) out of the normals."""
    depth = np.asarray(depth, np.float32)
    h, w = depth.shape
    sigma = sigma or max(1.0, max(h, w) / 128)
    valid = depth > 0
    p = _masked_blur(hit_points(camera, depth), valid, sigma)
    dx = np.zeros_like(p)
    dy = np.zeros_like(p)
    dx[:, 1:-1] = p[:, 2:] - p[:, :-2]
    dy[1:-1] = p[2:] - p[:-2]
    n = np.cross(dy, dx)  # image y points down, x right: (dy x dx) faces the camera
    n = _masked_blur(n, valid, sigma)
    _, dirs = pixel_rays(camera)
    flip = (n * dirs).sum(-1) > 0  # a normal must face the camera that sees it
    n[flip] *= -1
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    ok = valid & (norm[..., 0] > 1e-12)
    return np.where(ok[..., None], n / np.maximum(norm, 1e-12), 0.0)


PREFILTER = 0.25  # x scale: the Gaussian (pixels) the normals are blurred by before point samples


def normal_codes(normals: np.ndarray, scale: int) -> np.ndarray:
    """Normals [H, W, 3] -> the stored normal tile uint8 [ceil(H/n), ceil(W/n), 3] (point samples
    by the depth rule, octahedral codes, third channel 0).

    Below full resolution the normals are blurred over the surface first (a masked Gaussian of
    PREFILTER x scale pixels): a point sample of a crease (the jaw, a nostril) where the normal
    turns within a few pixels would otherwise catch it at a different phase every sample, and the
    relit crease would zigzag (bench/relight_quality.py: relit worst 1 % 17.7 -> 18.3 dB at 1/4).
    Empty pixels near the surface take the surface's normals spread outwards (a masked blur of
    a few samples), the rest +z: the player interpolates gains between samples, and a sample
    just outside the silhouette with an unrelated normal would draw a halo along it."""
    normals = np.asarray(normals, np.float64)
    valid = np.abs(normals).sum(-1) > 0
    if scale > 1:
        normals = np.where(valid[..., None], _masked_blur(normals, valid, PREFILTER * scale), 0.0)
    spread = _masked_blur(normals, valid, 2.0 * scale)
    normals = np.where(valid[..., None], normals, spread)
    n = downscale_depth(normals, scale)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 1e-6, n / np.maximum(norm, 1e-6), np.array([0.0, 0.0, 1.0]))
    code = oct_encode(n)
    return np.ascontiguousarray(np.dstack([code, np.zeros(code.shape[:2], np.uint8)]))


def surface_normals(field, camera: Camera, expression: np.ndarray, depth: np.ndarray,
                    exact: bool = True) -> np.ndarray:
    """A tile's normals: from the field's SDF where it has one (the synthetic head) and ``exact``,
    else from ``depth`` (``depth_normals``). An anchored bake passes exact=False: its depth is
    the proxy the player warps with, and the normals should belong to that same surface."""
    sdf = getattr(field, "sdf", None)
    if exact and sdf is not None:
        return sdf_normals(lambda p: sdf(p, expression), camera, depth)
    return depth_normals(camera, depth)
