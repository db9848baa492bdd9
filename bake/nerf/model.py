"""The NeRFBlendShape network: blended hash bases -> density MLP -> colour MLP (answers density and
colour only; rays, sampling and compositing live in ``bake.nerf.render``)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bake.nerf import kernels
from bake.nerf.config import NerfConfig
from bake.nerf.encoding import HashBases
from bake.nerf.sh import sh_encode


def pack_mlp(layers: list[nn.Linear], first_weight: torch.Tensor | None = None) -> tuple:
    """Linear layers as the numba kernels read them: (flat W^T [in, out] of every layer, flat biases,
    dims [n+1] (int64), weight offsets [n], bias offsets [n]); ``first_weight`` [out, in'] replaces
    the first layer's weight (the colour MLP keeps only its geometry columns there)."""
    first = layers[0].weight if first_weight is None else first_weight
    ws, bs, dims, woff, boff = [], [], [first.shape[1]], [], []
    nw = nb = 0
    for i, lin in enumerate(layers):
        wt = (lin.weight if i else first).detach().float().T.contiguous().reshape(-1)
        woff.append(nw)
        boff.append(nb)
        ws.append(wt)
        bs.append(lin.bias.detach().float())
        nw += wt.numel()
        nb += lin.out_features
        dims.append(lin.out_features)
    return (torch.cat(ws).cpu().numpy(), torch.cat(bs).cpu().numpy(), np.asarray(dims, np.int64),
            np.asarray(woff, np.int64), np.asarray(boff, np.int64))


def mlp(n_in: int, hidden: int, n_out: int, layers: int) -> nn.Sequential:
    """``layers`` linear layers with ReLU between them (no activation on the output)."""
    dims = [n_in] + [hidden] * (layers - 1) + [n_out]
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < layers - 1:
            mods.append(nn.ReLU(inplace=True))
    return nn.Sequential(*mods)


class NeRFBlendShape(nn.Module):
    """Expression-blended hash bases + small MLPs.

    Positions are head-frame metres inside the box [-bound, bound]^3; densities are per unit of
    the normalised box (side 1), so marching works in normalised distances.
    """

    def __init__(self, cfg: NerfConfig, n_expr: int, implementation: str = "numba"):
        super().__init__()
        self.cfg = cfg
        self.n_expr = n_expr
        self.encoding = HashBases(n_expr, cfg.levels, cfg.log2_table, cfg.features, cfg.base_res,
                                  cfg.finest_res, implementation)
        self.density_net = mlp(self.encoding.out_dim, cfg.hidden, 1 + cfg.geo_features, cfg.density_layers)
        self.color_net = mlp(cfg.geo_features + 16, cfg.hidden, 3, cfg.color_layers)
        with torch.no_grad():
            # Start translucent: optical depth ~8 across the whole box (~3 across a head). An opaque start
            # saturates alpha and its gradient vanishes (every ray stops at the box's front face).
            self.density_net[-1].bias[0] = math.log(math.expm1(8.0 / cfg.density_scale))

    def blend(self, w: torch.Tensor) -> torch.Tensor:
        """w [B, K] -> tables [B, L, T, F]."""
        return self.encoding.blend(w)

    def normalise(self, p: torch.Tensor) -> torch.Tensor:
        """Head-frame points [N, 3] (metres) -> [0, 1]^3 box coordinates (clamped)."""
        return ((p + self.cfg.bound) / (2 * self.cfg.bound)).clamp(0.0, 1.0)

    def density(self, xn: torch.Tensor, bidx: torch.Tensor, tables: torch.Tensor):
        """xn [N, 3] normalised -> sigma [N], geometry features [N, G]."""
        h = self.density_net(self.encoding(xn, bidx, tables))
        return self.cfg.density_scale * F.softplus(h[:, 0]), h[:, 1:]

    def fused_weights(self) -> tuple:
        """Both MLPs packed for the numba kernels (``pack_mlp``): density, then colour with its first
        layer's geometry columns only (its SH columns and bias make a per-ray term)."""
        lin_d = [m for m in self.density_net if isinstance(m, nn.Linear)]
        lin_c = [m for m in self.color_net if isinstance(m, nn.Linear)]
        return pack_mlp(lin_d) + pack_mlp(lin_c, lin_c[0].weight[:, :self.cfg.geo_features])

    @torch.no_grad()
    def density_fused(self, xn: torch.Tensor, bidx: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
        """``density(xn, bidx, tables)[0]`` without grad, in one numba pass (CPU): xn [N, 3] normalised,
        bidx [N], tables [B, L, T, F] -> sigma [N]. What the marcher and the occupancy updates need."""
        sigma = torch.empty(xn.shape[0], dtype=torch.float32)
        if xn.shape[0] == 0:
            return sigma
        wd, bd, dims, woff, boff = self.fused_weights()[:5]
        enc = self.encoding
        kernels._density_fused(xn.float().contiguous().numpy(), bidx.to(torch.int32).contiguous().numpy(),
                               tables.detach().float().contiguous().numpy(), enc.res.numpy(), enc.dense.numpy(),
                               wd, bd, dims, woff, boff, float(self.cfg.density_scale), sigma.numpy())
        return sigma

    def color(self, geo: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """geo [N, G], dirs [N, 3] (any length) -> rgb [N, 3] in (0, 1)."""
        d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        return torch.sigmoid(self.color_net(torch.cat([geo, sh_encode(d)], -1)))

    def color_rays(self, geo: torch.Tensor, ray: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """``color(geo, dirs[ray])`` for packed samples: geo [M, G], ray [M], dirs [R, 3] -> rgb [M, 3].

        The first colour layer is linear in [geo, SH(dir)], and a ray's samples share its direction,
        so the SH encoding and its share of that layer are computed once per ray, not per sample.
        """
        first = self.color_net[0]
        g = geo.shape[1]
        d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        per_ray = torch.addmm(first.bias, sh_encode(d), first.weight[:, g:].T)  # [R, H]
        h = torch.addmm(per_ray[ray], geo, first.weight[:, :g].T)
        return torch.sigmoid(self.color_net[1:](h))

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return (f"NeRFBlendShape({self.encoding!r}, density={self.cfg.density_layers}x{self.cfg.hidden}, "
                f"params={n / 1e6:.2f}M)")
