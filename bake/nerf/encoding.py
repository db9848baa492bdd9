"""Multiresolution hash encoding over a batch of (blended) tables: autograd op + pure-torch twin.

``hash_encode(x, bidx, table, res, dense)`` looks each point up in its own table row; on CPU it runs
the fused numba kernels of ``bake.nerf.kernels`` (forward and backward), on other devices (or with
``implementation="torch"``) the pure-torch ``hash_encode_torch``, which is also the reference the
kernels are tested against. Gradients flow to ``table`` only (positions are data, not parameters).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch.autograd import Function

from bake.nerf import kernels

PRIMES = (1, kernels.PRIME_Y, kernels.PRIME_Z)


def level_resolutions(levels: int, base_res: int, finest_res: int) -> list[int]:
    """Grid resolution per level, geometric from ``base_res`` to ``finest_res``.

    >>> level_resolutions(4, 16, 128)
    [16, 32, 64, 128]
    """
    if levels == 1:
        return [int(base_res)]
    b = math.exp((math.log(finest_res) - math.log(base_res)) / (levels - 1))
    return [int(math.floor(base_res * b ** lv + 1e-6)) for lv in range(levels)]


def dense_levels(res: list[int], table_size: int) -> list[bool]:
    """True where a level's (res+1)^3 corners fit in the table, so it indexes densely (no hash)."""
    return [(r + 1) ** 3 <= table_size for r in res]


