"""The decoded-tile cache: exact decode, LRU memory bound, prefetch on the worker thread."""

import threading

import numpy as np

from formats.codecs import dequantize_depth, quantize_depth
from player.cache import TileCache
from testkit.sample import sample_meta


class ArraySource:
    """A tile source backed by arrays; counts decodes per thread."""

    def __init__(self, n_kf=4, n_views=3, h=8, w=10, seed=0):
        self.meta = sample_meta(n_kf, yaws=tuple(range(n_views)), size=(h, w))
        rng = np.random.default_rng(seed)
        near, far = self.meta["grid"]["depth"]["near"], self.meta["grid"]["depth"]["far"]
        self.arrays = {}
        for k in range(n_kf):
            for v in range(n_views):
                alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
                color = rng.integers(0, 256, (h, w, 3)) * alpha[..., None] // 255  # premultiplied: <= alpha
                self.arrays[k, v, "color"] = color.astype(np.uint8)
                self.arrays[k, v, "alpha"] = alpha
                d = np.where(rng.random((h, w)) < 0.3, 0, rng.uniform(near, far, (h, w))).astype(np.float32)
                self.arrays[k, v, "depth"] = quantize_depth(d, near, far)
        self.calls = []

    def tile(self, k, v, kind):
        self.calls.append((k, v, kind, threading.current_thread().name))
        return self.arrays[k, v, kind]


def test_decoded_tile_is_exact_with_colour_clamped_to_alpha():
    src = ArraySource()
    src.arrays[2, 0, "color"] = np.random.default_rng(3).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    c = TileCache(src, prefetch=False)
    t = c.get(2, 1)
    assert t.rgba.flags.c_contiguous and t.rgba.dtype == np.uint8 and t.depth.dtype == np.float32
    assert np.array_equal(t.rgba[..., :3], src.arrays[2, 1, "color"])  # valid premultiplied colour: as stored
    assert np.array_equal(t.rgba[..., 3], src.arrays[2, 1, "alpha"])
    d = src.meta["grid"]["depth"]
    np.testing.assert_array_equal(t.depth, dequantize_depth(src.arrays[2, 1, "depth"], d["near"], d["far"]))
    t = c.get(2, 0)
    color, alpha = src.arrays[2, 0, "color"], src.arrays[2, 0, "alpha"]
    assert (color > alpha[..., None]).any()  # random colour: some of it above alpha
    assert np.array_equal(t.rgba[..., :3], np.minimum(color, alpha[..., None]))
    assert np.array_equal(t.rgba[..., 3], alpha)


def test_clamping_lossy_colour_to_alpha_only_moves_it_towards_the_truth():
    # Alpha is stored losslessly and true premultiplied colour never exceeds it; a lossy colour
    # codec overshoots it, e.g. specks around the head where alpha is 0. The clamp removes that.
    from formats.codecs import decode, encode
    from player.kernels import interleave_rgba
    h = w = 64
    y, x = np.mgrid[0:h, 0:w]
    alpha = np.clip(255 * (20 - np.hypot(x - 30, y - 33)) / 3, 0, 255).astype(np.uint8)  # a soft-edged disc
    straight = np.stack([128 + 100 * np.sin(x / 3), 128 + 100 * np.cos(y / 4), 200 + 0 * x], -1)
    truth = np.rint(straight * alpha[..., None] / 255).astype(np.uint8)
    stored = decode(encode(truth, "webp", 60), "webp", (h, w, 3), np.uint8)
    rgba, spans = interleave_rgba(stored, alpha, np.full((h, 2), (w, 0), np.int32))
    err_stored = np.abs(stored.astype(int) - truth)
    err = np.abs(rgba[..., :3].astype(int) - truth)
    assert (stored[alpha == 0] > 0).any()  # the codec did leave specks outside the disc
    assert (rgba[alpha == 0] == 0).all() and (rgba[..., :3] <= alpha[..., None]).all()
    assert (err <= err_stored).all() and err.sum() < err_stored.sum()
    assert (spans[:, 0] > 0).all() and spans[:, 1].max() < w  # spans bound the disc, not the specks


