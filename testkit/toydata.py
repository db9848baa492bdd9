"""A tiny analytic dataset for tests and benches: a striped ball whose "jaw" (lower part) grows
with expression coefficient 0 and whose colour tint follows coefficient 1, seen from cameras that
orbit it. Rendered exactly by ray casting, so any error is the learner's."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import torch

from bake.data.dataset import Dataset, Frame, default_split, save_dataset
from bake.fields.base import Capture, save_checkpoint
from bake.nerf.config import preset
from bake.nerf.model import NeRFBlendShape
from bake.nerf.occupancy import alpha_threshold_sigma
from formats.camera import Camera, Intrinsics, orbit_pose, pixel_rays


def _shade(p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Surface points [N, 3] -> rgb [N, 3]: stripes along y plus a tint set by w[1]."""
    stripes = 0.5 + 0.5 * np.sin(p[:, 1] * 60.0)
    base = np.stack([0.8 * stripes + 0.1, 0.3 + 0.4 * (p[:, 0] > 0), 0.6 - 0.4 * stripes], -1)
    tint = np.array([0.2, -0.2, 0.1]) * w[1]
    return np.clip(base + tint, 0.0, 1.0)


def render_toy(cam: Camera, w: np.ndarray, radius: float = 0.1):
    """Exact render: rgb [H, W, 3] over black, mask [H, W] bool, z-depth [H, W].

    The ball is an ellipsoid with y semi-axis radius * (1 + 0.4 * w[0]) below the centre.
    """
    o, d = pixel_rays(cam)
    sh = o.shape[:2]
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    best_t = np.full(o.shape[0], np.inf)
    for below in (False, True):
        ay = radius * (1.0 + 0.4 * w[0]) if below else radius
        s = np.array([1 / radius, 1 / ay, 1 / radius])
        oo, dd = o * s, d * s
        a = (dd * dd).sum(1)
        b = 2 * (oo * dd).sum(1)
        c = (oo * oo).sum(1) - 1
        disc = b * b - 4 * a * c
        ok = disc > 0
        t = np.where(ok, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
        y = o[:, 1] + t * d[:, 1]
        hit = ok & ((y < 0) == below) & (t > 0)
        best_t = np.where(hit & (t < best_t), t, best_t)
    hit = np.isfinite(best_t)
    rgb = np.zeros((o.shape[0], 3))
    p = o[hit] + best_t[hit, None] * d[hit]
    rgb[hit] = _shade(p, w)
    depth = np.where(hit, best_t, 0.0)
    return rgb.reshape(*sh, 3), hit.reshape(sh), depth.reshape(sh)


def write_toy_dataset(root: str | Path, n_frames: int = 40, size: int = 48, seed: int = 0) -> Path:
    """Write DATASET/{dataset.json, images/, masks/} with a grey noisy background (lossless PNG)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    intr = Intrinsics.from_fov(30.0, size, size)
    frames = []
    for i in range(n_frames):
        tt = i / max(n_frames - 1, 1)
        w = np.array([0.5 + 0.5 * np.sin(7.0 * tt), 0.5 + 0.5 * np.cos(5.0 * tt)], dtype=np.float32)
        yaw, pitch = 25.0 * np.sin(2 * np.pi * tt * 1.5), 10.0 * np.sin(2 * np.pi * tt)
        c2h = orbit_pose(yaw, pitch, 0.5)
        rgb, mask, _ = render_toy(Camera(intr, c2h), w)
        bg = 0.5 + 0.1 * rng.standard_normal((size, size, 1))
        img = np.where(mask[..., None], rgb, bg)
        name = f"{i:06d}.png"
        cv2.imwrite(str(root / "images" / name), (np.clip(img, 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8))
        cv2.imwrite(str(root / "masks" / name), mask.astype(np.uint8) * 255)
        frames.append(Frame(i, i / 25.0, f"images/{name}", f"masks/{name}", np.linalg.inv(c2h), w))
    ds = Dataset(root, size, size, 25.0, intr, "toy-2", ["jaw", "tint"], frames, default_split(n_frames))
    save_dataset(ds)
    return root


def write_ball_checkpoint(path: str | Path, radius: float = 0.1) -> Path:
    """A nerf-blendshape checkpoint set by hand (no training): a dense ball of ``radius`` metres at the
    head centre, orange, with expressions ["jaw", "tint"] that do nothing. For CLI tests."""
    cfg = preset("tiny", levels=2, base_res=8, finest_res=16, grid_res=16)
    model = NeRFBlendShape(cfg, 2)
    r0 = int(model.encoding.res[0])  # level 0 is dense: vertex (i, j, k) is row i + j (r+1) + k (r+1)^2
    v = (np.arange(r0 + 1) / r0) * 2 * cfg.bound - cfg.bound
    xx, yy, zz = np.meshgrid(v, v, v, indexing="ij")
    inside = np.sqrt(xx ** 2 + yy ** 2 + zz ** 2) < radius
    feat = np.where(inside, 1.0, 0.0).transpose(2, 1, 0).reshape(-1)  # x fastest
    with torch.no_grad():
        model.encoding.bases.zero_()
        model.encoding.bases[0, 0, : feat.size, 0] = torch.from_numpy(feat).float()
        for i, layer in enumerate(m for m in model.density_net if isinstance(m, torch.nn.Linear)):
            layer.weight.zero_()
            layer.bias.zero_()
            layer.weight[0, 0] = 1.0  # carry feature 0 of level 0 through unit 0
        last = [m for m in model.density_net if isinstance(m, torch.nn.Linear)][-1]
        last.weight[0, 0], last.bias[0] = 40.0, -20.0  # density raw: +20 inside, -20 outside
        for layer in (m for m in model.color_net if isinstance(m, torch.nn.Linear)):
            layer.weight.zero_()
            layer.bias.zero_()
        model.color_net[-1].bias.copy_(torch.tensor([2.0, 0.0, -2.0]))
    intr = Intrinsics.from_fov(30.0, 64, 64)
    poses = np.stack([np.linalg.inv(orbit_pose(y, 0.0, 0.5)) for y in (-20.0, 0.0, 20.0)])
    cap = Capture(64, 64, intr, np.arange(3) / 25.0, poses, np.zeros((3, 2), np.float32), ["jaw", "tint"],
                  {"train": [0, 1], "val": [], "test": [2]})
    grid = torch.full((cfg.grid_res ** 3,), 10.0 * alpha_threshold_sigma(cfg.occ_threshold, cfg.march_steps))
    path = Path(path)
    save_checkpoint({"kind": "nerf-blendshape", "config": cfg.to_dict(), "model": model.state_dict(),
                     "density_grid": grid, "capture": cap.to_dict(),
                     "expression_range": {"min": [0.0, 0.0], "max": [1.0, 1.0]}, "train_stats": {}}, path)
    return path
