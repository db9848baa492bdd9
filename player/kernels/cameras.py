"""Cameras as the kernels take them: (K [4] = fx, fy, cx, cy; R [3, 3] camera->head rotation;
C [3] centre), and the affine map between two of them."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _relative(ra, ca, rb, cb, g):
    """Affine map from camera b's frame to camera a's, q_a = M q_b + o with M = Ra^T Rb,
    o = Ra^T (Cb - Ca) (R camera->head [3, 3], C centre [3]), written into g [4, 3]: rows 0-2 = M,
    row 3 = o. Written out so numba needs no BLAS; into the caller's buffer so a frame allocates
    nothing."""
    for i in range(3):
        for j in range(3):
            acc = 0.0
            for k in range(3):
                acc += ra[k, i] * rb[k, j]
            g[i, j] = acc
        acc = 0.0
        for k in range(3):
            acc += ra[k, i] * (cb[k] - ca[k])
        g[3, i] = acc


def camera_arrays(intrinsics, cam_to_head) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K [4] = fx, fy, cx, cy; R [3, 3]; C [3]) float64 contiguous, for the kernels."""
    k = np.array([intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy], dtype=np.float64)
    m = np.asarray(cam_to_head, dtype=np.float64)
    return k, np.ascontiguousarray(m[:3, :3]), np.ascontiguousarray(m[:3, 3])
