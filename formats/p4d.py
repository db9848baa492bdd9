"""The .p4d container v1.3: the spec in code. Constants, caps, the header table, the index record,
the depth-scale rule and the metadata schema; ``formats.writer`` and ``formats.reader`` build on it.

Layout (docs/p4d-format.md is the spec; all integers little-endian):
    [0, 128)          fixed header, field by field in ``HEADER_FIELDS``
    preview chunk     PNG RGBA, premultiplied RGB + alpha (optional), aligned
    tile chunks       one per (keyframe, view, kind), in write order, each aligned to ``alignment``;
                      depth tiles may be stored at 1/depth_scale resolution (``depth_shape``) and,
                      since v1.1, as 8-bit codes of the 16-bit depth (``depth_code``); since v1.2
                      normal tiles (octahedral codes, ``formats.lighting``) at 1/normal_scale; since
                      v1.3 a tile may be predicted: a difference to the previous keyframe's tile of
                      its view and kind (``predict_residual`` / ``apply_residual``), in chains of at
                      most ``tiles.chain`` tiles
    index             n_keyframes * n_views * n_kinds records of 24 bytes (``INDEX_DTYPE``), canonical order
    metadata          msgpack map, keys sorted; ends exactly at end of file
"""

from __future__ import annotations

import collections
import math
import struct
import zlib
from typing import Any, Iterable, NamedTuple

import msgpack
import numpy as np

MAGIC = b"\x89P4D\r\n\x1a\n"  # PNG-style: catches text-mode transfers and 7-bit truncation
VERSION = (1, 3)  # the newest this code reads and writes; a writer marks a file with the oldest minor it fits
HEADER_SIZE = 128
ALIGNMENT = 64  # chunks start on a cache line; small tiles do not pay page-size padding
KINDS = ("color", "alpha", "depth", "normal")  # a file stores them in this order
# Wire ids (index record kind; kind_mask bit): 3 is the preview's (header only), so normal is 4.
KIND_ID = {"color": 0, "alpha": 1, "depth": 2, "normal": 4}
ID_KIND = {i: k for k, i in KIND_ID.items()}
PREVIEW_KIND = 3
KIND_CODECS = {"color": ("jpeg", "webp", "png", "raw+zstd"),
               "alpha": ("png", "raw+zstd", "webp"),
               "depth": ("png", "raw+zstd", "webp"),  # webp (lossless): 8-bit depth only (v1.1)
               "normal": ("webp", "png", "raw+zstd")}  # lossless only (v1.2)
# A normal tile is RGB: two octahedral codes and a third channel that is 0 (webp and png have no
# two-channel colour; a constant channel costs a lossless coder next to nothing).
KIND_CHANNELS = {"color": 3, "alpha": 1, "depth": 1, "normal": 3}
KIND_DTYPE = {"color": np.dtype(np.uint8), "alpha": np.dtype(np.uint8), "depth": np.dtype(np.uint16),
              "normal": np.dtype(np.uint8)}

# Caps: every size and count a file declares is checked against these before it is used.
MAX_SIDE = 8192            # tile height/width
MAX_PREVIEW_SIDE = 2048    # preview height/width (a preview decodes to at most 16 MiB)
MAX_AXIS = 1 << 16         # keyframes, views
MAX_TILES = 1 << 21        # keyframes * views * kinds  (index <= 48 MiB)
MAX_CHUNK = 1 << 28        # bytes of one encoded chunk
MAX_META = 16 << 20        # bytes of msgpack metadata
MAX_ALIGNMENT = 1 << 16
DEPTH_SCALES = (1, 2, 4, 8)  # header stores log2: 0..3
DEPTH_BITS = (16, 8)  # bits per stored depth sample; 8 is v1.1 (meta tiles.depth_bits)
DEPTH_STEP8 = 258  # q units per 8-bit code: codes 1..255 span q 1..65533, the whole [near, far]
NORMAL_SCALES = (1, 2, 4, 8)  # normal tiles at 1/s resolution (meta tiles.normal_scale, v1.2)
N_SH = 9  # meta lighting.sh: order-2 real spherical harmonics of the captured light (v1.2)
# v1.3 chains: index record flag bit 0 = predicted from keyframe k - 1 (same view and kind);
# meta tiles.chain = N: keyframes k with k % N == 0 are never predicted, so decoding any tile
# takes at most N chunks. The cap keeps a hostile file from asking for long walks.
FLAG_PREDICTED = 1
MAX_CHAIN = 64


