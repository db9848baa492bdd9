"""Tile codecs of the .p4d container and the depth quantiser.

Every decoder here treats its input as hostile: it reads the image or zstd frame header itself and
checks the declared size against what the caller expects BEFORE handing the bytes to opencv or
zstd, so a 60000x60000 PNG or a zstd bomb never allocates more than the expected tile.

Arrays are RGB (not opencv's BGR), C-contiguous, shapes:
    color  uint8  [H, W, 3]      alpha uint8 [H, W]      depth uint16 [H, W]      rgba uint8 [H, W, 4]
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import zstandard

CODECS = ("raw+zstd", "png", "jpeg", "webp")  # wire codes 1..4 (0 is invalid)
CODEC_ID = {name: i + 1 for i, name in enumerate(CODECS)}
LOSSY = ("jpeg", "webp")
DEFAULT_QUALITY = {"jpeg": 90, "webp": 90, "png": 3, "raw+zstd": 3}
WEBP_LOSSLESS = 101  # opencv: webp quality > 100 means lossless


class CodecError(ValueError):
    """Bytes that do not decode to the expected tile (the container wraps it in P4DFormatError)."""


# ---------------------------------------------------------------------------------------- depth

def quantize_depth(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """float32 metres [H, W] (0 = empty) -> uint16 [H, W]: 0 = empty, 1..65535 linear over [near, far].

    Depths outside [near, far] clip to the ends; non-finite or <= 0 depths mean empty.
    >>> quantize_depth(np.array([0.0, 0.5, 1.0, 2.0], np.float32), 0.5, 1.0).tolist()
    [0, 1, 65535, 65535]
    """
    if not (np.isfinite(near) and np.isfinite(far) and 0 < near < far):
        raise ValueError(f"depth range needs 0 < near < far, got near={near} far={far}")
    d = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    t = (np.where(valid, d, near) - near) / (far - near)
    q = np.rint(1.0 + np.clip(t, 0.0, 1.0) * 65534.0)
    return np.where(valid, q, 0).astype(np.uint16)


def dequantize_depth(q: np.ndarray, near: float, far: float) -> np.ndarray:
    """uint16 [H, W] -> float32 metres [H, W], 0 where q == 0. Step = (far - near) / 65534."""
    q = np.asarray(q)
    d = near + (q.astype(np.float64) - 1.0) * ((far - near) / 65534.0)
    return np.where(q > 0, d, 0.0).astype(np.float32)


# ------------------------------------------------------------------------------------- encoding

def _to_cv(array: np.ndarray) -> np.ndarray:
    # opencv wants BGR / BGRA; tiles are RGB / RGBA.
    if array.ndim == 3 and array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    return array


def _from_cv(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    return array


def encode(array: np.ndarray, codec: str, quality: int | None = None) -> bytes:
    """Encode one tile. array: uint8 [H,W], [H,W,3], [H,W,4] or uint16 [H,W] (png / raw+zstd only).

    quality: jpeg/webp 1..100 (webp 101 = lossless), png compression 0..9, zstd level 1..19.
    Deterministic: the same array and settings give the same bytes.
    """
    array = np.ascontiguousarray(array)
    if codec not in CODEC_ID:
        raise ValueError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    q = DEFAULT_QUALITY[codec] if quality is None else int(quality)
    if codec == "raw+zstd":
        if not 1 <= q <= 19:
            raise ValueError(f"raw+zstd level must be 1..19, got {q}")
        # Content size in the frame lets the reader check it against the index before inflating.
        cctx = zstandard.ZstdCompressor(level=q, write_content_size=True, write_checksum=False)
        return cctx.compress(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    if codec in LOSSY and array.dtype != np.uint8:
        raise ValueError(f"{codec} stores 8-bit images only, got {array.dtype}; use png or raw+zstd")
    if codec == "png":
        if not 0 <= q <= 9:
            raise ValueError(f"png compression must be 0..9, got {q}")
        params = [cv2.IMWRITE_PNG_COMPRESSION, q]
        ext = ".png"
    elif codec == "jpeg":
        if not 1 <= q <= 100:
            raise ValueError(f"jpeg quality must be 1..100, got {q}")
        if array.ndim == 3 and array.shape[2] == 4:
            raise ValueError("jpeg has no alpha channel; store alpha as its own tile")
        params = [cv2.IMWRITE_JPEG_QUALITY, q]
        ext = ".jpg"
    else:
        if not 1 <= q <= WEBP_LOSSLESS:
            raise ValueError(f"webp quality must be 1..100 (101 = lossless), got {q}")
        params = [cv2.IMWRITE_WEBP_QUALITY, q]
        ext = ".webp"
    ok, buf = cv2.imencode(ext, _to_cv(array), params)
    if not ok:
        raise ValueError(f"opencv could not encode a {array.dtype} {array.shape} tile as {codec}")
    return buf.tobytes()


# ---------------------------------------------------------------------------- header sniffing

def _png_info(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit_depth, colour_type) from the IHDR chunk."""
    if len(data) < 33 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise CodecError("not a PNG stream (bad signature or missing IHDR)")
    w, h, bits, ctype = struct.unpack(">IIBB", data[16:26])
    return w, h, bits, ctype


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_info(data: bytes) -> tuple[int, int, int]:
    """(width, height, components) from the first SOF marker; walks segment headers only."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        raise CodecError("not a JPEG stream (no SOI marker)")
    pos, n = 2, len(data)
    for _ in range(4096):  # bounded walk: a real header has a few dozen segments
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 4 > n or data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        seglen = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in _JPEG_SOF:
            if pos + 10 > n or seglen < 8:
                break
            h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
            return w, h, data[pos + 9]
        if marker in (0xD9, 0xDA) or seglen < 2:
            break  # end of image or start of scan before any frame header
        pos += 2 + seglen
    raise CodecError("JPEG stream has no readable frame header (SOF)")


def _webp_info(data: bytes) -> tuple[int, int]:
    """(width, height) from the RIFF/WEBP first chunk (VP8, VP8L or VP8X)."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise CodecError("not a WebP stream (bad RIFF/WEBP header)")
    riff_size = struct.unpack("<I", data[4:8])[0]
    if riff_size + 8 != len(data):
        raise CodecError(f"WebP RIFF size {riff_size + 8} != stream length {len(data)}")
    fourcc = data[12:16]
    if fourcc == b"VP8X":
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
    elif fourcc == b"VP8L":
        if data[20] != 0x2F:
            raise CodecError("WebP VP8L chunk has a bad signature")
        bits = int.from_bytes(data[21:25], "little")
        w, h = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif fourcc == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise CodecError("WebP VP8 chunk has a bad start code")
        w = int.from_bytes(data[26:28], "little") & 0x3FFF
        h = int.from_bytes(data[28:30], "little") & 0x3FFF
    else:
        raise CodecError(f"WebP stream starts with unknown chunk {fourcc!r}")
    return w, h


