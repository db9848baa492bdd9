"""Chained tiles (format 1.3): a tile may store its difference to the previous keyframe's tile of
its view and kind; ``tiles.chain`` bounds how far a decode walks back."""

import numpy as np
import pytest

from formats import P4DFormatError, P4DReader, P4DWriter
from formats.cli import main as p4d
from formats.compare import tile_psnr
from formats.p4d import FLAG_PREDICTED, apply_residual, pack_meta, predict_residual, residual_lossy, unpack_meta
from testkit.fuzz import forge, header_get, header_set
from testkit.sample import portrait_tile, sample_meta, write_sample
from tests.test_p4d_hostile import index_of, rejected, with_index, with_meta

KINDS = ("color", "alpha", "depth", "normal")
CODECS = {"color": "webp", "alpha": "webp", "depth": "webp", "normal": "webp"}


def sample(path, chain, n_keyframes=9, codecs=None, depth_bits=8, quality=80):
    return write_sample(path, n_keyframes=n_keyframes, size=(32, 32), kinds=KINDS, codecs=codecs or CODECS,
                        quality=quality, depth_bits=depth_bits, chain=chain)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    return sample(d / "intra.p4d", 1), sample(d / "chained.p4d", 4)


def test_residuals_invert_exactly_for_lossless_kinds():
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.uint16):
        x, prev = (rng.integers(0, np.iinfo(dtype).max + 1, (5, 7), dtype=dtype) for _ in range(2))
        r = predict_residual(x, prev, False)
        assert r.dtype == dtype
        np.testing.assert_array_equal(apply_residual(prev, r, False), x)
    # lossy colour: exact while |x - prev| <= 127, clipped beyond (the next tile of the chain corrects it)
    x = np.array([[[10, 200, 255]]], np.uint8)
    prev = np.array([[[20, 100, 0]]], np.uint8)
    np.testing.assert_array_equal(apply_residual(prev, predict_residual(x, prev, True), True), [[[10, 200, 127]]])
    assert residual_lossy("color", "webp") and residual_lossy("color", "jpeg")
    assert not residual_lossy("color", "png") and not residual_lossy("alpha", "webp")


def test_version_flags_and_the_chain_bound(pair):
    intra, chained = pair
    with P4DReader(intra) as a, P4DReader(chained) as b:
        assert a.version == (1, 2) and a.chain == 1 and not a.index["flags"].any()
        assert b.version == (1, 3) and b.chain == 4 and b.meta["tiles"]["chain"] == 4
        pred = (b.index["flags"] & FLAG_PREDICTED).astype(bool)
        # every kind of every view: intra at keyframes 0, 4, 8, predicted elsewhere
        np.testing.assert_array_equal(pred.all(axis=(1, 2)), [k % 4 != 0 for k in range(9)])
        np.testing.assert_array_equal(pred.any(axis=(1, 2)), [k % 4 != 0 for k in range(9)])
        assert b.predicted(5, 1, "alpha") and not b.predicted(4, 1, "alpha")


def test_round_trip_per_kind(pair):
    intra, chained = pair
    with P4DReader(intra) as a, P4DReader(chained) as b:
        for k in range(a.n_keyframes):
            for v in range(a.n_views):
                for kind in ("alpha", "depth", "normal"):  # lossless: the same samples either way
                    np.testing.assert_array_equal(b.tile(k, v, kind), a.tile(k, v, kind))
                    np.testing.assert_array_equal(b.tile_stored(k, v, kind), a.tile_stored(k, v, kind))
                # lossy colour: near the true tile (closed loop: no drift along the chain)
                rgb, alpha, _ = portrait_tile(32, 32, *sample_view(v), t=k, seed=k * 1000 + v)
                assert tile_psnr(b.tile(k, v, "color"), rgb, alpha > 0) > tile_psnr(a.tile(k, v, "color"), rgb,
                                                                                  alpha > 0) - 3.0


