"""Depth tiles stored at 1/depth_scale resolution: sampling rule, header/metadata agreement, writer
shape checks, resume, repack and the p4d tool."""

import math
import struct

import cv2
import numpy as np
import pytest

from formats import P4DFormatError, P4DReader, P4DWriter
from formats.cli import main
from formats.codecs import quantize_depth
from formats.p4d import downscale_depth, upsample_depth_nearest
from testkit.fuzz import forge, header_set, open_and_decode, with_meta
from testkit.sample import portrait_tile, sample_meta, write_sample

NEAR, FAR = 0.3, 1.0  # sample_meta's defaults


def rule_sample(full: np.ndarray, s: int) -> np.ndarray:
    """The spec's sampling rule written out pixel by pixel (independent of formats.p4d)."""
    h, w = full.shape
    hs, ws = math.ceil(h / s), math.ceil(w / s)
    out = np.empty((hs, ws), full.dtype)
    for i in range(hs):
        for j in range(ws):
            out[i, j] = full[min(i * s + s // 2, h - 1), min(j * s + s // 2, w - 1)]
    return out


def full_depth(size, yaw, t, seed):
    return quantize_depth(portrait_tile(*size, yaw, 0.0, t=t, seed=seed)[2], NEAR, FAR)


@pytest.mark.parametrize("s", [1, 2, 4, 8])
@pytest.mark.parametrize("size", [(130, 97), (16, 16), (9, 3)])
def test_round_trip_at_every_depth_scale(tmp_path, s, size):
    yaws = (-20.0, 0.0, 20.0)
    path = write_sample(tmp_path / "d.p4d", n_keyframes=2, yaws=yaws, size=size, depth_scale=s,
                        codecs={"color": "png", "alpha": "png", "depth": "png"})
    data = path.read_bytes()
    assert struct.unpack_from("<I", data, 84)[0] == int(math.log2(s))
    with P4DReader(path) as r:
        assert r.depth_scale == s and r.tile_shape == size
        assert r.depth_shape == (math.ceil(size[0] / s), math.ceil(size[1] / s))
        assert r.meta["tiles"].get("depth_scale", 1) == s
        for k in range(2):
            for v, yaw in enumerate(yaws):
                d = r.tile(k, v, "depth")
                assert d.dtype == np.uint16
                np.testing.assert_array_equal(d, rule_sample(full_depth(size, yaw, k, k * 1000 + v), s))
                assert r.tile(k, v, "color").shape == size + (3,)
                assert r.tile(k, v, "alpha").shape == size
        assert r.verify() == []


def test_sampling_helpers_match_the_rule_and_the_bakes_slice():
    rng = np.random.default_rng(5)
    for h, w in [(256, 256), (130, 97), (1, 1), (7, 16)]:
        a = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        for s in (1, 2, 4, 8):
            small = downscale_depth(a, s)
            np.testing.assert_array_equal(small, rule_sample(a, s))
            if h % s == 0 and w % s == 0:  # the bake's depth[s//2::s, s//2::s]
                np.testing.assert_array_equal(small, a[s // 2::s, s // 2::s])
            up = upsample_depth_nearest(small, s, (h, w))
            assert up.shape == (h, w)
            for y in range(0, h, max(1, h // 5)):
                for x in range(0, w, max(1, w // 5)):
                    assert up[y, x] == small[y // s, x // s]
    with pytest.raises(ValueError, match="depth_scale"):
        downscale_depth(np.zeros((4, 4), np.uint16), 3)


def test_full_resolution_files_keep_their_bytes(tmp_path):
    # depth_scale=1 written explicitly or by default, meta key absent: the same bytes, header field 0.
    a = write_sample(tmp_path / "a.p4d", n_keyframes=2, size=(8, 8)).read_bytes()
    b = write_sample(tmp_path / "b.p4d", n_keyframes=2, size=(8, 8), depth_scale=1).read_bytes()
    assert a == b and a[84:88] == b"\0\0\0\0"
    # An explicit tiles.depth_scale = 1 is legal too (only the metadata differs).
    meta = sample_meta(1, yaws=(0.0,), size=(4, 4), kinds=("color", "depth"), codecs={"color": "png", "depth": "png"})
    meta["tiles"]["depth_scale"] = 1
    with P4DWriter(tmp_path / "c.p4d") as w:
        w.add_tile(0, 0, "color", np.zeros((4, 4, 3), np.uint8), "png")
        w.add_tile(0, 0, "depth", np.ones((4, 4), np.uint16), "png")
        p = w.finish(meta)
    with P4DReader(p) as r:
        assert r.depth_scale == 1 and r.depth_shape == (4, 4)


def test_header_and_metadata_must_agree(tmp_path):
    good = write_sample(tmp_path / "g.p4d", n_keyframes=2, yaws=(0.0,), size=(12, 10), depth_scale=2).read_bytes()
    open_and_decode(tmp_path, good)
    with P4DReader(tmp_path / "g.p4d") as r:
        meta = r.meta
    for ds, what in ((None, "depth_scale is 1 but the header says 2"), (4, "depth_scale is 4 but the header says 2"),
                     (3, "must be one of"), ("2", "must be an integer")):
        m = {**meta, "tiles": dict(meta["tiles"])}
        if ds is None:
            del m["tiles"]["depth_scale"]
        else:
            m["tiles"]["depth_scale"] = ds
        with pytest.raises(P4DFormatError, match=what):
            open_and_decode(tmp_path, with_meta(good, m))
    # header says 4 (log2 2) while the index holds 2x-scaled depth: caught before any decode
    out = bytearray(good)
    header_set(out, "depth_scale_log2", 2)
    with pytest.raises(P4DFormatError, match="raw length"):
        open_and_decode(tmp_path, forge(out))
    # a depth scale in a file without depth tiles
    nodepth = write_sample(tmp_path / "n.p4d", n_keyframes=2, yaws=(0.0,), size=(8, 8), kinds=("color",),
                           codecs={"color": "png"}).read_bytes()
    out = bytearray(nodepth)
    header_set(out, "depth_scale_log2", 1)
    with pytest.raises(P4DFormatError, match=r"header depth_scale_log2 \(offset 84\) = 1 is invalid"):
        open_and_decode(tmp_path, forge(out))
    with P4DReader(tmp_path / "n.p4d") as r:
        m = {**r.meta, "tiles": {**r.meta["tiles"], "depth_scale": 2}}
    with pytest.raises(P4DFormatError, match="no depth tiles"):
        open_and_decode(tmp_path, with_meta(nodepth, m))


def _meta(s, size=(130, 97)):
    return sample_meta(1, yaws=(0.0,), size=size, kinds=("color", "depth"), codecs={"color": "png", "depth": "png"},
                       n_groups=1, depth_scale=s)


def test_writer_checks_the_depth_shape(tmp_path):
    rgb = np.zeros((130, 97, 3), np.uint8)
    with pytest.raises(ValueError, match="depth_scale"):
        P4DWriter(tmp_path / "bad.p4d", depth_scale=3)
    with P4DWriter(tmp_path / "a.p4d", depth_scale=4) as w:
        w.add_tile(0, 0, "color", rgb, "png")
        assert w.depth_shape == (33, 25)
        with pytest.raises(ValueError, match="store depth as 25x33"):
            w.add_tile(0, 0, "depth", np.zeros((130, 97), np.uint16), "png")  # full resolution
        with pytest.raises(ValueError, match="store depth as 25x33"):
            w.add_tile(0, 0, "depth", np.zeros((130, 97), np.uint16)[2::4, 2::4], "png")  # 32x24: plain slice
        with pytest.raises(ValueError, match="store depth as 25x33"):
            w.add_encoded(0, 0, "depth", b"x", "png", (130, 97))
        w.add_tile(0, 0, "depth", np.ones((33, 25), np.uint16), "png")
        with pytest.raises(ValueError, match="depth_scale"):
            w.finish(_meta(1))  # meta must say 4 as well
        p = w.finish(_meta(4))
    with P4DReader(p) as r:
        np.testing.assert_array_equal(r.tile(0, 0, "depth"), np.ones((33, 25), np.uint16))


def test_a_depth_tile_may_arrive_before_any_colour_tile(tmp_path):
    d = np.arange(33 * 25, dtype=np.uint16).reshape(33, 25)
    with P4DWriter(tmp_path / "a.p4d", depth_scale=4) as w:
        w.add_tile(0, 0, "depth", d, "png")
        w.add_tile(0, 0, "color", np.zeros((130, 97, 3), np.uint8), "png")
        p = w.finish(_meta(4))
    with P4DReader(p) as r:
        np.testing.assert_array_equal(r.tile(0, 0, "depth"), d)
    # depth first, then a colour tile whose scaled shape disagrees
    with P4DWriter(tmp_path / "b.p4d", depth_scale=4) as w:
        w.add_tile(0, 0, "depth", d, "png")
        with pytest.raises(ValueError, match="earlier depth tiles are 25x33"):
            w.add_tile(0, 0, "color", np.zeros((128, 97, 3), np.uint8), "png")  # would need 24x32... rows 32
        with pytest.raises(ValueError, match="earlier depth tiles are 25x33"):
            w.add_tile(1, 0, "depth", d[:-1], "png")


def test_resume_restores_the_depth_scale_and_rejects_another(tmp_path):
    size, s = (30, 21), 2
    meta = sample_meta(2, yaws=(0.0, 10.0), size=size, codecs={"color": "png", "alpha": "png", "depth": "png"},
                       depth_scale=s)
    ref = write_sample(tmp_path / "ref.p4d", n_keyframes=2, yaws=(0.0, 10.0), size=size, preview=False,
                       codecs={"color": "png", "alpha": "png", "depth": "png"}, depth_scale=s).read_bytes()
    items = []
    for k in range(2):
        for v, yaw in enumerate((0.0, 10.0)):
            rgb, a, d = portrait_tile(*size, yaw, 0.0, t=k, seed=k * 1000 + v)
            items += [(k, v, "color", rgb), (k, v, "alpha", a),
                      (k, v, "depth", quantize_depth(downscale_depth(d, s), NEAR, FAR))]
    path = tmp_path / "x.p4d"
    w = P4DWriter(path, depth_scale=s)
    for k, v, kind, arr in items[:5]:  # ends on an alpha tile, after one depth tile
        w.add_tile(k, v, kind, arr, "png")
    w.close()
    for other in (1, 4):
        with pytest.raises(P4DFormatError, match=f"depth_scale {s}, this writer uses {other}"):
            P4DWriter(path, resume=True, depth_scale=other)
    with P4DWriter(path, resume=True, depth_scale=s) as w:
        assert len(w.done) == 5 and w.depth_shape == (15, 11)
        with pytest.raises(ValueError, match="store depth as 11x15"):
            w.add_tile(0, 1, "depth", np.zeros(size, np.uint16), "png")
        for k, v, kind, arr in items:
            if (k, v, kind) not in w.done:
                w.add_tile(k, v, kind, arr, "png")
        assert w.finish(meta).read_bytes() == ref


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_repack_keeps_the_depth_scale(tmp_path, capsys):
    src = write_sample(tmp_path / "s.p4d", n_keyframes=3, yaws=(-10.0, 0.0, 10.0), size=(37, 29), depth_scale=8)
    copy, recoded = tmp_path / "copy.p4d", tmp_path / "re.p4d"
    assert _run(capsys, "repack", src, "-o", copy, "--yaws", "1-2", "--keyframes", "0,2")[0] == 0
    assert _run(capsys, "repack", src, "-o", recoded, "--depth-codec", "raw+zstd")[0] == 0
    with P4DReader(src) as r, P4DReader(copy) as c, P4DReader(recoded) as e:
        assert c.depth_scale == e.depth_scale == 8 and c.depth_shape == e.depth_shape == (5, 4)
        assert c.meta["tiles"]["depth_scale"] == e.meta["tiles"]["depth_scale"] == 8
        assert e.codecs["depth"] == "raw+zstd"
        for nk, k in enumerate((0, 2)):
            for nv, v in enumerate((1, 2)):
                np.testing.assert_array_equal(c.tile(nk, nv, "depth"), r.tile(k, v, "depth"))
        for k in range(3):
            for v in range(3):
                np.testing.assert_array_equal(e.tile(k, v, "depth"), r.tile(k, v, "depth"))
    assert _run(capsys, "validate", copy)[0] == 0 and _run(capsys, "validate", recoded)[0] == 0


def test_tool_reports_and_extracts_scaled_depth(tmp_path, capsys):
    size = (40, 27)
    src = write_sample(tmp_path / "s.p4d", n_keyframes=2, yaws=(0.0, 10.0), size=size, depth_scale=4)
    rc, out, _ = _run(capsys, "info", src, "--json")
    import json
    info = json.loads(out)
    assert rc == 0 and info["depth_scale"] == 4
    d = info["kinds"]["depth"]
    assert d["stored_shape"] == [10, 7]
    n = 2 * 2
    assert d["bits_per_pixel"] == pytest.approx(8 * d["bytes"] / (n * 40 * 27))
    assert d["bits_per_stored_pixel"] == pytest.approx(8 * d["bytes"] / (n * 10 * 7))
    assert info["kinds"]["color"]["bits_per_stored_pixel"] == pytest.approx(info["kinds"]["color"]["bits_per_pixel"])
    rc, out, _ = _run(capsys, "info", src)
    assert rc == 0 and "depth_scale 4" in out and "7x10" in out

    stored, up = tmp_path / "d.png", tmp_path / "u.png"
    assert _run(capsys, "extract", src, "-k", 1, "-v", 1, "--depth", "-o", stored)[0] == 0
    assert _run(capsys, "extract", src, "-k", 1, "-v", 1, "--depth", "--upsample", "-o", up)[0] == 0
    a, b = cv2.imread(str(stored), cv2.IMREAD_UNCHANGED), cv2.imread(str(up), cv2.IMREAD_UNCHANGED)
    want = rule_sample(full_depth(size, 10.0, 1, 1001), 4)
    assert a.dtype == np.uint16 and b.dtype == np.uint16
    np.testing.assert_array_equal(a, want)
    assert b.shape == size
    np.testing.assert_array_equal(b, np.repeat(np.repeat(want, 4, 0), 4, 1)[:size[0], :size[1]])
    rc, _, err = _run(capsys, "extract", src, "-k", 0, "-v", 0, "--upsample", "-o", tmp_path / "x.png")
    assert rc == 2 and "--upsample applies to --depth" in err and len(err.strip().splitlines()) == 1
