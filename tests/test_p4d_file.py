"""The .p4d writer and reader: structure at exact offsets, determinism, crash-resume, atomic rename, threads."""

import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zstandard

from formats import P4DFormatError, P4DReader, P4DWriter
from formats.codecs import dequantize_depth, quantize_depth
from formats.p4d import HEADER_FIELDS, HEADER_SIZE, pack_header, unpack_header
from testkit.sample import portrait_tile, sample_meta, write_sample

REPO = Path(__file__).resolve().parents[1]


def tiny_tiles():
    """Fixed inputs for the golden file: 2 keyframes x 1 view, 2x3 tiles, color + depth."""
    out = []
    for k in range(2):
        rgb = (np.arange(18, dtype=np.uint8).reshape(2, 3, 3) * 7 + k)
        depth = np.full((2, 3), 1000 + k, np.uint16)
        out.append((k, 0, "color", rgb))
        out.append((k, 0, "depth", depth))
    return out


def tiny_meta():
    return sample_meta(2, yaws=(0.0,), pitches=(0.0,), size=(2, 3), kinds=("color", "depth"),
                       codecs={"color": "raw+zstd", "depth": "raw+zstd"}, n_groups=1)


def write_tiny(path, meta=None):
    with P4DWriter(path) as w:
        for k, v, kind, a in tiny_tiles():
            w.add_tile(k, v, kind, a, "raw+zstd")
        return w.finish(meta or tiny_meta())


def test_golden_structure_at_exact_offsets(tmp_path):
    data = write_tiny(tmp_path / "g.p4d").read_bytes()
    # Expected chunks come from zstd directly, not from the writer.
    z = zstandard.ZstdCompressor(level=3, write_content_size=True)
    chunks = [z.compress(a.astype(a.dtype.newbyteorder("<")).tobytes()) for *_, a in tiny_tiles()]
    assert data[:8] == b"\x89P4D\r\n\x1a\n"
    major, minor, hsize, align, mask, K, V, th, tw = struct.unpack_from("<HHIIIIIII", data, 8)
    assert (major, minor, hsize, align, mask, K, V, th, tw) == (1, 0, 128, 64, 0b101, 2, 1, 2, 3)
    fsize, ioff, ilen, moff = struct.unpack_from("<QQQQ", data, 40)
    mlen, mcrc, icrc = struct.unpack_from("<III", data, 72)
    assert fsize == len(data)
    assert data[84:124] == b"\0" * 40  # reserved + no preview
    assert struct.unpack_from("<I", data, 124)[0] == zlib.crc32(data[:124])
    # chunks: aligned to 64, contiguous, zero padding between, in write order
    pos = 128
    offsets = []
    for c in chunks:
        start = (pos + 63) // 64 * 64
        assert data[pos:start] == b"\0" * (start - pos)
        assert data[start:start + len(c)] == c
        offsets.append(start)
        pos = start + len(c)
    assert ioff == (pos + 63) // 64 * 64 and ilen == 4 * 24 and moff == ioff + ilen
    assert icrc == zlib.crc32(data[ioff:ioff + ilen])
    raw_lengths = [18, 12, 18, 12]
    for i, (c, off) in enumerate(zip(chunks, offsets)):
        rec = struct.unpack_from("<QIIIBBH", data, ioff + 24 * i)
        codec_raw_zstd, kind = 1, (0 if i % 2 == 0 else 2)
        assert rec == (off, len(c), raw_lengths[i], zlib.crc32(c), codec_raw_zstd, kind, 0)
    assert moff + mlen == len(data) and mcrc == zlib.crc32(data[moff:])
    meta = msgpack.unpackb(data[moff:])
    assert meta["grid"]["yaws"] == [0.0] and meta["tiles"]["kinds"] == ["color", "depth"]
    assert list(meta) == sorted(meta)  # keys sorted at every level we can see
    assert list(meta["graph"]) == sorted(meta["graph"])


def test_the_header_table_packs_what_the_golden_file_holds(tmp_path):
    data = write_tiny(tmp_path / "g.p4d").read_bytes()
    h = unpack_header(data)
    assert (h.magic, h.tile_h, h.tile_w, h.file_size) == (b"\x89P4D\r\n\x1a\n", 2, 3, len(data))
    fields = h._asdict()
    del fields["header_crc"]
    assert pack_header(**fields) == data[:HEADER_SIZE]  # crc included
    with pytest.raises(TypeError, match=r"missing \['reserved'\]"):
        del fields["reserved"]
        pack_header(**fields)


