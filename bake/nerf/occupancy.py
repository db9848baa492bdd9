"""Expression-aware occupancy grid (paper §3.3.3).

The training grid holds, per cell, an EMA of the largest density any *basis blend*
``h0 + w_hat_i h_i`` gives there (``w_hat_i`` = the coefficient's extreme over the training frames),
so one grid covers every expression the capture showed, not just one.

At render time ``expression_occupancy`` narrows it to the cells one expression actually fills:
evaluated once per keyframe and reused for every view of it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bake.nerf.model import NeRFBlendShape


def density_no_grad(model: NeRFBlendShape, xn: torch.Tensor, bidx: torch.Tensor, tables: torch.Tensor):
    """sigma [N] of normalised points xn [N, 3] in tables[bidx]: the fused numba pass on CPU
    (``NeRFBlendShape.density_fused``), the torch modules elsewhere."""
    if xn.device.type == "cpu" and model.encoding.implementation == "numba":
        return model.density_fused(xn, bidx, tables)
    return model.density(xn, bidx, tables)[0]


def basis_blends(expr_min: torch.Tensor, expr_max: torch.Tensor) -> torch.Tensor:
    """[K] extremes -> [M, K] blend weights: neutral, then each basis at its max (and its min if < 0)."""
    k = expr_max.shape[0]
    rows = [torch.zeros(k)]
    for i in range(k):
        for v in (float(expr_max[i]), float(expr_min[i])):
            if v > 0 and v == float(expr_max[i]) or v < 0 and v == float(expr_min[i]):
                r = torch.zeros(k)
                r[i] = v
                rows.append(r)
    return torch.stack(rows)


def alpha_threshold_sigma(occ_threshold: float, march_steps: int) -> float:
    """The density at which one march step reaches alpha = occ_threshold."""
    return -math.log(1.0 - occ_threshold) * march_steps / math.sqrt(3.0)


def cell_points(cells: torch.Tensor, g: int, jitter: bool) -> torch.Tensor:
    """Flat cell indices [N] -> normalised points [N, 3] (cell centres, or uniform inside if jitter)."""
    xyz = torch.stack([cells // (g * g), (cells // g) % g, cells % g], -1).float()
    off = torch.rand_like(xyz) if jitter else torch.full_like(xyz, 0.5)
    return (xyz + off) / g


@torch.no_grad()
def update_grid(model: NeRFBlendShape, grid: torch.Tensor, blends: torch.Tensor, decay: float,
                cells: torch.Tensor, chunk: int = 1 << 16) -> None:
    """EMA update of ``grid`` [G^3] (density values) in place on ``cells`` [n] (flat indices).

    new(cell) = max over basis blends [M, K] of sigma at a jittered point in the cell;
    grid = max(decay * grid, new) on those cells (instant-NGP's rule).
    """
    g = round(grid.numel() ** (1 / 3))
    n = cells.numel()
    pts = cell_points(cells, g, jitter=True).to(grid.device)
    tables = model.blend(blends.to(grid.device))  # [M, L, T, F]
    new = torch.zeros(n, device=grid.device)
    for m in range(tables.shape[0]):
        for s in range(0, n, chunk):
            p = pts[s:s + chunk]
            sig = density_no_grad(model, p, torch.full((p.shape[0],), m, device=grid.device, dtype=torch.int32),
                                  tables)
            new[s:s + chunk] = torch.maximum(new[s:s + chunk], sig)
    grid[cells] = torch.maximum(grid[cells] * decay, new)


@torch.no_grad()
def expression_occupancy(model: NeRFBlendShape, occ: torch.Tensor, table: torch.Tensor,
                         threshold_sigma: float, chunk: int = 1 << 16) -> torch.Tensor:
    """Occupancy [G, G, G] bool for one blended ``table`` [1, L, T, F]: the cells of ``occ`` where
    this expression has density, probed at 8 stratified points per cell, dilated by one cell so a
    surface between probes is never cut."""
    g = occ.shape[0]
    cells = torch.nonzero(occ.reshape(-1)).squeeze(1)
    if cells.numel() == 0:
        return occ.clone()
    offs = torch.tensor([[(c & 1) * 0.5 + 0.25, ((c >> 1) & 1) * 0.5 + 0.25, ((c >> 2) & 1) * 0.5 + 0.25]
                         for c in range(8)], device=occ.device)  # [8, 3]
    xyz = torch.stack([cells // (g * g), (cells // g) % g, cells % g], -1).float()
    pts = ((xyz[:, None] + offs[None]) / g).reshape(-1, 3)
    sig = torch.empty(pts.shape[0], device=occ.device)
    for s in range(0, pts.shape[0], chunk):
        p = pts[s:s + chunk]
        sig[s:s + chunk] = density_no_grad(model, p, torch.zeros(p.shape[0], dtype=torch.int32, device=occ.device),
                                           table)
    hit = (sig.reshape(-1, 8).amax(1) > threshold_sigma).float()
    out = torch.zeros(g ** 3, device=occ.device)
    out[cells] = hit
    out = F.max_pool3d(out.reshape(1, 1, g, g, g), 3, stride=1, padding=1).reshape(g, g, g) > 0
    return out & occ


def visual_hull(masks: np.ndarray, head_to_cam: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                bound: float, g: int, min_fraction: float = 0.9, max_views: int = 64,
                valid: np.ndarray | None = None) -> torch.Tensor:
    """Cells [G^3] bool whose centre falls inside the (dilated) head mask in at least ``min_fraction``
    of the views that see it: the grid's starting point, so the first steps already skip the empty
    box instead of marching through all of it.

    masks uint8 [N, H, W]; head_to_cam [N, 4, 4] (dataset poses); box [-bound, bound]^3;
    valid bool [N, H, W] or None: where a frame shows the source video (a view sees a cell only
    there: the padding where a crop leaves the video carves nothing).
    A cell's half-diagonal in pixels is added as mask dilation, so thin parts are never carved.
    """
    n, h, w = masks.shape
    views = np.linspace(0, n - 1, min(n, max_views)).round().astype(int)
    c = (np.arange(g) + 0.5) / g * 2 * bound - bound
    xx, yy, zz = np.meshgrid(c, c, c, indexing="ij")
    pts = np.stack([xx, yy, zz, np.ones_like(xx)], -1).reshape(-1, 4)  # [G^3, 4] in flat x,y,z order
    inside = np.zeros(pts.shape[0], np.int32)
    seen = np.zeros(pts.shape[0], np.int32)
    half_diag = np.sqrt(3.0) * bound / g
    for i in views:
        pc = pts @ head_to_cam[i].T
        z = np.maximum(pc[:, 2], 1e-6)
        u, v = fx * pc[:, 0] / z + cx, fy * pc[:, 1] / z + cy
        rad = int(np.ceil(fx * half_diag / max(float(np.median(z)) - half_diag, 1e-3))) + 1
        m = cv2.dilate((masks[i] > 127).astype(np.uint8), np.ones((2 * rad + 1, 2 * rad + 1), np.uint8))
        ui, vi = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        vis = (pc[:, 2] > 0) & (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
        if valid is not None:
            vis[vis] = valid[i][vi[vis], ui[vis]]
        seen += vis
        inside[vis] += m[vi[vis], ui[vis]]
    keep = (seen > 0) & (inside >= min_fraction * seen)  # no view saw it: no evidence, no samples
    return torch.from_numpy(keep)
