"""player/render.py: the jump crossfade (mixed in source pixels, one warp) against the fade of
two separately rendered frames, on a ray-traced sphere grid."""

import numpy as np

from formats.camera import Intrinsics
from formats.codecs import quantize_depth
from player.cache import TileCache
from player.render import RenderConfig, Renderer
from testkit.sample import sample_meta
from tests.test_player_kernels import RADIUS, trace_sphere

YAWS, PITCHES, SIZE = (-10.0, 10.0), (-8.0, 8.0), 48


class SphereSource:
    """Two keyframes of the same sphere with different textures (so a fade is visible)."""

    def __init__(self):
        self.meta = sample_meta(2, yaws=YAWS, pitches=PITCHES, size=(SIZE, SIZE), near=0.3, far=0.9)
        self.meta["grid"]["radius"] = RADIUS
        self.meta["grid"]["center"] = [0.0, 0.0, 0.0]
        intr = Intrinsics.from_fov(30.0, SIZE, SIZE)
        self.meta["grid"]["intrinsics"] = intr.to_dict()
        self.arrays = {}
        for k in range(2):
            for pi, p in enumerate(PITCHES):
                for yi, y in enumerate(YAWS):
                    rgba, depth = trace_sphere(y, p, intr, texture_seed=3 * k)
                    v = pi * len(YAWS) + yi
                    self.arrays[k, v, "color"] = np.ascontiguousarray(rgba[..., :3])
                    self.arrays[k, v, "alpha"] = np.ascontiguousarray(rgba[..., 3])
                    self.arrays[k, v, "depth"] = quantize_depth(depth, 0.3, 0.9)

    def tile(self, k, v, kind):
        return self.arrays[k, v, kind]


def test_crossfade_in_source_pixels_matches_fading_the_rendered_frames():
    src = SphereSource()
    cache = TileCache(src, prefetch=False)
    ren = Renderer(src.meta, cache, RenderConfig(background=(0.0, 0.0, 0.0), stride=2))
    view = (3.0, -2.0, 1.0)
    a = ren.render(*view, [(0, 0, 0.0, 1.0)]).astype(np.float64)
    b = ren.render(*view, [(1, 1, 0.0, 1.0)]).astype(np.float64)
    assert np.abs(a - b).mean() > 5  # the two keyframes do differ
    for t in (0.0, 0.3, 1.0):
        got = ren.render(*view, [(0, 0, 0.0, 1.0), (1, 1, 0.0, t)]).astype(np.float64)
        want = (1 - t) * a + t * b
        # Same geometry in both keyframes: mixing before the (linear) warp = mixing after it, up to
        # the 8-bit rounding of the mixed tiles.
        err = np.abs(got - want)
        assert err.max() <= 2.0, (t, err.max())
        if t in (0.0, 1.0):
            assert np.array_equal(got, a if t == 0.0 else b)
    cache.close()


def test_a_sequence_of_frames_matches_fresh_renders():
    # The renderer keeps blended tiles between frames and skips a blend it already holds: every
    # frame of a sequence (held keyframes, phases, crossfades, views changing) must still be the
    # frame a fresh renderer draws for that state.
    src = SphereSource()
    cache = TileCache(src, prefetch=False)
    cfg = RenderConfig(view_sharpen=2.0)  # views drop in and out as the viewpoint moves
    ren = Renderer(src.meta, cache, cfg)
    states = [
        (0.0, 0.0, [(0, 1, 0.0, 1.0)]),
        (0.0, 0.0, [(0, 1, 0.0, 1.0)]),  # the same frame again: nothing blended anew
        (-9.0, 0.0, [(0, 1, 0.4, 1.0)]),
        (-9.0, -7.0, [(0, 1, 0.4, 1.0)]),
        (3.0, 2.0, [(1, 1, 0.0, 1.0), (0, 1, 0.5, 0.3)]),  # a crossfade mixes stream 1 into slot 0
        (3.0, 2.0, [(1, 1, 0.0, 1.0)]),  # ... which must not be taken for stream 0's own tile
        (3.0, 2.0, [(1, 1, 0.0, 1.0), (0, 1, 0.5, 0.0)]),  # fade weight 0: stream 1 adds nothing
        (8.0, 6.0, [(0, 0, 0.0, 1.0)]),
    ]
    for yaw, pitch, streams in states:
        got = ren.render(yaw, pitch, 1.0, streams).copy()
        want = Renderer(src.meta, cache, cfg).render(yaw, pitch, 1.0, streams)
        assert np.array_equal(got, want), (yaw, pitch, streams)
    assert ren.render(0.0, 0.0, 1.0, [(0, 1, 0.0, 1.0)]).any()
    cache.close()


class CutSphereSource(SphereSource):
    """The sphere cut off at a column that depends on keyframe and view: content boxes differ."""

    def __init__(self):
        super().__init__()
        for (k, v, kind), arr in self.arrays.items():
            arr[:, 14 + 9 * k + 3 * v:] = 0


def test_frames_blended_in_content_spans_match_fresh_renders():
    # Blends cover only the tiles' content row spans (and what a buffer held before): a buffer
    # that held a wider tile must be cleared where the new one is empty, through keyframe
    # changes, views dropping in and out, and crossfades.
    src = CutSphereSource()
    cache = TileCache(src, prefetch=False)
    spans = [cache.get(k, v).spans for k in range(2) for v in range(4)]
    assert len({sp.tobytes() for sp in spans}) >= 6 and all(sp[:, 1].max() < SIZE for sp in spans)
    cfg = RenderConfig(view_sharpen=2.0)
    ren = Renderer(src.meta, cache, cfg)
    states = [
        (0.0, 0.0, [(1, 1, 0.0, 1.0)]),
        (0.0, 0.0, [(0, 0, 0.0, 1.0)]),  # narrower tiles into buffers that held wider ones
        (0.0, 0.0, [(0, 1, 0.6, 1.0)]),
        (-9.0, -7.0, [(1, 0, 0.3, 1.0)]),
        (3.0, 2.0, [(0, 0, 0.0, 1.0), (1, 1, 0.0, 0.5)]),
        (3.0, 2.0, [(0, 0, 0.0, 1.0)]),
        (9.0, 7.0, [(1, 1, 0.0, 1.0)]),
        (-3.0, 1.0, [(0, 0, 0.0, 1.0)]),
    ]
    for yaw, pitch, streams in states:
        got = ren.render(yaw, pitch, 1.0, streams).copy()
        want = Renderer(src.meta, cache, cfg).render(yaw, pitch, 1.0, streams)
        assert np.array_equal(got, want), (yaw, pitch, streams)
        # and the buffers hold nothing outside their recorded row spans (blends write only those)
        for j in range(4):
            off_span = np.ones((SIZE, SIZE), bool)
            for y, (s0, s1) in enumerate(ren.dirty_spans[j]):
                off_span[y, s0:max(s1, s0)] = False
            assert not ren.src_rgba[j][off_span].any() and not ren.src_depth[j][off_span].any()
            rows = np.flatnonzero(~off_span.all(1))
            if rows.size:  # the spans are narrower than their bounding box
                box = ~off_span[rows[0]:rows[-1] + 1][:, ~off_span.all(0)]
                assert not box.all(), j
    cache.close()
