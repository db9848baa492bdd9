"""Real spherical harmonics up to degree 4 (16 coefficients): the paper's view-direction encoding."""

from __future__ import annotations

import torch


def sh_encode(d: torch.Tensor) -> torch.Tensor:
    """d [N, 3] unit directions -> [N, 16] real SH basis values, bands 0..3 (degree 4 = 4 bands).

    Same constants and sign convention as torch-ngp's ``shencoder`` (degree 4).

    >>> sh_encode(torch.tensor([[0.0, 0.0, 1.0]]))[0, :3].tolist()
    [0.28209479177387814, -0.0, 0.4886025119029199]
    """
    x, y, z = d.unbind(-1)
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.48860251190291987 * y,
        0.48860251190291987 * z,
        -0.48860251190291987 * x,
        1.0925484305920792 * xy,
        -1.0925484305920792 * yz,
        0.94617469575755997 * zz - 0.31539156525251999,
        -1.0925484305920792 * xz,
        0.54627421529603959 * (xx - yy),
        0.59004358992664352 * y * (-3.0 * xx + yy),
        2.8906114426405538 * xy * z,
        0.45704579946446572 * y * (1.0 - 5.0 * zz),
        0.3731763325901154 * z * (5.0 * zz - 3.0),
        0.45704579946446572 * x * (1.0 - 5.0 * zz),
        1.4453057213202769 * z * (xx - yy),
        0.59004358992664352 * x * (-xx + 3.0 * yy),
    ], -1)
