"""``NerfField``: a trained NeRFBlendShape checkpoint behind the bake's field interface."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch

from bake.fields.base import Capture, CheckpointError
from bake.nerf import kernels
from bake.nerf.config import NerfConfig
from bake.nerf.model import NeRFBlendShape
from bake.nerf.occupancy import alpha_threshold_sigma, expression_occupancy
from bake.nerf.render import composite, march, march_range_np, median_depth
from formats.camera import Camera, pixel_rays

KIND = "nerf-blendshape"


class NerfField:
    """``render(camera, expression) -> rgb [H, W, 3] premultiplied, alpha [H, W], depth [H, W]``.

    What depends only on the expression (the blended table and the cells it occupies) is cached
    for the last few expressions, so the views of one keyframe share it.

    ``implementation``: ``"fused"`` (the default on CPU) renders each ray in one numba pass
    (``kernels._render_fused``: march, encode, both MLPs, composite, no packed arrays);
    ``"torch"`` (the default elsewhere, and the reference the fused path is tested against) packs
    samples round by round and runs the model's torch modules on them.
    """

    kind = KIND

    def __init__(self, model: NeRFBlendShape, density_grid: torch.Tensor, capture: Capture,
                 expression_range: dict, device: torch.device, chunk: int = 1 << 13, cache_size: int = 4,
                 implementation: str = "auto"):
        self.model = model.to(device).eval()
        self.cfg: NerfConfig = model.cfg
        self.device = device
        self.capture = capture
        self.expression_range = expression_range
        g = self.cfg.grid_res
        self.threshold_sigma = alpha_threshold_sigma(self.cfg.occ_threshold, self.cfg.march_steps)
        self.occ = (density_grid.to(device).reshape(g, g, g) > self.threshold_sigma)
        self.chunk = chunk  # rays per pass: 8k rays keep a round's MLP activations in cache (~10% less CPU than 32k)
        self._cache: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._cache_size = cache_size
        self.implementation = implementation  # checked by the property setter

    @property
    def implementation(self) -> str:
        return self._implementation

    @implementation.setter
    def implementation(self, value: str) -> None:
        if value == "auto":
            value = "fused" if self.device.type == "cpu" else "torch"
        if value not in ("fused", "torch"):
            raise ValueError(f"NerfField implementation must be 'auto', 'fused' or 'torch', got {value!r}")
        if value == "fused" and self.device.type != "cpu":
            raise ValueError("the fused numba renderer runs on CPU only; use implementation='torch' on "
                             f"{self.device.type}")
        self._implementation = value

    @staticmethod
    def from_checkpoint(ckpt: dict, device: torch.device | str = "cpu", implementation: str = "auto") -> "NerfField":
        try:
            cfg = NerfConfig.from_dict(ckpt["config"])
            capture = Capture.from_dict(ckpt["capture"])
            model = NeRFBlendShape(cfg, len(capture.expression_names))
            model.load_state_dict(ckpt["model"])
            grid = torch.as_tensor(ckpt["density_grid"], dtype=torch.float32)
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"nerf-blendshape checkpoint is malformed ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        if grid.numel() != cfg.grid_res ** 3:
            raise CheckpointError(f"density_grid has {grid.numel()} cells, config says {cfg.grid_res}^3")
        dev = torch.device(device)
        if dev.type == "cuda":
            model.encoding.implementation = "torch"
        return NerfField(model, grid, capture, dict(ckpt.get("expression_range", {})), dev,
                         implementation=implementation)

    @torch.no_grad()
    def prepare(self, expression: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Blended table [1, L, T, F] and occupancy [G, G, G] of one expression (cached)."""
        w = np.asarray(expression, dtype=np.float32).reshape(-1)
        if w.shape[0] != self.model.n_expr:
            raise ValueError(f"expression has {w.shape[0]} coefficients, the model takes {self.model.n_expr}")
        key = w.tobytes()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        table = self.model.blend(torch.from_numpy(w)[None].to(self.device))
        occ = expression_occupancy(self.model, self.occ, table, self.threshold_sigma)
        self._cache[key] = (table, occ)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return table, occ

    @torch.no_grad()
    def render_rays(self, o: torch.Tensor, d: torch.Tensor, table: torch.Tensor, occ: torch.Tensor):
        """Head-frame rays o, d [R, 3] -> rgb [R, 3] premultiplied, alpha [R], depth [R] (z, 0 = empty)."""
        cfg, m = self.cfg, self.model
        on, dn = (o + cfg.bound) / (2 * cfg.bound), d / (2 * cfg.bound)
        zero = torch.zeros(1, dtype=torch.int32, device=self.device)

        def density_fn(xn, ray):
            return m.density(xn, zero.expand(xn.shape[0]), table)

        # Short rounds: most rays turn opaque within a few occupied steps, and every sample of a round
        # gets a density whether or not the ray is still visible there.
        s = march(on, dn, occ, density_fn, cfg.march_steps, cfg.t_threshold, seg=8, keep_values=True)
        n = o.shape[0]
        if s.ray.numel() == 0:
            z = torch.zeros(n, device=self.device)
            return torch.zeros(n, 3, device=self.device), z, z.clone()
        rgb = m.color_rays(s.geo, s.ray, d)
        dt = math.sqrt(3.0) / cfg.march_steps
        c, a, _ = composite(s.ray, s.t, s.sigma, rgb, dt, n)
        depth = median_depth(s.ray, s.t, s.sigma, dt, dt / dn.norm(dim=-1), n)
        depth = torch.where(a > 1e-3, depth, torch.zeros_like(depth))
        return c.clamp(0, 1), a.clamp(0, 1), depth

    @torch.no_grad()
    def render_rays_fused(self, o: torch.Tensor, d: torch.Tensor, table: torch.Tensor, occ: torch.Tensor,
                          weights: tuple | None = None):
        """``render_rays`` in one numba pass (CPU): same arguments and results.

        The per-ray set-up is numpy, not torch: torch's thread pool and numba's would take turns
        spinning on the same cores."""
        cfg, m = self.cfg, self.model
        n = o.shape[0]
        rgb, alpha, depth = np.zeros((n, 3), np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
        occ_np = occ.cpu().numpy()
        if n == 0 or not occ_np.any():
            return torch.from_numpy(rgb), torch.from_numpy(alpha), torch.from_numpy(depth)
        scale = np.float32(2 * cfg.bound)
        on = np.ascontiguousarray((o.cpu().numpy().astype(np.float32) + np.float32(cfg.bound)) / scale)
        dn = np.ascontiguousarray(d.cpu().numpy().astype(np.float32) / scale)
        near, dt_t, n_steps = march_range_np(on, dn, occ_np, cfg.march_steps)
        wd, bd, dims_d, woff_d, boff_d, wc, bc, dims_c, woff_c, boff_c = weights or m.fused_weights()
        first = m.color_net[0]
        w_sh = torch.cat([first.weight[:, cfg.geo_features:].T, first.bias[None]]).detach().float().contiguous()
        enc = m.encoding
        kernels._render_fused(on, dn, near, dt_t, n_steps, np.ascontiguousarray(occ_np.reshape(-1), np.uint8),
                              occ_np.shape[0], table[0].detach().float().contiguous().numpy(), enc.res.numpy(),
                              enc.dense.numpy(), wd, bd, dims_d, woff_d, boff_d, wc, bc, dims_c, woff_c, boff_c,
                              w_sh.numpy(), float(cfg.density_scale), math.sqrt(3.0) / cfg.march_steps,
                              float(cfg.t_threshold), rgb, alpha, depth)
        return torch.from_numpy(rgb), torch.from_numpy(alpha), torch.from_numpy(depth)

    def render(self, camera: Camera, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        table, occ = self.prepare(expression)
        o, d = pixel_rays(camera)
        h, w = o.shape[:2]
        o = torch.from_numpy(o.reshape(-1, 3)).float().to(self.device)
        d = torch.from_numpy(d.reshape(-1, 3)).float().to(self.device)
        if self.implementation == "fused":
            outs = [self.render_rays_fused(o, d, table, occ)]  # one pass: no intermediates to keep in cache
        else:
            outs = [self.render_rays(o[s:s + self.chunk], d[s:s + self.chunk], table, occ)
                    for s in range(0, o.shape[0], self.chunk)]
        rgb, alpha, depth = (torch.cat(x).cpu().numpy().astype(np.float32) for x in zip(*outs))
        return rgb.reshape(h, w, 3), alpha.reshape(h, w), depth.reshape(h, w)