def test_lossless_colour_chains_are_exact(tmp_path):
    # each keyframe adds 200 to a random picture: every difference lies beyond +-127 and wraps
    # (cheap as a difference, so the writer predicts), and comes back exactly
    meta = sample_meta(5, size=(8, 8), kinds=("color",), codecs={"color": "png"}, chain=3)
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, (3, 8, 8, 3))
    tiles = ((base[None] + 200 * np.arange(5)[:, None, None, None, None]) % 256).astype(np.uint8)
    with P4DWriter(tmp_path / "c.p4d", chain=3) as w:
        for k in range(5):
            for v in range(3):
                w.add_tile(k, v, "color", tiles[k, v], "png")
        w.finish(meta)
    with P4DReader(tmp_path / "c.p4d") as r:
        assert r.predicted(2, 0, "color") and not r.predicted(3, 0, "color")
        for k in range(5):
            for v in range(3):
                np.testing.assert_array_equal(r.tile(k, v, "color"), tiles[k, v])


def test_a_tile_that_costs_more_as_a_difference_stays_intra(tmp_path):
    # a new random picture each keyframe: its difference is noise too and no smaller than the tile
    meta = sample_meta(4, size=(16, 16), kinds=("color", "alpha"), codecs={"color": "png", "alpha": "png"}, chain=4)
    rng = np.random.default_rng(3)
    with P4DWriter(tmp_path / "n.p4d", chain=4) as w:
        for k in range(4):
            for v in range(3):
                w.add_tile(k, v, "color", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "png")
                # a picture shifted by 10 a keyframe: a flat, cheap difference
                w.add_tile(k, v, "alpha", ((np.arange(256) * 37 % 199 + 10 * k) % 256).astype(np.uint8).reshape(16, 16),
                           "png")
        w.finish(meta)
    with P4DReader(tmp_path / "n.p4d") as r:
        assert not any(r.predicted(k, v, "color") for k in range(4) for v in range(3))
        assert all(r.predicted(k, v, "alpha") for k in range(1, 4) for v in range(3))
        np.testing.assert_array_equal(r.tile(3, 1, "alpha").ravel(), (np.arange(256) * 37 % 199 + 30) % 256)


def sample_view(v):
    return (-20.0, 0.0, 20.0)[v], 0.0


def test_the_writer_predicts_from_what_a_reader_decodes(tmp_path):
    meta = sample_meta(6, size=(32, 32), kinds=("color",), codecs={"color": "webp"}, quality=60, chain=3)
    with P4DWriter(tmp_path / "c.p4d", chain=3) as w:
        for k in range(6):
            for v in range(3):
                rgb, _, _ = portrait_tile(32, 32, *sample_view(v), t=k, seed=k)
                w.add_tile(k, v, "color", rgb, "webp", 60)
        before = {(k, v): w.tile(k, v, "color") for k in range(6) for v in range(3)}
        w.finish(meta)
    with P4DReader(tmp_path / "c.p4d") as r:
        for (k, v), tile in before.items():
            np.testing.assert_array_equal(r.tile(k, v, "color"), tile)
        # the residual of a predicted tile is a difference around 128, not a picture
        assert r.predicted(1, 0, "color") and abs(float(r.tile_coded(1, 0, "color").mean()) - 128) < 8


def test_random_access_equals_sequential_decode_and_costs_at_most_the_chain(pair):
    _, chained = pair
    with P4DReader(chained) as seq:
        want = {(k, v, kind): seq.tile(k, v, kind) for k in range(9) for v in range(3) for kind in KINDS}
        assert seq.decodes == 9 * 3 * 4  # played forward: one chunk per tile
    order = list(want)
    np.random.default_rng(1).shuffle(order)
    with P4DReader(chained) as r:
        for key in order:
            before = r.decodes
            np.testing.assert_array_equal(r.tile(*key), want[key])
            assert r.decodes - before <= 4  # the bound: tiles.chain chunks
        with P4DReader(chained) as cold:
            cold.tile(7, 2, "color")  # keyframe 7 of a chain of 4 starting at 4: chunks 4, 5, 6, 7
            assert cold.decodes == 4
    # what a caller does to a returned tile does not reach the reader's memo
    with P4DReader(chained) as r:
        t = r.tile(5, 0, "alpha")
        t[:] = 0
        np.testing.assert_array_equal(r.tile(5, 0, "alpha"), want[(5, 0, "alpha")])
        np.testing.assert_array_equal(r.tile(6, 0, "alpha"), want[(6, 0, "alpha")])


