"""Decoded-tile cache: an LRU bounded in bytes, filled ahead of time by one prefetch thread.

A "tile source" is anything with ``meta`` (the .p4d metadata dict) and
``tile(keyframe, view, kind) -> np.ndarray`` (``formats.P4DReader`` is one; tests pass arrays).
Decoding releases the GIL inside opencv/zstd and the depth upsampling kernel, so the prefetch
thread runs beside the frame loop.

Chained files (format 1.3): a tile of keyframe k is its chain's intra tile plus the differences up
to k. ``P4DReader`` walks the chain and keeps each (view, kind)'s most recently used decoded tiles
(``P4DReader.CHAIN_MEMO``, one per stream), and ``Playback.prefetch`` asks for each stream's
keyframes in playing order (``Walker.upcoming``), so the worker decodes one chunk per kind for a
stream's next keyframe and at most ``tiles.chain`` for a jump target it meets cold
(bench/chain_bench.py measures both against the same portrait coded whole).

A damaged tile (its chunk fails the reader's checks: ``P4DFormatError``) does not stop playback:
the cache stands in the nearest keyframe of the same view that decodes (same camera, so the warp
stays right; only the expression is a keyframe or two off), or an empty tile when none does, and
reports the damaged tile once through ``on_damaged``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from formats.codecs import dequantize_depth
from formats.lighting import pack_codes
from formats.p4d import P4DFormatError
from player.kernels import interleave_rgba, upsample_depth


@dataclass(frozen=True)
class Tile:
    """One decoded (keyframe, view)."""

    rgba: np.ndarray  # uint8 [H, W, 4] premultiplied colour + alpha, C-contiguous
    depth: np.ndarray  # float32 [H, W] camera z-depth in metres, 0 = empty
    spans: np.ndarray  # int32 [H, 2]: per row the columns [x0, x1) outside which it is all 0 (empty: (W, 0))
    normal: np.ndarray | None = None  # uint16 [ceil(H/n), ceil(W/n)] packed normal codes (format 1.2), or None

    @property
    def nbytes(self) -> int:
        return self.rgba.nbytes + self.depth.nbytes + self.spans.nbytes + (0 if self.normal is None else self.normal.nbytes)


def decode_tile(source, keyframe: int, view: int) -> Tile:
    """Decode and pack one (keyframe, view) of ``source`` into a ``Tile`` (colour clamped to alpha:
    ``kernels.interleave_rgba``)."""
    meta = source.meta
    kinds = meta["tiles"]["kinds"]
    color = source.tile(keyframe, view, "color")
    h, w = color.shape[:2]
    has_alpha = "alpha" in kinds
    alpha = source.tile(keyframe, view, "alpha") if has_alpha else np.full((h, w), 255, np.uint8)
    if "depth" in kinds:
        d = meta["grid"]["depth"]
        small = dequantize_depth(source.tile(keyframe, view, "depth"), d["near"], d["far"])
        s = int(meta["tiles"].get("depth_scale", 1))
    else:
        # No depth baked: a plane through the orbit centre keeps the warp a plain blend.
        small, s = np.full((h, w), float(meta["grid"]["radius"]), np.float32), 1
    spans = np.empty((h, 2), np.int32)
    # The lossless alpha draws the silhouette the coarse depth cannot (``upsample_depth``).
    depth = upsample_depth(small, s, h, w, spans=spans, alpha=alpha if has_alpha and s > 1 else None)
    rgba, spans = interleave_rgba(color, alpha, spans)
    normal = pack_codes(source.tile(keyframe, view, "normal")) if "normal" in kinds else None
    return Tile(rgba, depth, spans, normal)


class TileCache:
    """LRU of decoded tiles keyed by (keyframe, view), at most ``max_bytes`` of them.

    ``get`` returns a tile, decoding it on the calling thread on a miss (or waiting for the
    prefetch thread when it is decoding that very tile); ``prefetch`` hands the worker the keys
    to decode, most urgent first.
    """

    def __init__(self, source, max_bytes: int = 256 << 20, prefetch: bool = True, on_damaged=None):
        self.source = source
        # Damaged tiles: key -> the reader's reason; each is reported once to on_damaged(key, reason).
        self.damaged: dict[tuple[int, int], str] = {}
        self.on_damaged = on_damaged
        self.max_bytes = int(max_bytes)
        intr = source.meta["grid"]["intrinsics"]
        h, w = int(intr["height"]), int(intr["width"])
        # How many of this source's tiles fit (Tile.nbytes: RGBA, float32 depth, row spans).
        self.capacity = max(1, self.max_bytes // (h * w * 8 + h * 8))
        self._tiles: OrderedDict[tuple[int, int], Tile] = OrderedDict()
        # The worker's to-do list, most urgent first. Each ``prefetch`` call replaces it: keys
        # that only an older request wanted are dropped instead of delaying the newest request.
        self._wanted: list[tuple[int, int]] = []
        self._busy: tuple[int, int] | None = None  # the key the worker is decoding
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        self.hits = self.misses = self.waits = self.evictions = self.prefetched = 0
        self._worker = None
        if prefetch:
            self._worker = threading.Thread(target=self._work, name="p4d-prefetch", daemon=True)
            self._worker.start()

    def _insert(self, key, tile: Tile) -> None:
        # Caller holds the lock.
        if key in self._tiles:
            return
        self._tiles[key] = tile
        self._bytes += tile.nbytes
        while self._bytes > self.max_bytes and len(self._tiles) > 1:
            _, old = self._tiles.popitem(last=False)
            self._bytes -= old.nbytes
            self.evictions += 1

    def get(self, keyframe: int, view: int) -> Tile:
        key = (int(keyframe), int(view))
        with self._cond:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
                self.hits += 1
                return tile
            if self._busy == key:
                self.waits += 1
                self._cond.wait_for(lambda: self._busy != key)
                tile = self._tiles.get(key)
                if tile is not None:
                    self._tiles.move_to_end(key)
                    return tile
            else:
                self.misses += 1
                if key in self._wanted:  # queued but not started: decoding it here is sooner
                    self._wanted.remove(key)
        tile = self._decode_or_stand_in(key)  # a worker's failure is met again here, on this thread
        with self._cond:
            self._insert(key, tile)
        return tile

    def _decode_or_stand_in(self, key: tuple[int, int]) -> Tile:
        """The tile of ``key``, or for a damaged one the nearest keyframe of its view that
        decodes (k-1, k+1, k-2, ...), or an empty tile when none does."""
        if key not in self.damaged:
            try:
                return decode_tile(self.source, *key)
            except P4DFormatError as exc:
                self.damaged[key] = str(exc)
                if self.on_damaged is not None:
                    self.on_damaged(key, str(exc))
        k, v = key
        n = len(self.source.meta["keyframes"]["times"])
        for d in range(1, n):
            for other in (k - d, k + d):
                if 0 <= other < n and (other, v) not in self.damaged:
                    with self._cond:
                        tile = self._tiles.get((other, v))
                    if tile is not None:
                        return tile
                    try:
                        return decode_tile(self.source, other, v)
                    except P4DFormatError as exc:
                        self.damaged[(other, v)] = str(exc)
                        if self.on_damaged is not None:
                            self.on_damaged((other, v), str(exc))
        intr = self.source.meta["grid"]["intrinsics"]
        h, w = int(intr["height"]), int(intr["width"])
        spans = np.zeros((h, 2), np.int32)
        spans[:, 0] = w
        return Tile(np.zeros((h, w, 4), np.uint8), np.zeros((h, w), np.float32), spans)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wanted or self._closed)
                if self._closed:
                    return
                key = self._wanted.pop(0)
                if key in self._tiles:
                    continue
                self._busy = key
            try:
                tile = decode_tile(self.source, *key)
            except Exception:  # a frame that needs this tile meets the failure again and deals with it
                tile = None
            with self._cond:
                if tile is not None:
                    self._insert(key, tile)
                    self.prefetched += 1
                self._busy = None
                self._cond.notify_all()

    def prefetch(self, keys) -> None:
        """Decode these (keyframe, view) pairs ahead, most urgent first, instead of whatever an
        earlier call asked for and the worker has not started.

        Only as many keys as the cache holds tiles are taken (the most urgent ones), and those
        already decoded become the most recently used, most urgent last: decoding the rest then
        evicts only tiles the request does not name, never one it wants sooner."""
        if self._worker is None:
            return
        with self._cond:
            want = list(dict.fromkeys((int(k), int(v)) for k, v in keys))[:self.capacity]
            for key in reversed(want):
                if key in self._tiles:
                    self._tiles.move_to_end(key)
            self._wanted = [key for key in want if key not in self._tiles and key != self._busy]
            self._cond.notify_all()

    def idle(self, timeout: float = 10.0) -> None:
        """Wait until the worker has decoded everything asked for (tests, benches)."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._wanted and self._busy is None, timeout):
                raise TimeoutError(f"prefetch still busy after {timeout} s")

    def stats(self) -> dict:
        with self._cond:
            n = self.hits + self.misses + self.waits
            return {"hits": self.hits, "misses": self.misses, "waits": self.waits,
                    "hit_rate": self.hits / n if n else 1.0, "evictions": self.evictions,
                    "prefetched": self.prefetched, "tiles": len(self._tiles), "bytes": self._bytes}

    def close(self) -> None:
        if self._worker is not None:
            with self._cond:
                self._closed = True
                self._wanted = []
                self._cond.notify_all()
            self._worker.join()
            self._worker = None
