"""One frame from the decoded tiles: the kernel pipeline with every buffer allocated once."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from formats.camera import Intrinsics, orbit_pose, view_angles
from player import kernels as K
from player.cache import Tile, TileCache


@dataclass(frozen=True)
class RenderConfig:
    size: int | None = None
    """longest side of the output in pixels (default: the tile size)"""
    background: tuple[float, float, float] = (0.08, 0.08, 0.09)
    """RGB in [0, 1] behind the portrait"""
    stride: int | None = None
    """node lattice spacing in output pixels (default: output size / 64, at least 1)"""
    zstride: int | None = None
    """coarse z-buffer cell in output pixels (default: output size / 128, at least 1, at most the
    stride)"""
    ztol: float = 0.02
    """relative depth tolerance of the occlusion test"""
    depth_aware: bool = True
    """False = plain bilinear blending of the 4 views (for comparison)"""
    mesh: bool = True
    """interpolate source coordinates inside lattice cells on one surface (False: project every pixel)"""
    view_sharpen: float = 1.0
    """>= 1: view weights favour the nearest grid view (``kernels.view_weights``); 1 = bilinear"""


class Renderer:
    """Draws streams [(k, nxt, phase, weight)] seen from (yaw, pitch, zoom) into RGBA rows.

    ``render`` returns its own uint8 [Ho, Wo, 4] buffer, rows bottom-up (GL order); copy it to
    keep it past the next call.
    """

    MAX_STREAMS = 2

    def __init__(self, meta: dict, cache: TileCache, config: RenderConfig = RenderConfig()):
        self.meta, self.cache, self.config = meta, cache, config
        g = meta["grid"]
        self.yaws = np.asarray(g["yaws"], np.float64)
        self.pitches = np.asarray(g["pitches"], np.float64)
        self.radius = float(g["radius"])
        self.center = np.asarray(g["center"], np.float64)
        self.intr = Intrinsics.from_dict(g["intrinsics"])
        h, w = self.intr.height, self.intr.width
        if config.size:
            s = config.size / max(h, w)
            ho, wo = max(1, round(h * s)), max(1, round(w * s))
        else:
            ho, wo = h, w
        self.out_shape = (ho, wo)
        self.out_intr = self.intr.scaled(wo, ho)
        # Lattice and z-buffer at different pitches: the z-buffer's cell is what finds the
        # silhouette and the depth edges (at 1/64 of the output, in-between views lost 2.6 dB),
        # while a node every 1/64 costs a quarter of the projections of a node every 1/128 at the
        # same quality (bench/interp_quality.py: 34.30 -> 34.22 dB at 512 px) and the frame
        # ~7 % less. Its cells off one surface split to 1/128 (``kernels.warp_split``): ~6 % less.
        self.stride = config.stride or max(1, min(ho, wo) // 64)
        # Every grid camera, once: K [V, 4], R [V, 3, 3], C [V, 3].
        cams = [K.camera_arrays(self.intr, orbit_pose(y, p, self.radius, self.center))
                for p in self.pitches for y in self.yaws]
        self.view_k, self.view_r, self.view_c = (np.ascontiguousarray(np.stack(a)) for a in zip(*cams))
        # Buffers: the 4 blended source tiles; one warped image, coarse z-buffer, output.
        self.src_rgba = np.zeros((4, h, w, 4), np.uint8)
        self.src_depth = np.zeros((4, h, w), np.float32)
        self.warped = np.zeros((ho, wo, 4), np.uint8)
        self.zstride = config.zstride or min(self.stride, max(1, min(ho, wo) // 128))
        self.coarse = np.zeros((2, -(-ho // self.zstride), -(-wo // self.zstride)), np.float32)
        self.scratch = K.warp_scratch(4, (ho, wo), self.stride)
        self.splat_rows = K.splat_rows(w)
        self.image = np.zeros((ho, wo, 4), np.uint8)
        # Row spans of the image that the last composite wrote from content (outside them it holds
        # the background): all of it before the first frame, so that one fills every pixel.
        self.image_spans = np.zeros((ho, 2), np.int32)
        self.image_spans[:, 1] = wo
        self.warped_spans = np.zeros((ho, 2), np.int32)  # this frame's content (``warp_spans``)
        self.composite_spans = np.zeros((ho, 2), np.int32)  # and its union with image_spans
        # What each source buffer holds: (k0, k1, view, t8) of its last blend, so a frame that
        # needs the same blend again (a held keyframe, a pause) skips the pass over the tile;
        # None after a crossfade.
        self.held: list[tuple | None] = [None] * 4
        # Where each buffer may hold nonzero pixels, row by row (``Tile.spans``; (W, 0) = an
        # empty row): a blend writes these and the new tiles' spans (``write_spans``, scratch),
        # so whatever an earlier view left outside the new content is cleared on the way.
        self.dirty_spans = np.zeros((4, h, 2), np.int32)
        self.dirty_spans[:, :, 0] = w
        self.write_spans = np.zeros((h, 2), np.int32)
        self.idx = np.zeros(4, np.int32)
        self.w = np.zeros(4, np.float32)
        self.bg = np.asarray(config.background, np.float64)
        self.bg_tables = K.composite_tables(self.bg)
        # The relight (format 1.2): a gain per normal code, or None to show the captured light.
        # A held source buffer is relit with the table of its key's last element.
        self.light_table: np.ndarray | None = None
        self.light_id = 0
        # Relit tiles, (k, v) -> (decoded tile, relit tile): a playing walk meets a new keyframe's
        # 4 tiles every few frames, so most frames relight nothing (bench: +0.7..1.0 ms p50 at
        # 512² when every frame relit its 4 blended sources, now only the frames a tile arrives).
        self.relit: OrderedDict = OrderedDict()
        self.relit_max = 4 * 16
        tiles = meta["tiles"]
        self.normal_scale = int(tiles.get("normal_scale", 1))
        if "normal" in tiles["kinds"]:
            self.relight_buffers = K.relight_scratch((-(-h // self.normal_scale), -(-w // self.normal_scale)),
                                                     self.normal_scale)

    def set_light(self, table: np.ndarray | None) -> None:
        """Relight with this gain table (float32 [65536], ``player.light.Relighter``), or show the
        captured light (None). Only for a file with normal tiles."""
        if table is not None and "normal" not in self.meta["tiles"]["kinds"]:
            raise ValueError("this file has no normal tiles to relight with")
        self.light_table = table
        self.light_id += 1
        self.relit.clear()

    def _lit(self, tile, k: int, v: int):
        """``tile`` (keyframe k, view v) relit to the current light: its colour times its normals'
        gain, once per tile and light (``relit``, a bounded LRU emptied when the light changes),
        so a frame blends relit tiles and pays for a relight only when a tile first appears."""
        if self.light_table is None or tile.normal is None:
            return tile
        key = (k, v)
        hit = self.relit.get(key)
        if hit is not None and hit[0] is tile:
            self.relit.move_to_end(key)
            return hit[1]
        rgba = tile.rgba.copy()
        K.relight(rgba, tile.normal, tile.normal, 0.0, self.light_table, self.normal_scale, tile.spans,
                  self.relight_buffers)
        lit = Tile(rgba, tile.depth, tile.spans, tile.normal)
        self.relit[key] = (tile, lit)
        while len(self.relit) > self.relit_max:
            self.relit.popitem(last=False)
        return lit

    def views_at(self, yaw: float, pitch: float) -> list[int]:
        idx, w = K.view_weights(self.yaws, self.pitches, yaw, pitch, sharpen=self.config.view_sharpen)
        return sorted({int(i) for i, x in zip(idx, w) if x > 0})

    def target_camera(self, yaw: float, pitch: float, zoom: float = 1.0):
        k = self.out_intr
        kz = Intrinsics(k.fx * zoom, k.fy * zoom, k.cx, k.cy, k.width, k.height)
        return K.camera_arrays(kz, orbit_pose(yaw, pitch, self.radius, self.center))

    @staticmethod
    def _steps(k0: int, k1: int, phase: float) -> int:
        """The blend fraction of keyframes k0 -> k1 at ``phase`` in 1/256 (0 when k1 is k0)."""
        return K.blend_steps(phase) if k1 != k0 else 0

    def _tiles(self, v: int, k0: int, k1: int, t8: int):
        """(a, b): the tiles of view v that keyframes k0 -> k1 blend (b is a when t8 = 0), relit
        when a light is set."""
        a = self._lit(self.cache.get(k0, v), k0, v)
        return a, (self._lit(self.cache.get(k1, v), k1, v) if t8 else a)

    def _gather(self, k0: int, k1: int, phase: float) -> None:
        """Blend keyframes k0 -> k1 at ``phase`` for the 4 current views into the source buffers."""
        for j in range(4):
            if self.w[j] <= 0:
                continue
            v = int(self.idx[j])
            t8 = self._steps(k0, k1, phase)
            key = (k0, k1 if t8 else k0, v, t8, self.light_id)
            if self.held[j] == key:
                continue
            a, b = self._tiles(v, k0, k1, t8)
            K.write_spans(self.dirty_spans[j], (a.spans, b.spans), self.write_spans)
            K.temporal_blend(a.rgba, b.rgba, a.depth, b.depth, t8 / 256, self.src_rgba[j], self.src_depth[j],
                             spans=self.write_spans)
            self.held[j] = key

    def _gather_fade(self, stream0: tuple, stream1: tuple, t: float) -> None:
        """Both streams blended and mixed at t (the crossfade) into the source buffers, one pass
        per view (``kernels.fade_blend``)."""
        t0, t1 = self._steps(*stream0[:3]), self._steps(*stream1[:3])
        for j in range(4):
            if self.w[j] <= 0:
                continue
            v = int(self.idx[j])
            a0, b0 = self._tiles(v, stream0[0], stream0[1], t0)
            a1, b1 = self._tiles(v, stream1[0], stream1[1], t1)
            K.write_spans(self.dirty_spans[j], (a0.spans, b0.spans, a1.spans, b1.spans), self.write_spans)
            K.fade_blend((a0.rgba, b0.rgba, a0.depth, b0.depth, t0 / 256),
                         (a1.rgba, b1.rgba, a1.depth, b1.depth, t1 / 256), t, self.src_rgba[j],
                         self.src_depth[j], spans=self.write_spans)
            self.held[j] = None

    def render(self, yaw: float, pitch: float, zoom: float, streams) -> np.ndarray:
        """streams: [(k, nxt, phase, weight)] (1 or 2). Returns uint8 [Ho, Wo, 4] bottom-up.

        A crossfade (2 streams) mixes the two streams' source tiles view by view (same cameras, so
        it is the same pixel-wise mix as the temporal blend) and warps once: a jump frame costs
        one pass over four tiles per view instead of a second warp.
        """
        return self._draw(yaw, pitch, self.target_camera(yaw, pitch, zoom), streams)

    def render_camera(self, intrinsics: Intrinsics, cam_to_head: np.ndarray, streams) -> np.ndarray:
        """``render`` seen from any camera (roll and distance included), not only from the orbit:
        ``intrinsics`` in pixels of the output (its width and height must be the output's), and
        the camera's 4x4 ``cam_to_head`` in the bake's head frame. The grid views around its
        direction from the orbit centre are warped to it (``bake eval-portrait`` draws each
        keyframe at the camera of the captured frame)."""
        if (intrinsics.height, intrinsics.width) != self.out_shape:
            raise ValueError(f"intrinsics for a {intrinsics.width}x{intrinsics.height} image, but the output is "
                             f"{self.out_shape[1]}x{self.out_shape[0]}")
        yaw, pitch, _ = view_angles(cam_to_head, self.center)
        return self._draw(yaw, pitch, K.camera_arrays(intrinsics, cam_to_head), streams)

    def _draw(self, yaw: float, pitch: float, tgt: tuple, streams) -> np.ndarray:
        """The frame at target camera ``tgt`` (``kernels.camera_arrays``), the grid views around
        (yaw, pitch) warped to it."""
        if not 1 <= len(streams) <= self.MAX_STREAMS:
            raise ValueError(f"1 or {self.MAX_STREAMS} streams, got {len(streams)}")
        K.view_weights(self.yaws, self.pitches, yaw, pitch, self.idx, self.w, self.config.view_sharpen)
        fade = len(streams) == 2 and K.blend_steps(streams[1][3]) > 0  # else stream 1 adds nothing
        if fade:
            self._gather_fade(streams[0], streams[1], streams[1][3])
        else:
            self._gather(*streams[0][:3])
        if self.config.depth_aware:
            src = (self.view_k[self.idx], self.view_r[self.idx], self.view_c[self.idx])
            K.splat_depth(self.src_depth, self.w, src, tgt, self.zstride, 1, self.coarse, self.scratch.geo,
                          spans=self.dirty_spans, rows=self.splat_rows)
            K.warp(self.src_rgba, self.src_depth, self.w, src, tgt, self.coarse,
                   self.stride, self.warped, ztol=self.config.ztol, scratch=self.scratch,
                   mesh=self.config.mesh, zstride=self.zstride)
            K.warp_spans(self.scratch, self.stride, self.out_shape[1], self.warped_spans)
        else:
            self._plain()
            self.warped_spans[:, 0], self.warped_spans[:, 1] = 0, self.out_shape[1]
        # The composite covers this frame's content and the last one's (the background returns
        # there); ``write_spans`` makes that union and remembers this frame's.
        K.write_spans(self.image_spans, (self.warped_spans,), self.composite_spans)
        K.composite(self.warped, self.bg, self.image, spans=self.composite_spans, tables=self.bg_tables)
        return self.image

    def _plain(self) -> None:
        """Plain bilinear blend of the 4 views' pixels (no geometry): the comparison baseline."""
        import cv2  # resize only when the output size differs from the tile size
        acc = np.tensordot(self.w, self.src_rgba.astype(np.float32), 1)
        ho, wo = self.out_shape
        if acc.shape[:2] != (ho, wo):
            acc = cv2.resize(acc, (wo, ho), interpolation=cv2.INTER_LINEAR)
        self.warped[:] = np.clip(acc + 0.5, 0, 255).astype(np.uint8)
