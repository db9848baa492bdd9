"""Rigid head pose from 2-D landmarks: PnP against the canonical face, per-video personalisation
of that face, reprojection error, and temporal smoothing. Pure functions on numpy arrays.

Pixel coordinates here are continuous with 0 at the image's left/top edge (a pixel centre is at
i + 0.5), the convention of ``formats.camera`` and of mediapipe's normalised landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np

# Head-frame origin in mediapipe's canonical face coordinates (centimetres). The canonical origin
# sits ~7.5 cm behind the nose tip at eye height; a head's centre (middle of the skull, where the
# bake's orbit cameras look) is ~9 cm behind the nose tip and ~1 cm above eye level.
HEAD_CENTRE_CANONICAL_CM = np.array([0.0, 1.0, -1.5])


def canonical_to_head(vertices_cm: np.ndarray) -> np.ndarray:
    """[N, 3] canonical centimetres -> [N, 3] head-frame metres (same axes, shifted origin)."""
    return (np.asarray(vertices_cm, dtype=np.float64) - HEAD_CENTRE_CANONICAL_CM) / 100.0


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def project(points: np.ndarray, pose: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Pixels [..., N, 2] of head-frame points [N, 3] under pose(s) [..., 4, 4] head->camera."""
    cam = points @ np.swapaxes(pose[..., :3, :3], -1, -2) + pose[..., None, :3, 3]
    z = np.maximum(cam[..., 2:3], 1e-9)
    uv = cam[..., :2] / z
    return uv * np.array([k[0, 0], k[1, 1]]) + np.array([k[0, 2], k[1, 2]])


def pose_matrix(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3, 1))[0]
    m[:3, 3] = np.asarray(tvec, dtype=np.float64).reshape(3)
    return m


def solve_pnp(points: np.ndarray, pixels: np.ndarray, k: np.ndarray,
              init: np.ndarray | None = None) -> np.ndarray | None:
    """Pose [4, 4] head->camera fitting head-frame ``points`` [N, 3] to ``pixels`` [N, 2]
    (Levenberg-Marquardt on reprojection error); None when the fit fails or lands behind."""
    obj = np.ascontiguousarray(points, dtype=np.float64)
    img = np.ascontiguousarray(pixels, dtype=np.float64)
    if init is not None:
        rvec = cv2.Rodrigues(init[:3, :3])[0]
        tvec = init[:3, 3].reshape(3, 1).copy()
        ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, rvec, tvec, useExtrinsicGuess=True,
                                      flags=cv2.SOLVEPNP_ITERATIVE)
    else:
        ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, rvec, tvec, useExtrinsicGuess=True,
                                          flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or float(np.ravel(tvec)[2]) <= 0:
        return None
    return pose_matrix(rvec, tvec)


def personalise_shape(shape: np.ndarray, poses: np.ndarray, pixels: np.ndarray, k: np.ndarray,
                      prior_weight: float = 2.0) -> np.ndarray:
    """Per-video face shape [N, 3] (head frame, metres) that best explains the landmarks.

    For each vertex solves the linear triangulation over all frames
    ``(u - cx)/fx * z_cam - x_cam = 0`` (and the same in y), with a Tikhonov pull towards
    ``shape`` weighted like ``prior_weight`` frames seen straight on: a talking head turns too little
    to pin depth from the video alone, so depth stays close to the canonical face.

    poses [T, 4, 4], pixels [T, N, 2] -> [N, 3].
    """
    r, t = poses[:, :3, :3], poses[:, :3, 3]  # [T, 3, 3], [T, 3]
    xn = (pixels[..., 0] - k[0, 2]) / k[0, 0]  # [T, N]
    yn = (pixels[..., 1] - k[1, 2]) / k[1, 1]
    # a_x = xn * r3 - r1 ; b_x = t1 - xn * t3   (per frame, per vertex)
    ax = xn[..., None] * r[:, None, 2, :] - r[:, None, 0, :]  # [T, N, 3]
    ay = yn[..., None] * r[:, None, 2, :] - r[:, None, 1, :]
    bx = t[:, None, 0] - xn * t[:, None, 2]  # [T, N]
    by = t[:, None, 1] - yn * t[:, None, 2]
    # Scale each frame's equations by 1/depth so they are in normalised image units.
    s = 1.0 / np.maximum(t[:, 2], 1e-6)  # [T]
    ax, ay = ax * s[:, None, None], ay * s[:, None, None]
    bx, by = bx * s[:, None], by * s[:, None]
    ata = np.einsum("tni,tnj->nij", ax, ax) + np.einsum("tni,tnj->nij", ay, ay)  # [N, 3, 3]
    atb = np.einsum("tni,tn->ni", ax, bx) + np.einsum("tni,tn->ni", ay, by)  # [N, 3]
    lam = prior_weight * float(np.mean(s) ** 2)
    ata = ata + lam * np.eye(3)
    atb = atb + lam * shape
    return np.linalg.solve(ata, atb[..., None])[..., 0]