def test_decoded_spans_bound_the_nonzero_pixels():
    from player.kernels import interleave_rgba, upsample_depth
    color = np.zeros((6, 9, 3), np.uint8)
    alpha = np.zeros((6, 9), np.uint8)
    depth = np.zeros((6, 9), np.float32)
    alpha[1, 2:5] = 9  # alpha only
    depth[3, 7] = 0.5  # depth only
    alpha[4, 1] = alpha[4, 6] = 3  # colour and alpha
    color[4, 1, 0] = color[4, 6, 2] = 1
    color[5, 4, 1] = 2  # colour where alpha is 0: clamped away
    dspans = np.empty((6, 2), np.int32)
    upsample_depth(depth, 1, 6, 9, spans=dspans)
    assert dspans.tolist() == [[9, 0], [9, 0], [9, 0], [7, 8], [9, 0], [9, 0]]
    rgba, spans = interleave_rgba(color, alpha, dspans)
    assert spans.dtype == np.int32 and spans.tolist() == [[9, 0], [2, 5], [9, 0], [7, 8], [1, 7], [9, 0]]
    assert np.array_equal(rgba[:5, :, :3], color[:5]) and not rgba[5].any()
    assert np.array_equal(rgba[..., 3], alpha)
    empty = np.full((6, 2), (9, 0), np.int32)
    assert interleave_rgba(color, np.zeros_like(alpha), empty)[1].tolist() == [[9, 0]] * 6


class SparseSource(ArraySource):
    """Tiles shaped like a bake's: a disc of content, depth stored at 1/4, codec-like colour
    specks outside the alpha, and the depth's silhouette a little off the alpha's."""

    def __init__(self, h=37, w=45, seed=1):
        from formats.p4d import downscale_depth
        self.meta = sample_meta(2, yaws=(0.0, 1.0), size=(h, w), depth_scale=4)
        rng = np.random.default_rng(seed)
        near, far = self.meta["grid"]["depth"]["near"], self.meta["grid"]["depth"]["far"]
        y, x = np.mgrid[0:h, 0:w]
        self.arrays = {}
        for k in range(2):
            for v in range(2):
                inside = (x - w / 2 - 3 * v) ** 2 + (y - h / 2 - 2 * k) ** 2 < (0.35 * min(h, w)) ** 2
                color = np.where(inside[..., None], rng.integers(0, 256, (h, w, 3)), 0).astype(np.uint8)
                color[rng.random((h, w)) < 0.02] = 7  # specks where alpha is 0
                self.arrays[k, v, "color"] = color
                self.arrays[k, v, "alpha"] = np.where(inside, rng.integers(1, 256, (h, w)), 0).astype(np.uint8)
                d = np.where(np.roll(inside, 2, 1), 0.5 + 0.01 * x + 0.005 * y, 0).astype(np.float32)
                small = downscale_depth(d, 4)
                self.arrays[k, v, "depth"] = quantize_depth(small, near, far)
        self.calls = []


def test_decoded_tile_matches_the_numpy_twins():
    # decode_tile computes depth and RGBA only inside each row's content span: everything outside
    # it must still be 0, and the spans must be the tight bound the twins give (the colour
    # specks outside the alpha clamped away).
    from testkit.naive import decode as n_decode
    from player.cache import decode_tile
    src = SparseSource()
    d = src.meta["grid"]["depth"]
    for k in range(2):
        for v in range(2):
            t = decode_tile(src, k, v)
            depth = n_decode.upsample_depth(dequantize_depth(src.arrays[k, v, "depth"], d["near"], d["far"]), 4, 37, 45,
                                            alpha=src.arrays[k, v, "alpha"])
            alpha = src.arrays[k, v, "alpha"][..., None]
            rgba = np.concatenate([np.minimum(src.arrays[k, v, "color"], alpha), alpha], 2)
            np.testing.assert_array_equal(t.depth, depth)
            np.testing.assert_array_equal(t.rgba, rgba)
            np.testing.assert_array_equal(t.spans, n_decode.content_spans(rgba, depth))
            assert (t.spans[:, 0] > 0).any() and (t.spans[:, 1] < 45).any() and (t.spans[:, 0] == 45).any()