def test_every_version_opens_side_by_side(tmp_path):
    files = {(1, 0): write_sample(tmp_path / "v0.p4d", n_keyframes=5),
             (1, 1): write_sample(tmp_path / "v1.p4d", n_keyframes=5, depth_bits=8),
             (1, 2): write_sample(tmp_path / "v2.p4d", n_keyframes=5, kinds=KINDS, depth_bits=8),
             (1, 3): write_sample(tmp_path / "v3.p4d", n_keyframes=5, kinds=KINDS, depth_bits=8, chain=2)}
    alphas = []
    for version, path in files.items():
        with P4DReader(path) as r:
            assert r.version == version and r.verify() == []
            alphas.append(np.stack([r.tile(k, 1, "alpha") for k in range(5)]))
    for a in alphas[1:]:
        np.testing.assert_array_equal(a, alphas[0])


def test_repack_converts_to_chains_and_back(tmp_path):
    lossless = sample(tmp_path / "png.p4d", 1, codecs={**CODECS, "color": "png"})
    c = str(tmp_path / "c.p4d")
    assert p4d(["repack", str(lossless), "-o", c, "--chain", "4", "--codec", "webp", "--quality", "80"]) == 0
    assert p4d(["repack", c, "-o", str(tmp_path / "back.p4d"), "--chain", "1"]) == 0
    assert p4d(["repack", c, "-o", str(tmp_path / "copy.p4d")]) == 0
    with P4DReader(lossless) as src, P4DReader(tmp_path / "c.p4d") as c, \
            P4DReader(tmp_path / "back.p4d") as back, P4DReader(tmp_path / "copy.p4d") as copy:
        assert (c.version, c.chain, back.version, back.chain) == ((1, 3), 4, (1, 2), 1)
        assert not back.index["flags"].any() and (c.index["flags"] != 0).sum() == 6 * 3 * 4
        np.testing.assert_array_equal(copy.index["flags"], c.index["flags"])  # copied as is
        for k in range(9):
            for v in range(3):
                for kind in ("alpha", "depth", "normal"):
                    np.testing.assert_array_equal(c.tile(k, v, kind), src.tile(k, v, kind))
                    np.testing.assert_array_equal(back.tile(k, v, kind), src.tile(k, v, kind))
                assert copy.tile_encoded(k, v, "color") == c.tile_encoded(k, v, "color")
                assert tile_psnr(c.tile(k, v, "color"), src.tile(k, v, "color"), src.tile(k, v, "alpha") > 0) > 25


def test_resume_keeps_the_chain(tmp_path):
    meta = sample_meta(6, size=(16, 16), kinds=("color", "alpha"), codecs={"color": "webp", "alpha": "png"},
                       quality=70, chain=3)

    def add(w, keys):
        for k, v in keys:
            rgb, alpha, _ = portrait_tile(16, 16, *sample_view(v), t=k, seed=k)
            w.add_tile(k, v, "color", rgb, "webp", 70)
            w.add_tile(k, v, "alpha", alpha, "png")

    keys = [(k, v) for k in range(6) for v in range(3)]
    with P4DWriter(tmp_path / "whole.p4d", chain=3) as w:
        add(w, keys)
        w.finish(meta)
    w = P4DWriter(tmp_path / "r.p4d", chain=3)
    add(w, keys[:8])
    w.close()  # a crash: the partial and its journal stay
    with pytest.raises(P4DFormatError, match="chains of 3, this writer 1"):
        P4DWriter(tmp_path / "r.p4d", resume=True)
    with P4DWriter(tmp_path / "r.p4d", resume=True, chain=3) as w:
        add(w, keys[8:])  # predicted from tiles the first run stored, read back from the partial
        w.finish(meta)
    assert (tmp_path / "r.p4d").read_bytes() == (tmp_path / "whole.p4d").read_bytes()


