"""Ray marching, volume rendering and occupancy, checked against closed forms and naive loops."""

import math

import numpy as np
import torch

from bake.nerf.occupancy import basis_blends, visual_hull
from bake.nerf.render import composite, march, march_torch, median_depth, ray_box
from bake.nerf.sh import sh_encode


def test_composite_matches_naive_per_ray_loop():
    g = torch.Generator().manual_seed(0)
    ray = torch.sort(torch.randint(0, 5, (40,), generator=g)).values
    t = torch.rand(40, generator=g).cumsum(0)
    sigma = torch.rand(40, generator=g) * 30
    rgb = torch.rand(40, 3, generator=g)
    dt = 0.05
    c, a, z = composite(ray, t, sigma, rgb, dt, 6)
    for r in range(6):
        m = ray == r
        trans, cc, aa, zz = 1.0, torch.zeros(3), 0.0, 0.0
        for s, col, tt in zip(sigma[m], rgb[m], t[m]):
            alpha = 1 - math.exp(-float(s) * dt)
            cc += trans * alpha * col
            aa += trans * alpha
            zz += trans * alpha * float(tt)
            trans *= 1 - alpha
        torch.testing.assert_close(c[r], cc, atol=1e-5, rtol=1e-5)
        assert abs(float(a[r]) - aa) < 1e-5 and abs(float(z[r]) - zz) < 1e-4
    assert float(a[5]) == 0.0  # a ray with no samples is empty


def test_median_depth_is_where_opacity_reaches_half_its_alpha():
    # Per ray, a run of samples with random densities (some empty) on a step grid. The reference
    # subdivides every step finely (density constant within a step) and scans for the point where
    # the accumulated opacity reaches half the ray's alpha.
    g = torch.Generator().manual_seed(1)
    dt, n_rays = 0.02, 7
    dt_t = torch.rand(n_rays, generator=g) * 0.02 + 0.01
    rays, ts, sig = [], [], []
    for r in range(n_rays - 1):  # the last ray has no samples
        k = torch.sort(torch.randperm(40, generator=g)[:12]).values.float()
        s = torch.rand(12, generator=g) * 80 * (torch.rand(12, generator=g) > 0.3)
        rays.append(torch.full((12,), r))
        ts.append(0.3 + (k + 0.5) * dt_t[r])
        sig.append(s)
    ray, t, sigma = torch.cat(rays), torch.cat(ts), torch.cat(sig)
    depth = median_depth(ray, t, sigma, dt, dt_t, n_rays)
    for r in range(n_rays - 1):
        m = ray == r
        sub = 2000
        tau = np.repeat(sigma[m].double().numpy() * dt / sub, sub)
        pos = (t[m].double().numpy()[:, None] + (np.arange(sub) + 1.0) / sub * float(dt_t[r]) - 0.5 * float(dt_t[r]))
        opacity = 1 - np.exp(-np.cumsum(tau))
        ref = pos.reshape(-1)[np.searchsorted(opacity, 0.5 * opacity[-1])]
        assert abs(float(depth[r]) - ref) < 2e-3 * float(dt_t[r]), (r, float(depth[r]), ref)
    assert float(depth[-1]) == 0.0


def test_median_depth_stays_on_the_surface_behind_a_soft_edge():
    # A faint front layer (alpha 0.3) then an opaque wall: the weighted mean lands between them,
    # the median on the wall, which holds most of the pixel.
    dt, n = 0.01, 1
    t = torch.tensor([1.0, 2.0, 2.01, 2.02])
    sigma = torch.tensor([-math.log(0.7) / dt, 1e4, 1e4, 1e4])
    ray = torch.zeros(4, dtype=torch.long)
    _, a, z = composite(ray, t, sigma, torch.ones(4, 3), dt, n)
    mean = float(z[0] / a[0])
    med = float(median_depth(ray, t, sigma, dt, torch.tensor([0.01]), n)[0])
    assert 1.6 < mean < 1.8
    assert abs(med - 1.995) < 1e-3  # the wall's front face (its first step starts at 1.995)


