"""Hostile .p4d files: every violation is one P4DFormatError naming what and where, found from the
declared sizes without reading, allocating or decompressing what they declare."""

import os
import re
import struct
import zlib

import cv2
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


@pytest.fixture
def pread_sizes(monkeypatch):
    """Every length the code under test asks os.pread for, in order."""
    sizes = []
    real = os.pread

    def spy(fd, n, offset):
        sizes.append(n)
        return real(fd, n, offset)
    monkeypatch.setattr(os, "pread", spy)
    return sizes


# The good file: 2 keyframes x 2 views x 3 kinds (12 index records of 24 bytes), 8x8 tiles and an
# 8x8 preview. Each message names the header field, its offset, the value and the bound it breaks.
@pytest.mark.parametrize("field,value,what", [
    ("n_keyframes", (1 << 32) - 1, "header n_keyframes (offset 24) = 4294967295 is outside 1..65536"),
    # a legal count, but the index does not hold that many records
    ("n_views", 1 << 16, "header index_length (offset 56) = 288, expected 393216 records x 24"),
    ("n_keyframes", 0, "header n_keyframes (offset 24) = 0 is outside 1..65536"),
    ("tile_h", 1 << 31, "header tile_h (offset 32) = 2147483648 is outside 1..8192"),
    ("tile_w", 0, "header tile_w (offset 36) = 0 is outside 1..8192"),
    ("index_length", (1 << 64) - 1, "header index_length (offset 56) = 18446744073709551615, expected 12 records"),
    ("index_offset", (1 << 64) - 1, "header index_offset (offset 48) = 18446744073709551615 is out of place"),
    ("meta_length", (1 << 32) - 1, "header meta_length (offset 72) = 4294967295 is outside 1..16777216"),
    ("meta_offset", 1 << 63, "header meta_offset (offset 64) = 9223372036854775808 is out of place"),
    ("file_size", 1 << 62, "header file_size (offset 40) = 4611686018427387904, the file has"),
    ("alignment", 3, "header alignment (offset 16) = 3 is not a power of two in [8, 65536]"),
    ("alignment", 1 << 31, "header alignment (offset 16) = 2147483648 is not a power of two"),
    ("header_size", 1 << 20, "header header_size (offset 12) = 1048576, expected 128"),
    ("kind_mask", 0b1000, "header kind_mask (offset 20) = 0x8 is invalid"),
    ("kind_mask", 0b110, "header kind_mask (offset 20) = 0x6 is invalid"),
    ("preview_length", (1 << 32) - 1, "the preview length 4294967295 is outside 1..268435456"),
    ("preview_h", 60000, "header preview_h (offset 112) = 60000 is outside 1..2048"),
    ("preview_raw", 1, "header preview_raw (offset 100) = 1, a 8x8 RGBA preview is 256"),
    ("preview_kind", 7, "header preview_kind (offset 109) = 7 with preview_codec 2, expected kind 3"),
    ("preview_reserved", 5, "header preview_reserved (offset 110) = 5, reserved fields must be zero"),
    ("reserved", 1, "header reserved (offset 120) = 1, reserved fields must be zero"),
    ("depth_scale_log2", 4, "header depth_scale_log2 (offset 84) = 4 is invalid"),
    ("depth_scale_log2", 1 << 31, "header depth_scale_log2 (offset 84) = 2147483648 is invalid"),
])
def test_huge_or_bad_declared_header_values(tmp_path, good, pread_sizes, field, value, what):
    out = bytearray(good)
    header_set(out, field, value)
    msg = rejected(tmp_path, forge(out))
    assert what in msg, msg
    # Refused from the declarations alone: nothing the header declares was read (or allocated to
    # read it), only what the file holds, each section once at most.
    assert sum(pread_sizes) <= len(good), pread_sizes


@pytest.mark.parametrize("case,what", [
    ("overlap", r"index record 1 at offset \d+ overlaps index record 0, which ends at"),
    ("duplicate", r"index record 1 at offset \d+ overlaps index record 0, which ends at"),
    ("gap", r"index record 11 at offset \d+ leaves a gap after index record 10, which ends at"),
    ("misaligned", r"index record 2 at offset \d+ is not aligned to 64"),
    ("past_end", r"index record 3 offset 18446744073709551552 is past the end of the file \(\d+ bytes\)"),
    ("zero_length", r"index record 4 length 0 is outside 1\.\.268435456"),
    ("huge_length", r"index record 4 length 4294967295 is outside 1\.\.268435456"),
    ("wrong_kind", r"index record 0 has kind 2, canonical order expects 0 \(color\)"),
    ("bad_codec", r"index record 0 has unknown codec id 9 \(1\.\.4\)"),
    ("codec_vs_meta", r"index record 0 \(tile 0, 0, color\) has codec 4, meta\.tiles\.codecs\.color is jpeg"),
    ("raw_length", r"index record 1 raw length 1073741824 != tile size 64"),
    ("reserved", r"index record 5 has non-zero reserved bytes"),
])
def test_bad_index_records(tmp_path, good, case, what):
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
    elif case == "reserved":
        idx["flags"][5] = 1  # the predicted flag (v1.3) in a 1.0 file
    msg = rejected(tmp_path, with_index(good, idx))
    assert msg.startswith("h.p4d: ")
    assert re.search(what, msg), msg


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


