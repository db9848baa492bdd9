"""Hostile .p4d files: every violation is one P4DFormatError naming what and where, fast, bounded memory."""

import os
import resource
import struct
import time
import zlib

import numpy as np
import pytest
import zstandard

from formats import P4DFormatError, P4DReader, P4DWriter
from formats.codecs import encode
from formats.p4d import INDEX_DTYPE
from testkit.fuzz import forge, header_get, header_set
from testkit.sample import sample_meta, write_sample


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    p = write_sample(tmp_path_factory.mktemp("good") / "g.p4d", n_keyframes=2, yaws=(0.0, 10.0), size=(8, 8))
    return p.read_bytes()


def open_bytes(tmp_path, data, name="h.p4d"):
    p = tmp_path / name
    p.write_bytes(bytes(data))
    return P4DReader(p)


def rejected(tmp_path, data, match=None):
    with pytest.raises(P4DFormatError, match=match) as e:
        with open_bytes(tmp_path, data) as r:
            for k in range(r.n_keyframes):
                for v in range(r.n_views):
                    for kind in r.kinds:
                        r.tile(k, v, kind)
    return str(e.value)


def index_of(data):
    off, n = header_get(data, "index_offset"), header_get(data, "index_length")
    return np.frombuffer(bytes(data[off:off + n]), INDEX_DTYPE).copy()


def with_index(data, index):
    out = bytearray(data)
    off = header_get(out, "index_offset")
    out[off:off + index.nbytes] = index.tobytes()
    return forge(out)


def with_meta(data, meta_bytes):
    out = bytearray(data[:header_get(data, "meta_offset")]) + meta_bytes
    header_set(out, "meta_length", len(meta_bytes))
    header_set(out, "file_size", len(out))
    return forge(out)