def test_ray_box_slab():
    o = torch.tensor([[0.5, 0.5, -1.0], [2.0, 2.0, -1.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    near, far = ray_box(o, d)
    assert near[0] == 1.0 and far[0] == 2.0
    assert far[1] <= near[1]  # misses


def _ball_density(center, radius, sigma_in):
    def fn(xn, ray):
        inside = ((xn - center) ** 2).sum(-1) < radius ** 2
        return inside.float() * sigma_in, torch.zeros(xn.shape[0], 2)
    return fn


def test_march_renders_an_opaque_ball_with_the_right_depth_and_skips_empty_cells():
    # Rays along +z through the box; a dense ball of radius 0.2 at the centre.
    n = 21
    xs = torch.linspace(0.05, 0.95, n)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    o = torch.stack([xx.reshape(-1), yy.reshape(-1), torch.full((n * n,), -0.5)], -1)
    d = torch.tensor([0.0, 0.0, 1.0]).expand(n * n, 3).contiguous()
    center, radius = torch.tensor([0.5, 0.5, 0.5]), 0.2
    steps = 512
    calls = []
    fn = _ball_density(center, radius, 5000.0)

    def counting(xn, ray):
        calls.append(xn.shape[0])
        return fn(xn, ray)

    g = 16
    full = torch.ones(g, g, g, dtype=torch.bool)
    s = march(o, d, full, counting, steps, 1e-4, keep_values=True)
    c, a, z = composite(s.ray, s.t, s.sigma, torch.ones(s.ray.numel(), 3), math.sqrt(3) / steps, n * n)
    r2 = (xx.reshape(-1) - 0.5) ** 2 + (yy.reshape(-1) - 0.5) ** 2
    hit = r2 < (radius - 0.02) ** 2
    miss = r2 > (radius + 0.02) ** 2
    assert torch.all(a[hit] > 0.99) and torch.all(a[miss] < 1e-6)
    # Expected z of the front surface: o_z + t = 0.5 - sqrt(r^2 - rho^2), t measured from o_z = -0.5.
    t_expect = 1.0 - torch.sqrt(radius ** 2 - r2[hit])
    depth = z[hit] / a[hit]
    assert torch.all((depth - t_expect).abs() < 2 * math.sqrt(3) / steps)
    evaluated_full = sum(calls)
    # Occupancy that marks only the ball's cells: same image, far fewer density evaluations.
    cc = (torch.arange(g) + 0.5) / g
    gx, gy, gz = torch.meshgrid(cc, cc, cc, indexing="ij")
    occ = ((gx - 0.5) ** 2 + (gy - 0.5) ** 2 + (gz - 0.5) ** 2).sqrt() < radius + 1.0 / g
    calls.clear()
    s2 = march(o, d, occ, counting, steps, 1e-4, keep_values=True)
    c2, a2, _ = composite(s2.ray, s2.t, s2.sigma, torch.ones(s2.ray.numel(), 3), math.sqrt(3) / steps, n * n)
    torch.testing.assert_close(a2, a, atol=1e-4, rtol=0)
    assert sum(calls) < 0.5 * evaluated_full


def test_march_stops_rays_behind_opaque_surfaces():
    o = torch.tensor([[0.5, 0.5, -0.5]])
    d = torch.tensor([[0.0, 0.0, 1.0]])
    s = march(o, d, torch.ones(8, 8, 8, dtype=torch.bool), _ball_density(torch.tensor([0.5, 0.5, 0.5]), 0.3, 1e5),
              256, 1e-4)
    # The ball's front surface is at t = 0.5 + 0.2; its first sample is opaque: nothing behind is kept.
    assert s.ray.numel() > 0 and float(s.t.max()) <= 0.7 + math.sqrt(3) / 256


def test_numba_march_keeps_the_same_samples_as_the_torch_twin():
    # Random rays through a random occupancy of a smooth random density: both marchers must keep the
    # same (ray, t) samples with the same densities, in training (jitter) and rendering mode.
    g = torch.Generator().manual_seed(3)
    n = 300
    o = torch.rand(n, 3, generator=g) * 0.4 + torch.tensor([0.3, 0.3, -0.6])
    d = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 1.0]) + 0.3 * torch.randn(n, 3, generator=g), dim=-1)
    d = d * (0.5 + torch.rand(n, 1, generator=g))  # not unit: t is a ray parameter, not a length
    occ = torch.rand(12, 12, 12, generator=g) < 0.5
    freq = torch.randn(3, 4, generator=g) * 6

    def density(xn, ray):
        s = 40.0 * (torch.sin(xn @ freq).sum(-1) + 1.5).clamp_min(0)
        return s, torch.stack([s, xn[:, 0]], -1)

    jitter = torch.rand(n, generator=g)
    for kw in ({"jitter": jitter}, {"keep_values": True, "seg": 16}):
        a = march(o, d, occ, density, 96, 1e-3, **kw)
        b = march_torch(o, d, occ, density, 96, 1e-3, **kw)
        assert a.ray.numel() > 200
        assert torch.equal(a.ray, b.ray)
        torch.testing.assert_close(a.t, b.t)
        if kw.get("keep_values"):
            torch.testing.assert_close(a.sigma, b.sigma)
            torch.testing.assert_close(a.geo, b.geo)