class P4DFormatError(ValueError):
    """A .p4d file (or part of it) is malformed; the message says what and where."""


# -------------------------------------------------------------------------------------- header

class HeaderField(NamedTuple):
    name: str
    code: str      # struct code of one little-endian value
    offset: int    # byte offset in the header
    meaning: str


def _layout(rows: Iterable[tuple[str, str, str]]) -> tuple[HeaderField, ...]:
    fields, offset = [], 0
    for name, code, meaning in rows:
        fields.append(HeaderField(name, code, offset, meaning))
        offset += struct.calcsize("<" + code)
    return tuple(fields)


# The one definition of the header: the writer packs it, the reader unpacks and checks it, error
# messages name its fields (``at``), the fuzzer mutates them, docs/p4d-format.md lists them (a
# test keeps the two equal). Offsets follow from the order and the codes (no padding).
HEADER_FIELDS = _layout((
    ("magic", "8s", "`89 50 34 44 0D 0A 1A 0A` (`\\x89P4D\\r\\n\\x1a\\n`)"),
    ("major", "H", "version major = 1 (a reader rejects another major)"),
    ("minor", "H", "version minor = 3 (the oldest minor whose features the file uses: 0, 1, 2 or 3; a reader"
     " opens all four)"),
    ("header_size", "I", "= 128"),
    ("alignment", "I", "alignment A: power of two, 8..65536 (writer: 64)"),
    ("kind_mask", "I", "bit 0 color (required), bit 1 alpha, bit 2 depth, bit 4 normal (v1.2); other bits 0"),
    ("n_keyframes", "I", "K = keyframes (1..65536)"),
    ("n_views", "I", "V = views (1..65536)"),
    ("tile_h", "I", "tile height H (1..8192)"),
    ("tile_w", "I", "tile width W (1..8192)"),
    ("file_size", "Q", "file size"),
    ("index_offset", "Q", "index offset"),
    ("index_length", "Q", "index length (= N × 24)"),
    ("meta_offset", "Q", "metadata offset (= index offset + index length)"),
    ("meta_length", "I", "metadata length (1..16 MiB)"),
    ("meta_crc", "I", "metadata crc"),
    ("index_crc", "I", "index crc"),
    ("depth_scale_log2", "I", "0..3, depth tiles stored at 1/2^n resolution (see Depth tiles); 0 when the file has no"
     " depth"),
    ("preview_offset", "Q", "preview record, same layout as an index record (kind = 3, codec = png), or all zero:"
     " chunk offset"),
    ("preview_length", "I", "preview chunk length"),
    ("preview_raw", "I", "preview raw length (= h × w × 4)"),
    ("preview_crc", "I", "crc of the preview chunk"),
    ("preview_codec", "B", "preview codec (2 = png)"),
    ("preview_kind", "B", "preview kind (3)"),
    ("preview_reserved", "H", "reserved = 0"),
    ("preview_h", "I", "preview height (1..2048; 0 when no preview)"),
    ("preview_w", "I", "preview width (1..2048; 0 when no preview)"),
    ("reserved", "I", "reserved = 0"),
    ("header_crc", "I", "crc of bytes [0, 124)"),
))
HEADER_FIELD = {f.name: f for f in HEADER_FIELDS}
HEADER_STRUCT = struct.Struct("<" + "".join(f.code for f in HEADER_FIELDS))
Header = collections.namedtuple("Header", [f.name for f in HEADER_FIELDS])
# Everything before the crc field is covered by it; a layout that breaks these is a programming
# error caught at import, also under `python -O`.
_CRC_SPAN = HEADER_FIELD["header_crc"].offset
if HEADER_STRUCT.size != HEADER_SIZE or _CRC_SPAN != HEADER_SIZE - 4:
    raise ImportError(f"HEADER_FIELDS pack to {HEADER_STRUCT.size} bytes with the crc at {_CRC_SPAN}; "
                      f"the format needs {HEADER_SIZE} with the crc last")

INDEX_DTYPE = np.dtype([("offset", "<u8"), ("length", "<u4"), ("raw_length", "<u4"), ("crc", "<u4"),
                        ("codec", "u1"), ("kind", "u1"), ("flags", "<u2")])  # flags: reserved = 0 before v1.3
