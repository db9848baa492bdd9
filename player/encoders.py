"""The export's file writers: H.264 mp4, animated WebP and GIF through PyAV (FFmpeg), and the
opencv mp4v writer for installs without it.

PyAV comes with the ``video`` extra (``pip install "portrait4d[video]"``), so a plain player
install stays light; it is imported only here and only when a writer opens. Every writer takes
RGB uint8 [H, W, 3] top-down frames through ``add`` and finishes the file in ``close``.
"""

from __future__ import annotations

import importlib.util
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["DITHERS", "have_av", "H264Writer", "WebpWriter", "GifWriter", "Mp4vWriter"]

# paletteuse's dither modes. Ordered (bayer) dithering is the default: its pattern stays put from
# frame to frame, where error diffusion crawls over a still background.
DITHERS = ("bayer", "floyd_steinberg", "sierra2_4a", "none")


def have_av() -> bool:
    """Whether PyAV can be imported (a blocked import, ``sys.modules['av'] = None``, counts as absent)."""
    try:
        return importlib.util.find_spec("av") is not None
    except ValueError:  # find_spec raises on a module set to None in sys.modules
        return False


def _rate(fps: float) -> Fraction:
    # 29.97 -> 30000/1001; whole rates stay whole.
    return Fraction(fps).limit_denominator(1001)


class _AvWriter:
    """One video stream into one container; subclasses choose the codec and its options."""

    def __init__(self, path: Path, fmt: str, codec: str, width: int, height: int, fps: float, pix_fmt: str,
                 options: dict[str, str], container_options: dict[str, str] | None = None):
        import av
        self._av = av
        self.width, self.height = width, height
        self._out = av.open(str(path), "w", format=fmt, container_options=container_options or {})
        try:
            self._stream = self._out.add_stream(codec, rate=_rate(fps))
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = pix_fmt
            self._stream.options = options
        except BaseException:
            self._out.close()
            raise
        self._n = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # On success the file is finished; on a failure it is only closed (the caller's
        # atomic_path removes it), and the original error is the one that propagates.
        if exc_type is None:
            self.close()
        else:
            try:
                self._discard()
            except Exception:
                pass

    def _discard(self) -> None:
        self._out.close()

    def _frame(self, rgb: np.ndarray):
        frame = self._av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self._n
        self._n += 1
        return frame

    def _encode(self, frame) -> None:
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def add(self, rgb: np.ndarray) -> None:
        self._encode(self._frame(rgb))

    def close(self) -> None:
        try:
            self._encode(None)  # flush the encoder's delayed frames
        finally:
            self._out.close()


