"""The fused numba renderer (``kernels._render_fused`` via ``NerfField.render_rays_fused``) against
its torch twin (``NerfField.render_rays``: march + model modules + composite + median depth) on the
same rays: colour and alpha within 1e-3, depth within 1 mm."""

import numpy as np
import pytest
import torch

from bake.fields.base import Capture
from bake.nerf.config import preset
from bake.nerf.field import NerfField
from bake.nerf.model import NeRFBlendShape
from formats.camera import Camera, Intrinsics, orbit_pose


def _random_field(seed: int, occupied: float, density_bias: float, implementation: str = "auto") -> NerfField:
    """A tiny model with weights far from the init (so colour and density vary along each ray) and a
    random occupancy grid, in the metre box [-0.3, 0.3]^3 of the ``tiny`` preset's bound."""
    torch.manual_seed(seed)
    cfg = preset("tiny")
    m = NeRFBlendShape(cfg, 3)
    with torch.no_grad():
        m.encoding.bases.normal_(0, 0.5)
        for p in list(m.density_net.parameters()) + list(m.color_net.parameters()):
            p.normal_(0, 0.3)
        m.density_net[-1].bias[0] = density_bias
    g = cfg.grid_res
    grid = (torch.rand(g ** 3) < occupied).float() * 1e4
    cap = Capture(64, 64, Intrinsics.from_fov(40, 64, 64), np.zeros(1), np.eye(4)[None],
                  np.zeros((1, 3), np.float32), ["a", "b", "c"], {"train": [0]})
    return NerfField(m, grid, cap, {}, torch.device("cpu"), implementation=implementation)


def _rays(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    o = (torch.rand(n, 3, generator=g) - 0.5) * 0.2 + torch.tensor([0.0, 0.0, -0.6])
    d = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 1.0]) + 0.3 * torch.randn(n, 3, generator=g), dim=-1)
    return o, d / d[:, 2:3]  # camera-z component 1, as pixel_rays makes them: t is z-depth


def _assert_agree(a, b):
    (c1, a1, z1), (c2, a2, z2) = a, b
    assert float((c1 - c2).abs().max()) <= 1e-3
    assert float((a1 - a2).abs().max()) <= 1e-3
    assert float((z1 - z2).abs().max()) <= 1e-3  # metres: 1 mm


@pytest.mark.parametrize("occupied, density_bias", [(0.5, -2.0), (0.9, 1.5), (0.2, -4.0)])
def test_fused_matches_torch_on_random_rays(occupied, density_bias):
    # translucent (long rays, many samples), opaque (early termination) and sparse occupancy
    f = _random_field(0, occupied, density_bias)
    table, occ = f.prepare(np.array([0.3, -0.2, 0.5], np.float32))
    o, d = _rays(2000, 1)
    ref = f.render_rays(o, d, table, occ)
    out = f.render_rays_fused(o, d, table, occ)
    assert 0.05 < float(ref[1].mean()) and float((ref[1] > 0.01).float().mean()) < 1.0  # not all empty or full
    assert float(ref[0].std()) > 0.02
    _assert_agree(out, ref)