if INDEX_DTYPE.itemsize != 24:
    raise ImportError(f"INDEX_DTYPE is {INDEX_DTYPE.itemsize} bytes, the format needs 24")


def at(name: str) -> str:
    """'header <name> (offset N)': how error messages point at a header field."""
    return f"header {name} (offset {HEADER_FIELD[name].offset})"


def pack_header(**values: int | bytes) -> bytes:
    """Every header field but ``header_crc``, by name -> the 128 header bytes, crc filled in."""
    names = [f.name for f in HEADER_FIELDS[:-1]]
    missing, unknown = set(names) - set(values), set(values) - set(names)
    if missing or unknown:
        raise TypeError(f"pack_header needs exactly the fields {names}; missing {sorted(missing)}, "
                        f"unknown {sorted(unknown)}")
    raw = HEADER_STRUCT.pack(*(values[n] for n in names), 0)
    return raw[:_CRC_SPAN] + struct.pack("<I", header_crc(raw))


def unpack_header(raw: bytes) -> Header:
    """The header's first 128 bytes -> its fields by name (no checks; see ``P4DReader``)."""
    if len(raw) < HEADER_SIZE:
        raise ValueError(f"a header is {HEADER_SIZE} bytes, got {len(raw)}")
    return Header._make(HEADER_STRUCT.unpack_from(raw))


def header_crc(raw: bytes) -> int:
    """The crc a header with these bytes must carry in ``header_crc``."""
    return crc32(memoryview(raw)[:_CRC_SPAN])