class H264Writer(_AvWriter):
    """H.264 (libx264) High profile, yuv420p, BT.709 limited range, ``+faststart`` (the index
    before the data, so a browser starts playing while the file arrives). An odd width or height
    gets one replicated edge row or column: yuv420p needs even sizes.

    ``crf``: x264's constant rate factor, 1 to 51 (0 would switch x264 to a lossless profile that
    browsers do not play); 18 looks transparent, each +6 about halves the file. ``preset``: x264's speed/size trade (ultrafast ... veryslow).
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 20, preset: str = "medium"):
        self._pad = ((0, height % 2), (0, width % 2), (0, 0))
        super().__init__(path, "mp4", "libx264", width + width % 2, height + height % 2, fps, "yuv420p",
                         {"crf": str(crf), "preset": preset},
                         container_options={"movflags": "+faststart"})
        # Tag the colours as they are converted: untagged H.264 is read as BT.601 by some players
        # and BT.709 by others, a visible hue shift on skin.
        cc = self._stream.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # BT.709
        cc.color_range = 1  # limited (tv) range, what every player expects of yuv420p

    def add(self, rgb: np.ndarray) -> None:
        if any(p[1] for p in self._pad):
            rgb = np.pad(rgb, self._pad, mode="edge")
        frame = self._frame(rgb).reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        frame.colorspace, frame.color_range = 1, 1
        self._encode(frame)


class WebpWriter(_AvWriter):
    """Animated WebP (libwebp), lossy, looping forever. ``quality``: 0-100 (libwebp's scale)."""

    def __init__(self, path: Path, width: int, height: int, fps: float, quality: int = 80):
        super().__init__(path, "webp", "libwebp_anim", width, height, fps, "yuv420p",
                         {"quality": str(quality)}, container_options={"loop": "0"})


class GifWriter(_AvWriter):
    """Animated GIF with one palette for the whole clip (FFmpeg's palettegen over every frame)
    and paletteuse's dithering; loops forever.

    The palette needs every frame before the first can be mapped, so ``add`` feeds palettegen
    (which keeps a colour histogram, not frames) and spills the frames to an unnamed temp file;
    ``close`` maps and encodes them. Memory stays at one frame whatever the clip's length.
    Only changed rectangles are re-dithered (``diff_mode=rectangle``), which keeps a still
    background still and the file small.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, dither: str = "bayer"):
        if dither not in DITHERS:
            raise ValueError(f"dither must be one of {', '.join(DITHERS)}, got {dither!r}")
        super().__init__(path, "gif", "gif", width, height, fps, "pal8", {}, container_options={"loop": "0"})
        self._dither = dither
        self._tb = Fraction(1) / _rate(fps)
        self._spill = tempfile.TemporaryFile(prefix="p4d-gif-")
        self._gen = self._graph(("palettegen", "stats_mode=full"))

    def _graph(self, *chain, palette=None):
        """buffer -> chain -> buffersink, plus a second buffer for paletteuse's palette input.
        Returns (graph, source, sink): the caller holds the graph, whose freeing frees its nodes."""
        graph = self._av.filter.Graph()
        src = graph.add_buffer(width=self.width, height=self.height, format="rgb24", time_base=self._tb)
        nodes = [graph.add(name, args) for name, args in chain]
        sink = graph.add("buffersink")
        for a, b in zip([src, *nodes], [*nodes, sink]):
            a.link_to(b)
        pal_src = None
        if palette is not None:
            pal_src = graph.add_buffer(width=palette.width, height=palette.height, format=palette.format.name,
                                       time_base=self._tb)
            pal_src.link_to(nodes[0], 0, 1)
        graph.configure()
        if pal_src is not None:
            palette.pts = 0
            pal_src.push(palette)
            pal_src.push(None)
        return graph, src, sink

    def add(self, rgb: np.ndarray) -> None:
        assert rgb.shape == (self.height, self.width, 3) and rgb.dtype == np.uint8, (rgb.shape, rgb.dtype)
        self._gen[1].push(self._frame(rgb))
        self._spill.write(np.ascontiguousarray(rgb).tobytes())

    def _discard(self) -> None:
        self._spill.close()
        super()._discard()

    def _pull(self, sink):
        while True:
            try:
                yield sink.pull()
            except (self._av.BlockingIOError, self._av.EOFError):
                return

    def close(self) -> None:
        try:
            n, self._n = self._n, 0
            _, gen_src, gen_sink = self._gen
            gen_src.push(None)
            palette = next(self._pull(gen_sink))
            args = f"dither={self._dither}:diff_mode=rectangle" + (":bayer_scale=3" if self._dither == "bayer" else "")
            graph, src, sink = self._graph(("paletteuse", args), palette=palette)
            self._spill.seek(0)
            size = self.width * self.height * 3
            for _ in range(n):
                rgb = np.frombuffer(self._spill.read(size), np.uint8).reshape(self.height, self.width, 3)
                src.push(self._frame(rgb))
                for frame in self._pull(sink):
                    self._encode(frame)
            src.push(None)
            for frame in self._pull(sink):
                self._encode(frame)
        finally:
            self._spill.close()
            super().close()


class Mp4vWriter:
    """opencv's MPEG-4 Part 2 (mp4v): what a plain install writes. Desktop players play it;
    browsers and most messaging apps do not."""

    def __init__(self, path: Path, width: int, height: int, fps: float):
        import cv2
        self._cv2 = cv2
        self._vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self._vw.isOpened():
            raise RuntimeError(f"{path}: opencv cannot write mp4 here (no mp4v encoder)")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._vw.release()

    def add(self, rgb: np.ndarray) -> None:
        self._vw.write(rgb[:, :, ::-1])
