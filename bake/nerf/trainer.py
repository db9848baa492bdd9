"""Training loop of the NeRFBlendShape head: batches of rays from B images, each image with its own
blended table; two-pass marching (find the samples that matter without grad, then render those with
grad); L1 (+ mask loss early, + optional perceptual loss on patches); Adam with exponential decay;
expression-aware occupancy updates; checkpoints that resume."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from bake.fields.base import Capture
from bake.nerf.config import NerfConfig
from bake.nerf.field import KIND, NerfField
from bake.nerf.model import NeRFBlendShape
from bake.nerf.occupancy import alpha_threshold_sigma, basis_blends, update_grid, visual_hull
from bake.nerf.rays import pixel_rays_torch
from bake.nerf.render import composite, march, march_fused
from formats.camera import Camera, Intrinsics


@dataclass
class FrameSet:
    """Frames of one split, resized, as tensors.

    images uint8 [N, H, W, 3]; masks uint8 [N, H, W]; cam_to_head [N, 4, 4]; expr [N, K];
    fg: per frame, flat pixel indices of the dilated mask (where face-biased rays come from);
    valid: bool [N, H, W], where the frame shows the source video (``Frame.valid``): rays
    elsewhere carry no loss, since the padding says nothing about the head behind it.
    """

    positions: list[int]
    images: torch.Tensor
    masks: torch.Tensor
    cam_to_head: torch.Tensor
    expr: torch.Tensor
    intrinsics: Intrinsics
    fg: list[torch.Tensor]
    valid: torch.Tensor


def train_size(ds, size: int) -> tuple[int, int]:
    """(width, height) for training at ``size`` pixels wide, keeping the aspect."""
    return int(size), max(1, int(round(size * ds.height / ds.width)))


def load_frame_at(ds, i: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 [h, w, 3] and mask uint8 [h, w] of frame i, area-resampled when the size differs."""
    img, m = ds.load_image(i), ds.load_mask(i)
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA)
    return img, m