def test_finish_wants_the_writers_chain_in_the_metadata(tmp_path):
    meta = sample_meta(2, size=(8, 8), kinds=("color",), codecs={"color": "png"})
    w = P4DWriter(tmp_path / "x.p4d", chain=2)
    for v in range(3):
        for k in range(2):
            w.add_tile(k, v, "color", np.zeros((8, 8, 3), np.uint8), "png")
    with pytest.raises(ValueError, match="meta.tiles.chain is None but the writer was opened with chain=2"):
        w.finish(meta)
    w.discard()
    with pytest.raises(ValueError, match="chain must be 1"):
        P4DWriter(tmp_path / "y.p4d", chain=65)


# ------------------------------------------------------------------------------ hostile chains

@pytest.fixture(scope="module")
def chained_bytes(tmp_path_factory):
    return sample(tmp_path_factory.mktemp("hc") / "h.p4d", 2, n_keyframes=4).read_bytes()


def test_a_predicted_tile_at_a_chain_start_is_refused(tmp_path, chained_bytes):
    idx = index_of(chained_bytes)
    idx["flags"][(2 * 3 + 1) * 4 + 2] = FLAG_PREDICTED  # keyframe 2, view 1, depth: 2 % chain 2 == 0
    msg = rejected(tmp_path, with_index(chained_bytes, idx))
    assert "index record 30 (tile 2, 1, depth) is predicted, but keyframe 2 starts a chain " \
           "(meta.tiles.chain = 2): its tiles must be intra" in msg
    idx = index_of(chained_bytes)
    idx["flags"][0] = FLAG_PREDICTED  # keyframe 0 has nothing to be predicted from
    assert "keyframe 0 starts a chain" in rejected(tmp_path, with_index(chained_bytes, idx))


def test_unknown_flags_and_chains_in_older_files_are_refused(tmp_path, chained_bytes):
    idx = index_of(chained_bytes)
    idx["flags"][5] = 2
    assert "index record 5 has non-zero reserved bytes (2: flag bits other than bit 0" in \
        rejected(tmp_path, with_index(chained_bytes, idx))
    older = bytearray(chained_bytes)
    header_set(older, "minor", 2)
    assert "flags are format 1.3, the header says 1.2" in rejected(tmp_path, forge(older))


def test_chain_metadata_is_checked(tmp_path, chained_bytes):
    meta = unpack_meta(chained_bytes[header_get(chained_bytes, "meta_offset"):])
    for value, what in ((1, "meta.tiles.chain must be in 2..64, got 1"), (65, "must be in 2..64, got 65"),
                        ("2", "meta.tiles.chain must be an integer")):
        bad = {**meta, "tiles": {**meta["tiles"], "chain": value}}
        assert what in rejected(tmp_path, with_meta(chained_bytes, pack_meta(bad)))
    no_chain = {**meta, "tiles": {k: v for k, v in meta["tiles"].items() if k != "chain"}}
    assert "starts a chain (no meta.tiles.chain)" in rejected(tmp_path, with_meta(chained_bytes, pack_meta(no_chain)))


def test_a_lossy_difference_that_clips_stays_intra(tmp_path):
    # keyframe 1 is keyframe 0 brightened by 150: its difference clips at +127 everywhere (a flat,
    # cheap image), so predicted it would lose far more than 3 dB: the writer codes it whole
    rng = np.random.default_rng(4)
    texture = rng.integers(0, 100, (32, 32, 3)).astype(np.uint8)
    texture = np.repeat(np.repeat(texture[::4, ::4], 4, 0), 4, 1)
    tiles = [texture, texture + 150, texture + 152]
    meta = sample_meta(3, size=(32, 32), kinds=("color",), codecs={"color": "webp"}, quality=90, chain=3)
    with P4DWriter(tmp_path / "b.p4d", chain=3) as w:
        for k, t in enumerate(tiles):
            for v in range(3):
                w.add_tile(k, v, "color", t, "webp", 90)
        w.finish(meta)
    with P4DReader(tmp_path / "b.p4d") as r:
        assert not r.predicted(1, 0, "color") and r.predicted(2, 0, "color")  # 2: a small step, predicted
        for k, t in enumerate(tiles):
            assert tile_psnr(r.tile(k, 0, "color"), t, np.ones((32, 32), bool)) > 25  # clipped: ~21 dB
