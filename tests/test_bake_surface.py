"""The depth a tile stores is the field's surface, not its fog (``bake.job.surface``)."""

from __future__ import annotations

import numpy as np

from bake.job.surface import SOLID_ALPHA, solid_depth
from formats import P4DReader
from formats.codecs import dequantize_depth


def test_fog_holds_no_surface_and_an_outline_takes_the_surface_behind_it():
    h = w = 256  # the reach is 3 px at 256
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - 128, xx - 128)
    alpha = np.where(r < 60, 1.0, 0.0)
    depth = np.where(r < 60, 0.40 + 0.001 * xx, 0.0)
    ring = (r >= 60) & (r < 62) & (yy < 128)  # the antialiased outline, its median depth in fog
    alpha[ring], depth[ring] = 0.3, 0.12
    edge = (r >= 60) & (r < 62) & (yy >= 128)  # an outline seen edge-on: behind the disc's edge
    alpha[edge], depth[edge] = 0.3, 0.40 + 0.001 * xx[edge] + 0.02
    bare = (r >= 62) & (r < 63)  # some alpha, no surface
    alpha[bare] = 0.2
    fog = (yy < 20) & (xx < 20)  # faint fog far from the head, a hand's width from the camera
    alpha[fog], depth[fog] = 0.02, 0.15
    got = solid_depth(depth, alpha)
    solid = alpha >= SOLID_ALPHA
    assert np.array_equal(got[solid], depth[solid].astype(np.float32))
    assert (got[fog] == 0).all()
    assert (got[alpha == 0] == 0).all() and (got[bare] == 0).all()
    assert np.allclose(got[edge], depth[edge])  # kept
    # every outline pixel takes a depth of the disc (0.40 + 0.001 x within the disc's span)
    assert (got[ring] >= 0.40 + 0.001 * 68).all() and (got[ring] <= 0.40 + 0.001 * 188).all()


class _Foggy:
    """A field with fog before the head: alpha 0.02 over the image's lower half, at a median depth
    ``at`` metres from the camera (inside the bake's depth range, well before the head), as a
    learned field leaves it."""

    def __init__(self, field, at: float):
        self._field, self._at = field, at

    def __getattr__(self, name):
        return getattr(self._field, name)

    def render(self, camera, expression):
        rgb, alpha, depth = self._field.render(camera, expression)
        h = alpha.shape[0]
        fog = np.zeros_like(alpha, bool)
        fog[h // 2:] = alpha[h // 2:] < SOLID_ALPHA
        alpha = np.where(fog, 0.02, alpha)
        depth = np.where(fog, self._at, depth)
        return rgb, alpha, depth


def test_a_bake_stores_no_depth_for_fog(synth_dir, tmp_path):
    from bake.fields.registry import load_field
    from bake.job.config import BakeConfig
    from bake.job.run import depth_bounds, run_bake, view_grid
    cfg = BakeConfig(views=(3, 1), size=64, fps=2.0, normal_scale=0)
    plain = load_field(synth_dir / "subject.ckpt")
    near, far = depth_bounds(view_grid(plain, cfg))
    field = _Foggy(plain, near + 0.05 * (far - near))
    out = run_bake(field, cfg, tmp_path / "fog.p4d", source_digest="fog", quiet=True)
    with P4DReader(out) as r:
        assert (near, far) == (r.meta["grid"]["depth"]["near"], r.meta["grid"]["depth"]["far"])
        for k in range(r.n_keyframes):
            for v in range(r.n_views):
                q = r.tile(k, v, "depth")
                d = dequantize_depth(q, near, far)
                head = d[q > 0]
                # the fog sits at 5 % of the depth range, the head near its middle: no sample of fog
                assert head.size and head.min() > near + 0.25 * (far - near), (head.min(), near, far)