def _zstd_frame_length(data: bytes) -> int:
    """Byte length of the single zstd frame at the start of ``data`` (walks block headers)."""
    try:
        pos = zstandard.frame_header_size(data)
    except zstandard.ZstdError as e:
        raise CodecError(f"bad zstd frame header ({e})") from None
    checksum = bool(data[4] & 0x04)
    n = len(data)
    while True:
        if pos + 3 > n:
            raise CodecError("zstd frame is truncated inside its block headers")
        bh = int.from_bytes(data[pos:pos + 3], "little")
        last, btype, bsize = bh & 1, (bh >> 1) & 3, bh >> 3
        if btype == 3:
            raise CodecError("zstd frame has a reserved block type")
        pos += 3 + (1 if btype == 1 else bsize)
        if last:
            break
    return pos + (4 if checksum else 0)


# ------------------------------------------------------------------------------------- decoding

def decode(data: bytes, codec: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Decode one tile and insist it has exactly ``shape`` and ``dtype``; else CodecError.

    The declared image / frame size is checked before any pixel is decoded.
    """
    dtype = np.dtype(dtype)
    h, w = shape[0], shape[1]
    ch = shape[2] if len(shape) == 3 else 1
    if codec == "raw+zstd":
        raw = h * w * ch * dtype.itemsize
        try:
            declared = zstandard.frame_content_size(data)
        except zstandard.ZstdError as e:
            raise CodecError(f"bad zstd frame header ({e})") from None
        if declared != raw:
            # -1 = size not declared: refuse, zstandard would then inflate with no bound we trust.
            raise CodecError(f"zstd frame declares {declared} bytes, the tile needs {raw}")
        if _zstd_frame_length(data) != len(data):
            raise CodecError("zstd chunk has bytes after its frame")
        try:
            out = zstandard.ZstdDecompressor().decompress(data, max_output_size=raw)
        except zstandard.ZstdError as e:
            raise CodecError(f"zstd data is corrupt ({e})") from None
        if len(out) != raw:
            raise CodecError(f"zstd frame inflated to {len(out)} bytes, the tile needs {raw}")
        return np.frombuffer(out, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)

    if codec == "png":
        pw, ph, bits, ctype = _png_info(data)
        want_bits = 16 if dtype == np.uint16 else 8
        want_type = {1: 0, 3: 2, 4: 6}[ch]
        if (pw, ph) != (w, h) or bits != want_bits or ctype != want_type:
            raise CodecError(f"PNG is {pw}x{ph} {bits}-bit type {ctype}, the tile needs "
                             f"{w}x{h} {want_bits}-bit type {want_type}")
        flag = cv2.IMREAD_UNCHANGED
    elif codec == "jpeg":
        jw, jh, comps = _jpeg_info(data)
        if (jw, jh) != (w, h) or comps != (3 if ch == 3 else 1) or dtype != np.uint8:
            raise CodecError(f"JPEG is {jw}x{jh} with {comps} components, the tile needs {w}x{h}x{ch} uint8")
        flag = cv2.IMREAD_COLOR if ch == 3 else cv2.IMREAD_GRAYSCALE
    elif codec == "webp":
        ww, wh = _webp_info(data)
        if (ww, wh) != (w, h) or dtype != np.uint8:
            raise CodecError(f"WebP is {ww}x{wh}, the tile needs {w}x{h} uint8")
        flag = {1: cv2.IMREAD_GRAYSCALE, 3: cv2.IMREAD_COLOR, 4: cv2.IMREAD_UNCHANGED}[ch]
    else:
        raise CodecError(f"unknown codec {codec!r}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        raise CodecError(f"{codec} data is corrupt (opencv could not decode it)")
    img = _from_cv(img)
    if img.shape != tuple(shape) or img.dtype != dtype:
        raise CodecError(f"{codec} decoded to {img.dtype} {img.shape}, the tile needs {dtype} {tuple(shape)}")
    return np.ascontiguousarray(img)
