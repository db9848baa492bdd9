"""8-bit depth (format 1.1): the code rule, round trips in every depth codec, the version mark,
what a reader rejects, resume, repack from 1.0 and the p4d tool."""

import json
import math

import numpy as np
import pytest

from formats import P4DFormatError, P4DReader, P4DWriter
from formats.cli import main
from formats.codecs import dequantize_depth
from formats.p4d import DEPTH_STEP8, depth_code, depth_decode
from testkit.fuzz import forge, header_get, header_set, open_and_decode, with_meta
from testkit.sample import write_sample

NEAR, FAR = 0.3, 1.0  # sample_meta's defaults
CODECS8 = {"color": "png", "alpha": "png", "depth": "webp"}


def test_codes_follow_the_spec_rule():
    q = np.arange(65536, dtype=np.uint16)
    n = depth_code(q, 8)
    assert n.dtype == np.uint8 and n[0] == 0 and n[1:].min() == 1 and n.max() == 255
    # the rule written out: nearest step, half up
    want = np.array([0] + [math.floor((int(x) - 1 + 129) / 258) + 1 for x in q[1:]], np.int64)
    np.testing.assert_array_equal(n, want)
    back = depth_decode(n, 8)
    assert back.dtype == np.uint16 and back[0] == 0
    np.testing.assert_array_equal(back[n > 0], 1 + (n[n > 0].astype(np.int64) - 1) * DEPTH_STEP8)
    assert np.abs(back[1:].astype(np.int64) - q[1:]).max() <= DEPTH_STEP8 // 2 + 2  # top end: 65535 -> 65533
    np.testing.assert_array_equal(depth_code(back, 8), n)  # codes survive a decode and re-code
    np.testing.assert_array_equal(depth_code(q, 16), q)
    np.testing.assert_array_equal(depth_decode(q, 16), q)
    with pytest.raises(ValueError, match="depth_bits"):
        depth_code(q, 12)


@pytest.mark.parametrize("codec", ["webp", "png", "raw+zstd"])
@pytest.mark.parametrize("s", [1, 4])
def test_round_trip_and_version(tmp_path, codec, s):
    size = (37, 29)
    ref = write_sample(tmp_path / "r.p4d", n_keyframes=2, size=size, depth_scale=s,
                       codecs={"color": "png", "alpha": "png", "depth": "png"})
    p = write_sample(tmp_path / "e.p4d", n_keyframes=2, size=size, depth_scale=s, depth_bits=8,
                     codecs={"color": "png", "alpha": "png", "depth": codec})
    data = p.read_bytes()
    assert (header_get(data, "major"), header_get(data, "minor")) == (1, 1)
    assert header_get(ref.read_bytes(), "minor") == 0  # 16-bit files stay 1.0
    with P4DReader(ref) as a, P4DReader(p) as b:
        assert b.version == (1, 1) and a.version == (1, 0)
        assert b.depth_bits == 8 and a.depth_bits == 16 and b.meta["tiles"]["depth_bits"] == 8
        hs, ws = b.depth_shape
        assert (b.index["raw_length"][:, :, 2] == hs * ws).all()
        step_m = (FAR - NEAR) / 254
        for k in range(2):
            for v in range(3):
                qa, qb = a.tile(k, v, "depth"), b.tile(k, v, "depth")
                assert qb.dtype == np.uint16 and qb.shape == qa.shape
                np.testing.assert_array_equal(qb, depth_decode(depth_code(qa, 8), 8))
                np.testing.assert_array_equal(b.tile_stored(k, v, "depth"), depth_code(qa, 8))
                da, db = dequantize_depth(qa, NEAR, FAR), dequantize_depth(qb, NEAR, FAR)
                assert np.array_equal(da > 0, db > 0)
                assert np.abs(da - db).max() <= step_m / 2 + 1e-6
                for kind in ("color", "alpha"):
                    np.testing.assert_array_equal(a.tile(k, v, kind), b.tile(k, v, kind))
        assert b.verify() == []


def test_8_bit_depth_takes_fewer_bytes(tmp_path):
    kw = dict(n_keyframes=2, size=(128, 128), depth_scale=1)
    a = write_sample(tmp_path / "a.p4d", codecs={"color": "png", "alpha": "png", "depth": "png"}, **kw)
    b = write_sample(tmp_path / "b.p4d", depth_bits=8, codecs=CODECS8, **kw)
    with P4DReader(a) as ra, P4DReader(b) as rb:
        assert rb.index["length"][:, :, 2].sum() * 2 < ra.index["length"][:, :, 2].sum()


