"""The .p4d container v1.0: a streaming writer with crash-resume and a hostile-input-safe reader.

Layout (docs/p4d-format.md is the spec; all integers little-endian):
    [0, 128)          fixed header (magic, counts, tile size, depth scale, index/metadata/preview locations, crc)
    preview chunk     PNG RGBA, premultiplied RGB + alpha (optional), aligned
    tile chunks       one per (keyframe, view, kind), in write order, each aligned to ``alignment``;
                      depth tiles may be stored at 1/depth_scale resolution (``depth_shape``)
    index             n_keyframes * n_views * n_kinds records of 24 bytes, canonical order
    metadata          msgpack map, keys sorted; ends exactly at end of file
"""

from __future__ import annotations

import math
import os
import pathlib
import struct
import threading
import zlib
from typing import Any, Iterable

import msgpack
import numpy as np

from formats import codecs

MAGIC = b"\x89P4D\r\n\x1a\n"  # PNG-style: catches text-mode transfers and 7-bit truncation
VERSION = (1, 0)
HEADER_SIZE = 128
ALIGNMENT = 64  # chunks start on a cache line; small tiles do not pay page-size padding
KINDS = ("color", "alpha", "depth")  # wire ids 0, 1, 2; a file stores them in this order
KIND_ID = {k: i for i, k in enumerate(KINDS)}
PREVIEW_KIND = 3
KIND_CODECS = {"color": ("jpeg", "webp", "png", "raw+zstd"),
               "alpha": ("png", "raw+zstd", "webp"),
               "depth": ("png", "raw+zstd")}
KIND_CHANNELS = {"color": 3, "alpha": 1, "depth": 1}
KIND_DTYPE = {"color": np.dtype(np.uint8), "alpha": np.dtype(np.uint8), "depth": np.dtype(np.uint16)}

# Caps: every size and count a file declares is checked against these before it is used.
MAX_SIDE = 8192            # tile height/width
MAX_PREVIEW_SIDE = 2048    # preview height/width (a preview decodes to at most 16 MiB)
MAX_AXIS = 1 << 16         # keyframes, views
MAX_TILES = 1 << 21        # keyframes * views * kinds  (index <= 48 MiB)
MAX_CHUNK = 1 << 28        # bytes of one encoded chunk
MAX_META = 16 << 20        # bytes of msgpack metadata
MAX_ALIGNMENT = 1 << 16
DEPTH_SCALES = (1, 2, 4, 8)  # header stores log2: 0..3

# Header: magic, major, minor, header_size, alignment, kind_mask, n_keyframes, n_views, tile_h,
# tile_w, file_size, index_offset, index_length, meta_offset, meta_length, meta_crc, index_crc,
# depth_scale_log2 (was reserved; 0 = full-resolution depth), preview record (offset, length, raw_length, crc, codec, kind, reserved),
# preview_h, preview_w, reserved, header_crc.
_HEADER = struct.Struct("<8sHHIIIIIIIQQQQIIII" "QIIIBBH" "III" "I")
assert _HEADER.size == HEADER_SIZE
INDEX_DTYPE = np.dtype([("offset", "<u8"), ("length", "<u4"), ("raw_length", "<u4"), ("crc", "<u4"),
                        ("codec", "u1"), ("kind", "u1"), ("reserved", "<u2")])
assert INDEX_DTYPE.itemsize == 24
# Journal: header, then one fixed record per complete chunk (last field = crc of the record).
# v2 adds depth_scale after the alignment (a v1 journal is refused, never misread).
_JOURNAL_MAGIC = b"P4DJOURNAL2\n"
_JHEAD = struct.Struct("<II")  # alignment, depth_scale
_JREC = struct.Struct("<IIIIBBHQIIII")