def test_lru_respects_memory_bound_and_counts_hits():
    src = ArraySource()
    one = 8 * 10 * 4 + 8 * 10 * 4 + 8 * 2 * 4  # rgba + float32 depth + int32 row spans
    c = TileCache(src, max_bytes=3 * one, prefetch=False)
    for key in [(0, 0), (0, 1), (0, 2), (0, 0), (1, 0), (0, 1)]:
        c.get(*key)
    st = c.stats()
    # (0,0) hit; (1,0) evicts the least recent (0,1); so (0,1) misses again
    assert st["hits"] == 1 and st["misses"] == 5 and st["evictions"] == 2
    assert st["bytes"] <= 3 * one and st["tiles"] == 3
    assert abs(st["hit_rate"] - 1 / 6) < 1e-9


def test_prefetch_decodes_on_the_worker_then_gets_hit():
    src = ArraySource()
    c = TileCache(src)
    try:
        c.prefetch([(3, v) for v in range(3)] + [(3, 0)])
        c.idle()
        workers = {name for *_, name in src.calls}
        assert workers and all(n.startswith("p4d-prefetch") for n in workers)
        src.calls.clear()
        for v in range(3):
            assert np.array_equal(c.get(3, v).rgba[..., :3], src.arrays[3, v, "color"])
        assert src.calls == []  # no decode on the frame thread
        st = c.stats()
        assert st["hits"] == 3 and st["misses"] == 0 and st["prefetched"] == 3
    finally:
        c.close()


def test_prefetch_takes_only_what_the_cache_holds_and_keeps_what_it_wants_soonest():
    # A request longer than the cache used to decode all of it, the later keys evicting the
    # first (most urgent) ones; and an old cached tile the request names could be evicted by the
    # keys decoded after it.
    src = ArraySource(n_kf=4, n_views=3)
    one = 8 * 10 * 4 + 8 * 10 * 4 + 8 * 2 * 4
    c = TileCache(src, max_bytes=3 * one)
    try:
        c.get(0, 0)  # cached, then the least recently used once two more arrive
        c.get(0, 1)
        c.get(0, 2)
        c.prefetch([(0, 0), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)])
        c.idle()
        assert c.stats()["prefetched"] == 2  # (0, 0) is cached: two of the other five fit
        src.calls.clear()
        for key in [(0, 0), (1, 0), (1, 1)]:
            c.get(*key)
        assert src.calls == [] and c.stats()["misses"] == 3  # no misses past the three first gets
    finally:
        c.close()


class HeldSource(ArraySource):
    """An ArraySource whose decode of one key blocks until ``release`` is set."""

    def __init__(self, held, **kw):
        super().__init__(**kw)
        self.held, self.started, self.release = held, threading.Event(), threading.Event()

    def tile(self, k, v, kind):
        if (k, v) == self.held:
            self.started.set()
            assert self.release.wait(10)
        return super().tile(k, v, kind)


def decoded_by(src, name):
    """(k, v) pairs in the order the thread ``name`` decoded them (one per tile, not per kind)."""
    return [(k, v) for k, v, kind, n in src.calls if n.startswith(name) and kind == "color"]


def test_prefetch_decodes_the_newest_request_first_and_drops_what_it_no_longer_asks_for():
    src = HeldSource((0, 0))
    c = TileCache(src)
    try:
        c.prefetch([(0, 0)])
        assert src.started.wait(10)  # the worker is busy with (0, 0)
        c.prefetch([(1, 0), (1, 1), (2, 0)])
        c.prefetch([(2, 0), (3, 1), (1, 1)])  # what the next frame asks for, most urgent first
        src.release.set()
        c.idle()
        assert decoded_by(src, "p4d-prefetch") == [(0, 0), (2, 0), (3, 1), (1, 1)]
        assert c.stats()["prefetched"] == 4
    finally:
        src.release.set()
        c.close()


def test_a_frame_decodes_a_queued_tile_itself_instead_of_waiting_behind_the_queue():
    src = HeldSource((0, 0))
    c = TileCache(src)
    try:
        c.prefetch([(0, 0), (1, 2)])
        assert src.started.wait(10)
        t = c.get(1, 2)  # queued behind the held decode: taken off the queue, decoded here
        assert np.array_equal(t.rgba[..., :3], src.arrays[1, 2, "color"])
        assert decoded_by(src, "MainThread") == [(1, 2)]
        src.release.set()
        c.idle()
        assert decoded_by(src, "p4d-prefetch") == [(0, 0)]  # not decoded a second time
        st = c.stats()
        assert st["misses"] == 1 and st["waits"] == 0
        assert c.get(0, 0) is not None and c.stats()["hits"] == 1
    finally:
        src.release.set()
        c.close()


