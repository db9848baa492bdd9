"""The streaming .p4d writer with crash-resume: tiles go to ``NAME.partial`` as they come, each
complete chunk is journaled, and ``finish`` writes index, metadata and header and renames.

The layout it writes is ``formats.p4d`` (docs/p4d-format.md).
"""

from __future__ import annotations

import os
import pathlib
import struct

import numpy as np

from formats import codecs
from formats.p4d import (ALIGNMENT, DEPTH_BITS, DEPTH_SCALES, FLAG_PREDICTED, HEADER_SIZE, ID_KIND, INDEX_DTYPE,
                         KIND_CODECS, KIND_DTYPE, KIND_ID, KINDS, MAGIC, MAX_ALIGNMENT, MAX_AXIS, MAX_CHAIN, MAX_CHUNK,
                         MAX_META, MAX_PREVIEW_SIDE, MAX_SIDE, MAX_TILES, PREVIEW_KIND, VERSION, P4DFormatError,
                         align_up, apply_residual, crc32, depth_code, depth_shape, expected_raw_length, kind_mask,
                         pack_header, pack_meta, predict_residual, residual_lossy, unpack_meta, validate_meta)

__all__ = ["P4DWriter"]

# Journal: header, then one fixed record per complete chunk (last field = crc of the record).
# v2 adds depth_scale after the alignment, v3 depth_bits after it, v4 the chain length after that
# and a record's flags (the u16 that was 0) (a v1 journal is refused, never misread; a v2 journal
# resumes as 16-bit depth, a v2 or v3 one as chain 1: all they could hold).
_JOURNAL_MAGIC = b"P4DJOURNAL4\n"
_JOURNAL_MAGIC_V3 = b"P4DJOURNAL3\n"
_JOURNAL_MAGIC_V2 = b"P4DJOURNAL2\n"
_JHEAD = struct.Struct("<IIII")  # alignment, depth_scale, depth_bits, chain
_JHEAD_V3 = struct.Struct("<III")
_JHEAD_V2 = struct.Struct("<II")
_JREC = struct.Struct("<IIIIBBHQIIII")  # keyframe, view, h, w, kind, codec, flags, offset, length, raw, crc, crc


# A lossy predicted tile may carry up to this much more squared error than the tile coded whole
# (3 dB): chains trade a little PSNR for bytes, but never a clipped difference's 5 dB.
PREDICTED_ERROR_RATIO = 2.0


def _sq_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.square(a.astype(np.float32) - b).sum())