class P4DFormatError(ValueError):
    """A .p4d file (or part of it) is malformed; the message says what and where."""


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _crc(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------- depth scale

def depth_shape(tile_shape: tuple[int, int], depth_scale: int) -> tuple[int, int]:
    """(H, W) tile -> (ceil(H/s), ceil(W/s)): the stored depth tile's shape."""
    h, w = tile_shape
    s = int(depth_scale)
    return (-(-h // s), -(-w // s))


def depth_sample_index(n: int, depth_scale: int) -> np.ndarray:
    """Full-resolution row (or column) of each stored depth sample along an axis of n pixels:
    min(i*s + s//2, n-1) for i in 0..ceil(n/s)-1 (int64 [ceil(n/s)])."""
    s = int(depth_scale)
    return np.minimum(np.arange(-(-n // s), dtype=np.int64) * s + s // 2, n - 1)


def downscale_depth(depth: np.ndarray, depth_scale: int) -> np.ndarray:
    """Full-resolution depth [H,W] -> stored depth [ceil(H/s), ceil(W/s)] by point sampling (spec rule).

    Point samples, not block means: a mean across a silhouette edge invents a depth between the
    face and the empty background (0) that belongs to neither. Equals depth[s//2::s, s//2::s] when
    s divides H and W; otherwise the last row/column samples the tile's last pixel (clamped).
    """
    if depth_scale not in DEPTH_SCALES:
        raise ValueError(f"depth_scale must be one of {DEPTH_SCALES}, got {depth_scale!r}")
    depth = np.asarray(depth)
    if depth_scale == 1:
        return depth
    h, w = depth.shape[:2]
    return np.ascontiguousarray(depth[np.ix_(depth_sample_index(h, depth_scale), depth_sample_index(w, depth_scale))])


def upsample_depth_nearest(depth: np.ndarray, depth_scale: int, tile_shape: tuple[int, int]) -> np.ndarray:
    """Stored depth [ceil(H/s), ceil(W/s)] -> [H,W]: pixel (y, x) takes sample (y//s, x//s) (its s x s block)."""
    h, w = tile_shape
    s = int(depth_scale)
    if np.asarray(depth).shape[:2] != depth_shape(tile_shape, s):
        raise ValueError(f"depth {np.asarray(depth).shape} is not the stored shape {depth_shape(tile_shape, s)} "
                         f"of a {w}x{h} tile at depth_scale {s}")
    return np.ascontiguousarray(depth[np.arange(h) // s][:, np.arange(w) // s])


# ------------------------------------------------------------------------------------ metadata

def canonical(obj: Any, where: str = "meta") -> Any:
    """Plain msgpack-able copy with sorted map keys, numpy scalars/arrays -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise ValueError(f"{where}: map keys must be str, got {k!r}")
        return {k: canonical(obj[k], f"{where}.{k}") for k in sorted(obj)}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [canonical(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise ValueError(f"{where}: cannot store a {type(obj).__name__} in .p4d metadata")


def pack_meta(meta: dict) -> bytes:
    # Floats always as float64 so the bytes do not depend on how the caller typed them.
    return msgpack.packb(canonical(meta), use_bin_type=True, use_single_float=False)


def unpack_meta(data: bytes) -> dict:
    """msgpack -> dict under hard limits (no map/array/str larger than the caps, no ext types)."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True,
                              max_str_len=1 << 20, max_bin_len=0,
                              max_array_len=1 << 20, max_map_len=1 << 10, max_ext_len=0)
    except Exception as e:  # msgpack raises ValueError, ExtraData, StackError, UnicodeDecodeError...
        raise P4DFormatError(f"metadata: not valid msgpack within limits ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise P4DFormatError("metadata: top level is not a map")
    return obj


class _Check:
    """Tiny schema checker: each failure names the dotted path of the offending field."""

    def __init__(self, meta: dict):
        self.meta = meta

    def get(self, path: str, typ):
        node: Any = self.meta
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"meta.{path} is missing")
            node = node[part]
        return self.type(node, typ, path)

    @staticmethod
    def type(v, typ, path):
        if typ is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"meta.{path} must be a finite number, got {v!r:.60}")
            return float(v)
        if typ is int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"meta.{path} must be an integer, got {v!r:.60}")
            return v
        if not isinstance(v, typ):
            raise ValueError(f"meta.{path} must be a {typ.__name__}, got {type(v).__name__}")
        return v

    def floats(self, v, path, n=None):
        self.type(v, list, path)
        if n is not None and len(v) != n:
            raise ValueError(f"meta.{path} must have {n} entries, has {len(v)}")
        return [self.type(x, float, f"{path}[{i}]") for i, x in enumerate(v)]

    def ints(self, v, path, lo, hi, n=None):
        self.type(v, list, path)
        if n is not None and len(v) != n:
            raise ValueError(f"meta.{path} must have {n} entries, has {len(v)}")
        out = [self.type(x, int, f"{path}[{i}]") for i, x in enumerate(v)]
        for i, x in enumerate(out):
            if not lo <= x <= hi:
                raise ValueError(f"meta.{path}[{i}] = {x} is outside [{lo}, {hi}]")
        return out


def validate_meta(meta: dict, n_keyframes: int | None = None, n_views: int | None = None,
                  tile_shape: tuple[int, int] | None = None,
                  depth_scale: int | None = None) -> tuple[int, int, list[str]]:
    """Check ``meta`` against the v1.0 schema; returns (n_keyframes, n_views, kinds). Raises ValueError.

    When the counts / tile shape / depth scale are given (the reader knows them from the header)
    they must agree.
    """
    c = _Check(meta)
    c.get("generator", str)
    c.get("source.kind", str)
    c.get("source.checkpoint_sha256", str)
    yaws = c.floats(c.get("grid.yaws", list), "grid.yaws")
    pitches = c.floats(c.get("grid.pitches", list), "grid.pitches")
    for name, axis in (("yaws", yaws), ("pitches", pitches)):
        if not axis:
            raise ValueError(f"meta.grid.{name} is empty")
        if any(b <= a for a, b in zip(axis, axis[1:])):
            raise ValueError(f"meta.grid.{name} must be strictly ascending")
    views = len(yaws) * len(pitches)
    if c.get("grid.radius", float) <= 0:
        raise ValueError("meta.grid.radius must be > 0")
    c.floats(c.get("grid.center", list), "grid.center", 3)
    for k in ("fx", "fy", "cx", "cy"):
        c.get(f"grid.intrinsics.{k}", float)
    iw, ih = c.get("grid.intrinsics.width", int), c.get("grid.intrinsics.height", int)
    if tile_shape is not None and (ih, iw) != tuple(tile_shape):
        raise ValueError(f"meta.grid.intrinsics is {iw}x{ih} but tiles are {tile_shape[1]}x{tile_shape[0]}")
    near, far = c.get("grid.depth.near", float), c.get("grid.depth.far", float)
    if not 0 < near < far:
        raise ValueError(f"meta.grid.depth needs 0 < near < far, got {near}, {far}")

    kinds = c.get("tiles.kinds", list)
    if not kinds or "color" not in kinds or len(set(kinds)) != len(kinds) or \
            any(k not in KINDS for k in kinds) or kinds != sorted(kinds, key=KINDS.index):
        raise ValueError(f"meta.tiles.kinds must list 'color' and optionally 'alpha', 'depth' in that "
                         f"order, got {kinds!r:.80}")
    cod = c.get("tiles.codecs", dict)
    for k in kinds:
        if cod.get(k) not in KIND_CODECS[k]:
            raise ValueError(f"meta.tiles.codecs.{k} must be one of {KIND_CODECS[k]}, got {cod.get(k)!r:.40}")
    c.get("tiles.quality", dict)
    c.get("tiles.color", str)
    ds = c.type(meta["tiles"]["depth_scale"], int, "tiles.depth_scale") if "depth_scale" in meta["tiles"] else 1
    if ds not in DEPTH_SCALES:
        raise ValueError(f"meta.tiles.depth_scale must be one of {DEPTH_SCALES}, got {ds}")
    if ds != 1 and "depth" not in kinds:
        raise ValueError(f"meta.tiles.depth_scale is {ds} but the file has no depth tiles (must be 1 or absent)")
    if depth_scale is not None and ds != depth_scale:
        raise ValueError(f"meta.tiles.depth_scale is {ds} but the header says {depth_scale}")

    if c.get("keyframes.fps", float) <= 0:
        raise ValueError("meta.keyframes.fps must be > 0")
    times = c.floats(c.get("keyframes.times", list), "keyframes.times")
    K = len(times)
    if K == 0:
        raise ValueError("meta.keyframes.times is empty")
    names = c.get("keyframes.expression_names", list)
    for i, s in enumerate(names):
        c.type(s, str, f"keyframes.expression_names[{i}]")
    exprs = c.get("keyframes.expressions", list)
    if len(exprs) != K:
        raise ValueError(f"meta.keyframes.expressions has {len(exprs)} rows, expected {K}")
    for i, row in enumerate(exprs):
        c.floats(row, f"keyframes.expressions[{i}]", len(names))
    cv = c.get("keyframes.capture_view", list)
    if len(cv) != K:
        raise ValueError(f"meta.keyframes.capture_view has {len(cv)} rows, expected {K}")
    for i, row in enumerate(cv):
        c.floats(row, f"keyframes.capture_view[{i}]", 2)
    if c.get("keyframes.source", str) not in ("capture", "drive"):
        raise ValueError("meta.keyframes.source must be 'capture' or 'drive'")

    G = c.get("graph.groups.count", int)
    if not 1 <= G <= 4096:
        raise ValueError(f"meta.graph.groups.count must be in [1, 4096], got {G}")
    c.ints(c.get("keyframes.pose_group", list), "keyframes.pose_group", 0, G - 1, K)
    centers = c.get("graph.groups.centers", list)
    if len(centers) != G:
        raise ValueError(f"meta.graph.groups.centers has {len(centers)} rows, expected {G}")
    for i, row in enumerate(centers):
        c.floats(row, f"graph.groups.centers[{i}]", 2)
    labels = c.get("graph.groups.labels", list)
    if len(labels) != G or not all(isinstance(s, str) for s in labels):
        raise ValueError(f"meta.graph.groups.labels must be {G} strings")
    trans = c.get("graph.transitions", list)
    has_out = [False] * K
    for i, t in enumerate(trans):
        if not isinstance(t, list) or len(t) != 4:
            raise ValueError(f"meta.graph.transitions[{i}] must be [src, dst, prob, cost]")
        src, dst = (c.type(t[j], int, f"graph.transitions[{i}][{j}]") for j in (0, 1))
        prob, _ = (c.type(t[j], float, f"graph.transitions[{i}][{j}]") for j in (2, 3))
        if not (0 <= src < K and 0 <= dst < K):
            raise ValueError(f"meta.graph.transitions[{i}] = {src}->{dst} names a keyframe outside [0, {K})")
        if not 0 <= prob <= 1:
            raise ValueError(f"meta.graph.transitions[{i}] probability {prob} is outside [0, 1]")
        has_out[src] = True
    if not has_out[K - 1]:
        raise ValueError(f"meta.graph has no transition out of the last keyframe {K - 1} (a dead end)")
    p_back = c.get("graph.p_back", float)
    if not 0 <= p_back <= 1:
        raise ValueError(f"meta.graph.p_back = {p_back} is outside [0, 1]")
    forced = c.get("graph.forced", list)
    if len(forced) != K:
        raise ValueError(f"meta.graph.forced has {len(forced)} rows, expected {K}")
    for i, row in enumerate(forced):
        c.ints(row, f"graph.forced[{i}]", -1, K - 1, G)
    if c.get("graph.morph_seconds", float) < 0:
        raise ValueError("meta.graph.morph_seconds must be >= 0")
    if not 0 <= c.get("graph.pose_switch_prob", float) <= 1:
        raise ValueError("meta.graph.pose_switch_prob must be in [0, 1]")

    if n_keyframes is not None and n_keyframes != K:
        raise ValueError(f"meta has {K} keyframes but the header says {n_keyframes}")
    if n_views is not None and n_views != views:
        raise ValueError(f"meta grid has {views} views but the header says {n_views}")
    return K, views, list(kinds)


# -------------------------------------------------------------------------------------- header

def _kind_mask(kinds: Iterable[str]) -> int:
    return sum(1 << KIND_ID[k] for k in kinds)


def _mask_kinds(mask: int) -> list[str]:
    return [k for k in KINDS if mask >> KIND_ID[k] & 1]


def _expected_raw(kind: str, h: int, w: int) -> int:
    return h * w * KIND_CHANNELS[kind] * KIND_DTYPE[kind].itemsize


# -------------------------------------------------------------------------------------- writer

class P4DWriter:
    """Stream tiles into ``{path}.partial`` (+ ``.journal``); ``finish(meta)`` renames it to ``path``.

    Memory is bounded by one tile plus the small index. ``resume=True`` reopens an existing partial
    (a fresh one is started when there is none): the journal is verified against the bytes on disk,
    the partial is truncated to its last complete chunk, and ``done`` lists what is already stored.
    ``depth_scale`` s in {1, 2, 4, 8}: depth tiles are stored as [ceil(H/s), ceil(W/s)] (see
    ``downscale_depth``); a resume must use the same s, and ``finish`` needs meta tiles.depth_scale = s.
    Same tiles in the same order + same meta => same bytes.
    """

    def __init__(self, path, resume: bool = False, depth_scale: int = 1, alignment: int = ALIGNMENT):
        if isinstance(depth_scale, bool) or depth_scale not in DEPTH_SCALES:
            raise ValueError(f"depth_scale must be one of {DEPTH_SCALES}, got {depth_scale!r}")
        self.path = pathlib.Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.journal_path = self.path.with_name(self.path.name + ".partial.journal")
        self.alignment = alignment
        self.depth_scale = int(depth_scale)
        # Stored depth shape seen before any colour/alpha tile fixed tile_shape; checked when one does.
        self._depth_seen: tuple[int, int] | None = None
        self._records: dict[tuple[int, int, str], tuple] = {}  # key -> (offset, length, raw, crc, codec)
        self._preview: tuple | None = None  # (offset, length, raw, crc, codec, h, w)
        self.tile_shape: tuple[int, int] | None = None
        self._closed = False
        self._finished = False
        if resume and self.partial.exists() and self.journal_path.exists():
            self._resume()
        else:
            self._fresh()

    # -- setup
    def _fresh(self) -> None:
        self._f = open(self.partial, "wb")
        self._f.write(b"\0" * HEADER_SIZE)  # placeholder; the real header is written by finish()
        self._f.flush()
        self._end = HEADER_SIZE
        self._j = open(self.journal_path, "wb")
        self._j.write(_JOURNAL_MAGIC + _JHEAD.pack(self.alignment, self.depth_scale))
        self._j.flush()

    def _resume(self) -> None:
        jdata = self.journal_path.read_bytes()
        head = len(_JOURNAL_MAGIC) + _JHEAD.size
        if jdata[:len(_JOURNAL_MAGIC)] != _JOURNAL_MAGIC or len(jdata) < head:
            raise P4DFormatError(f"{self.journal_path}: not a p4d journal (or an older journal version); "
                                 f"delete it and the .partial to start over")
        alignment, depth_scale = _JHEAD.unpack(jdata[len(_JOURNAL_MAGIC):head])
        if alignment != self.alignment:
            raise P4DFormatError(f"{self.journal_path}: written with alignment {alignment}, not {self.alignment}")
        if depth_scale != self.depth_scale:
            raise P4DFormatError(f"{self.journal_path}: the partial stores depth at depth_scale {depth_scale}, "
                                 f"this writer uses {self.depth_scale}; resume with depth_scale={depth_scale} "
                                 f"or delete the .partial and its journal to start over")
        size = self.partial.stat().st_size
        self._end = HEADER_SIZE
        good = head
        with open(self.partial, "rb") as f:
            for pos in range(head, len(jdata) - _JREC.size + 1, _JREC.size):
                rec = jdata[pos:pos + _JREC.size]
                fields = _JREC.unpack(rec)
                if _crc(rec[:-4]) != fields[-1]:
                    break  # torn journal write: everything from here is redone
                kf, view, th, tw, kind, codec, _, off, length, raw, crc, _ = fields
                if off != _align(self._end, self.alignment) or off + length > size or not 0 < length <= MAX_CHUNK:
                    break
                f.seek(off)
                if _crc(f.read(length)) != crc:
                    break  # journal got to disk before the data did
                if kind == PREVIEW_KIND:
                    self._preview = (off, length, raw, crc, codec, th, tw)
                else:
                    if kind >= len(KINDS):
                        break
                    self._note_shape(KINDS[kind], th, tw)  # same rule as when the tile was added
                    self._records[(kf, view, KINDS[kind])] = (off, length, raw, crc, codec)
                self._end = off + length
                good = pos + _JREC.size
        self._f = open(self.partial, "r+b")
        self._f.truncate(self._end)
        self._f.seek(self._end)
        self._j = open(self.journal_path, "r+b")
        self._j.truncate(good)
        self._j.seek(good)

    @property
    def done(self) -> set[tuple[int, int, str]]:
        """(keyframe, view, kind) already stored."""
        return set(self._records)

    # -- chunks
    def _append(self, data: bytes, kf: int, view: int, th: int, tw: int, kind: int, codec: str, raw: int) -> tuple:
        if self._closed:
            raise ValueError("writer is closed")
        if len(data) > MAX_CHUNK:
            raise ValueError(f"encoded chunk is {len(data)} bytes, the format caps chunks at {MAX_CHUNK}")
        off = _align(self._end, self.alignment)
        crc = _crc(data)
        self._f.write(b"\0" * (off - self._end))
        self._f.write(data)
        self._f.flush()  # data reaches the OS before the journal says it exists
        self._end = off + len(data)
        rec = _JREC.pack(kf, view, th, tw, kind, codecs.CODEC_ID[codec], 0, off, len(data), raw, crc, 0)
        self._j.write(rec[:-4] + struct.pack("<I", _crc(rec[:-4])))
        self._j.flush()
        return off, len(data), raw, crc, codecs.CODEC_ID[codec]

    def set_preview(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        """rgb uint8 [H,W,3] premultiplied, alpha uint8 [H,W]; stored as one PNG RGBA right after the header."""
        if self._preview is not None:
            return  # resumed file already has it (or set twice): keep the first, bytes stay deterministic
        if self._records:
            raise ValueError("set_preview() must be called before the first add_tile()")
        rgb, alpha = np.asarray(rgb), np.asarray(alpha)
        if rgb.dtype != np.uint8 or alpha.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 \
                or alpha.shape != rgb.shape[:2]:
            raise ValueError(f"preview needs uint8 rgb [H,W,3] and alpha [H,W], got {rgb.dtype}{rgb.shape}, "
                             f"{alpha.dtype}{alpha.shape}")
        h, w = alpha.shape
        if not (1 <= h <= MAX_PREVIEW_SIDE and 1 <= w <= MAX_PREVIEW_SIDE):
            raise ValueError(f"preview size {w}x{h} outside 1..{MAX_PREVIEW_SIDE}; downscale it")
        data = codecs.encode(np.dstack([rgb, alpha]), "png", 9)
        rec = self._append(data, 0, 0, h, w, PREVIEW_KIND, "png", h * w * 4)
        self._preview = rec[:5] + (h, w)

    def _expected_shape(self, kind: str) -> tuple[int, int] | None:
        """(h, w) a tile of ``kind`` must have, or None while no colour/alpha tile fixed the tile size."""
        if self.tile_shape is None:
            return self._depth_seen if kind == "depth" else None
        return depth_shape(self.tile_shape, self.depth_scale) if kind == "depth" else self.tile_shape

    def _check_shape(self, key: tuple[int, int, str], h: int, w: int) -> None:
        kind = key[2]
        want = self._expected_shape(kind)
        if want is not None and (h, w) != want:
            if kind == "depth" and self.tile_shape is not None:
                raise ValueError(f"depth tile {key} is {w}x{h}, but {self.tile_shape[1]}x{self.tile_shape[0]} tiles "
                                 f"at depth_scale {self.depth_scale} store depth as {want[1]}x{want[0]} "
                                 f"(downscale_depth)")
            raise ValueError(f"tile {key} is {w}x{h}, earlier {kind if kind == 'depth' else 'colour/alpha'} "
                             f"tiles are {want[1]}x{want[0]}")
        if want is None:
            if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
                raise ValueError(f"tile size {w}x{h} outside 1..{MAX_SIDE}")
            if kind != "depth" and self._depth_seen is not None \
                    and depth_shape((h, w), self.depth_scale) != self._depth_seen:
                d = self._depth_seen
                raise ValueError(f"tile {key} is {w}x{h}, which stores depth at depth_scale {self.depth_scale} as "
                                 f"{depth_shape((h, w), self.depth_scale)[1]}x{depth_shape((h, w), self.depth_scale)[0]}"
                                 f", but earlier depth tiles are {d[1]}x{d[0]}")
        self._note_shape(kind, h, w)

    def _note_shape(self, kind: str, h: int, w: int) -> None:
        if kind == "depth":
            self._depth_seen = (h, w)
        else:
            self.tile_shape = (h, w)

    @property
    def depth_shape(self) -> tuple[int, int] | None:
        """(h, w) of the stored depth tiles once the tile size is known, else None."""
        return None if self.tile_shape is None else depth_shape(self.tile_shape, self.depth_scale)

    def add_tile(self, keyframe: int, view: int, kind: str, array: np.ndarray, codec: str,
                 quality: int | None = None) -> None:
        """Encode and append one tile: color uint8 [H,W,3] premultiplied RGB, alpha uint8 [H,W], depth
        uint16 [ceil(H/s), ceil(W/s)] (s = depth_scale; see ``downscale_depth``). ``quality`` (1..100)
        applies to jpeg/webp colour and is ignored by lossless codecs."""
        if kind not in KIND_ID:
            raise ValueError(f"unknown tile kind {kind!r}; use one of {KINDS}")
        if codec not in KIND_CODECS[kind]:
            raise ValueError(f"{kind} tiles cannot use codec {codec!r}; use one of {KIND_CODECS[kind]}")
        keyframe, view = int(keyframe), int(view)
        if not (0 <= keyframe < MAX_AXIS and 0 <= view < MAX_AXIS):
            raise ValueError(f"keyframe {keyframe} / view {view} outside [0, {MAX_AXIS})")
        key = (keyframe, view, kind)
        if key in self._records:
            raise ValueError(f"tile {key} was already added")
        array = np.asarray(array)
        want = KIND_DTYPE[kind]
        if array.dtype != want or array.ndim != (3 if kind == "color" else 2) or \
                (kind == "color" and array.shape[2] != 3):
            shape = "[H,W,3]" if kind == "color" else "[H,W]"
            raise ValueError(f"{kind} tile must be {want} {shape}, got {array.dtype} {array.shape}")
        h, w = array.shape[:2]
        self._check_shape(key, h, w)
        if codec not in codecs.LOSSY:
            quality = None  # quality is a lossy-codec setting; lossless codecs use fixed settings
        if kind == "alpha" and codec == "webp":
            quality = codecs.WEBP_LOSSLESS  # alpha must be exact
        self._put(key, codecs.encode(array, codec, quality), codec, (h, w))

    def add_encoded(self, keyframe: int, view: int, kind: str, data: bytes, codec: str,
                    tile_shape: tuple[int, int]) -> None:
        """Append an already encoded tile as is (repack without re-encoding). ``tile_shape`` is the
        (h, w) of the encoded array: the tile size for colour/alpha, the stored (scaled) depth shape
        for depth (``P4DReader.depth_shape``). ``data`` is not checked here: readers check it, so only
        pass bytes that came from an array of that shape."""
        if kind not in KIND_ID or codec not in KIND_CODECS[kind]:
            raise ValueError(f"kind {kind!r} with codec {codec!r} is not allowed")
        key = (int(keyframe), int(view), kind)
        if key in self._records:
            raise ValueError(f"tile {key} was already added")
        h, w = (int(x) for x in tile_shape)
        self._check_shape(key, h, w)
        self._put(key, bytes(data), codec, (h, w))

    def _put(self, key: tuple[int, int, str], data: bytes, codec: str, shape: tuple[int, int]) -> None:
        kf, view, kind = key
        if not (0 <= kf < MAX_AXIS and 0 <= view < MAX_AXIS):
            raise ValueError(f"keyframe {kf} / view {view} outside [0, {MAX_AXIS})")
        self._records[key] = self._append(data, kf, view, *shape, KIND_ID[kind], codec,
                                          _expected_raw(kind, *shape))[:5]

    # -- finish
    def finish(self, meta: dict) -> pathlib.Path:
        """Write index + metadata + header, fsync, rename to ``path``, drop the journal."""
        if self._closed:
            raise ValueError("writer is closed")
        if self.tile_shape is None:
            raise ValueError("no colour tiles were added")
        meta_bytes = pack_meta(meta)
        if len(meta_bytes) > MAX_META:
            raise ValueError(f"metadata packs to {len(meta_bytes)} bytes, the format caps it at {MAX_META}")
        try:
            K, V, kinds = validate_meta(unpack_meta(meta_bytes), tile_shape=self.tile_shape,
                                        depth_scale=self.depth_scale)
        except ValueError as e:
            if "depth_scale" in str(e):
                raise ValueError(f"{e} (the writer was opened with depth_scale={self.depth_scale}; "
                                 f"set meta tiles.depth_scale to match)") from None
            raise
        if K * V * len(kinds) > MAX_TILES:
            raise ValueError(f"{K}x{V}x{len(kinds)} tiles exceed the cap {MAX_TILES}")
        cod = meta["tiles"]["codecs"]
        index = np.zeros(K * V * len(kinds), INDEX_DTYPE)
        missing = []
        for k in range(K):
            for v in range(V):
                for ki, kind in enumerate(kinds):
                    rec = self._records.get((k, v, kind))
                    if rec is None:
                        missing.append((k, v, kind))
                        continue
                    if codecs.CODECS[rec[4] - 1] != cod[kind]:
                        raise ValueError(f"tile {(k, v, kind)} uses {codecs.CODECS[rec[4] - 1]} but "
                                         f"meta.tiles.codecs.{kind} says {cod[kind]}")
                    index[(k * V + v) * len(kinds) + ki] = (*rec[:4], rec[4], KIND_ID[kind], 0)
        if missing:
            raise ValueError(f"{len(missing)} tiles missing for the grid in meta, e.g. {missing[:3]}")
        extra = len(self._records) - len(index)
        if extra:
            raise ValueError(f"{extra} tiles lie outside the grid in meta (keyframes {K}, views {V}, kinds {kinds})")
        idx_off = _align(self._end, self.alignment)
        idx_bytes = index.tobytes()
        meta_off = idx_off + len(idx_bytes)
        file_size = meta_off + len(meta_bytes)
        pv = self._preview or (0, 0, 0, 0, 0, 0, 0)
        header = _HEADER.pack(MAGIC, *VERSION, HEADER_SIZE, self.alignment, _kind_mask(kinds), K, V,
                              *self.tile_shape, file_size, idx_off, len(idx_bytes), meta_off, len(meta_bytes),
                              _crc(meta_bytes), _crc(idx_bytes), self.depth_scale.bit_length() - 1,
                              pv[0], pv[1], pv[2], pv[3], pv[4], PREVIEW_KIND if self._preview else 0, 0,
                              pv[5], pv[6], 0, 0)
        header = header[:-4] + struct.pack("<I", _crc(header[:-4]))
        f = self._f
        f.seek(self._end)
        f.truncate(self._end)  # a failed earlier finish() may have left an index behind
        f.write(b"\0" * (idx_off - self._end))
        f.write(idx_bytes)
        f.write(meta_bytes)
        f.seek(0)
        f.write(header)
        f.flush()
        os.fsync(f.fileno())
        self.close()
        os.replace(self.partial, self.path)
        self.journal_path.unlink(missing_ok=True)
        self._finished = True
        return self.path

    def close(self) -> None:
        """Close files; the partial and journal stay on disk for resume unless finish() ran."""
        if not self._closed:
            self._closed = True
            self._f.close()
            self._j.close()

    def __enter__(self) -> "P4DWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -------------------------------------------------------------------------------------- reader

class P4DReader:
    """Open a .p4d in O(header + index + metadata); every tile fetch is one positioned read.

    Thread-safe: reads use os.pread on a shared descriptor (no shared file position).
    Everything a file declares is checked before use; any problem raises P4DFormatError.
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.bytes_read = 0  # how much of the file this reader has read (for the O(metadata) claim)
        self._lock = threading.Lock()
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as e:
            raise P4DFormatError(f"{self.path}: cannot open ({e.strerror})") from None
        try:
            self._open()
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    def _err(self, what: str) -> P4DFormatError:
        return P4DFormatError(f"{self.path.name}: {what}")

    def _pread(self, offset: int, length: int) -> bytes:
        fd = self._fd
        if fd < 0:
            raise ValueError("reader is closed")
        out = os.pread(fd, length, offset)
        while len(out) < length:  # short reads are legal; a zero-length read means EOF
            more = os.pread(fd, length - len(out), offset + len(out))
            if not more:
                raise self._err(f"file ends inside [{offset}, {offset + length})")
            out += more
        with self._lock:
            self.bytes_read += length
        return out

    def _open(self) -> None:
        size = os.fstat(self._fd).st_size
        if size < HEADER_SIZE:
            raise self._err(f"{size} bytes is shorter than the {HEADER_SIZE}-byte header")
        raw = self._pread(0, HEADER_SIZE)
        if raw[:8] != MAGIC:
            raise self._err("not a .p4d file (bad magic at offset 0)")
        h = _HEADER.unpack(raw)
        (_, major, minor, hsize, align, mask, K, V, th, tw, fsize, ioff, ilen, moff, mlen, mcrc, icrc,
         ds_log2, poff, plen, praw, pcrc, pcodec, pkind, pres, ph, pw, res1, hcrc) = h
        if major != VERSION[0]:
            raise self._err(f"format version {major}.{minor} is not supported (this reader reads {VERSION[0]}.x)")
        if _crc(raw[:-4]) != hcrc:
            raise self._err("header crc mismatch at offset 124 (header corrupt)")
        if hsize != HEADER_SIZE:
            raise self._err(f"header size {hsize} at offset 12, expected {HEADER_SIZE}")
        if not (8 <= align <= MAX_ALIGNMENT and align & (align - 1) == 0):
            raise self._err(f"alignment {align} at offset 16 is not a power of two in [8, {MAX_ALIGNMENT}]")
        kinds = _mask_kinds(mask)
        if mask & ~0b111 or "color" not in kinds:
            raise self._err(f"kind mask {mask:#x} at offset 20 is invalid (needs color, bits 0-2 only)")
        if not (1 <= K <= MAX_AXIS and 1 <= V <= MAX_AXIS and K * V * len(kinds) <= MAX_TILES):
            raise self._err(f"declared {K} keyframes x {V} views x {len(kinds)} kinds exceeds the caps")
        if not (1 <= th <= MAX_SIDE and 1 <= tw <= MAX_SIDE):
            raise self._err(f"tile size {tw}x{th} at offset 32 is outside 1..{MAX_SIDE}")
        if fsize != size:
            raise self._err(f"header says {fsize} bytes, file has {size} "
                            f"({'truncated' if size < fsize else 'trailing bytes'})")
        if pres or res1:
            raise self._err("reserved header fields are not zero")
        if ds_log2 > 3 or (ds_log2 and "depth" not in kinds):
            raise self._err(f"depth_scale_log2 {ds_log2} at offset 84 is invalid (0..3, and 0 without depth tiles)")
        n = K * V * len(kinds)
        if ilen != n * INDEX_DTYPE.itemsize:
            raise self._err(f"index length {ilen} at offset 56 != {n} records x {INDEX_DTYPE.itemsize}")
        if not 0 < mlen <= MAX_META:
            raise self._err(f"metadata length {mlen} at offset 72 is outside 1..{MAX_META}")
        # Python ints cannot overflow; the equalities below pin every section end to the file size.
        if ioff % align or ioff < HEADER_SIZE or moff != ioff + ilen or moff + mlen != size:
            raise self._err(f"sections out of place: index [{ioff}, +{ilen}) metadata [{moff}, +{mlen}) "
                            f"file {size}; the index must be aligned and metadata must end the file")
        self.alignment, self.kinds = align, kinds
        self.n_keyframes, self.n_views, self.tile_shape = K, V, (th, tw)
        self.depth_scale = 1 << ds_log2
        self.file_size = size
        self._index_offset, self._meta_span, self._preview_size = ioff, (moff, mlen), (ph, pw)
        if pkind == 0:
            if poff or plen or praw or pcrc or pcodec or ph or pw:
                raise self._err("preview fields set without a preview")
            self._preview_rec = None
        else:
            if pkind != PREVIEW_KIND or pcodec != codecs.CODEC_ID["png"]:
                raise self._err(f"preview record at offset 88 has kind {pkind} codec {pcodec}, expected png")
            if not (1 <= ph <= MAX_PREVIEW_SIDE and 1 <= pw <= MAX_PREVIEW_SIDE) or praw != ph * pw * 4:
                raise self._err(f"preview size {pw}x{ph} / raw length {praw} at offset 88 is invalid")
            self._preview_rec = (poff, plen, pcrc)

        ibytes = self._pread(ioff, ilen)
        if _crc(ibytes) != icrc:
            raise self._err(f"index crc mismatch (index at offset {ioff})")
        index = np.frombuffer(ibytes, INDEX_DTYPE)
        self._check_index(index)
        self.index = index.reshape(K, V, len(kinds))

        mbytes = self._pread(moff, mlen)
        if _crc(mbytes) != mcrc:
            raise self._err(f"metadata crc mismatch (metadata at offset {moff})")
        meta = unpack_meta(mbytes)
        try:
            validate_meta(meta, K, V, (th, tw), self.depth_scale)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            # TypeError & co: a hostile map can put any type anywhere; the schema check is the net.
            raise self._err(f"metadata invalid: {e}") from None
        if meta["tiles"]["kinds"] != kinds:
            raise self._err(f"meta.tiles.kinds {meta['tiles']['kinds']} != header kinds {kinds}")
        self.meta = meta
        for ki, kind in enumerate(kinds):
            cid = self.index["codec"][:, :, ki]
            if (cid != codecs.CODEC_ID[meta["tiles"]["codecs"][kind]]).any():
                k, v = np.argwhere(cid != codecs.CODEC_ID[meta["tiles"]["codecs"][kind]])[0]
                raise self._err(f"tile ({k}, {v}, {kind}) codec id {cid[k, v]} != meta.tiles.codecs.{kind}")
        self.codecs = {k: meta["tiles"]["codecs"][k] for k in kinds}

    def _check_index(self, index: np.ndarray) -> None:
        """Chunks (preview first) must be non-empty, aligned, contiguous, non-overlapping, in bounds."""
        kinds, a = self.kinds, self.alignment
        nk = len(kinds)
        kind_ids = np.array([KIND_ID[k] for k in kinds], np.uint8)
        pos = np.arange(len(index))
        bad = np.flatnonzero(index["kind"] != kind_ids[pos % nk])
        if bad.size:
            raise self._err(f"index record {bad[0]} has kind {index['kind'][bad[0]]}, canonical order expects "
                            f"{kind_ids[bad[0] % nk]}")
        bad = np.flatnonzero(index["reserved"] != 0)
        if bad.size:
            raise self._err(f"index record {bad[0]} has non-zero reserved bytes")
        bad = np.flatnonzero((index["codec"] < 1) | (index["codec"] > len(codecs.CODECS)))
        if bad.size:
            raise self._err(f"index record {bad[0]} has unknown codec id {index['codec'][bad[0]]}")
        raw_want = np.array([_expected_raw(k, *self.kind_shape(k)) for k in kinds], np.int64)[pos % nk]
        bad = np.flatnonzero(index["raw_length"].astype(np.int64) != raw_want)
        if bad.size:
            raise self._err(f"index record {bad[0]} raw length {index['raw_length'][bad[0]]} != tile size {raw_want[bad[0]]}")
        offs = index["offset"].astype(np.uint64)
        lens = index["length"].astype(np.uint64)
        if self._preview_rec is not None:
            offs = np.concatenate([[np.uint64(self._preview_rec[0])], offs])
            lens = np.concatenate([[np.uint64(self._preview_rec[1])], lens])
        bad = np.flatnonzero((lens == 0) | (lens > MAX_CHUNK))
        if bad.size:
            raise self._err(f"chunk {bad[0]} length {lens[bad[0]]} outside 1..{MAX_CHUNK}")
        # Offsets are < 2**64 and lengths < 2**28, but the sum could still wrap: compare in uint64
        # only after bounding offsets by the file size.
        if (offs > np.uint64(self.file_size)).any():
            b = int(np.flatnonzero(offs > np.uint64(self.file_size))[0])
            raise self._err(f"chunk {b} offset {offs[b]} is past the end of the file")
        order = np.argsort(offs, kind="stable")
        so, sl = offs[order].astype(np.int64), lens[order].astype(np.int64)
        ends = so + sl
        expect = np.empty_like(so)
        expect[0] = _align(HEADER_SIZE, a)
        expect[1:] = (ends[:-1] + a - 1) // a * a
        bad = np.flatnonzero(so != expect)
        if bad.size:
            b = bad[0]
            raise self._err(f"chunk at offset {so[b]} (index {order[b]}) should start at {expect[b]}: chunks must "
                            f"be aligned to {a}, contiguous and non-overlapping")
        if self._preview_rec is not None and order[0] != 0:
            raise self._err("the preview must be the first chunk after the header")
        idx_off = _align(int(ends[-1]), a)
        if idx_off != self._index_offset:
            raise self._err(f"last chunk ends at {ends[-1]}, the index must follow it at offset {idx_off}")

    # -- tiles
    @property
    def depth_shape(self) -> tuple[int, int]:
        """(h, w) of the stored depth tiles: (ceil(H/s), ceil(W/s)) for depth_scale s (= tile_shape at s = 1).

        Sample (i, j) is the depth at full-resolution pixel (min(i*s + s//2, H-1), min(j*s + s//2, W-1))."""
        return depth_shape(self.tile_shape, self.depth_scale)

    def kind_shape(self, kind: str) -> tuple[int, int]:
        """(h, w) of the stored tiles of ``kind``: depth_shape for depth, tile_shape otherwise."""
        return self.depth_shape if kind == "depth" else self.tile_shape

    def _record(self, keyframe: int, view: int, kind: str):
        if kind not in self.kinds:
            raise KeyError(f"this file has no {kind!r} tiles (kinds: {self.kinds})")
        if not (0 <= keyframe < self.n_keyframes and 0 <= view < self.n_views):
            raise IndexError(f"tile ({keyframe}, {view}) outside {self.n_keyframes} keyframes x {self.n_views} views")
        return self.index[keyframe, view, self.kinds.index(kind)]

    def tile_encoded(self, keyframe: int, view: int, kind: str) -> tuple[str, bytes]:
        """(codec, encoded bytes) of one tile, crc checked."""
        rec = self._record(keyframe, view, kind)
        off, length = int(rec["offset"]), int(rec["length"])
        data = self._pread(off, length)
        if _crc(data) != int(rec["crc"]):
            raise self._err(f"crc mismatch in tile (keyframe {keyframe}, view {view}, {kind}) at offset {off}")
        return codecs.CODECS[int(rec["codec"]) - 1], data

    def tile(self, keyframe: int, view: int, kind: str) -> np.ndarray:
        """Decoded tile: color uint8 [H,W,3] premultiplied RGB, alpha uint8 [H,W], depth uint16
        ``depth_shape`` = [ceil(H/s), ceil(W/s)] (s = depth_scale; [H,W] when s = 1)."""
        codec, data = self.tile_encoded(keyframe, view, kind)
        shape = self.kind_shape(kind) + ((3,) if kind == "color" else ())
        try:
            return codecs.decode(data, codec, shape, KIND_DTYPE[kind])
        except codecs.CodecError as e:
            raise self._err(f"tile (keyframe {keyframe}, view {view}, {kind}): {e}") from None

    def preview(self) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 [h,w,3] premultiplied, alpha uint8 [h,w]); falls back to keyframe 0's middle view."""
        if self._preview_rec is None:
            v = self.n_views // 2
            rgb = self.tile(0, v, "color")
            alpha = self.tile(0, v, "alpha") if "alpha" in self.kinds else np.full(self.tile_shape, 255, np.uint8)
            return rgb, alpha
        off, length, crc = self._preview_rec
        data = self._pread(off, length)
        if _crc(data) != crc:
            raise self._err(f"crc mismatch in preview at offset {off}")
        ph, pw = self._preview_size
        try:
            rgba = codecs.decode(data, "png", (ph, pw, 4), np.uint8)
        except codecs.CodecError as e:
            raise self._err(f"preview: {e}") from None
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])

    def verify(self, decode: bool = True) -> list[str]:
        """Every crc, padding byte and (optionally) decode; one line per problem, [] when sound."""
        problems = []
        a = self.alignment
        spans = [(int(r["offset"]), int(r["length"])) for r in self.index.reshape(-1)]
        if self._preview_rec:
            spans.append(self._preview_rec[:2])
        spans.sort()
        prev_end = HEADER_SIZE
        for off, length in spans + [(self._index_offset, 0)]:
            if off > prev_end and self._pread(prev_end, off - prev_end).strip(b"\0"):
                problems.append(f"{self.path.name}: non-zero padding in [{prev_end}, {off})")
            prev_end = off + length
        if self._preview_rec:
            try:
                self.preview()
            except P4DFormatError as e:
                problems.append(str(e))
        for k in range(self.n_keyframes):
            for v in range(self.n_views):
                for kind in self.kinds:
                    try:
                        self.tile(k, v, kind) if decode else self.tile_encoded(k, v, kind)
                    except P4DFormatError as e:
                        problems.append(str(e))
        return problems

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> "P4DReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (f"P4DReader({str(self.path)!r}, keyframes={self.n_keyframes}, views={self.n_views}, "
                f"tile={self.tile_shape[1]}x{self.tile_shape[0]}, kinds={self.kinds}, depth_scale={self.depth_scale})")
