"""Optional perceptual loss (paper §3.3.2, LPIPS with a VGG backbone) from a LOCAL weight file.

Nothing downloads: ``bake train --perceptual-weights PATH`` names a torchvision-layout VGG16
state dict (keys ``features.N.weight/bias``, e.g. ``vgg16-397923af.pth``); the loss is the
channel-normalised feature distance of LPIPS at relu1_2, relu2_2, relu3_3, relu4_3 with equal
weights (the learned LPIPS linear heads are not used).
"""

from __future__ import annotations

import torch
from torch import nn

_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
_TAPS = (3, 8, 15, 22)  # indices of relu1_2, relu2_2, relu3_3, relu4_3 in ``features``


class PerceptualLoss(nn.Module):
    def __init__(self, state: dict):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*layers)
        own = {k: v for k, v in state.items() if k.startswith("features.") and
               int(k.split(".")[1]) < len(layers)}
        missing = self.features.load_state_dict({k[len("features."):]: v for k, v in own.items()}, strict=True)
        del missing
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @staticmethod
    def from_file(path: str) -> "PerceptualLoss":
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        return PerceptualLoss(state)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b [B, 3, H, W] in [0, 1] -> scalar distance."""
        x, y = (a - self.mean) / self.std, (b - self.mean) / self.std
        total = a.new_zeros(())
        for i, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if i in _TAPS:
                nx = x / (x.norm(dim=1, keepdim=True) + 1e-10)
                ny = y / (y.norm(dim=1, keepdim=True) + 1e-10)
                total = total + ((nx - ny) ** 2).sum(1).mean()
            if i >= _TAPS[-1]:
                break
        return total