def test_the_spec_lists_the_header_table_of_the_code():
    section = (REPO / "docs" / "p4d-format.md").read_text().split("## Header (128 bytes)")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \| (\w+) \| (.+) \|$", section, re.M)
    types = {"8s": "8 bytes", "H": "u16", "I": "u32", "Q": "u64", "B": "u8"}
    want = [(str(f.offset), types[f.code], f.name, f.meaning) for f in HEADER_FIELDS]
    assert rows == want, "the spec's header table should read:\n" + "\n".join(f"| {' | '.join(r)} |" for r in want)


def test_same_inputs_give_same_bytes_whatever_the_key_order(tmp_path):
    a = write_tiny(tmp_path / "a.p4d").read_bytes()
    b = write_tiny(tmp_path / "b.p4d").read_bytes()
    meta = tiny_meta()
    shuffled = {k: meta[k] for k in reversed(list(meta))}
    shuffled["grid"] = {k: meta["grid"][k] for k in reversed(list(meta["grid"]))}
    shuffled["grid"]["radius"] = np.float32(1.0)  # numpy scalars are stored as plain float64
    c = write_tiny(tmp_path / "c.p4d", shuffled).read_bytes()
    assert a == b == c


@pytest.mark.parametrize("codecs", [
    {"color": "jpeg", "alpha": "png", "depth": "png"},
    {"color": "webp", "alpha": "webp", "depth": "raw+zstd"},
    {"color": "png", "alpha": "raw+zstd", "depth": "png"},
    {"color": "raw+zstd", "alpha": "raw+zstd", "depth": "raw+zstd"},
])
def test_round_trip_through_the_file(tmp_path, codecs):
    yaws, pitches, size = (-10.0, 0.0, 10.0), (-5.0, 5.0), (24, 20)
    p = write_sample(tmp_path / "s.p4d", n_keyframes=2, yaws=yaws, pitches=pitches, size=size, codecs=codecs)
    meta = sample_meta(2, yaws, pitches, size, codecs=codecs)
    lossless = codecs["color"] in ("png", "raw+zstd")
    with P4DReader(p) as r:
        assert (r.n_keyframes, r.n_views, r.tile_shape) == (2, 6, size)
        assert r.meta["graph"] == meta["graph"] and r.meta["grid"]["yaws"] == list(yaws)
        assert r.verify() == []
        for k in range(2):
            for pi, pitch in enumerate(pitches):
                for yi, yaw in enumerate(yaws):
                    v = pi * len(yaws) + yi  # view index convention of the contract
                    rgb, alpha, depth = portrait_tile(*size, yaw, pitch, t=k, seed=k * 1000 + v)
                    got = r.tile(k, v, "color")
                    if lossless:
                        np.testing.assert_array_equal(got, rgb)
                    else:
                        assert np.abs(got.astype(int) - rgb).mean() < 6
                    np.testing.assert_array_equal(r.tile(k, v, "alpha"), alpha)
                    q = r.tile(k, v, "depth")
                    np.testing.assert_array_equal(q, quantize_depth(depth, 0.3, 1.0))
                    assert np.abs(dequantize_depth(q, 0.3, 1.0) - depth).max() < 1e-4
        codec, data = r.tile_encoded(0, 0, "color")
        assert codec == codecs["color"] and len(data) == int(r.index[0, 0, 0]["length"])
        prgb, palpha = r.preview()
        ergb, ealpha, _ = portrait_tile(*size, seed=99)
        np.testing.assert_array_equal(prgb, ergb)
        np.testing.assert_array_equal(palpha, ealpha)


def test_quality_only_affects_lossy_codecs(tmp_path):
    rgb = portrait_tile(16, 16, seed=1)[0]
    sizes = {}
    for codec in ("png", "jpeg"):
        for q in (None, 30, 90):
            with P4DWriter(tmp_path / f"{codec}{q}.p4d") as w:
                w.add_tile(0, 0, "color", rgb, codec, q)
                w.close()
            sizes[codec, q] = (tmp_path / f"{codec}{q}.p4d.partial").stat().st_size
    assert sizes["png", None] == sizes["png", 30] == sizes["png", 90]
    assert sizes["jpeg", 30] < sizes["jpeg", 90]


def test_preview_is_near_the_front(tmp_path):
    p = write_sample(tmp_path / "s.p4d", n_keyframes=4, size=(32, 32))
    data = p.read_bytes()
    off, length = struct.unpack_from("<QI", data, 88)
    assert off == 128 and off + length < 8192


