"""The player's tile cache on a chained file (format 1.3): playing forward decodes one chunk per
kind and view a keyframe, also with streams interleaved; a jump costs at most the chain."""

import numpy as np

from formats import P4DReader
from player.cache import TileCache, decode_tile
from testkit.sample import write_sample

KINDS = ("color", "alpha", "depth", "normal")


def chained(path, chain=4, n_keyframes=12):
    return write_sample(path, n_keyframes=n_keyframes, size=(32, 32), kinds=KINDS, quality=80, depth_bits=8,
                        codecs={"color": "webp", "alpha": "webp", "depth": "webp", "normal": "webp"}, chain=chain)


def test_streams_cost_one_chunk_per_kind_a_keyframe(tmp_path):
    path = chained(tmp_path / "c.p4d")
    with P4DReader(path) as r:
        cache = TileCache(r, prefetch=False)
        # a main stream from 0 and a jump target's stream from 6, advanced in turns in two views,
        # as Playback asks for them (each stream's keyframes in playing order)
        for step in range(5):
            for k in (step, 6 + step):
                for v in (0, 1):
                    cache.get(k, v)
        # stream from 0: 5 keyframes; stream from 6 (chain start 4): 4, 5 walked once, then 6..10
        assert r.decodes == 2 * 4 * (5 + 2 + 5)
        cache.close()


def test_the_cache_draws_what_an_unchained_file_draws(tmp_path):
    a, b = chained(tmp_path / "a.p4d", chain=1), chained(tmp_path / "b.p4d", chain=4)
    with P4DReader(a) as ra, P4DReader(b) as rb:
        for k in (7, 3, 11, 0, 8):  # jumps in both directions
            ta, tb = decode_tile(ra, k, 2), decode_tile(rb, k, 2)
            for field in ("depth", "spans", "normal"):
                np.testing.assert_array_equal(getattr(tb, field), getattr(ta, field))
            np.testing.assert_array_equal(tb.rgba[..., 3], ta.rgba[..., 3])
            assert np.abs(tb.rgba[..., :3].astype(int) - ta.rgba[..., :3]).mean() < 4