def test_basis_blends_use_each_coefficient_extreme():
    b = basis_blends(torch.tensor([0.0, -0.5, 0.0]), torch.tensor([1.0, 0.2, 0.0]))
    rows = {tuple(round(v, 5) for v in r.tolist()) for r in b}
    assert rows == {(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.2, 0.0), (0.0, -0.5, 0.0)}


def _ball_views(n=8):
    """Analytic masks of a ball of radius 0.1 at the origin seen from n yaws: (masks, poses, K)."""
    from formats.camera import Intrinsics, orbit_pose
    k = Intrinsics.from_fov(40, 64, 64)
    masks, poses = [], []
    for yaw in np.linspace(-60, 60, n):
        c2h = orbit_pose(yaw, 0.0, 0.5)
        u = (np.arange(64) + 0.5 - k.cx) / k.fx
        uu, vv = np.meshgrid(u, u)
        d = np.stack([uu, vv, np.ones_like(uu)], -1) @ c2h[:3, :3].T
        o = c2h[:3, 3]
        b = (d @ o) * 2
        a = (d * d).sum(-1)
        disc = b * b - 4 * a * (o @ o - 0.01)
        masks.append(((disc > 0) * 255).astype(np.uint8))
        poses.append(np.linalg.inv(c2h))
    return np.stack(masks), np.stack(poses), k


def _cell_radii(g=24, bound=0.3):
    c = (np.arange(g) + 0.5) / g * 2 * bound - bound
    gx, gy, gz = np.meshgrid(c, c, c, indexing="ij")
    return np.sqrt(gx ** 2 + gy ** 2 + gz ** 2), gy


def test_visual_hull_keeps_the_object_and_carves_the_rest():
    masks, poses, k = _ball_views()
    hull = visual_hull(masks, poses, k.fx, k.fy, k.cx, k.cy, 0.3, 24).reshape(24, 24, 24)
    r, _ = _cell_radii()
    assert hull.numpy()[r < 0.1].all()  # never carves the object
    assert hull.numpy()[r > 0.25].mean() < 0.05  # carves most of the empty box


def test_visual_hull_ignores_padding_where_a_crop_left_the_video():
    # Every other view lost its lower half to padding: black, mask 0 there. Read as background
    # it carves the ball's lower half; marked not valid, those views say nothing about it.
    masks, poses, k = _ball_views()
    valid = np.ones(masks.shape, bool)
    valid[::2, 32:] = False
    masks[~valid] = 0
    r, y = _cell_radii()
    lower_ball = (r < 0.1) & (y < -0.02)  # image rows 32+ show the head frame's -y (OpenCV y is down)
    naive = visual_hull(masks, poses, k.fx, k.fy, k.cx, k.cy, 0.3, 24).reshape(24, 24, 24).numpy()
    hull = visual_hull(masks, poses, k.fx, k.fy, k.cx, k.cy, 0.3, 24, valid=valid).reshape(24, 24, 24).numpy()
    assert naive[lower_ball].mean() < 0.5
    assert hull[r < 0.1].all()
    assert hull[(r > 0.25) & (y > 0)].mean() < 0.05  # where every view sees, it carves as before


def test_sh_encoding_is_orthonormal_on_the_sphere():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(200000, 3, generator=g, dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    y = sh_encode(d)
    gram = 4 * math.pi * (y.T @ y) / d.shape[0]
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=0.03, rtol=0)


def test_colour_per_ray_equals_colour_per_sample():
    from bake.nerf.config import preset
    from bake.nerf.model import NeRFBlendShape
    torch.manual_seed(0)
    m = NeRFBlendShape(preset("tiny"), 3)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)  # away from the init's near-constant output
    geo = torch.randn(50, m.cfg.geo_features)
    ray = torch.randint(0, 7, (50,))
    d = torch.randn(7, 3)
    a, b = m.color_rays(geo, ray, d), m.color(geo, d[ray])
    assert float(b.detach().std()) > 0.1
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
