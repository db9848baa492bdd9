"""Camera rays for sampled pixels, in torch, matching ``formats.camera.pixel_rays``."""

from __future__ import annotations

import torch


def pixel_rays_torch(cam_to_head: torch.Tensor, fx: float, fy: float, cx: float, cy: float,
                     px: torch.Tensor, py: torch.Tensor):
    """Rays through pixel centres (px, py) [R] of cameras cam_to_head [R, 4, 4].

    Returns origins [R, 3] and directions [R, 3] (head frame) with camera-z component 1, so the
    ray parameter is z-depth (same as ``formats.camera.pixel_rays``).
    """
    d_cam = torch.stack([(px.float() + 0.5 - cx) / fx, (py.float() + 0.5 - cy) / fy,
                         torch.ones_like(px, dtype=torch.float32)], -1)  # [R, 3]
    rot = cam_to_head[:, :3, :3].float()
    d = torch.einsum("rij,rj->ri", rot, d_cam)
    return cam_to_head[:, :3, 3].float(), d