def hash_encode_torch(x: torch.Tensor, bidx: torch.Tensor, table: torch.Tensor,
                      res: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """Pure-torch hash encoding (reference and non-CPU path).

    Args:
        x: [N, 3] float32 in [0, 1].
        bidx: [N] int, which table of the batch each point reads.
        table: [B, L, T, F] float32.
        res: [L] int grid resolution per level; dense: [L] bool dense indexing per level.
    Returns:
        [N, L*F] float32 features, level-major.
    """
    n_lvl, n_tab = table.shape[1], table.shape[2]
    bidx = bidx.long()
    offs = torch.tensor([[c & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], device=x.device)  # [8, 3]
    primes = torch.tensor(PRIMES, dtype=torch.int64, device=x.device)
    out = []
    for lv in range(n_lvl):
        r = int(res[lv])
        p = x * r
        i = torch.floor(p).clamp(0, r - 1)
        f = p - i  # [N, 3]
        corner = i.long()[:, None, :] + offs[None]  # [N, 8, 3]
        w = torch.where(offs[None].bool(), f[:, None, :], 1.0 - f[:, None, :]).prod(-1)  # [N, 8]
        if bool(dense[lv]):
            idx = corner[..., 0] + corner[..., 1] * (r + 1) + corner[..., 2] * (r + 1) ** 2
        else:
            h = corner * primes
            idx = (h[..., 0] ^ h[..., 1] ^ h[..., 2]) & (n_tab - 1)
        feats = table[bidx[:, None], lv, idx]  # [N, 8, F]
        out.append((w[..., None] * feats).sum(1))
    return torch.cat(out, -1)


class _HashEncode(Function):
    @staticmethod
    def forward(ctx, x, bidx, table, res, dense):
        # x: [N, 3] f32 in [0, 1]; bidx: [N] i32; table: [B, L, T, F] f32; res: [L] i32; dense: [L] u8
        out = torch.zeros(x.shape[0], table.shape[1] * table.shape[3], dtype=torch.float32)
        kernels._hash_fwd(x.numpy(), bidx.numpy(), table.detach().numpy(), res.numpy(), dense.numpy(), out.numpy())
        ctx.save_for_backward(x, bidx, res, dense)
        ctx.table_shape = table.shape
        return out

    @staticmethod
    def backward(ctx, v_out):
        x, bidx, res, dense = ctx.saved_tensors
        v_table = torch.zeros(ctx.table_shape, dtype=torch.float32)
        kernels._hash_bwd(x.numpy(), bidx.numpy(), v_out.contiguous().numpy(), res.numpy(), dense.numpy(),
                          v_table.numpy())
        return None, None, v_table, None, None


def hash_encode(x: torch.Tensor, bidx: torch.Tensor, table: torch.Tensor, res: torch.Tensor,
                dense: torch.Tensor, implementation: Literal["numba", "torch"] = "numba") -> torch.Tensor:
    """Hash-encode points: x [N, 3] in [0, 1], bidx [N], table [B, L, T, F] -> [N, L*F]."""
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"hash_encode: x must be [N, 3], got {tuple(x.shape)}")
    if table.ndim != 4:
        raise ValueError(f"hash_encode: table must be [B, L, T, F], got {tuple(table.shape)}")
    if bidx.shape != x.shape[:1]:
        raise ValueError(f"hash_encode: bidx must be [N] = [{x.shape[0]}] (one table per point), "
                         f"got {tuple(bidx.shape)}")
    if res.shape != (table.shape[1],) or dense.shape != (table.shape[1],):
        raise ValueError(f"hash_encode: res and dense must be [L] = [{table.shape[1]}] (one per level), "
                         f"got {tuple(res.shape)} and {tuple(dense.shape)}")
    n_tab = table.shape[2]
    if n_tab & (n_tab - 1):
        raise ValueError(f"hash table size must be a power of two, got {n_tab}")
    if implementation == "torch" or x.device.type != "cpu":
        return hash_encode_torch(x, bidx, table, res, dense)
    return _HashEncode.apply(x.float().contiguous(), bidx.to(torch.int32).contiguous(),
                             table.float().contiguous(), res.to(torch.int32).contiguous(),
                             dense.to(torch.uint8).contiguous())


class HashBases(torch.nn.Module):
    """K+1 hash-table bases: h(w) = h0 + sum_i w_i h_i, blended once per image.

    ``bases`` [K+1, L, T, F]; row 0 is the mean (neutral) table, rows 1.. the expression
    displacements. Paper init U(-1e-4, 1e-4).
    """

    def __init__(self, n_expr: int, levels: int, log2_table: int, features: int, base_res: int,
                 finest_res: int, implementation: Literal["numba", "torch"] = "numba"):
        super().__init__()
        self.n_expr, self.levels, self.features = n_expr, levels, features
        self.table_size = 2 ** log2_table
        self.implementation = implementation
        self.bases = torch.nn.Parameter(
            torch.empty(n_expr + 1, levels, self.table_size, features).uniform_(-1e-4, 1e-4))
        res = level_resolutions(levels, base_res, finest_res)
        self.register_buffer("res", torch.tensor(res, dtype=torch.int32), persistent=False)
        self.register_buffer("dense", torch.tensor(dense_levels(res, self.table_size), dtype=torch.uint8),
                             persistent=False)

    @property
    def out_dim(self) -> int:
        return self.levels * self.features

    def blend(self, w: torch.Tensor) -> torch.Tensor:
        """w [B, K] expression coefficients -> tables [B, L, T, F] = h0 + sum_i w_i h_i."""
        coef = torch.cat([torch.ones_like(w[:, :1]), w], 1)  # [B, K+1]
        return torch.einsum("bk,kltf->bltf", coef, self.bases)

    def forward(self, x: torch.Tensor, bidx: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
        """x [N, 3] in [0, 1], bidx [N], tables [B, L, T, F] (from ``blend``) -> [N, L*F]."""
        return hash_encode(x, bidx, tables, self.res, self.dense, self.implementation)

    def __repr__(self) -> str:
        r = self.res.tolist()
        return (f"HashBases(K={self.n_expr}, levels={self.levels}, T=2^{int(np.log2(self.table_size))}, "
                f"F={self.features}, res={r[0]}..{r[-1]}, dense_levels={int(self.dense.sum())}, "
                f"impl={self.implementation})")