def test_missing_preview_falls_back_to_a_tile(tmp_path):
    p = write_sample(tmp_path / "s.p4d", preview=False)
    with P4DReader(p) as r:
        rgb, alpha = r.preview()
        np.testing.assert_array_equal(alpha, r.tile(0, r.n_views // 2, "alpha"))


def test_nothing_appears_at_path_until_finish_and_errors_keep_the_partial(tmp_path):
    path = tmp_path / "x.p4d"
    with pytest.raises(RuntimeError):
        with P4DWriter(path) as w:
            w.add_tile(0, 0, "color", np.zeros((4, 4, 3), np.uint8), "png")
            assert not path.exists()
            raise RuntimeError("Ctrl-C")
    assert not path.exists()
    assert (tmp_path / "x.p4d.partial").exists() and (tmp_path / "x.p4d.partial.journal").exists()


def test_discard_leaves_nothing(tmp_path):
    path = tmp_path / "x.p4d"
    w = P4DWriter(path)
    w.add_tile(0, 0, "color", np.zeros((4, 4, 3), np.uint8), "png")
    w.discard()
    assert sorted(tmp_path.iterdir()) == []


def test_finish_refuses_incomplete_or_inconsistent_input(tmp_path):
    meta = tiny_meta()
    with P4DWriter(tmp_path / "x.p4d") as w:
        w.add_tile(0, 0, "color", tiny_tiles()[0][3], "raw+zstd")
        with pytest.raises(ValueError, match="missing"):
            w.finish(meta)
        with pytest.raises(ValueError, match="already added"):
            w.add_tile(0, 0, "color", tiny_tiles()[0][3], "raw+zstd")
        with pytest.raises(ValueError, match="tile"):
            w.add_tile(0, 0, "depth", np.zeros((5, 5), np.uint16), "raw+zstd")
        with pytest.raises(ValueError, match="uint16"):
            w.add_tile(0, 0, "depth", np.zeros((2, 3), np.float32), "raw+zstd")
        with pytest.raises(ValueError, match="cannot use codec"):
            w.add_tile(0, 0, "depth", np.zeros((2, 3), np.uint16), "jpeg")
        w.add_tile(0, 0, "depth", tiny_tiles()[1][3], "raw+zstd")
        w.add_tile(1, 0, "color", tiny_tiles()[2][3], "raw+zstd")
        w.add_tile(1, 0, "depth", tiny_tiles()[3][3], "raw+zstd")
        bad = tiny_meta()
        bad["graph"]["transitions"] = [[0, 1, 1.0, 0.0]]  # last keyframe is a dead end
        with pytest.raises(ValueError, match="dead end"):
            w.finish(bad)
        bad = tiny_meta()
        bad["tiles"]["codecs"]["color"] = "png"
        with pytest.raises(ValueError, match="uses raw\\+zstd"):
            w.finish(bad)
        assert w.finish(meta).exists()  # the failed attempts left the partial usable


def _tile_stream():
    meta = sample_meta(3, size=(16, 16))
    items = []
    for k in range(3):
        for v, yaw in enumerate((-20.0, 0.0, 20.0)):
            rgb, a, d = portrait_tile(16, 16, yaw, 0.0, t=k, seed=k * 1000 + v)
            items += [(k, v, "color", rgb, "jpeg"), (k, v, "alpha", a, "png"),
                      (k, v, "depth", quantize_depth(d, 0.3, 1.0), "png")]
    return meta, items


def _resume_and_finish(path, items, meta):
    rgb, a, _ = portrait_tile(16, 16, seed=99)
    with P4DWriter(path, resume=True) as w:
        w.set_preview(rgb, a)
        for k, v, kind, arr, codec in items:
            if (k, v, kind) not in w.done:
                w.add_tile(k, v, kind, arr, codec)
        return w.finish(meta).read_bytes()


@pytest.mark.parametrize("n_before,damage", [(0, "none"), (1, "none"), (13, "none"), (13, "torn_data"),
                                              (13, "torn_journal"), (20, "journal_ahead"), (27, "none")])
def test_resume_after_a_crash_gives_identical_bytes(tmp_path, n_before, damage):
    meta, items = _tile_stream()
    reference = write_sample(tmp_path / "ref.p4d", n_keyframes=3, size=(16, 16)).read_bytes()
    path = tmp_path / "x.p4d"
    rgb, a, _ = portrait_tile(16, 16, seed=99)
    w = P4DWriter(path)
    w.set_preview(rgb, a)
    for item in items[:n_before]:
        w.add_tile(*item)
    w.close()  # the process dies here
    partial, journal = tmp_path / "x.p4d.partial", tmp_path / "x.p4d.partial.journal"
    if damage == "torn_data":  # half of the next chunk reached the disk
        with open(partial, "ab") as f:
            f.write(b"\x01" * 37)
    elif damage == "torn_journal":  # half of the next journal record
        with open(journal, "ab") as f:
            f.write(b"\x02" * 11)
    elif damage == "journal_ahead":  # journal reached the disk, the last chunk's data did not
        os.truncate(partial, partial.stat().st_size - 50)
    resumed = _resume_and_finish(path, items, meta)
    assert resumed == reference
    assert not partial.exists() and not journal.exists()


def test_resume_after_a_killed_process(tmp_path):
    # A real SIGKILL in the middle of a bake: the child writes 10 tiles then kills itself.
    meta, items = _tile_stream()
    reference = write_sample(tmp_path / "ref.p4d", n_keyframes=3, size=(16, 16)).read_bytes()
    code = f"""
import os, signal
from formats import P4DWriter
from formats.codecs import quantize_depth
from testkit.sample import portrait_tile
w = P4DWriter({str(tmp_path / 'x.p4d')!r})
rgb, a, _ = portrait_tile(16, 16, seed=99)
w.set_preview(rgb, a)
n = 0
for k in range(3):
    for v, yaw in enumerate((-20.0, 0.0, 20.0)):
        rgb, a, d = portrait_tile(16, 16, yaw, 0.0, t=k, seed=k * 1000 + v)
        for kind, arr, codec in (("color", rgb, "jpeg"), ("alpha", a, "png"),
                                 ("depth", quantize_depth(d, 0.3, 1.0), "png")):
            w.add_tile(k, v, kind, arr, codec)
            n += 1
            if n == 10:
                os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True)  # testkit/ is under the root
    assert proc.returncode == -9
    assert not (tmp_path / "x.p4d").exists()
    with P4DWriter(tmp_path / "x.p4d", resume=True) as w:
        assert len(w.done) == 10
    assert _resume_and_finish(tmp_path / "x.p4d", items, meta) == reference


def test_open_reads_only_header_index_and_metadata(tmp_path):
    p = write_sample(tmp_path / "s.p4d", n_keyframes=6, yaws=(-20.0, -10.0, 0.0, 10.0, 20.0), size=(48, 48))
    size = p.stat().st_size
    with P4DReader(p) as r:
        opened = r.bytes_read
        assert opened == 128 + r.index.nbytes + (size - r._meta_span[0])
        assert opened < size / 4
        r.tile(3, 2, "color")
        assert r.bytes_read - opened == int(r.index[3, 2, 0]["length"])  # one read of exactly the chunk


def test_reads_are_thread_safe(tmp_path):
    p = write_sample(tmp_path / "s.p4d", n_keyframes=4, size=(16, 16), codecs={"color": "png", "alpha": "png",
                                                                               "depth": "png"})
    with P4DReader(p) as r:
        expected = {(k, v): r.tile(k, v, "color") for k in range(4) for v in range(3)}
        errors = []

        def worker(seed):
            rng = np.random.default_rng(seed)
            for _ in range(200):
                k, v = int(rng.integers(0, 4)), int(rng.integers(0, 3))
                if not np.array_equal(r.tile(k, v, "color"), expected[k, v]):
                    errors.append((k, v))

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_bad_arguments_to_tile(tmp_path):
    p = write_sample(tmp_path / "s.p4d", kinds=("color",), codecs={"color": "png"})
    with P4DReader(p) as r:
        with pytest.raises(KeyError, match="no 'depth' tiles"):
            r.tile(0, 0, "depth")
        with pytest.raises(IndexError):
            r.tile(3, 0, "color")
    with pytest.raises(ValueError, match="closed"):
        r.tile(0, 0, "color")
    with pytest.raises(P4DFormatError, match="cannot open"):
        P4DReader(tmp_path / "nope.p4d")


def test_bad_arguments_are_refused_even_under_python_O(tmp_path):
    # -O strips assert statements: the input checks must be explicit raises.
    code = f"""
from formats import P4DWriter
from formats.p4d import depth_sample_index, depth_shape, upsample_depth_nearest
import numpy as np
for call in (lambda: P4DWriter({str(tmp_path / 'a.p4d')!r}, alignment=48),
             lambda: P4DWriter({str(tmp_path / 'b.p4d')!r}, depth_scale=3),
             lambda: depth_sample_index(8, 0), lambda: depth_shape((8, 8), True),
             lambda: upsample_depth_nearest(np.zeros((4, 4), np.uint16), 3, (8, 8))):
    try:
        call()
    except ValueError as e:
        print(e)
"""
    out = subprocess.run([sys.executable, "-O", "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "alignment must be a power of two in [8, 65536], got 48",
        "depth_scale must be one of (1, 2, 4, 8), got 3",
        "depth_scale must be one of (1, 2, 4, 8), got 0",
        "depth_scale must be one of (1, 2, 4, 8), got True",
        "depth_scale must be one of (1, 2, 4, 8), got 3",
    ]
    assert not list(tmp_path.iterdir())  # refused before creating the partial