def test_fused_rays_that_miss_or_see_an_empty_grid_are_empty():
    f = _random_field(2, 0.5, 0.0)
    table, occ = f.prepare(np.zeros(3, np.float32))
    o = torch.tensor([[0.0, 0.0, -0.6], [5.0, 5.0, -0.6]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    c, a, z = f.render_rays_fused(o, d, table, occ)
    assert float(a[1]) == 0.0 and float(z[1]) == 0.0 and float(c[1].abs().sum()) == 0.0
    c, a, z = f.render_rays_fused(o, d, table, torch.zeros_like(occ))
    assert float(a.abs().sum() + z.abs().sum() + c.abs().sum()) == 0.0
    c, a, z = f.render_rays_fused(o[:0], d[:0], table, occ)
    assert c.shape == (0, 3) and a.shape == z.shape == (0,)


def test_field_renders_with_the_fused_path_by_default_on_cpu_and_torch_on_request():
    f = _random_field(3, 0.6, 0.5)
    assert f.implementation == "fused"
    cam = Camera(Intrinsics.from_fov(30.0, 48, 40), orbit_pose(15.0, -5.0, 0.6))
    expr = np.array([0.1, 0.4, -0.3], np.float32)
    fused = f.render(cam, expr)
    f.implementation = "torch"
    ref = f.render(cam, expr)
    assert fused[1].max() > 0.5
    _assert_agree(*(tuple(torch.from_numpy(x) for x in r) for r in (fused, ref)))
    with pytest.raises(ValueError, match="'auto', 'fused' or 'torch'"):
        f.implementation = "tcnn"


@pytest.mark.parametrize("preset_name", ["tiny", "paper"])
def test_fused_density_matches_the_torch_modules_in_a_batch_of_tables(preset_name):
    # "paper" has F = 4 features (the encoder's general path), "tiny" F = 2 (its register path)
    torch.manual_seed(4)
    cfg = preset(preset_name, log2_table=12)
    m = NeRFBlendShape(cfg, 3)
    with torch.no_grad():
        m.encoding.bases.normal_(0, 0.5)
        for p in m.density_net.parameters():
            p.normal_(0, 0.3)
    tables = m.blend(torch.randn(3, 3))
    x = torch.rand(1000, 3)
    bidx = torch.randint(0, 3, (1000,), dtype=torch.int32)
    with torch.no_grad():
        ref, _ = m.density(x, bidx, tables)
    out = m.density_fused(x, bidx, tables)
    assert float(ref.std()) > 1.0
    # float32 sums in another order (BLAS tiles vs torch's GEMM): with 64 inputs of this size the
    # paper preset's raw density loses ~1e-4 relative to cancellation
    torch.testing.assert_close(out, ref, rtol=1e-3 if preset_name == "paper" else 1e-4, atol=1e-4)
    assert m.density_fused(x[:0], bidx[:0], tables).shape == (0,)


@pytest.mark.parametrize("features, levels, log2_table", [(4, 16, 13), (2, 12, 14)])
def test_fused_point_encoder_matches_the_torch_twin(features, levels, log2_table):
    from bake.nerf import kernels
    from bake.nerf.encoding import dense_levels, hash_encode_torch, level_resolutions
    res = level_resolutions(levels, 16, 1024)
    dense = dense_levels(res, 2 ** log2_table)
    assert any(dense) and not all(dense)  # both the dense and the hashed levels
    g = torch.Generator().manual_seed(9)
    tab = torch.randn(1, levels, 2 ** log2_table, features, generator=g)
    x = torch.rand(300, 3, generator=g)
    ref = hash_encode_torch(x, torch.zeros(300, dtype=torch.int32), tab, torch.tensor(res), torch.tensor(dense))
    out = np.zeros((300, levels * features), np.float32)
    r, dn, t0 = np.array(res, np.int32), np.array(dense, np.uint8), tab[0].numpy()
    for i in range(300):
        kernels._encode_point(np.float32(x[i, 0]), np.float32(x[i, 1]), np.float32(x[i, 2]), t0, r, dn, out[i])
    torch.testing.assert_close(torch.from_numpy(out), ref, rtol=0, atol=1e-5)


def test_training_march_with_the_fused_density_keeps_the_same_samples():
    from bake.nerf.occupancy import density_no_grad
    from bake.nerf.render import march, march_fused
    f = _random_field(5, 0.6, 0.5)
    m = f.model
    tables = m.blend(torch.tensor([[0.3, -0.2, 0.5], [0.0, 0.4, 0.1]]))
    o, d = _rays(1500, 6)
    cfg = f.cfg
    on, dn = (o + cfg.bound) / (2 * cfg.bound), d / (2 * cfg.bound)
    bidx = torch.randint(0, 2, (1500,), dtype=torch.int32, generator=torch.Generator().manual_seed(7))
    jitter = torch.rand(1500, generator=torch.Generator().manual_seed(8))
    occ = f.occ
    with torch.no_grad():
        a = march(on, dn, occ, lambda xn, ray: (density_no_grad(m, xn, bidx[ray], tables), None), cfg.march_steps,
                  cfg.t_threshold, jitter=jitter)
        b = march(on, dn, occ, lambda xn, ray: m.density(xn, bidx[ray], tables), cfg.march_steps, cfg.t_threshold,
                  jitter=jitter)
    assert a.ray.numel() > 1000
    assert torch.equal(a.ray, b.ray)
    torch.testing.assert_close(a.t, b.t)
    c = march_fused(m, on, dn, occ, bidx, tables, jitter)  # the whole pass in numba
    assert torch.equal(c.ray, b.ray)
    torch.testing.assert_close(c.t, b.t)
    e = march_fused(m, on, dn, torch.zeros_like(occ), bidx, tables, jitter)
    assert e.ray.numel() == 0 and e.t.numel() == 0