def align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def crc32(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def kind_mask(kinds: Iterable[str]) -> int:
    return sum(1 << KIND_ID[k] for k in kinds)


def kind_shape(kind: str, tile_shape: tuple[int, int], depth_scale: int = 1,
               normal_scale: int = 1) -> tuple[int, int]:
    """(h, w) of the stored tiles of ``kind``: depth and normal tiles at their scales, the rest at
    the tile size."""
    if kind == "depth":
        return depth_shape(tile_shape, depth_scale)
    if kind == "normal":
        return depth_shape(tile_shape, normal_scale)
    return tuple(tile_shape)


def mask_kinds(mask: int) -> list[str]:
    return [k for k in KINDS if mask >> KIND_ID[k] & 1]


KNOWN_KIND_BITS = kind_mask(KINDS)  # 0b10111: bit 3 (the preview's id) is never a tile kind


def expected_raw_length(kind: str, h: int, w: int, depth_bits: int = 16) -> int:
    """Decoded bytes of an h x w tile of ``kind`` (the index record's raw length); depth samples
    are ``depth_bits`` wide."""
    if kind == "depth":
        return h * w * depth_bits // 8
    return h * w * KIND_CHANNELS[kind] * KIND_DTYPE[kind].itemsize


# ---------------------------------------------------------------------------------- depth codes

def _bits(depth_bits: int) -> int:
    if isinstance(depth_bits, bool) or depth_bits not in DEPTH_BITS:
        raise ValueError(f"depth_bits must be one of {DEPTH_BITS}, got {depth_bits!r}")
    return int(depth_bits)


def depth_code(q: np.ndarray, depth_bits: int) -> np.ndarray:
    """Depth q (uint16, 0 = empty, 1..65535 over [near, far]) -> the stored samples: q itself at
    16 bits; at 8 bits (v1.1) n = 0 for empty, else round((q - 1) / 258) + 1 (1..255), a step of
    (far - near) / 254 (2.4 mm on the bake's 0.6 m range: RMS error step / sqrt(12) = 0.7 mm).

    >>> depth_code(np.array([0, 1, 130, 65535], np.uint16), 8).tolist()
    [0, 1, 2, 255]
    """
    q = np.asarray(q)
    if _bits(depth_bits) == 16:
        return q
    n = (q.astype(np.int64) - 1 + DEPTH_STEP8 // 2) // DEPTH_STEP8 + 1  # round half up, in integers
    return np.where(q > 0, np.minimum(n, 255), 0).astype(np.uint8)


def depth_decode(n: np.ndarray, depth_bits: int) -> np.ndarray:
    """Stored depth samples -> q (uint16): q = 1 + (n - 1) * 258 for 8-bit n > 0 (the spec's rule).

    >>> depth_decode(np.array([0, 1, 2, 255], np.uint8), 8).tolist()
    [0, 1, 259, 65533]
    """
    n = np.asarray(n)
    if _bits(depth_bits) == 16:
        return n
    return np.where(n > 0, 1 + (n.astype(np.int64) - 1) * DEPTH_STEP8, 0).astype(np.uint16)


# ----------------------------------------------------------------------------- chains (v1.3)

LOSSY_CODECS = ("jpeg", "webp")  # for colour; alpha, depth and normal webp are lossless


def residual_lossy(kind: str, codec: str) -> bool:
    """Whether predicted tiles of ``kind`` in ``codec`` take the lossy rule (clamped difference
    around 128; a modular one would turn a small coding error at 0 or 255 into a 255-level one)."""
    return kind == "color" and codec in LOSSY_CODECS


def predict_residual(x: np.ndarray, prev: np.ndarray, lossy: bool) -> np.ndarray:
    """What a predicted tile stores: lossy (colour in jpeg/webp) x - prev + 128 clipped to 0..255;
    lossless x - prev modulo 2^bits of its samples. ``prev`` is the previous keyframe's tile as a
    reader decodes it (closed loop: a lossy coder's error does not pile up along a chain).

    >>> predict_residual(np.array([0, 100, 255], np.uint8), np.array([200, 90, 0], np.uint8), True).tolist()
    [0, 138, 255]
    >>> predict_residual(np.array([3, 250], np.uint8), np.array([5, 0], np.uint8), False).tolist()
    [254, 250]
    """
    x, prev = np.asarray(x), np.asarray(prev)
    if x.shape != prev.shape or x.dtype != prev.dtype:
        raise ValueError(f"a tile {x.dtype}{x.shape} cannot be predicted from {prev.dtype}{prev.shape}")
    if lossy:
        return np.clip(x.astype(np.int16) - prev + 128, 0, 255).astype(np.uint8)
    return np.subtract(x, prev, dtype=x.dtype)  # unsigned: wraps modulo 2^bits


def apply_residual(prev: np.ndarray, residual: np.ndarray, lossy: bool) -> np.ndarray:
    """The tile a predicted record stands for: lossy prev + residual - 128 clipped to 0..255;
    lossless prev + residual modulo 2^bits (exact: inverts ``predict_residual``).

    >>> apply_residual(np.array([200, 90, 0], np.uint8), np.array([0, 138, 255], np.uint8), True).tolist()
    [72, 100, 127]
    """
    prev, residual = np.asarray(prev), np.asarray(residual)
    if lossy:
        return np.clip(prev.astype(np.int16) + residual - 128, 0, 255).astype(np.uint8)
    return np.add(prev, residual, dtype=prev.dtype)


def chain_start(keyframe: int, chain: int) -> int:
    """The first keyframe of the chain holding ``keyframe``: no tile of it is predicted."""
    return keyframe - keyframe % chain


# ---------------------------------------------------------------------------------- depth scale

def _scale(depth_scale: int) -> int:
    # bool is an int: True would pass as scale 1 and hide a mixed-up argument
    if isinstance(depth_scale, bool) or depth_scale not in DEPTH_SCALES:
        raise ValueError(f"depth_scale must be one of {DEPTH_SCALES}, got {depth_scale!r}")
    return int(depth_scale)


def depth_shape(tile_shape: tuple[int, int], depth_scale: int) -> tuple[int, int]:
    """(H, W) tile -> (ceil(H/s), ceil(W/s)): the stored depth tile's shape."""
    h, w = tile_shape
    s = _scale(depth_scale)
    return (-(-h // s), -(-w // s))


def depth_sample_index(n: int, depth_scale: int) -> np.ndarray:
    """Full-resolution row (or column) of each stored depth sample along an axis of n pixels:
    min(i*s + s//2, n-1) for i in 0..ceil(n/s)-1 (int64 [ceil(n/s)])."""
    s = _scale(depth_scale)
    return np.minimum(np.arange(-(-n // s), dtype=np.int64) * s + s // 2, n - 1)


def downscale_depth(depth: np.ndarray, depth_scale: int) -> np.ndarray:
    """Full-resolution depth [H,W] -> stored depth [ceil(H/s), ceil(W/s)] by point sampling (spec rule).

    Point samples, not block means: a mean across a silhouette edge invents a depth between the
    face and the empty background (0) that belongs to neither. Equals depth[s//2::s, s//2::s] when
    s divides H and W; otherwise the last row/column samples the tile's last pixel (clamped).
    """
    depth_scale = _scale(depth_scale)
    depth = np.asarray(depth)
    if depth_scale == 1:
        return depth
    h, w = depth.shape[:2]
    return np.ascontiguousarray(depth[np.ix_(depth_sample_index(h, depth_scale), depth_sample_index(w, depth_scale))])


def upsample_depth_nearest(depth: np.ndarray, depth_scale: int, tile_shape: tuple[int, int]) -> np.ndarray:
    """Stored depth [ceil(H/s), ceil(W/s)] -> [H,W]: pixel (y, x) takes sample (y//s, x//s) (its s x s block)."""
    h, w = tile_shape
    s = _scale(depth_scale)
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


def _validate_lighting(c: "_Check", meta: dict, kinds: list, minor: int | None) -> None:
    """v1.2: normal tiles, tiles.normal_scale and lighting come together or not at all."""
    has_normal = "normal" in kinds
    ns = c.type(meta["tiles"]["normal_scale"], int, "tiles.normal_scale") if "normal_scale" in meta["tiles"] else None
    if ns is not None and ns not in NORMAL_SCALES:
        raise ValueError(f"meta.tiles.normal_scale must be one of {NORMAL_SCALES}, got {ns}")
    if (ns is not None or "lighting" in meta) and not has_normal:
        raise ValueError("meta.tiles.normal_scale / meta.lighting are set but the file has no normal tiles")
    if not has_normal:
        return
    if minor is not None and minor < 2:
        raise ValueError(f"normal tiles are format 1.2, the header says 1.{minor}")
    if ns is None:
        raise ValueError("meta.tiles.normal_scale is missing (a file with normal tiles must state it)")
    sh = c.floats(c.get("lighting.sh", list), "lighting.sh", N_SH)
    if not sh[0] > 0:
        raise ValueError(f"meta.lighting.sh[0] (the mean light) must be > 0, got {sh[0]}")
    key = c.floats(c.get("lighting.key", list), "lighting.key", 4)
    if not (-180 <= key[0] <= 180 and -90 <= key[1] <= 90 and key[2] >= 0 and 0 <= key[3] <= 1):
        raise ValueError(f"meta.lighting.key must be [yaw in -180..180, pitch in -90..90, amount >= 0, wrap in 0..1], "
                         f"got {key}")


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
                  depth_scale: int | None = None, minor: int | None = None) -> tuple[int, int, list[str]]:
    """Check ``meta`` against the v1.3 schema; returns (n_keyframes, n_views, kinds). Raises ValueError.

    When the counts / tile shape / depth scale / minor version are given (the reader knows them
    from the header) they must agree; a 1.0 file must not use what 1.1 added (tiles.depth_bits 8),
    nor a 1.0 or 1.1 file what 1.2 added (normal tiles, tiles.normal_scale, lighting), nor an
    older file what 1.3 added (tiles.chain).
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
        raise ValueError(f"meta.tiles.kinds must list 'color' and optionally 'alpha', 'depth', 'normal' in "
                         f"that order, got {kinds!r:.80}")
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
    bits = c.type(meta["tiles"]["depth_bits"], int, "tiles.depth_bits") if "depth_bits" in meta["tiles"] else 16
    if bits not in DEPTH_BITS:
        raise ValueError(f"meta.tiles.depth_bits must be one of {DEPTH_BITS}, got {bits}")
    if bits != 16 and "depth" not in kinds:
        raise ValueError(f"meta.tiles.depth_bits is {bits} but the file has no depth tiles (must be 16 or absent)")
    if bits != 16 and minor is not None and minor < 1:
        raise ValueError(f"meta.tiles.depth_bits {bits} is format 1.1, the header says 1.{minor}")
    if bits == 16 and cod.get("depth") == "webp":
        raise ValueError("meta.tiles.codecs.depth is webp, which stores 8-bit depth only (tiles.depth_bits 8)")
    _validate_lighting(c, meta, kinds, minor)
    if "chain" in meta["tiles"]:
        ch = c.type(meta["tiles"]["chain"], int, "tiles.chain")
        if not 2 <= ch <= MAX_CHAIN:
            raise ValueError(f"meta.tiles.chain must be in 2..{MAX_CHAIN}, got {ch}")
        if minor is not None and minor < 3:
            raise ValueError(f"meta.tiles.chain is format 1.3, the header says 1.{minor}")

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