class P4DWriter:
    """Stream tiles into ``{path}.partial`` (+ ``.journal``); ``finish(meta)`` renames it to ``path``.

    Memory is bounded by one tile plus the small index. ``resume=True`` reopens an existing partial
    (a fresh one is started when there is none): the journal is verified against the bytes on disk,
    the partial is truncated to its last complete chunk, and ``done`` lists what is already stored.
    ``depth_scale`` s in {1, 2, 4, 8}: depth tiles are stored as [ceil(H/s), ceil(W/s)] (see
    ``downscale_depth``); a resume must use the same s, and ``finish`` needs meta tiles.depth_scale = s.
    ``depth_bits`` 16 stores depth q as given; 8 (format 1.1) stores its 8-bit codes
    (``formats.p4d.depth_code``); the same rules as for s. Normal tiles (v1.2) are uint8 [h, w, 3]
    at the stored shape ``meta.tiles.normal_scale`` gives (checked by ``finish``). A file is marked
    with the oldest minor version whose features it uses (1.0 when none of 1.1's or 1.2's). Same
    tiles in the same order + same meta => same bytes.

    ``chain`` N >= 2 (format 1.3) predicts each tile ``add_tile`` gets at a keyframe k with
    k % N != 0 from the tile of k - 1 (same view and kind) as a reader will decode it (closed
    loop), once that tile is stored, unless the tile coded whole is no larger; ``finish`` then
    needs meta tiles.chain = N. Tiles at k % N == 0, and tiles whose predecessor is not stored
    yet, are intra. 1 (default): no chains.
    """

    def __init__(self, path, resume: bool = False, depth_scale: int = 1, alignment: int = ALIGNMENT,
                 depth_bits: int = 16, chain: int = 1):
        if isinstance(depth_scale, bool) or depth_scale not in DEPTH_SCALES:
            raise ValueError(f"depth_scale must be one of {DEPTH_SCALES}, got {depth_scale!r}")
        if isinstance(depth_bits, bool) or depth_bits not in DEPTH_BITS:
            raise ValueError(f"depth_bits must be one of {DEPTH_BITS}, got {depth_bits!r}")
        if isinstance(chain, bool) or not isinstance(chain, (int, np.integer)) or not 1 <= chain <= MAX_CHAIN:
            raise ValueError(f"chain must be 1 (no chains) or 2..{MAX_CHAIN}, got {chain!r}")
        if isinstance(alignment, bool) or not isinstance(alignment, (int, np.integer)) or \
                not (8 <= alignment <= MAX_ALIGNMENT and alignment & (alignment - 1) == 0):
            raise ValueError(f"alignment must be a power of two in [8, {MAX_ALIGNMENT}], got {alignment!r}")
        self.path = pathlib.Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.journal_path = self.path.with_name(self.path.name + ".partial.journal")
        self.alignment = int(alignment)
        self.depth_scale = int(depth_scale)
        self.depth_bits = int(depth_bits)
        self.chain = int(chain)
        # (view, kind) -> (keyframe, its stored samples as a reader decodes them): the closed loop's reference
        self._recon: dict[tuple[int, str], tuple[int, np.ndarray]] = {}
        # Stored depth shape seen before any colour/alpha tile fixed tile_shape; checked when one does.
        self._depth_seen: tuple[int, int] | None = None
        self._normal_seen: tuple[int, int] | None = None  # stored normal shape, checked against meta by finish
        self._records: dict[tuple[int, int, str], tuple] = {}  # key -> (offset, length, raw, crc, codec, flags)
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
        self._j.write(_JOURNAL_MAGIC + _JHEAD.pack(self.alignment, self.depth_scale, self.depth_bits, self.chain))
        self._j.flush()

    def _resume(self) -> None:
        jdata = self.journal_path.read_bytes()
        magic = jdata[:len(_JOURNAL_MAGIC)]
        jhead = {_JOURNAL_MAGIC: _JHEAD, _JOURNAL_MAGIC_V3: _JHEAD_V3, _JOURNAL_MAGIC_V2: _JHEAD_V2}.get(magic)
        head = len(_JOURNAL_MAGIC) + (jhead.size if jhead else 0)
        if jhead is None or len(jdata) < head:
            raise P4DFormatError(f"{self.journal_path}: not a p4d journal (or an older journal version); "
                                 f"delete it and the .partial to start over")
        alignment, depth_scale, *rest = jhead.unpack(jdata[len(_JOURNAL_MAGIC):head])
        depth_bits = rest[0] if rest else 16
        chain = rest[1] if len(rest) > 1 else 1
        if chain != self.chain:
            raise P4DFormatError(f"{self.journal_path}: the partial stores chains of {chain}, this writer "
                                 f"{self.chain}; resume with chain={chain} or delete the .partial and its "
                                 f"journal to start over")
        if depth_bits != self.depth_bits:
            raise P4DFormatError(f"{self.journal_path}: the partial stores {depth_bits}-bit depth, this writer "
                                 f"{self.depth_bits}-bit; resume with depth_bits={depth_bits} or delete the "
                                 f".partial and its journal to start over")
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
                if crc32(rec[:-4]) != fields[-1]:
                    break  # torn journal write: everything from here is redone
                kf, view, th, tw, kind, codec, flags, off, length, raw, crc, _ = fields
                if off != align_up(self._end, self.alignment) or off + length > size or not 0 < length <= MAX_CHUNK:
                    break
                f.seek(off)
                if crc32(f.read(length)) != crc:
                    break  # journal got to disk before the data did
                if kind == PREVIEW_KIND:
                    self._preview = (off, length, raw, crc, codec, th, tw)
                else:
                    if kind not in ID_KIND:
                        break
                    self._note_shape(ID_KIND[kind], th, tw)  # same rule as when the tile was added
                    self._records[(kf, view, ID_KIND[kind])] = (off, length, raw, crc, codec, flags)
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
    def _append(self, data: bytes, kf: int, view: int, th: int, tw: int, kind: int, codec: str, raw: int,
                flags: int = 0) -> tuple:
        if self._closed:
            raise ValueError("writer is closed")
        if len(data) > MAX_CHUNK:
            raise ValueError(f"encoded chunk is {len(data)} bytes, the format caps chunks at {MAX_CHUNK}")
        off = align_up(self._end, self.alignment)
        crc = crc32(data)
        self._f.write(b"\0" * (off - self._end))
        self._f.write(data)
        self._f.flush()  # data reaches the OS before the journal says it exists
        self._end = off + len(data)
        rec = _JREC.pack(kf, view, th, tw, kind, codecs.CODEC_ID[codec], flags, off, len(data), raw, crc, 0)
        self._j.write(rec[:-4] + struct.pack("<I", crc32(rec[:-4])))
        self._j.flush()
        return off, len(data), raw, crc, codecs.CODEC_ID[codec], flags

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
        if kind == "normal":  # its scale is the metadata's; finish() checks the shape against it
            if self._normal_seen is not None and (h, w) != self._normal_seen:
                raise ValueError(f"normal tile {key} is {w}x{h}, earlier normal tiles are "
                                 f"{self._normal_seen[1]}x{self._normal_seen[0]}")
            if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
                raise ValueError(f"tile size {w}x{h} outside 1..{MAX_SIDE}")
            self._note_shape(kind, h, w)
            return
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
        if kind == "normal":
            self._normal_seen = (h, w)
        elif kind == "depth":
            self._depth_seen = (h, w)
        else:
            self.tile_shape = (h, w)

    @property
    def depth_shape(self) -> tuple[int, int] | None:
        """(h, w) of the stored depth tiles once the tile size is known, else None."""
        return None if self.tile_shape is None else depth_shape(self.tile_shape, self.depth_scale)

    def add_tile(self, keyframe: int, view: int, kind: str, array: np.ndarray, codec: str,
                 quality: int | None = None, residual_quality: int | None = None) -> None:
        """Encode and append one tile: color uint8 [H,W,3] premultiplied RGB, alpha uint8 [H,W], depth
        uint16 q [ceil(H/s), ceil(W/s)] (s = depth_scale; see ``downscale_depth``; an 8-bit writer
        stores its ``depth_code``), normal uint8 [ceil(H/n), ceil(W/n), 3] (n = meta
        tiles.normal_scale; octahedral codes u, v and 0: ``formats.lighting``). ``quality`` (1..100) applies to jpeg/webp colour and is ignored by
        lossless codecs; ``residual_quality`` (chains) replaces it for a predicted tile: a difference
        around 128 is mostly flat, so a lower setting costs little PSNR where it saves most bytes."""
        if kind not in KIND_ID:
            raise ValueError(f"unknown tile kind {kind!r}; use one of {KINDS}")
        if codec not in KIND_CODECS[kind]:
            raise ValueError(f"{kind} tiles cannot use codec {codec!r}; use one of {KIND_CODECS[kind]}")
        self._check_depth_codec(kind, codec)
        keyframe, view = int(keyframe), int(view)
        if not (0 <= keyframe < MAX_AXIS and 0 <= view < MAX_AXIS):
            raise ValueError(f"keyframe {keyframe} / view {view} outside [0, {MAX_AXIS})")
        key = (keyframe, view, kind)
        if key in self._records:
            raise ValueError(f"tile {key} was already added")
        array = np.asarray(array)
        want = KIND_DTYPE[kind]
        rgb = kind in ("color", "normal")
        if array.dtype != want or array.ndim != (3 if rgb else 2) or (rgb and array.shape[2] != 3):
            shape = "[H,W,3]" if rgb else "[H,W]"
            raise ValueError(f"{kind} tile must be {want} {shape}, got {array.dtype} {array.shape}")
        h, w = array.shape[:2]
        self._check_shape(key, h, w)
        if codec not in codecs.LOSSY:
            quality = None  # quality is a lossy-codec setting; lossless codecs use fixed settings
        if kind in ("alpha", "depth", "normal") and codec == "webp":
            quality = codecs.WEBP_LOSSLESS  # alpha, depth and normal codes must be exact
        if kind == "depth":
            array = depth_code(array, self.depth_bits)
        prev = self._reference(keyframe, view, kind)
        lossy = residual_lossy(kind, codec)  # lossy colour; alpha, depth and normal webp are lossless
        data = codecs.encode(array, codec, quality)
        recon = codecs.decode(data, codec, array.shape, array.dtype) if lossy and self.chain > 1 else array
        if prev is not None:
            # A matte or a face that changes much between keyframes can cost more as a difference
            # than whole, and a lossy difference beyond +-127 clips (a blink: up to 5 dB below the
            # tile coded whole); then the tile stays intra (allowed anywhere; the chain goes on from it).
            rq = residual_quality if residual_quality is not None and quality is not None and lossy else quality
            diff = codecs.encode(predict_residual(array, prev, lossy), codec, rq)
            if len(diff) < len(data):
                pred = apply_residual(prev, codecs.decode(diff, codec, array.shape, array.dtype), True) if lossy \
                    else array
                if not lossy or _sq_error(pred, array) <= PREDICTED_ERROR_RATIO * _sq_error(recon, array):
                    data, recon = diff, pred
                else:
                    prev = None
            else:
                prev = None
        self._put(key, data, codec, (h, w), FLAG_PREDICTED if prev is not None else 0)
        if self.chain > 1:  # what a reader will decode: the next tile of the chain is predicted from it
            self._recon[(view, kind)] = (keyframe, recon)

    def _reference(self, keyframe: int, view: int, kind: str) -> np.ndarray | None:
        """The decoded tile a new tile at ``keyframe`` is predicted from, or None for an intra tile
        (a chain start, no chains, or keyframe - 1 not stored yet)."""
        if self.chain == 1 or keyframe % self.chain == 0 or (keyframe - 1, view, kind) not in self._records:
            return None
        k, tile = self._recon.get((view, kind), (None, None))
        return tile if k == keyframe - 1 else self.tile(keyframe - 1, view, kind)  # e.g. after a resume

    def _check_depth_codec(self, kind: str, codec: str) -> None:
        if kind == "depth" and codec == "webp" and self.depth_bits != 8:
            raise ValueError("depth tiles can be webp (lossless) only at 8 bits; open the writer with "
                             "depth_bits=8 or use png")

    def add_encoded(self, keyframe: int, view: int, kind: str, data: bytes, codec: str,
                    tile_shape: tuple[int, int], predicted: bool = False) -> None:
        """Append an already encoded tile as is (repack without re-encoding). ``tile_shape`` is the
        (h, w) of the encoded array: the tile size for colour/alpha, the stored (scaled) depth shape
        for depth (``P4DReader.depth_shape``). ``data`` is not checked here: readers check it, so only
        pass bytes that came from an array of that shape (depth: of this writer's depth_bits).
        ``predicted``: the bytes are a difference to keyframe - 1 (v1.3), as a chained file with this
        writer's ``chain`` stores them."""
        if predicted and (self.chain == 1 or int(keyframe) % self.chain == 0):
            raise ValueError(f"tile {(keyframe, view, kind)} cannot be predicted: keyframe {keyframe} starts a "
                             f"chain (chain {self.chain})")
        if kind not in KIND_ID or codec not in KIND_CODECS[kind]:
            raise ValueError(f"kind {kind!r} with codec {codec!r} is not allowed")
        self._check_depth_codec(kind, codec)
        key = (int(keyframe), int(view), kind)
        if key in self._records:
            raise ValueError(f"tile {key} was already added")
        h, w = (int(x) for x in tile_shape)
        self._check_shape(key, h, w)
        self._put(key, bytes(data), codec, (h, w), FLAG_PREDICTED if predicted else 0)
        self._recon.pop((key[1], kind), None)  # not decoded here: ``tile`` reads it back when needed

    def _put(self, key: tuple[int, int, str], data: bytes, codec: str, shape: tuple[int, int], flags: int = 0) -> None:
        kf, view, kind = key
        if not (0 <= kf < MAX_AXIS and 0 <= view < MAX_AXIS):
            raise ValueError(f"keyframe {kf} / view {view} outside [0, {MAX_AXIS})")
        self._records[key] = self._append(data, kf, view, *shape, KIND_ID[kind], codec,
                                          expected_raw_length(kind, *shape, self.depth_bits), flags)

    def tile(self, keyframe: int, view: int, kind: str) -> np.ndarray:
        """Read back and decode a tile already stored (as ``P4DReader.tile_stored`` would give it):
        a bake fits what depends on the stored tiles (the captured light) before ``finish``, also
        over tiles an earlier run stored before a resume."""
        keyframe, view = int(keyframe), int(view)
        off, length, _, crc, codec, flags = self._records[(keyframe, view, kind)]
        if flags & FLAG_PREDICTED:  # walk back: the chain bound keeps this short
            residual = self._coded(off, length, crc, codec, keyframe, view, kind)
            return apply_residual(self.tile(keyframe - 1, view, kind), residual,
                                  residual_lossy(kind, codecs.CODECS[codec - 1]))
        return self._coded(off, length, crc, codec, keyframe, view, kind)

    def _coded(self, off: int, length: int, crc: int, codec: int, keyframe: int, view: int, kind: str) -> np.ndarray:
        self._f.flush()
        with open(self.partial, "rb") as f:
            f.seek(off)
            data = f.read(length)
        if crc32(data) != crc:
            raise P4DFormatError(f"{self.partial}: tile {(keyframe, view, kind)} changed on disk (crc mismatch)")
        if kind == "normal":
            shape = self._normal_seen + (3,)
        elif kind == "depth":
            shape = self.depth_shape
        else:
            shape = self.tile_shape + ((3,) if kind == "color" else ())
        dtype = np.uint8 if kind != "depth" or self.depth_bits == 8 else np.uint16
        return codecs.decode(data, codecs.CODECS[codec - 1], shape, dtype)

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
        bits = meta["tiles"].get("depth_bits", 16)
        if "depth" in kinds and bits != self.depth_bits or "depth" not in kinds and self.depth_bits != 16:
            raise ValueError(f"meta.tiles.depth_bits is {bits} but the writer was opened with "
                             f"depth_bits={self.depth_bits}; set meta tiles.depth_bits to match")
        if "normal" in kinds:
            ns = meta["tiles"]["normal_scale"]
            if self._normal_seen is not None and self._normal_seen != depth_shape(self.tile_shape, ns):
                want = depth_shape(self.tile_shape, ns)
                raise ValueError(f"normal tiles are {self._normal_seen[1]}x{self._normal_seen[0]}, but "
                                 f"meta.tiles.normal_scale {ns} stores them as {want[1]}x{want[0]}")
        chain = meta["tiles"].get("chain", 1)
        if chain != self.chain:
            raise ValueError(f"meta.tiles.chain is {meta['tiles'].get('chain')} but the writer was opened with "
                             f"chain={self.chain}; set meta tiles.chain to match (absent for 1)")
        # The oldest minor whose features the file uses: a 16-bit file without normals or chains stays 1.0.
        minor = 3 if self.chain > 1 else 2 if "normal" in kinds else 1 if self.depth_bits != 16 else 0
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
                    index[(k * V + v) * len(kinds) + ki] = (*rec[:4], rec[4], KIND_ID[kind], rec[5])
        if missing:
            raise ValueError(f"{len(missing)} tiles missing for the grid in meta, e.g. {missing[:3]}")
        extra = len(self._records) - len(index)
        if extra:
            raise ValueError(f"{extra} tiles lie outside the grid in meta (keyframes {K}, views {V}, kinds {kinds})")
        idx_off = align_up(self._end, self.alignment)
        idx_bytes = index.tobytes()
        meta_off = idx_off + len(idx_bytes)
        file_size = meta_off + len(meta_bytes)
        pv = self._preview or (0, 0, 0, 0, 0, 0, 0)
        header = pack_header(
            magic=MAGIC, major=VERSION[0], minor=minor, header_size=HEADER_SIZE, alignment=self.alignment,
            kind_mask=kind_mask(kinds), n_keyframes=K, n_views=V, tile_h=self.tile_shape[0],
            tile_w=self.tile_shape[1], file_size=file_size, index_offset=idx_off, index_length=len(idx_bytes),
            meta_offset=meta_off, meta_length=len(meta_bytes), meta_crc=crc32(meta_bytes),
            index_crc=crc32(idx_bytes), depth_scale_log2=self.depth_scale.bit_length() - 1,
            preview_offset=pv[0], preview_length=pv[1], preview_raw=pv[2], preview_crc=pv[3],
            preview_codec=pv[4], preview_kind=PREVIEW_KIND if self._preview else 0, preview_reserved=0,
            preview_h=pv[5], preview_w=pv[6], reserved=0)
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

    def discard(self) -> None:
        """Close and delete the partial file and its journal: for a copy that is cheap to redo
        (a repack, ``bake normals``), which keeps nothing to resume from."""
        self.close()
        self.partial.unlink(missing_ok=True)
        self.journal_path.unlink(missing_ok=True)

    def __enter__(self) -> "P4DWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
