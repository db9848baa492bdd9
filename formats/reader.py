"""The hostile-input-safe .p4d reader: opening costs O(header + index + metadata), every tile is
one positioned read, and everything a file declares is checked (against ``formats.p4d``, the
spec in code) before it is used.
"""

from __future__ import annotations

import os
import pathlib
import threading

import numpy as np

from formats import codecs
from formats.p4d import (FLAG_PREDICTED, HEADER_SIZE, INDEX_DTYPE, KIND_DTYPE, KIND_ID, KNOWN_KIND_BITS, MAGIC,
                         MAX_ALIGNMENT, MAX_AXIS, MAX_CHUNK, MAX_META, MAX_PREVIEW_SIDE, MAX_SIDE, MAX_TILES,
                         PREVIEW_KIND, VERSION, P4DFormatError, align_up, apply_residual, at, crc32, depth_decode,
                         depth_shape, expected_raw_length, header_crc, kind_shape, mask_kinds, unpack_header,
                         residual_lossy, unpack_meta, validate_meta)

__all__ = ["P4DReader"]


class P4DReader:
    """Open a .p4d in O(header + index + metadata); every tile fetch is one positioned read.

    Thread-safe: reads use os.pread on a shared descriptor (no shared file position).
    Everything a file declares is checked before use; any problem raises P4DFormatError.

    Chained files (v1.3): ``tile`` walks back to the chain's intra tile (at most ``chain`` chunks)
    and keeps the ``CHAIN_MEMO`` most recently used decoded tiles of each (view, kind), so playing
    a view forward decodes one chunk per keyframe, also while a player's streams (the main one, a
    fading one, jump targets decoded ahead) interleave; ``decodes`` counts the chunks decoded.
    """

    # Decoded tiles kept per (view, kind) of a chained file: one per stream a player advances in a
    # view at once (main, fading, the jump targets it decodes ahead). At 256² with normals ~0.3 MB
    # a (keyframe, view), so 8 x the ~8 views a player touches is ~20 MB (~80 MB at 512²). 8
    # rather than 4: bench/chain_bench.py on the 20 s synthetic head, chunks decoded per frame as
    # played 8.4 -> 7.0 (the file coded whole: 4.8).
    CHAIN_MEMO = 8

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.bytes_read = 0  # how much of the file this reader has read (for the O(metadata) claim)
        self.decodes = 0  # chunks decoded (a chained tile costs the chunks back to its chain's start)
        self._memo: dict[tuple[int, str], tuple] = {}  # (view, kind) -> ((keyframe, tile), ...) newest last
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
        if raw[:len(MAGIC)] != MAGIC:
            raise self._err(f"not a .p4d file (bad magic: {at('magic')} is {raw[:len(MAGIC)]!r})")
        h = unpack_header(raw)
        if h.major != VERSION[0]:
            raise self._err(f"format version {h.major}.{h.minor} is not supported (this reader reads "
                            f"{VERSION[0]}.x; {at('major')})")
        if header_crc(raw) != h.header_crc:
            raise self._err(f"header crc mismatch: {at('header_crc')} = {h.header_crc:#010x}, the header "
                            f"bytes give {header_crc(raw):#010x} (header corrupt)")
        if h.header_size != HEADER_SIZE:
            raise self._err(f"{at('header_size')} = {h.header_size}, expected {HEADER_SIZE}")
        align = h.alignment
        if not (8 <= align <= MAX_ALIGNMENT and align & (align - 1) == 0):
            raise self._err(f"{at('alignment')} = {align} is not a power of two in [8, {MAX_ALIGNMENT}]")
        kinds = mask_kinds(h.kind_mask)
        if h.kind_mask & ~KNOWN_KIND_BITS or "color" not in kinds:
            raise self._err(f"{at('kind_mask')} = {h.kind_mask:#x} is invalid (needs color; bits 0-2 and 4 only)")
        K, V, th, tw = h.n_keyframes, h.n_views, h.tile_h, h.tile_w
        for name, value in (("n_keyframes", K), ("n_views", V)):
            if not 1 <= value <= MAX_AXIS:
                raise self._err(f"{at(name)} = {value} is outside 1..{MAX_AXIS}")
        n = K * V * len(kinds)
        if n > MAX_TILES:
            raise self._err(f"{at('n_keyframes')} x {at('n_views')} x {len(kinds)} kinds = {n} tiles exceeds "
                            f"the cap {MAX_TILES}")
        for name, value in (("tile_h", th), ("tile_w", tw)):
            if not 1 <= value <= MAX_SIDE:
                raise self._err(f"{at(name)} = {value} is outside 1..{MAX_SIDE}")
        if h.file_size != size:
            raise self._err(f"{at('file_size')} = {h.file_size}, the file has {size} bytes "
                            f"({'truncated' if size < h.file_size else 'trailing bytes'})")
        for name in ("preview_reserved", "reserved"):
            if getattr(h, name):
                raise self._err(f"{at(name)} = {getattr(h, name)}, reserved fields must be zero")
        if h.depth_scale_log2 > 3 or (h.depth_scale_log2 and "depth" not in kinds):
            raise self._err(f"{at('depth_scale_log2')} = {h.depth_scale_log2} is invalid (0..3, and 0 without "
                            f"depth tiles)")
        ioff, ilen, moff, mlen = h.index_offset, h.index_length, h.meta_offset, h.meta_length
        if ilen != n * INDEX_DTYPE.itemsize:
            raise self._err(f"{at('index_length')} = {ilen}, expected {n} records x {INDEX_DTYPE.itemsize}")
        if not 0 < mlen <= MAX_META:
            raise self._err(f"{at('meta_length')} = {mlen} is outside 1..{MAX_META}")
        # Python ints cannot overflow; the equalities below pin every section end to the file size.
        if ioff % align or ioff < HEADER_SIZE:
            raise self._err(f"{at('index_offset')} = {ioff} is out of place: the index starts after the header "
                            f"on a multiple of the alignment {align}")
        if moff != ioff + ilen:
            raise self._err(f"{at('meta_offset')} = {moff} is out of place: the metadata starts right after the "
                            f"index, at {ioff + ilen}")
        if moff + mlen != size:
            raise self._err(f"{at('meta_offset')} + meta_length = {moff + mlen} is out of place: the metadata "
                            f"ends the file, at {size}")
        self.alignment, self.kinds = align, kinds
        self.version = (h.major, h.minor)
        self.n_keyframes, self.n_views, self.tile_shape = K, V, (th, tw)
        self.depth_scale = 1 << h.depth_scale_log2
        self.normal_scale = 1  # the metadata says (v1.2); _check_index leaves normal raw lengths to it
        self.file_size = size
        self._index_offset, self._meta_span, self._preview_size = ioff, (moff, mlen), (h.preview_h, h.preview_w)
        preview_fields = ("preview_offset", "preview_length", "preview_raw", "preview_crc", "preview_codec",
                          "preview_h", "preview_w")
        if h.preview_kind == 0:
            for name in preview_fields:
                if getattr(h, name):
                    raise self._err(f"{at(name)} = {getattr(h, name)} is set without a preview (preview_kind 0)")
            self._preview_rec = None
        else:
            if h.preview_kind != PREVIEW_KIND or h.preview_codec != codecs.CODEC_ID["png"]:
                raise self._err(f"{at('preview_kind')} = {h.preview_kind} with preview_codec {h.preview_codec}, "
                                f"expected kind {PREVIEW_KIND} with codec {codecs.CODEC_ID['png']} (png)")
            ph, pw = h.preview_h, h.preview_w
            for name, value in (("preview_h", ph), ("preview_w", pw)):
                if not 1 <= value <= MAX_PREVIEW_SIDE:
                    raise self._err(f"{at(name)} = {value} is outside 1..{MAX_PREVIEW_SIDE}")
            if h.preview_raw != ph * pw * 4:
                raise self._err(f"{at('preview_raw')} = {h.preview_raw}, a {pw}x{ph} RGBA preview is {ph * pw * 4}")
            self._preview_rec = (h.preview_offset, h.preview_length, h.preview_crc)

        ibytes = self._pread(ioff, ilen)
        if crc32(ibytes) != h.index_crc:
            raise self._err(f"index crc mismatch (index at offset {ioff}, {at('index_crc')})")
        index = np.frombuffer(ibytes, INDEX_DTYPE)
        self._check_index(index)
        self.index = index.reshape(K, V, len(kinds))

        mbytes = self._pread(moff, mlen)
        if crc32(mbytes) != h.meta_crc:
            raise self._err(f"metadata crc mismatch (metadata at offset {moff}, {at('meta_crc')})")
        try:
            meta = unpack_meta(mbytes)
        except P4DFormatError as e:
            raise self._err(str(e)) from None
        try:
            validate_meta(meta, K, V, (th, tw), self.depth_scale, h.minor)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            # TypeError & co: a hostile map can put any type anywhere; the schema check is the net.
            raise self._err(f"metadata invalid: {e}") from None
        if meta["tiles"]["kinds"] != kinds:
            raise self._err(f"meta.tiles.kinds {meta['tiles']['kinds']} != header kinds {kinds}")
        self.meta = meta
        self.depth_bits = int(meta["tiles"].get("depth_bits", 16))
        if "depth" in kinds:  # _check_index let depth records be 8- or 16-bit; the metadata says which
            di = kinds.index("depth")
            want = expected_raw_length("depth", *self.depth_shape, self.depth_bits)
            raw = self.index["raw_length"][:, :, di]
            if (raw != want).any():
                k, v = np.argwhere(raw != want)[0]
                raise self._err(f"index record {(k * V + v) * len(kinds) + di} raw length {raw[k, v]} != tile size "
                                f"{want} ({self.depth_bits}-bit depth, meta.tiles.depth_bits)")
        for ki, kind in enumerate(kinds):
            want = codecs.CODEC_ID[meta["tiles"]["codecs"][kind]]
            cid = self.index["codec"][:, :, ki]
            if (cid != want).any():
                k, v = np.argwhere(cid != want)[0]
                raise self._err(f"index record {(k * V + v) * len(kinds) + ki} (tile {k}, {v}, {kind}) has codec "
                                f"{cid[k, v]}, meta.tiles.codecs.{kind} is {meta['tiles']['codecs'][kind]} ({want})")
        if "normal" in kinds:
            self.normal_scale = int(meta["tiles"]["normal_scale"])
            ni = kinds.index("normal")
            want = expected_raw_length("normal", *self.kind_shape("normal"))
            raw = self.index["raw_length"][:, :, ni]
            if (raw != want).any():
                k, v = np.argwhere(raw != want)[0]
                raise self._err(f"index record {(k * V + v) * len(kinds) + ni} raw length {raw[k, v]} != tile size "
                                f"{want} (normal tiles at meta.tiles.normal_scale {self.normal_scale})")
        self.codecs = {k: meta["tiles"]["codecs"][k] for k in kinds}
        self.chain = int(meta["tiles"].get("chain", 1))
        self._predicted = (self.index["flags"] & FLAG_PREDICTED).astype(bool)  # [K, V, kinds]
        if self._predicted.any():
            # The spec's bound: keyframes k % chain == 0 start a chain, so a walk back is <= chain chunks.
            starts = np.arange(K) % self.chain == 0
            bad = np.argwhere(self._predicted & starts[:, None, None])
            if bad.size:
                k, v, ki = (int(x) for x in bad[0])
                what = f"meta.tiles.chain = {self.chain}" if "chain" in meta["tiles"] else "no meta.tiles.chain"
                raise self._err(f"index record {(k * V + v) * len(kinds) + ki} (tile {k}, {v}, {kinds[ki]}) is "
                                f"predicted, but keyframe {k} starts a chain ({what}): its tiles must be intra")

    def _check_index(self, index: np.ndarray) -> None:
        """Chunks (preview first) must be non-empty, aligned, contiguous, non-overlapping, in bounds."""
        kinds, a = self.kinds, self.alignment
        nk = len(kinds)
        kind_ids = np.array([KIND_ID[k] for k in kinds], np.uint8)
        pos = np.arange(len(index))
        bad = np.flatnonzero(index["kind"] != kind_ids[pos % nk])
        if bad.size:
            raise self._err(f"index record {bad[0]} has kind {index['kind'][bad[0]]}, canonical order expects "
                            f"{kind_ids[bad[0] % nk]} ({kinds[bad[0] % nk]})")
        flags = index["flags"]
        allowed = FLAG_PREDICTED if self.version[1] >= 3 else 0  # flag bits are v1.3; reserved = 0 before
        bad = np.flatnonzero(flags & ~np.uint16(allowed))
        if bad.size:
            why = "flag bits other than bit 0 (predicted)" if allowed else \
                f"flags are format 1.3, the header says 1.{self.version[1]}"
            raise self._err(f"index record {bad[0]} has non-zero reserved bytes ({flags[bad[0]]}: {why})")
        bad = np.flatnonzero((index["codec"] < 1) | (index["codec"] > len(codecs.CODECS)))
        if bad.size:
            raise self._err(f"index record {bad[0]} has unknown codec id {index['codec'][bad[0]]} "
                            f"(1..{len(codecs.CODECS)})")
        raw_want = np.array([expected_raw_length(k, *self.kind_shape(k)) for k in kinds], np.int64)[pos % nk]
        raw = index["raw_length"].astype(np.int64)
        if "normal" in kinds:  # its size follows meta.tiles.normal_scale, checked once the metadata is read
            raw_want = np.where(pos % nk == kinds.index("normal"), raw, raw_want)
        if "depth" in kinds:  # 8-bit depth (v1.1) is half the 16-bit size; which one the metadata says
            depth_rec = pos % nk == kinds.index("depth")
            raw = np.where(depth_rec & (raw * 2 == raw_want), raw_want, raw)
        bad = np.flatnonzero(raw != raw_want)
        if bad.size:
            raise self._err(f"index record {bad[0]} raw length {index['raw_length'][bad[0]]} != tile size "
                            f"{raw_want[bad[0]]}")
        offs = index["offset"].astype(np.uint64)
        lens = index["length"].astype(np.uint64)
        has_preview = self._preview_rec is not None
        if has_preview:
            offs = np.concatenate([[np.uint64(self._preview_rec[0])], offs])
            lens = np.concatenate([[np.uint64(self._preview_rec[1])], lens])

        def chunk(i) -> str:  # chunk i of offs/lens: the preview comes first when there is one
            i = int(i)
            return "the preview" if has_preview and i == 0 else f"index record {i - has_preview}"

        bad = np.flatnonzero((lens == 0) | (lens > MAX_CHUNK))
        if bad.size:
            raise self._err(f"{chunk(bad[0])} length {lens[bad[0]]} is outside 1..{MAX_CHUNK}")
        # Offsets are < 2**64 and lengths < 2**28, but the sum could still wrap: compare in uint64
        # only after bounding offsets by the file size.
        if (offs > np.uint64(self.file_size)).any():
            b = int(np.flatnonzero(offs > np.uint64(self.file_size))[0])
            raise self._err(f"{chunk(b)} offset {offs[b]} is past the end of the file ({self.file_size} bytes)")
        order = np.argsort(offs, kind="stable")
        so, sl = offs[order].astype(np.int64), lens[order].astype(np.int64)
        ends = so + sl
        expect = np.empty_like(so)
        expect[0] = align_up(HEADER_SIZE, a)
        expect[1:] = (ends[:-1] + a - 1) // a * a
        bad = np.flatnonzero(so != expect)
        if bad.size:
            b = int(bad[0])
            before = "the header" if b == 0 else chunk(order[b - 1])
            prev_end = HEADER_SIZE if b == 0 else int(ends[b - 1])
            if so[b] % a:
                why = f"is not aligned to {a}"
            elif so[b] < prev_end:
                why = f"overlaps {before}, which ends at {prev_end}"
            else:
                why = f"leaves a gap after {before}, which ends at {prev_end}"
            raise self._err(f"{chunk(order[b])} at offset {so[b]} {why}: chunks must be aligned to {a}, "
                            f"contiguous and non-overlapping (expected offset {expect[b]})")
        if has_preview and order[0] != 0:
            raise self._err("the preview must be the first chunk after the header")
        idx_off = align_up(int(ends[-1]), a)
        if idx_off != self._index_offset:
            raise self._err(f"last chunk ends at {ends[-1]}, the index must follow it at offset {idx_off} "
                            f"({at('index_offset')} = {self._index_offset})")

    @property
    def has_preview(self) -> bool:
        """Whether the file stores a preview (``preview`` falls back to a tile otherwise)."""
        return self._preview_rec is not None

    # -- tiles
    @property
    def depth_shape(self) -> tuple[int, int]:
        """(h, w) of the stored depth tiles: (ceil(H/s), ceil(W/s)) for depth_scale s (= tile_shape at s = 1).

        Sample (i, j) is the depth at full-resolution pixel (min(i*s + s//2, H-1), min(j*s + s//2, W-1))."""
        return depth_shape(self.tile_shape, self.depth_scale)

    def kind_shape(self, kind: str) -> tuple[int, int]:
        """(h, w) of the stored tiles of ``kind``: depth_shape for depth, (ceil(H/n), ceil(W/n)) for
        normals at normal_scale n, tile_shape otherwise."""
        return kind_shape(kind, self.tile_shape, self.depth_scale, self.normal_scale)

    @property
    def lighting(self) -> dict | None:
        """meta.lighting (v1.2: the captured light's ``sh`` [9] and ``key`` [yaw, pitch, amount]), or
        None for a file without normal tiles."""
        return self.meta.get("lighting") if "normal" in self.kinds else None

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
        if crc32(data) != int(rec["crc"]):
            raise self._err(f"crc mismatch in tile (keyframe {keyframe}, view {view}, {kind}) at offset {off}")
        return codecs.CODECS[int(rec["codec"]) - 1], data

    def tile(self, keyframe: int, view: int, kind: str) -> np.ndarray:
        """Decoded tile: color uint8 [H,W,3] premultiplied RGB, alpha uint8 [H,W], depth uint16 q
        ``depth_shape`` = [ceil(H/s), ceil(W/s)] (s = depth_scale; [H,W] when s = 1); 8-bit depth
        (v1.1) comes back as the q its codes stand for (``formats.p4d.depth_decode``)."""
        stored = self.tile_stored(keyframe, view, kind)
        return depth_decode(stored, self.depth_bits) if kind == "depth" else stored

    def predicted(self, keyframe: int, view: int, kind: str) -> bool:
        """Whether the tile's chunk holds a difference to keyframe - 1 of its view and kind (v1.3)."""
        self._record(keyframe, view, kind)
        return bool(self._predicted[keyframe, view, self.kinds.index(kind)])

    def tile_stored(self, keyframe: int, view: int, kind: str) -> np.ndarray:
        """The tile's samples as stored: as ``tile`` but 8-bit depth stays its uint8 codes. A
        predicted tile (v1.3) comes back whole: the chain applied from its intra tile on."""
        if self.chain == 1:
            return self.tile_coded(keyframe, view, kind)
        self._record(keyframe, view, kind)
        ki = self.kinds.index(kind)
        lossy = residual_lossy(kind, self.codecs[kind])
        with self._lock:
            memo = dict(self._memo.get((view, kind), ()))
        k, base = keyframe, None
        while True:  # bounded: the index check keeps predicted tiles off chain starts
            if k in memo:
                base = memo[k]
                break
            if not self._predicted[k, view, ki]:
                base = self.tile_coded(k, view, kind)
                break
            k -= 1
        for j in range(k + 1, keyframe + 1):
            base = apply_residual(base, self.tile_coded(j, view, kind), lossy)
        if base.flags.writeable:
            base.setflags(write=False)  # shared with the memo: callers get a copy
        with self._lock:  # least recently used first; a hit moves to the end
            kept = [e for e in self._memo.get((view, kind), ()) if e[0] != keyframe]
            self._memo[(view, kind)] = tuple(kept[len(kept) - self.CHAIN_MEMO + 1:] + [(keyframe, base)])
        return base.copy()

    def tile_coded(self, keyframe: int, view: int, kind: str) -> np.ndarray:
        """The image the tile's chunk holds, decoded: the tile, or for a predicted tile (v1.3) its
        difference to keyframe - 1 (``formats.p4d.apply_residual``)."""
        codec, data = self.tile_encoded(keyframe, view, kind)
        with self._lock:
            self.decodes += 1
        shape = self.kind_shape(kind) + ((3,) if kind in ("color", "normal") else ())
        dtype = np.dtype(np.uint8) if kind == "depth" and self.depth_bits == 8 else KIND_DTYPE[kind]
        try:
            return codecs.decode(data, codec, shape, dtype)
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
        if crc32(data) != crc:
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
                f"tile={self.tile_shape[1]}x{self.tile_shape[0]}, kinds={self.kinds}, depth_scale={self.depth_scale}, "
                f"normal_scale={self.normal_scale})")