def test_depth_stored_at_lower_resolution_is_upsampled_to_the_tile():
    from formats.p4d import downscale_depth
    from player.kernels import upsample_depth
    y, x = np.mgrid[0:37, 0:41]
    full = (0.5 + 0.001 * x + 0.002 * y).astype(np.float32)  # a tilted plane ...
    full[:, 30:] = 0  # ... ending in a silhouette
    for s in (1, 2, 4, 8):
        up = upsample_depth(downscale_depth(full, s), s, 37, 41)
        assert up.shape == full.shape
        inner = (full > 0) & (x < 30 - s) & (x > s) & (y > s) & (y < 37 - s)
        np.testing.assert_allclose(up[inner], full[inner], atol=1e-5)  # exact on the plane
        # the silhouette moves by less than one stored sample
        assert ((up > 0) != (full > 0)).any(0).sum() <= s


def test_alpha_draws_the_silhouette_of_a_coarse_depth():
    # Depth stored at 1/s loses the silhouette's shape: a pixel the alpha covers may sit in a
    # block whose sample is background (the warp then drops it), and one outside the alpha in a
    # block whose sample is surface. With the tile's alpha, depth has a surface exactly where the
    # alpha has one, taken from the nearest stored sample that has a surface.
    from formats.p4d import downscale_depth
    from player.kernels import upsample_depth
    h, w = 45, 53
    y, x = np.mgrid[0:h, 0:w]
    inside = (x - 24.3) ** 2 / 18.0 ** 2 + (y - 21.7) ** 2 / 15.0 ** 2 < 1  # an ellipse, off the sample grid
    full = np.where(inside, 0.5 + 0.002 * x + 0.001 * y, 0).astype(np.float32)
    alpha = np.where(inside, 200, 0).astype(np.uint8)
    for s in (2, 4):
        small = downscale_depth(full, s)
        plain = upsample_depth(small, s, h, w)
        assert ((plain > 0) != inside).sum() > 4 * s  # without the alpha the silhouette is off
        got = upsample_depth(small, s, h, w, alpha=alpha)
        np.testing.assert_array_equal(got > 0, inside)
        # each filled pixel takes a real stored sample, within a block and a half of it
        assert np.abs(got - full)[inside].max() < 0.002 * 1.5 * s * 2.3


def test_playback_asks_for_every_tile_three_frames_before_it_draws_it():
    # A frame that finds its tile not yet decoded decodes it on the frame thread: ~5 ms per
    # 512 px tile, a visible hitch. So every tile a frame draws must be in the prefetch request
    # made 3 frames (50 ms) earlier, so the worker has had time for it,
    # jumps included: a transition or forced jump lands mid-keyframe, so its fade draws the
    # target and the target's successor at once. Requests, not timing: the worker is off.
    from collections import deque

    from player.playback import PlayConfig, Playback
    meta = sample_meta(20, yaws=(-20.0, 0.0, 20.0), pitches=(-10.0, 10.0), size=(8, 10))
    meta["graph"]["transitions"] += [[8, 2, 0.5, 1.0], [16, 12, 0.5, 1.0]]  # backward jumps
    meta["keyframes"]["fps"] = 12.5
    src = ArraySource(n_kf=20, n_views=6, h=8, w=10, seed=3)
    src.meta = meta
    pb = Playback(src, PlayConfig(mode="orbit", prefetch=False))
    lead = 3
    requests = deque([set()], maxlen=lead + 1)  # the last requests, oldest first
    late = []
    ask, get = pb.cache.prefetch, pb.cache.get

    def record(keys):
        keys = [(int(k), int(v)) for k, v in keys]
        requests[-1].update(keys)
        ask(keys)

    def check(k, v):
        if pb.frames > lead and (int(k), int(v)) not in requests[0]:
            late.append((pb.frames, (int(k), int(v)), pb.walker.streams()))
        return get(k, v)

    pb.cache.prefetch, pb.cache.get = record, check
    try:
        for _ in range(60 * 30):
            pb.step(1 / 60)
            pb.render()
            requests.append(set())
    finally:
        pb.close()
    st = pb.walker.stats
    assert len(st.forced) >= 2 and pb.walker.jumps > len(st.forced) + 10, (len(st.forced), pb.walker.jumps)
    assert late == [], (len(late), late[:5])