def load_frames(ds, positions: list[int], size: int) -> FrameSet:
    w, h = train_size(ds, size)
    intr = ds.intrinsics.scaled(w, h)
    imgs, masks, fg, valid = [], [], [], []
    k = max(3, (w // 16) | 1)
    kernel = np.ones((k, k), np.uint8)
    for i in positions:
        img, m = load_frame_at(ds, i, w, h)
        v = ds.valid_mask(i, w, h)
        imgs.append(img)
        masks.append(m)
        valid.append(v)
        dil = cv2.dilate((m > 127).astype(np.uint8), kernel) & v
        idx = np.flatnonzero(dil.reshape(-1))
        fg.append(torch.from_numpy(idx if idx.size else np.flatnonzero(v.reshape(-1))))
    poses = ds.poses()[positions]
    c2h = np.linalg.inv(poses)
    return FrameSet(list(positions), torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(masks)),
                    torch.from_numpy(c2h).float(), torch.from_numpy(ds.expressions()[positions]), intr, fg,
                    torch.from_numpy(np.stack(valid)))


class Trainer:
    """Owns model, optimizer, occupancy grid and the step counter; ``step(frac)`` runs one update."""

    def __init__(self, cfg: NerfConfig, ds, size: int, device: torch.device, perceptual=None):
        self.cfg, self.ds, self.size, self.device = cfg, ds, size, device
        torch.manual_seed(cfg.seed)
        self.gen = np.random.default_rng(cfg.seed)
        train_pos = ds.split.get("train") or list(range(len(ds.frames)))
        self.train = load_frames(ds, train_pos, size)
        self.val = load_frames(ds, (ds.split.get("val") or train_pos[-1:])[:4], size)
        k = ds.expression_dim
        self.model = NeRFBlendShape(cfg, k, "torch" if device.type != "cpu" else "numba").to(device)
        # fused: one kernel over all parameters (3.5M hash entries) instead of ~10 elementwise ops each.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), eps=1e-15,
                                          fused=True)
        all_expr = torch.from_numpy(ds.expressions())
        self.expr_min, self.expr_max = all_expr[ds.split.get("train", slice(None))].amin(0), \
            all_expr[ds.split.get("train", slice(None))].amax(0)
        self.blends = basis_blends(self.expr_min, self.expr_max)
        self.threshold_sigma = alpha_threshold_sigma(cfg.occ_threshold, cfg.march_steps)
        # Start from the masks' visual hull, marked occupied with a margin the EMA decays away
        # (~8 updates) wherever the model does not confirm density. Cells outside the hull stay
        # empty: no ray samples them, so the model could never be asked about them anyway.
        k_ = self.train.intrinsics
        hull = visual_hull(self.train.masks.numpy(), np.linalg.inv(self.train.cam_to_head.double().numpy()),
                           k_.fx, k_.fy, k_.cx, k_.cy, cfg.bound, cfg.grid_res, valid=self.train.valid.numpy())
        self.hull_cells = torch.nonzero(hull).squeeze(1).to(device)
        self.grid = hull.float().to(device) * (1.5 * self.threshold_sigma)
        # The no-grad marching pass runs fused in numba (render.march_fused) instead of torch rounds.
        self.fused_march = device.type == "cpu"
        self.step_count = 0
        self.elapsed = 0.0
        self.history: list[list[float]] = []  # [step, seconds, batch psnr]
        self.perceptual = perceptual

    # -- checkpoint -----------------------------------------------------------------------------
    def checkpoint(self, extra_stats: dict | None = None) -> dict:
        stats = {"steps": self.step_count, "seconds": round(self.elapsed, 2), "size": self.size,
                 "history": self.history[-2000:], **(extra_stats or {})}
        return {
            "kind": KIND,
            "config": self.cfg.to_dict(),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "density_grid": self.grid.detach().cpu().clone(),
            "capture": Capture.from_dataset(self.ds).to_dict(),
            "expression_range": {"min": self.expr_min.tolist(), "max": self.expr_max.tolist()},
            "train_stats": stats,
            "optimizer": self.optimizer.state_dict(),
        }

    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.grid.copy_(torch.as_tensor(ckpt["density_grid"]).to(self.device))
        if "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        st = ckpt.get("train_stats", {})
        self.step_count = int(st.get("steps", 0))
        self.elapsed = float(st.get("seconds", 0.0))
        self.history = [list(h) for h in st.get("history", [])]

    # -- one step ----------------------------------------------------------------------------------
    def occupancy(self) -> torch.Tensor:
        g = self.cfg.grid_res
        return (self.grid > self.threshold_sigma).reshape(g, g, g)

    def sample_rays(self):
        """Pick B images and R/B pixels in each (face-biased). Returns per-ray tensors."""
        cfg, fs = self.cfg, self.train
        n_img = min(cfg.images_per_batch, len(fs.positions))
        frames = self.gen.choice(len(fs.positions), n_img, replace=False)
        per = cfg.rays_per_batch // n_img
        h, w = fs.images.shape[1:3]
        pix, bidx = [], []
        for b, f in enumerate(frames):
            n_face = int(per * cfg.face_fraction)
            fg = fs.fg[f]
            face = fg[torch.from_numpy(self.gen.integers(0, fg.numel(), n_face))]
            uni = torch.from_numpy(self.gen.integers(0, h * w, per - n_face))
            pix.append(torch.cat([face, uni]))
            bidx.append(torch.full((per,), b, dtype=torch.int32))
        pix, bidx = torch.cat(pix), torch.cat(bidx)
        fr = torch.from_numpy(frames)[bidx.long()]
        px, py = pix % w, pix // w
        k = fs.intrinsics
        o, d = pixel_rays_torch(fs.cam_to_head[fr], k.fx, k.fy, k.cx, k.cy, px, py)
        rgb = fs.images[fr, py, px].float() / 255.0
        m = fs.masks[fr, py, px].float() / 255.0
        v = fs.valid[fr, py, px].float()
        dev = self.device
        return (o.to(dev), d.to(dev), bidx.to(dev), rgb.to(dev), m.to(dev), v.to(dev),
                fs.expr[torch.from_numpy(frames)].to(dev))

    def render_train(self, o, d, bidx, tables, occ):
        """Two-pass render of rays with grad: rgb [R, 3] premultiplied, alpha [R], depth [R]."""
        cfg, m = self.cfg, self.model
        on, dn = (o + cfg.bound) / (2 * cfg.bound), d / (2 * cfg.bound)
        jitter = torch.rand(o.shape[0], device=o.device)
        if self.fused_march:
            s = march_fused(m, on, dn, occ, bidx, tables, jitter)
        else:
            with torch.no_grad():
                s = march(on, dn, occ, lambda xn, ray: m.density(xn, bidx[ray], tables), cfg.march_steps,
                          cfg.t_threshold, jitter=jitter)
        if s.ray.numel() == 0:
            z = torch.zeros(o.shape[0], device=o.device)
            return torch.zeros_like(o), z, z
        xn = (on[s.ray] + s.t[:, None] * dn[s.ray]).clamp(0, 1)
        sigma, geo = m.density(xn, bidx[s.ray], tables)
        rgb = m.color(geo, d[s.ray])
        return composite(s.ray, s.t, sigma, rgb, math.sqrt(3.0) / cfg.march_steps, o.shape[0])

    def step(self, frac: float) -> tuple[float, float]:
        """One optimisation step at training progress ``frac`` in [0, 1]. Returns (loss, batch PSNR)."""
        cfg = self.cfg
        for g in self.optimizer.param_groups:
            g["lr"] = cfg.lr * cfg.lr_final ** min(frac, 1.0)
        self.model.train()
        o, d, bidx, rgb_gt, m, v, w = self.sample_rays()
        tables = self.model.blend(w)
        occ = self.occupancy()
        rgb, alpha, _ = self.render_train(o, d, bidx, tables, occ)
        # Random background per ray: the only way to match both is alpha = mask, so alpha learns the
        # head foreground and the capture's own background never enters the field.
        bg = torch.rand_like(rgb)
        pred = rgb + (1.0 - alpha[:, None]) * bg
        target = rgb_gt * m[:, None] + bg * (1.0 - m[:, None])
        n_valid = v.sum().clamp_min(1.0)
        loss = ((pred - target).abs().mean(-1) * v).sum() / n_valid
        if frac < cfg.mask_fraction:
            # Squared, not L1: with most rays on the face, L1's median optimum is "opaque
            # everywhere" until the hash features can tell head from background.
            loss = loss + cfg.mask_weight * (((alpha - m) ** 2) * v).sum() / n_valid
        if self.perceptual is not None and frac >= cfg.mask_fraction:
            loss = loss + cfg.perceptual_weight * self.perceptual_patch_loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step_count += 1
        if self.step_count >= cfg.grid_warmup and self.step_count % cfg.grid_update_every == 0:
            self.model.eval()
            update_grid(self.model, self.grid, self.blends, cfg.grid_decay, self.hull_cells)
        with torch.no_grad():
            mse = float((((pred - target) ** 2).mean(-1) * v).sum() / n_valid)
        psnr = -10.0 * math.log10(max(mse, 1e-10))
        return float(loss.detach()), psnr

    def perceptual_patch_loss(self) -> torch.Tensor:
        """Perceptual distance of one rendered patch per image against the capture (black bg)."""
        cfg, fs = self.cfg, self.train
        p = min(cfg.patch_size, fs.images.shape[1], fs.images.shape[2])
        h, w = fs.images.shape[1:3]
        f = int(self.gen.integers(0, len(fs.positions)))
        y0, x0 = int(self.gen.integers(0, h - p + 1)), int(self.gen.integers(0, w - p + 1))
        py, px = torch.meshgrid(torch.arange(y0, y0 + p), torch.arange(x0, x0 + p), indexing="ij")
        px, py = px.reshape(-1), py.reshape(-1)
        k = fs.intrinsics
        o, d = pixel_rays_torch(fs.cam_to_head[f].expand(px.numel(), 4, 4), k.fx, k.fy, k.cx, k.cy, px, py)
        tables = self.model.blend(fs.expr[f:f + 1].to(self.device))
        bidx = torch.zeros(px.numel(), dtype=torch.int32, device=self.device)
        rgb, _, _ = self.render_train(o.to(self.device), d.to(self.device), bidx, tables, self.occupancy())
        gt = fs.images[f, py, px].float() / 255.0 * (fs.masks[f, py, px].float() / 255.0)[:, None]
        v = fs.valid[f, py, px].float()[:, None].to(self.device)
        rgb, gt = rgb * v, gt.to(self.device) * v  # the padding compares black with black
        to_img = lambda x: x.reshape(p, p, 3).permute(2, 0, 1)[None]  # noqa: E731
        return self.perceptual(to_img(rgb), to_img(gt))

    # -- validation --------------------------------------------------------------------------------
    def field(self) -> NerfField:
        """The current model behind the field interface (shares parameters; leaves train mode off)."""
        cap = Capture.from_dataset(self.ds)
        return NerfField(self.model, self.grid.clone(), cap, {}, self.device)

    def validation_sheet(self) -> tuple[np.ndarray, float]:
        """Rows of [ground truth | render | 4x error] for the val frames; returns (uint8 RGB, PSNR)."""
        fld = self.field()
        rows, mses = [], []
        fs = self.val
        for j in range(len(fs.positions)):
            cam = Camera(fs.intrinsics, fs.cam_to_head[j].double().numpy())
            rgb, _, _ = fld.render(cam, fs.expr[j].numpy())
            gt = fs.images[j].numpy().astype(np.float32) / 255.0 * (fs.masks[j].numpy()[..., None] / 255.0)
            v = fs.valid[j].numpy()
            err = np.abs(rgb - gt) * v[..., None]  # the padding is nobody's error
            mses.append(float((err[v] ** 2).mean()))
            rows.append(np.concatenate([gt, rgb, np.clip(err * 4, 0, 1)], 1))
        self.model.train()
        sheet = (np.concatenate(rows, 0) * 255 + 0.5).astype(np.uint8)
        return sheet, -10.0 * math.log10(max(float(np.mean(mses)), 1e-10))
