"""The optional perceptual loss loads a local torchvision-layout VGG16 file and measures distance."""

import pytest
import torch

from bake.nerf.perceptual import PerceptualLoss


def _vgg_state(seed=0):
    """A randomly initialised VGG16 ``features`` stack in torchvision's key layout (+ a classifier key)."""
    torch.manual_seed(seed)
    layers, c = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(2))
        else:
            layers += [torch.nn.Conv2d(c, v, 3, padding=1), torch.nn.ReLU()]
            c = v
    seq = torch.nn.Sequential(*layers)
    return {f"features.{k}": v for k, v in seq.state_dict().items()} | {"classifier.0.weight": torch.zeros(2, 2)}


def test_perceptual_distance_is_zero_for_equal_images_and_grows_with_difference(tmp_path):
    path = tmp_path / "vgg16.pth"
    torch.save(_vgg_state(), path)
    loss = PerceptualLoss.from_file(str(path))
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 32, 32, generator=g)
    near = (a + 0.02 * torch.randn(1, 3, 32, 32, generator=g)).clamp(0, 1)
    far = torch.rand(1, 3, 32, 32, generator=g)
    assert float(loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert 0 < float(loss(a, near)) < float(loss(a, far))
    x = a.clone().requires_grad_(True)
    loss(x, far).backward()
    assert x.grad.abs().sum() > 0  # it can train a render


def test_a_wrong_file_fails_loudly(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, path)
    with pytest.raises(RuntimeError):
        PerceptualLoss.from_file(str(path))