@pytest.fixture
def decompressions(monkeypatch):
    """(input bytes, max_output_size) of every zstd decompression the code under test starts."""
    calls = []
    real = zstandard.ZstdDecompressor

    class Spy:
        def __init__(self, *args, **kwargs):
            self._real = real(*args, **kwargs)

        def decompress(self, data, *args, **kwargs):
            calls.append((len(data), kwargs.get("max_output_size")))
            return self._real.decompress(data, *args, **kwargs)
    monkeypatch.setattr(zstandard, "ZstdDecompressor", Spy)
    return calls


def test_zstd_bombs_are_refused_before_decompressing(tmp_path, decompressions):
    raw = 8 * 8 * 3
    # 1) a frame that does not declare its size and inflates to 64 MiB
    bomb = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(bytes(64 << 20))
    p = _file_with_chunk(tmp_path, "b1.p4d", bomb)
    # 2) a frame declaring 1 TiB: hand-made header (single segment, 8-byte size) + one raw block
    frame = b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", 1 << 40) + (((raw << 3) | 1).to_bytes(3, "little")) \
        + bytes(raw)
    p2 = _file_with_chunk(tmp_path, "b2.p4d", frame)
    # 3) the right frame followed by a bomb frame
    good_frame = encode(np.zeros((8, 8, 3), np.uint8), "raw+zstd")
    p3 = _file_with_chunk(tmp_path, "b3.p4d", good_frame + bomb)
    for path, what in ((p, f"declares -1 bytes, the tile needs {raw}"),
                       (p2, f"declares {1 << 40} bytes, the tile needs {raw}"),
                       (p3, "zstd chunk has bytes after its frame")):
        with P4DReader(path) as r:
            before = r.bytes_read
            with pytest.raises(P4DFormatError, match=what):
                r.tile(0, 0, "color")
            assert r.bytes_read - before == int(r.index[0, 0, 0]["length"])  # the chunk, once
    assert decompressions == []  # refused from the frame header: nothing was inflated
    # The spy does see a sound frame, and its output is capped at the tile size.
    with P4DReader(_file_with_chunk(tmp_path, "ok.p4d", good_frame)) as r:
        r.tile(0, 0, "color")
    assert decompressions == [(len(good_frame), raw)]


def test_image_header_declaring_a_huge_image_is_refused_before_decoding(tmp_path, monkeypatch):
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flag: decoded.append(len(buf)) or real(buf, flag))

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
    assert decoded == []  # every one refused from its image header
    right = encode(np.zeros((8, 8, 3), np.uint8), "png")
    with P4DReader(_file_with_chunk(tmp_path, "ok.p4d", right, codec="png")) as r:
        r.tile(0, 0, "color")
    assert decoded == [len(right)]


# Each is refused by the limit named, before msgpack allocates what the bytes declare.
@pytest.mark.parametrize("meta_bytes,what", [
    (b"\xdd\xff\xff\xff\xff", "4294967295 exceeds max_array_len(1048576)"),  # array32 of 4 billion items
    (b"\xdf\xff\xff\xff\xff", "4294967295 exceeds max_map_len(1024)"),       # map32 of 4 billion pairs
    (b"\xdb\xff\xff\xff\xff" + b"a" * 10, "incomplete input"),               # str32 of 4 GiB, 10 bytes there
    (b"\xdb" + struct.pack(">I", (1 << 20) + 1) + b"a" * ((1 << 20) + 1),
     "1048577 exceeds max_str_len(1048576)"),                                 # a string just over the cap
    (b"\x91" * 200000 + b"\x00", "StackError"),                                # nested 200k deep
    (b"\xc6\x00\x00\x00\x04abcd", "4 exceeds max_bin_len(0)"),                 # bin is not allowed
    (b"\xc7\x01\x05a", "exceeds max_ext_len(0)"),                               # ext is not allowed
    (b"\x81\xa1a\x00\x00", "ExtraData"),                                       # extra data after the map
    (b"\x93\x01\x02\x03", "metadata: top level is not a map"),
    (b"\x81\x01\x02", "int is not allowed for map key"),                         # non-str key
], ids=["array32", "map32", "str32", "str_over_cap", "nested", "bin", "ext", "extra", "not_a_map", "int_key"])
def test_msgpack_bombs_and_junk(tmp_path, good, meta_bytes, what):
    msg = rejected(tmp_path, with_meta(good, meta_bytes))
    assert msg.startswith("h.p4d: metadata") and what in msg, msg


def test_big_but_legal_msgpack_array_stays_cheap(tmp_path, good):
    # 1M-entry list of nils inside an otherwise broken meta: parsed within limits, then refused.
    big = b"\x81\xa9generator\xdd" + struct.pack(">I", 1 << 20) + b"\xc0" * (1 << 20)
    assert "generator must be a str" in rejected(tmp_path, with_meta(good, big))
    over = b"\xdd" + struct.pack(">I", (1 << 20) + 1) + b"\xc0" * ((1 << 20) + 1)
    assert "1048577 exceeds max_array_len(1048576)" in rejected(tmp_path, with_meta(good, over))


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
