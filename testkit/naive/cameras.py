"""Twin of ``player.kernels.cameras``: the affine map between two cameras."""

from __future__ import annotations


def _relative(ra, ca, rb, cb):
    return ra.T @ rb, ra.T @ (cb - ca)