def test_what_a_reader_rejects(tmp_path):
    good = write_sample(tmp_path / "g.p4d", n_keyframes=2, yaws=(0.0,), size=(12, 10), depth_scale=2,
                        depth_bits=8, codecs=CODECS8).read_bytes()
    open_and_decode(tmp_path, good)
    with P4DReader(tmp_path / "g.p4d") as r:
        meta = r.meta
    # a 1.0 header with 8-bit depth
    old = bytearray(good)
    header_set(old, "minor", 0)
    with pytest.raises(P4DFormatError, match=r"depth_bits 8 is format 1.1, the header says 1.0"):
        open_and_decode(tmp_path, forge(old))
    # the metadata says 16 bits while the index holds 8-bit depth (and webp, which 16 bits cannot be)
    for bits, codec, what in ((16, "png", "raw length"), (16, "webp", "webp, which stores 8-bit depth only"),
                              (12, "webp", "depth_bits must be one of"), ("8", "webp", "must be an integer")):
        m = {**meta, "tiles": {**meta["tiles"], "depth_bits": bits, "codecs": {**meta["tiles"]["codecs"],
                                                                              "depth": codec}}}
        with pytest.raises(P4DFormatError, match=what):
            open_and_decode(tmp_path, with_meta(good, m))
    # 8-bit depth in a file without depth tiles
    nodepth = write_sample(tmp_path / "n.p4d", n_keyframes=2, yaws=(0.0,), size=(8, 8), kinds=("color",),
                           codecs={"color": "png"}).read_bytes()
    with P4DReader(tmp_path / "n.p4d") as r:
        m = {**r.meta, "tiles": {**r.meta["tiles"], "depth_bits": 8}}
    out = bytearray(with_meta(nodepth, m))
    header_set(out, "minor", 1)
    with pytest.raises(P4DFormatError, match="has no depth tiles"):
        open_and_decode(tmp_path, forge(out))


def test_writer_checks(tmp_path):
    with pytest.raises(ValueError, match="depth_bits must be one of"):
        P4DWriter(tmp_path / "x.p4d", depth_bits=10)
    with P4DWriter(tmp_path / "y.p4d") as w:
        with pytest.raises(ValueError, match="only at 8 bits"):
            w.add_tile(0, 0, "depth", np.ones((4, 4), np.uint16), "webp")
    # meta must say the writer's bits
    with pytest.raises(ValueError, match="depth_bits"):
        p = tmp_path / "z.p4d"
        from testkit.sample import sample_meta
        meta = sample_meta(1, (0.0,), size=(4, 4), codecs={"color": "png", "alpha": "png", "depth": "webp"})
        with P4DWriter(p, depth_bits=8) as w:
            for kind in ("color", "alpha"):
                w.add_tile(0, 0, kind, np.zeros((4, 4, 3) if kind == "color" else (4, 4), np.uint8), "png")
            w.add_tile(0, 0, "depth", np.ones((4, 4), np.uint16), "webp")
            w.finish(meta)


def test_resume_keeps_the_bits(tmp_path):
    p = tmp_path / "r.p4d"
    w = P4DWriter(p, depth_bits=8)
    w.add_tile(0, 0, "color", np.zeros((4, 4, 3), np.uint8), "png")
    w.close()
    with pytest.raises(P4DFormatError, match="stores 8-bit depth, this writer 16-bit"):
        P4DWriter(p, resume=True)
    w = P4DWriter(p, resume=True, depth_bits=8)
    assert w.done == {(0, 0, "color")}
    w.close()


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_repack_converts_a_1_0_file_and_back(tmp_path, capsys):
    src = write_sample(tmp_path / "s.p4d", n_keyframes=3, size=(37, 29), depth_scale=4,
                       codecs={"color": "webp", "alpha": "webp", "depth": "png"})
    new, copy, back = tmp_path / "n.p4d", tmp_path / "c.p4d", tmp_path / "b.p4d"
    assert _run(capsys, "repack", src, "-o", new, "--depth-bits", "8", "--depth-codec", "webp")[0] == 0
    assert _run(capsys, "repack", new, "-o", copy, "--keyframes", "0,2")[0] == 0  # copies the codes as they are
    assert _run(capsys, "repack", new, "-o", back, "--depth-bits", "16", "--depth-codec", "png")[0] == 0
    with P4DReader(src) as r, P4DReader(new) as n, P4DReader(copy) as c, P4DReader(back) as b:
        assert (n.version, n.depth_bits, n.codecs["depth"]) == ((1, 1), 8, "webp")
        assert (c.version, c.depth_bits) == ((1, 1), 8) and (b.version, b.depth_bits) == ((1, 0), 16)
        assert "depth_bits" not in b.meta["tiles"]
        for k in range(3):
            for v in range(3):
                want = depth_decode(depth_code(r.tile(k, v, "depth"), 8), 8)
                np.testing.assert_array_equal(n.tile(k, v, "depth"), want)
                np.testing.assert_array_equal(b.tile(k, v, "depth"), want)
                np.testing.assert_array_equal(n.tile_encoded(k, v, "color")[1], r.tile_encoded(k, v, "color")[1])
        for nk, k in enumerate((0, 2)):
            assert c.tile_encoded(nk, 1, "depth") == n.tile_encoded(k, 1, "depth")
    rc, out, _ = _run(capsys, "info", new, "--json")
    info = json.loads(out)
    assert rc == 0 and info["version"] == "1.1" and info["depth_bits"] == 8
    assert _run(capsys, "validate", new)[0] == 0
    rc, _, err = _run(capsys, "repack", src, "-o", tmp_path / "w.p4d", "--depth-codec", "webp")
    assert rc == 2 and "only at 8 bits" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w.p4d").exists()