def reprojection_errors(points: np.ndarray, poses: np.ndarray, pixels: np.ndarray,
                        k: np.ndarray) -> np.ndarray:
    """[T, N] pixel distance between projected ``points`` [N, 3] and ``pixels`` [T, N, 2]."""
    return np.linalg.norm(project(points, poses, k) - pixels, axis=-1)


# --- rotations and smoothing ---------------------------------------------------------------------

def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0 of [T, ...] with edge renormalisation; sigma in samples."""
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    rad = int(np.ceil(3 * sigma))
    w = np.exp(-0.5 * (np.arange(-rad, rad + 1) / sigma) ** 2)
    flat = x.reshape(len(x), -1)
    n = len(x)
    # "full" then the centred slice: correct for kernels longer than the signal too.
    num = np.stack([np.convolve(flat[:, j], w, mode="full")[rad:rad + n]
                    for j in range(flat.shape[1])], axis=1)
    den = np.convolve(np.ones(n), w, mode="full")[rad:rad + n][:, None]
    return (num / den).reshape(x.shape)


def _quat_from_matrix(r: np.ndarray) -> np.ndarray:
    """[T, 3, 3] -> [T, 4] (w, x, y, z), via the eigenvector method (robust for any angle)."""
    out = np.empty((len(r), 4))
    for i, m in enumerate(r):
        k = np.array([
            [m[0, 0] - m[1, 1] - m[2, 2], m[1, 0] + m[0, 1], m[2, 0] + m[0, 2], m[2, 1] - m[1, 2]],
            [m[1, 0] + m[0, 1], m[1, 1] - m[0, 0] - m[2, 2], m[2, 1] + m[1, 2], m[0, 2] - m[2, 0]],
            [m[2, 0] + m[0, 2], m[2, 1] + m[1, 2], m[2, 2] - m[0, 0] - m[1, 1], m[1, 0] - m[0, 1]],
            [m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], m[0, 0] + m[1, 1] + m[2, 2]],
        ]) / 3.0
        vals, vecs = np.linalg.eigh(k)
        q = vecs[:, -1]
        out[i] = [q[3], q[0], q[1], q[2]]
    return out


def _matrix_from_quat(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def smooth_poses(poses: np.ndarray, times: np.ndarray, sigma_s: float) -> np.ndarray:
    """Temporally smoothed poses [T, 4, 4]: Gaussian (sigma in seconds) on translation and on
    sign-aligned quaternions (renormalised), which is accurate for the small frame-to-frame
    rotations of a video. Gaps from dropped frames are ignored (samples are treated as even)."""
    if len(poses) < 2 or sigma_s <= 0:
        return poses.copy()
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    sigma = sigma_s / max(dt, 1e-6)
    q = _quat_from_matrix(poses[:, :3, :3])
    for i in range(1, len(q)):  # keep consecutive quaternions in one hemisphere
        if np.dot(q[i], q[i - 1]) < 0:
            q[i] = -q[i]
    out = np.tile(np.eye(4), (len(poses), 1, 1))
    out[:, :3, :3] = _matrix_from_quat(gaussian_smooth(q, sigma))
    out[:, :3, 3] = gaussian_smooth(poses[:, :3, 3], sigma)
    return out


def blend_poses(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-frame blend [T, 4, 4] of poses a and b with weights w [T] in [0, 1] (0 = a, 1 = b):
    normalised quaternion lerp and linear translation (fine for the nearby poses it is used on)."""
    qa, qb = _quat_from_matrix(a[:, :3, :3]), _quat_from_matrix(b[:, :3, :3])
    qb = np.where((np.sum(qa * qb, axis=1) < 0)[:, None], -qb, qb)
    out = np.tile(np.eye(4), (len(a), 1, 1))
    out[:, :3, :3] = _matrix_from_quat((1 - w)[:, None] * qa + w[:, None] * qb)
    out[:, :3, 3] = (1 - w)[:, None] * a[:, :3, 3] + w[:, None] * b[:, :3, 3]
    return out


def smooth_poses_bounded(poses: np.ndarray, times: np.ndarray, sigma_s: float, points: np.ndarray,
                         k: np.ndarray, max_shift_px: float) -> np.ndarray:
    """Smooth only the jitter: ``smooth_poses``, then per frame keep as much of the smoothing as
    moves the projected ``points`` [N, 3] by at most ``max_shift_px`` (median over points)
    relative to the raw fit, linearly fading to the raw pose at twice that shift.

    A plain Gaussian also flattens real fast motion (a quick head turn moves landmarks tens of
    pixels per frame on some clips, and a 1-frame sigma then costs ~6 px of reprojection
    error); landmark jitter is ~1 px, so bounding the shift keeps the smoothing where it helps.
    poses [T, 4, 4] -> [T, 4, 4]."""
    sm = smooth_poses(poses, times, sigma_s)
    shift = np.median(np.linalg.norm(project(points, sm, k) - project(points, poses, k), axis=-1), axis=1)
    w = np.clip(2.0 - shift / max(max_shift_px, 1e-9), 0.0, 1.0)
    return blend_poses(poses, sm, w)