def boundaries(data):
    idx = index_of(data)
    cuts = {0, 7, 8, 127, 128}
    po, pl = header_get(data, "preview_offset"), header_get(data, "preview_length")
    cuts |= {po, po + pl}
    for r in idx:
        cuts |= {int(r["offset"]), int(r["offset"]) + int(r["length"]) - 1, int(r["offset"]) + int(r["length"])}
    io, il = header_get(data, "index_offset"), header_get(data, "index_length")
    cuts |= {io, io + il // 2, io + il, len(data) - 1}
    return sorted(c for c in cuts if c < len(data))


def test_the_fixture_is_sound(tmp_path, good):
    with open_bytes(tmp_path, good) as r:
        assert r.verify() == []


def test_truncation_at_every_section_boundary(tmp_path, good):
    for cut in boundaries(good):
        rejected(tmp_path, good[:cut])
        if cut >= 128:  # also when the attacker patches the declared size and every crc
            out = bytearray(good[:cut])
            header_set(out, "file_size", cut)
            rejected(tmp_path, forge(out))


def test_trailing_bytes_are_rejected(tmp_path, good):
    assert "trailing" in rejected(tmp_path, good + b"\0")
    out = bytearray(good + b"\0" * 64)
    header_set(out, "file_size", len(out))
    rejected(tmp_path, forge(out))  # metadata no longer ends the file


def test_every_single_byte_change_is_caught(tmp_path, good):
    # One bit flipped at each position: opening fails or verify() reports it.
    path = tmp_path / "flip.p4d"
    path.write_bytes(good)
    fd = os.open(path, os.O_WRONLY)  # rewrite one byte in place: re-creating files is slow on some disks
    try:
        for i in range(len(good)):
            os.pwrite(fd, bytes([good[i] ^ (1 << (i % 8))]), i)
            try:
                with P4DReader(path) as r:
                    assert r.verify(decode=False) != [], f"flip at byte {i} went unnoticed"
            except P4DFormatError:
                pass
            os.pwrite(fd, good[i:i + 1], i)
    finally:
        os.close(fd)


def test_a_changed_tile_byte_names_the_tile(tmp_path, good):
    rec = index_of(good)[5]  # keyframe 0, view 1, depth
    data = bytearray(good)
    data[int(rec["offset"]) + 3] ^= 0x40
    with open_bytes(tmp_path, data) as r:
        problems = r.verify()
    assert len(problems) == 1 and "keyframe 0, view 1, depth" in problems[0] and "crc" in problems[0]


def test_random_bytes(tmp_path, good):
    rng = np.random.default_rng(7)
    for n in (0, 1, 8, 127, 128, 129, 1000, 5000):
        for _ in range(5):
            rejected(tmp_path, rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            rejected(tmp_path, good[:8] + rng.integers(0, 256, n, dtype=np.uint8).tobytes())


def test_wrong_magic_and_version(tmp_path, good):
    assert "magic" in rejected(tmp_path, b"PK\x03\x04" + good[4:])
    out = bytearray(good)
    header_set(out, "major", 2)
    assert "version 2.0" in rejected(tmp_path, forge(out))
    out = bytearray(good)
    out[100] ^= 1  # header byte without fixing the crc
    assert "header crc" in rejected(tmp_path, out)


@pytest.mark.parametrize("field,value,what", [
    ("n_keyframes", (1 << 32) - 1, "exceeds the caps"),
    ("n_views", 1 << 16, "index length"),  # legal count, but the index does not hold that many records
    ("n_keyframes", 0, "exceeds the caps"),
    ("tile_h", 1 << 31, "tile size"),
    ("tile_w", 0, "tile size"),
    ("index_length", (1 << 64) - 1, "index length"),
    ("index_offset", (1 << 64) - 1, "out of place"),
    ("meta_length", (1 << 32) - 1, "metadata length"),
    ("meta_offset", 1 << 63, "out of place"),
    ("file_size", 1 << 62, "truncated"),
    ("alignment", 3, "alignment"),
    ("alignment", 1 << 31, "alignment"),
    ("header_size", 1 << 20, "header size"),
    ("kind_mask", 0b1000, "kind mask"),
    ("kind_mask", 0b110, "kind mask"),
    ("preview_length", (1 << 32) - 1, "length"),
    ("preview_h", 60000, "preview size"),
    ("depth_scale_log2", 4, "depth_scale_log2"),
    ("depth_scale_log2", 1 << 31, "depth_scale_log2"),
])
def test_huge_or_bad_declared_header_values(tmp_path, good, field, value, what):
    out = bytearray(good)
    header_set(out, field, value)
    t = time.perf_counter()
    msg = rejected(tmp_path, forge(out))
    assert what in msg
    assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("case", ["overlap", "duplicate", "gap", "misaligned", "past_end", "zero_length",
                                  "huge_length", "wrong_kind", "bad_codec", "codec_vs_meta", "raw_length"])
def test_bad_index_records(tmp_path, good, case):
    idx = index_of(good)
    if case == "overlap":
        idx["length"][0] += 64
    elif case == "duplicate":
        idx["offset"][1] = idx["offset"][0]
    elif case == "gap":
        idx["offset"][-1] += 64
    elif case == "misaligned":
        idx["offset"][2] += 1
    elif case == "past_end":
        idx["offset"][3] = (1 << 64) - 64
    elif case == "zero_length":
        idx["length"][4] = 0
    elif case == "huge_length":
        idx["length"][4] = (1 << 32) - 1
    elif case == "wrong_kind":
        idx["kind"][0] = 2
    elif case == "bad_codec":
        idx["codec"][0] = 9
    elif case == "codec_vs_meta":
        idx["codec"][0] = 4  # webp, while meta says jpeg
    elif case == "raw_length":
        idx["raw_length"][1] = 1 << 30
    msg = rejected(tmp_path, with_index(good, idx))
    assert "h.p4d" in msg


def test_overlapping_chunks_are_named(tmp_path, good):
    idx = index_of(good)
    idx["offset"][1] = idx["offset"][0]  # two tiles sharing bytes (a polyglot)
    assert "non-overlapping" in rejected(tmp_path, with_index(good, idx))


def _file_with_chunk(tmp_path, name, data, codec="raw+zstd", shape=(8, 8)):
    """A valid-looking 1x1 file whose colour tile is ``data``, crcs all correct."""
    meta = sample_meta(1, yaws=(0.0,), size=shape, kinds=("color",), codecs={"color": codec}, n_groups=1)
    with P4DWriter(tmp_path / name) as w:
        w.add_encoded(0, 0, "color", data, codec, shape)
        return w.finish(meta)


def _max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_zstd_bombs(tmp_path):
    raw = 8 * 8 * 3
    rss0 = _max_rss_mib()
    # 1) a frame that does not declare its size and inflates to 256 MiB
    bomb = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(bytes(256 << 20))
    assert len(bomb) < 64 << 10
    p = _file_with_chunk(tmp_path, "b1.p4d", bomb)
    # 2) a frame declaring 1 TiB: hand-made header (single segment, 8-byte size) + one raw block
    frame = b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", 1 << 40) + (((raw << 3) | 1).to_bytes(3, "little")) \
        + bytes(raw)
    p2 = _file_with_chunk(tmp_path, "b2.p4d", frame)
    # 3) the right frame followed by a bomb frame
    good_frame = encode(np.zeros((8, 8, 3), np.uint8), "raw+zstd")
    p3 = _file_with_chunk(tmp_path, "b3.p4d", good_frame + bomb)
    for path, what in ((p, "declares -1"), (p2, f"declares {1 << 40}"), (p3, "after its frame")):
        with P4DReader(path) as r:
            t = time.perf_counter()
            with pytest.raises(P4DFormatError, match=what):
                r.tile(0, 0, "color")
            assert time.perf_counter() - t < 0.5
    # The 256 MiB input buffer above was allocated by the test itself; decoding must add nothing like it.
    assert _max_rss_mib() - rss0 < 600


def test_image_header_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    huge_png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    p = _file_with_chunk(tmp_path, "png.p4d", huge_png, codec="png")
    with P4DReader(p) as r, pytest.raises(P4DFormatError, match="PNG is 60000x60000"):
        r.tile(0, 0, "color")
    small = encode(np.zeros((4, 4, 3), np.uint8), "jpeg")
    p = _file_with_chunk(tmp_path, "jpg.p4d", small, codec="jpeg")
    with P4DReader(p) as r, pytest.raises(P4DFormatError, match="JPEG is 4x4"):
        r.tile(0, 0, "color")
    gray = encode(np.zeros((8, 8), np.uint8), "png")
    p = _file_with_chunk(tmp_path, "gray.p4d", gray, codec="png")
    with P4DReader(p) as r, pytest.raises(P4DFormatError, match="type 0"):
        r.tile(0, 0, "color")


@pytest.mark.parametrize("meta_bytes,what", [
    (b"\xdd\xff\xff\xff\xff", "msgpack"),            # array32 declaring 4 billion items
    (b"\xdf\xff\xff\xff\xff", "msgpack"),            # map32 declaring 4 billion pairs
    (b"\xdb\xff\xff\xff\xff" + b"a" * 10, "msgpack"),  # str32 declaring 4 GiB
    (b"\x91" * 200000 + b"\x00", "msgpack"),          # nested 200k deep
    (b"\xc6\x00\x00\x00\x04abcd", "msgpack"),         # bin is not allowed
    (b"\xc7\x01\x05a", "msgpack"),                    # ext is not allowed
    (b"\x81\xa1a\x00\x00", "msgpack"),                # extra data after the map
    (b"\x93\x01\x02\x03", "not a map"),
    (b"\x81\x01\x02", "msgpack"),                     # non-str key
])
def test_msgpack_bombs_and_junk(tmp_path, good, meta_bytes, what):
    t = time.perf_counter()
    assert what in rejected(tmp_path, with_meta(good, meta_bytes))
    assert time.perf_counter() - t < 1.0


def test_big_but_legal_msgpack_array_stays_cheap(tmp_path, good):
    # 1M-entry list of nils inside an otherwise broken meta: parsed within limits, then refused.
    big = b"\x81\xa9generator\xdd" + struct.pack(">I", 1 << 20) + b"\xc0" * (1 << 20)
    assert "generator must be a str" in rejected(tmp_path, with_meta(good, big))
    over = b"\xdd" + struct.pack(">I", (1 << 20) + 1) + b"\xc0" * ((1 << 20) + 1)
    assert "msgpack" in rejected(tmp_path, with_meta(good, over))


@pytest.mark.parametrize("path,value,what", [
    ("tiles.kinds", [["color"]], "tiles.kinds"), ("tiles.kinds", ["depth", "color", "alpha"], "tiles.kinds"),
    ("grid.yaws", [10.0, 0.0], "ascending"), ("grid.yaws", "abc", "grid.yaws must be a list"),
    ("grid.radius", float("nan"), "grid.radius must be a finite"), ("grid.intrinsics.width", 9, "intrinsics is 9x8"),
    ("keyframes.times", [0.0], "expressions has 2 rows, expected 1"),
    ("keyframes.pose_group", [0, 7], "pose_group[1] = 7"),
    ("graph.transitions", [[0, 1, 1.0, 0.0]], "dead end"), ("graph.transitions", [[1, 5, 0.5, 0.0]], "outside [0, 2)"),
    ("graph.transitions", [[1, 0, 2.0, 0.0]], "probability 2.0"), ("graph.forced", [[0], [0]], "forced[0] must have 2"),
    ("graph.groups.count", 1 << 40, "groups.count"), ("keyframes.source", 3, "keyframes.source"),
    ("grid.depth", {"near": 2.0, "far": 1.0}, "near < far"), ("generator", None, "generator must be a str"),
    ("tiles.codecs", {"color": "jpeg"}, "codecs.alpha"), ("grid", [], "grid.yaws is missing"),
])
def test_schema_violations_name_the_field(tmp_path, good, path, value, what):
    from formats.p4d import pack_meta
    with open_bytes(tmp_path, good) as r:
        meta = r.meta
    node = meta
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    msg = rejected(tmp_path, with_meta(good, pack_meta(meta)))
    assert msg.startswith("h.p4d: metadata invalid") and what in msg
