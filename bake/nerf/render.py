"""Ray marching through an occupancy grid and volume rendering of colour, alpha and z-depth.

Works in the normalised box [0, 1]^3 (``NeRFBlendShape.normalise``). Ray parameter ``t`` is the
camera z-depth (``formats.camera.pixel_rays`` directions), so the rendered depth is z-depth with
no conversion. Samples sit on a fixed step ``dt = sqrt(3) / march_steps`` (normalised length)
from where the ray enters the box; a sample is taken only in an occupied grid cell, and a ray stops
once its transmittance drops below ``t_threshold`` (instant-NGP's empty-space skipping and early
termination, done segment by segment with torch ops).

Samples are *packed*: flat arrays sorted by (ray, step) with a ``ray`` index per sample, the layout
of nerfacc's ``render_weight_from_density``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from bake.nerf import kernels


def ray_box(o: torch.Tensor, d: torch.Tensor, lo=0.0, hi=1.0):
    """Slab test: o, d [R, 3] -> near, far [R] ray parameters of the box [lo, hi] (scalars or [3];
    far <= near: miss)."""
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far


def march_range(o: torch.Tensor, d: torch.Tensor, occ: torch.Tensor, march_steps: int):
    """Where each ray's fixed steps run: through the bounding box of the occupied cells.

    o, d [R, 3] float32 normalised-box rays; occ [G, G, G] bool with at least one cell set.
    Returns near [R] (step k sits at t = near + (k + jitter) dt_t), dt_t [R] (the step
    sqrt(3) / march_steps in ray-parameter units) and n_steps [R] long (0: the ray misses the box).
    """
    g = occ.shape[0]
    cells = torch.nonzero(occ)
    lo, hi = cells.amin(0).float() / g, (cells.amax(0) + 1).float() / g
    near, far = ray_box(o, d, lo, hi)
    dt_t = ((math.sqrt(3.0) / march_steps) / d.norm(dim=-1)).contiguous()  # [R] step in ray-parameter units
    n_steps = torch.ceil((far - near) / dt_t).clamp_min(0).long()
    return near.contiguous(), dt_t, n_steps


def march_range_np(o: np.ndarray, d: np.ndarray, occ: np.ndarray, march_steps: int):
    """``march_range`` in numpy (float32 throughout, the same operations): o, d [R, 3] float32, occ
    [G, G, G] bool with a cell set -> near [R] float32, dt_t [R] float32, n_steps [R] int64."""
    g = occ.shape[0]
    idx = [np.flatnonzero(occ.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    lo = np.array([i[0] for i in idx], np.float32) / np.float32(g)
    hi = np.array([i[-1] + 1 for i in idx], np.float32) / np.float32(g)
    inv = np.float32(1.0) / np.where(np.abs(d) < 1e-12, np.float32(1e-12), d)
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    near = np.maximum(np.minimum(t0, t1).max(-1), np.float32(0.0))
    far = np.maximum(t0, t1).min(-1)
    dt_t = np.float32(math.sqrt(3.0) / march_steps) / np.sqrt((d * d).sum(-1))
    n_steps = np.maximum(np.ceil((far - near) / dt_t), 0).astype(np.int64)
    return np.ascontiguousarray(near), np.ascontiguousarray(dt_t), n_steps


@dataclass
class Samples:
    """Packed samples, sorted by (ray, step).

    ray [M] long, t [M] ray parameter (z-depth), sigma [M] (if kept), geo [M, G] (if kept).
    """

    ray: torch.Tensor
    t: torch.Tensor
    sigma: torch.Tensor | None = None
    geo: torch.Tensor | None = None


def march(o: torch.Tensor, d: torch.Tensor, occ: torch.Tensor, density_fn: Callable, march_steps: int,
          t_threshold: float, jitter: torch.Tensor | None = None, seg: int = 32,
          keep_values: bool = False) -> Samples:
    """Find the samples of each ray that matter: in an occupied cell and not yet occluded.

    Same arguments and result as ``march_torch`` (its readable all-torch twin, also the non-CPU
    path). On CPU a numba kernel walks each ray to its next ``seg`` *occupied* steps, so the torch
    ops of a round only touch samples that get a density, not the empty steps between them.
    """
    if o.device.type != "cpu":
        return march_torch(o, d, occ, density_fn, march_steps, t_threshold, jitter, seg, keep_values)
    n_rays, dev = o.shape[0], o.device
    g = occ.shape[0]
    dt = math.sqrt(3.0) / march_steps
    if n_rays == 0 or not bool(occ.any()):
        e = torch.zeros(0, dtype=torch.long, device=dev)
        return Samples(e, torch.zeros(0, device=dev))
    o, d = o.float().contiguous(), d.float().contiguous()
    near, dt_t, n_steps = march_range(o, d, occ, march_steps)
    jit = torch.full((n_rays,), 0.5, device=dev) if jitter is None else jitter.float().contiguous()
    trans = torch.ones(n_rays, device=dev)
    cursor = torch.zeros(n_rays, dtype=torch.long)
    occ_u8 = occ.reshape(-1).to(torch.uint8).contiguous().numpy()
    o_np, d_np, near_np, dtt_np, jit_np = o.numpy(), d.numpy(), near.numpy(), dt_t.numpy(), jit.numpy()
    ns_np, cur_np = n_steps.numpy(), cursor.numpy()
    active = torch.nonzero(n_steps > 0).squeeze(1).contiguous()
    out_ray, out_k, out_sigma, out_geo = [], [], [], []
    while active.numel() > 0:
        a = active
        ks = torch.empty((a.numel(), seg), dtype=torch.long)
        cnt = torch.empty(a.numel(), dtype=torch.long)
        kernels._next_occupied(o_np, d_np, near_np, dtt_np, jit_np, ns_np, cur_np, a.numpy(), occ_u8, g,
                               ks.numpy(), cnt.numpy())
        # Packed: this round's samples, ray by ray in step order.
        kk = ks[torch.arange(seg)[None] < cnt[:, None]]
        if kk.numel():
            ra = torch.repeat_interleave(a, cnt)
            start = torch.zeros(a.numel() + 1, dtype=torch.long)
            torch.cumsum(cnt, 0, out=start[1:])
            t = near[ra] + (kk.float() + jit[ra]) * dt_t[ra]
            sigma, geo = density_fn(o[ra] + t[:, None] * d[ra], ra)
            tau = (sigma.detach() * dt).float().contiguous()
            keep = torch.empty(kk.numel(), dtype=torch.bool)
            kernels._transmit(start.numpy(), tau.numpy(), trans.numpy(), a.numpy(), float(t_threshold),
                              keep_values, keep.numpy())
            out_ray.append(ra[keep])
            out_k.append(kk[keep])
            if keep_values:
                out_sigma.append(sigma[keep])
                out_geo.append(geo[keep])
        active = a[(trans[a] > t_threshold) & (cursor[a] < n_steps[a])].contiguous()
    if not out_ray:
        e = torch.zeros(0, dtype=torch.long, device=dev)
        return Samples(e, torch.zeros(0, device=dev))
    ray, kk = torch.cat(out_ray), torch.cat(out_k)
    order = torch.argsort(ray * (int(n_steps.max()) + 1) + kk)
    ray, kk = ray[order], kk[order]
    t = near[ray] + (kk.float() + jit[ray]) * dt_t[ray]
    if keep_values:
        return Samples(ray, t, torch.cat(out_sigma)[order], torch.cat(out_geo)[order])
    return Samples(ray, t)


@torch.no_grad()
def march_fused(model, o: torch.Tensor, d: torch.Tensor, occ: torch.Tensor, bidx: torch.Tensor,
                tables: torch.Tensor, jitter: torch.Tensor | None = None) -> Samples:
    """``march(o, d, occ, model density, ...)`` in one numba pass (CPU, no grad): training's first pass.

    Args:
        model: a ``NeRFBlendShape`` (its config's march_steps and t_threshold, its density MLP).
        o, d: [R, 3] normalised-box rays; occ: [G, G, G] bool; bidx: [R] the table of each ray in
            tables [B, L, T, F]; jitter: [R] in [0, 1) or None for 0.5.
    Returns:
        Samples(ray, t), packed by (ray, step), the same samples as ``march`` with
        ``density_fn = lambda xn, ray: model.density(xn, bidx[ray], tables)``.
    """
    cfg = model.cfg
    n_rays = o.shape[0]
    if n_rays == 0 or not bool(occ.any()):
        return Samples(torch.zeros(0, dtype=torch.long), torch.zeros(0))
    o, d = o.float().contiguous(), d.float().contiguous()
    near, dt_t, n_steps = march_range(o, d, occ, cfg.march_steps)
    jit = torch.full((n_rays,), 0.5) if jitter is None else jitter.float().contiguous()
    out_k = torch.empty((n_rays, max(int(n_steps.max()), 1)), dtype=torch.long)
    out_n = torch.zeros(n_rays, dtype=torch.long)
    wd, bd, dims, woff, boff = model.fused_weights()[:5]
    enc = model.encoding
    occ_u8 = occ.reshape(-1).to(torch.uint8).contiguous().numpy()
    kernels._march_fused(o.numpy(), d.numpy(), near.numpy(), dt_t.numpy(), jit.numpy(), n_steps.numpy(),
                         bidx.to(torch.int32).contiguous().numpy(), occ_u8, occ.shape[0],
                         tables.detach().float().contiguous().numpy(), enc.res.numpy(), enc.dense.numpy(),
                         wd, bd, dims, woff, boff, float(cfg.density_scale), math.sqrt(3.0) / cfg.march_steps,
                         float(cfg.t_threshold), out_k.numpy(), out_n.numpy())
    keep = torch.arange(out_k.shape[1])[None] < out_n[:, None]
    kk = out_k[keep]  # row-major: by ray, then in step order
    ray = torch.repeat_interleave(torch.arange(n_rays), out_n)
    t = near[ray] + (kk.float() + jit[ray]) * dt_t[ray]
    return Samples(ray, t)


def march_torch(o: torch.Tensor, d: torch.Tensor, occ: torch.Tensor, density_fn: Callable, march_steps: int,
                t_threshold: float, jitter: torch.Tensor | None = None, seg: int = 32,
                keep_values: bool = False) -> Samples:
    """All-torch marcher (reference twin of ``march``; any device): fixed segments of ``seg`` steps.

    Args:
        o, d: [R, 3] normalised-box ray origins and directions.
        occ: [G, G, G] bool occupancy (x, y, z index order).
        density_fn: (xn [N, 3], ray [N]) -> (sigma [N], geo [N, G]); called without grad here.
        jitter: [R] offsets in [0, 1) of the first step (training), None for 0.5 (rendering).
        keep_values: also return sigma and geo of the kept samples (rendering, one pass).
    """
    n_rays, dev = o.shape[0], o.device
    g = occ.shape[0]
    dt = math.sqrt(3.0) / march_steps
    cells = torch.nonzero(occ)
    if cells.numel() == 0:
        e = torch.zeros(0, dtype=torch.long, device=dev)
        return Samples(e, torch.zeros(0, device=dev))
    # March only through the occupied cells' bounding box: most of the unit box is empty, and
    # stepping through it segment by segment is where an all-torch marcher spends its time.
    lo, hi = cells.amin(0).float() / g, (cells.amax(0) + 1).float() / g
    near, far = ray_box(o, d, lo, hi)
    dt_t = dt / d.norm(dim=-1)  # [R] step in ray-parameter units
    n_steps = torch.ceil((far - near) / dt_t).clamp_min(0).long()
    jit = torch.full((n_rays,), 0.5, device=dev) if jitter is None else jitter
    trans = torch.ones(n_rays, device=dev)
    active = torch.nonzero(n_steps > 0).squeeze(1)
    ks = torch.arange(seg, device=dev)
    out_ray, out_k, out_sigma, out_geo = [], [], [], []
    k0 = 0
    occ_flat = occ.reshape(-1)
    while active.numel() > 0:
        a = active
        k = k0 + ks  # [seg]
        t = near[a, None] + (k[None].float() + jit[a, None]) * dt_t[a, None]  # [A, seg]
        inside = k[None] < n_steps[a, None]
        p = o[a, None] + t[..., None] * d[a, None]  # [A, seg, 3]
        cell = (p * g).long().clamp(0, g - 1)
        valid = inside & occ_flat[(cell[..., 0] * g + cell[..., 1]) * g + cell[..., 2]]
        ai, si = torch.nonzero(valid, as_tuple=True)
        sigma = torch.zeros(valid.shape, device=dev)
        geo = None
        if ai.numel():
            s, geo = density_fn(p[ai, si], a[ai])
            sigma[ai, si] = s
        tau = sigma * dt
        excl = torch.cumsum(tau, 1) - tau
        t_before = trans[a, None] * torch.exp(-excl)  # [A, seg] transmittance in front of each sample
        keep = valid & (t_before > t_threshold)
        if keep_values:  # rendering: a sample that adds no weight needs no colour
            keep &= tau > 1e-5
        kv = keep[ai, si]
        out_ray.append(a[ai[kv]])
        out_k.append(k[si[kv]])
        if keep_values and geo is not None:
            out_sigma.append(sigma[ai[kv], si[kv]])
            out_geo.append(geo[kv])
        trans[a] = t_before[:, -1] * torch.exp(-tau[:, -1])
        k0 += seg
        active = a[(trans[a] > t_threshold) & (n_steps[a] > k0)]
    if not out_ray:
        e = torch.zeros(0, dtype=torch.long, device=dev)
        return Samples(e, torch.zeros(0, device=dev))
    ray, kk = torch.cat(out_ray), torch.cat(out_k)
    order = torch.argsort(ray * (march_steps + seg + 1) + kk)
    ray, kk = ray[order], kk[order]
    t = near[ray] + (kk.float() + jit[ray]) * dt_t[ray]
    if keep_values:
        return Samples(ray, t, torch.cat(out_sigma)[order], torch.cat(out_geo)[order])
    return Samples(ray, t)


def composite(ray: torch.Tensor, t: torch.Tensor, sigma: torch.Tensor, rgb: torch.Tensor, dt: float,
              n_rays: int):
    """Volume rendering of packed samples.

    w_i = T_i (1 - exp(-sigma_i dt)), T_i = exp(-sum_{j<i} sigma_j dt) within each ray.

    Args:
        ray [M] sorted, t [M], sigma [M], rgb [M, 3]; dt normalised step; n_rays R.
    Returns:
        rgb [R, 3] premultiplied (over black), alpha [R], depth [R] (sum w t, not normalised).

    >>> r = torch.tensor([0, 0]); c = torch.ones(2, 3)
    >>> rgb, a, z = composite(r, torch.tensor([1.0, 2.0]), torch.tensor([1e4, 1e4]), c, 0.01, 1)
    >>> round(float(a[0]), 4), round(float(z[0]), 4)
    (1.0, 1.0)
    """
    tau = sigma * dt
    cs = torch.cumsum(tau.double(), 0)  # float64: a flat cumsum over many rays loses float32 bits
    excl = cs - tau.double()
    first = torch.ones_like(ray, dtype=torch.bool)
    first[1:] = ray[1:] != ray[:-1]
    start = torch.zeros(n_rays, dtype=torch.float64, device=ray.device)
    start[ray[first]] = excl[first]
    trans = torch.exp(-(excl - start[ray])).float()
    w = trans * (1.0 - torch.exp(-tau))  # [M]
    out_rgb = torch.zeros(n_rays, 3, device=ray.device, dtype=rgb.dtype).index_add(0, ray, w[:, None] * rgb)
    alpha = torch.zeros(n_rays, device=ray.device).index_add(0, ray, w)
    depth = torch.zeros(n_rays, device=ray.device).index_add(0, ray, w * t)
    return out_rgb, alpha, depth


def median_depth(ray: torch.Tensor, t: torch.Tensor, sigma: torch.Tensor, dt: float, dt_t: torch.Tensor,
                 n_rays: int) -> torch.Tensor:
    """Where each ray's opacity reaches half its final alpha: the depth of the surface it sees.

    The weighted mean of t (``composite``'s depth / alpha) puts a ray that grazes a soft front edge
    and then hits a surface behind it somewhere in between, on neither surface, and the player
    reprojects that pixel into empty space. The median lies on the surface that holds most of the
    pixel's weight. Density is constant over a sample's step, so optical depth grows linearly across
    it and the crossing point inside the step is exact.

    Args:
        ray [M] sorted, t [M] sample centres, sigma [M]; dt normalised step; dt_t [R] the step in
        units of t for each ray; n_rays R.
    Returns:
        depth [R] (0 where the ray holds no opacity).
    """
    tau = (sigma * dt).double()
    cs = torch.cumsum(tau, 0)
    excl = cs - tau
    first = torch.ones_like(ray, dtype=torch.bool)
    first[1:] = ray[1:] != ray[:-1]
    start = torch.zeros(n_rays, dtype=torch.float64, device=ray.device)
    start[ray[first]] = excl[first]
    before = excl - start[ray]  # optical depth in front of each sample, within its ray
    total = torch.zeros(n_rays, dtype=torch.float64, device=ray.device).index_add(0, ray, tau)
    half = -torch.log1p(-0.5 * -torch.expm1(-total))  # optical depth where opacity = alpha / 2
    h = half[ray]
    cross = (before < h) & (before + tau >= h) & (tau > 0)
    frac = ((h - before) / tau.clamp_min(1e-300)).clamp(0.0, 1.0)
    z = t.double() + (frac - 0.5) * dt_t[ray].double()
    depth = torch.zeros(n_rays, dtype=torch.float64, device=ray.device)
    depth[ray[cross]] = z[cross]
    return depth.to(t.dtype)
