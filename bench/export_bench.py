"""Encode time and file size of each export type, on the same frames.

Rendering dominates a `player --export` run and varies with the machine's load, so this plays
FILE.p4d once (orbit, as an export), keeps the frames, then times each writer of
``player/encoders.py`` alone on them, alternating the types round after round, and prints per
type the median and minimum encode time and the file size (one JSON line each).

    python bench/export_bench.py FILE.p4d [--seconds 10] [--fps 25] [--size 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from formats import P4DReader  # noqa: E402
from player.encoders import GifWriter, H264Writer, Mp4vWriter, WebpWriter, have_av  # noqa: E402
from player.export import frames  # noqa: E402
from player.playback import PlayConfig, Playback  # noqa: E402
from player.render import RenderConfig  # noqa: E402


def render(path: str, seconds: float, fps: float, size: int | None) -> np.ndarray:
    """RGB uint8 [N, H, W, 3]: the frames `player PATH --export` draws (orbit, seed 0)."""
    with P4DReader(path) as reader:
        pb = Playback(reader, PlayConfig(mode="orbit", seed=0, render=RenderConfig(size=size)))
        try:
            return np.stack([rgb for _, rgb in frames(pb, seconds, fps)])
        finally:
            pb.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", metavar="FILE.p4d")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--size", type=int, default=None, help="longest side (default: tile size)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", default=None, help="cache the rendered frames in this .npy (reused when present)")
    args = ap.parse_args()
    if args.frames and Path(args.frames).is_file():
        clip = np.load(args.frames)
    else:
        clip = render(args.file, args.seconds, args.fps, args.size)
        if args.frames:
            np.save(args.frames, clip)
    n, h, w, _ = clip.shape
    writers = {"mp4v": lambda p: Mp4vWriter(p, w, h, args.fps)}
    if have_av():
        writers |= {"h264": lambda p: H264Writer(p, w, h, args.fps), "webp": lambda p: WebpWriter(p, w, h, args.fps),
                    "gif": lambda p: GifWriter(p, w, h, args.fps)}
    ext = {"mp4v": ".mp4", "h264": ".mp4", "webp": ".webp", "gif": ".gif"}
    times: dict[str, list[float]] = {k: [] for k in writers}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(writers) if r % 2 == 0 else list(writers)[::-1]
            for kind in order:
                out = Path(tmp) / f"{kind}{ext[kind]}"
                t0 = time.perf_counter()
                with writers[kind](out) as wr:
                    for rgb in clip:
                        wr.add(rgb)
                times[kind].append(time.perf_counter() - t0)
                sizes[kind] = out.stat().st_size
    for kind in writers:
        print(json.dumps({"type": kind, "frames": n, "size": [w, h], "fps": args.fps,
                          "encode_s_median": round(statistics.median(times[kind]), 3),
                          "encode_s_min": round(min(times[kind]), 3), "bytes": sizes[kind]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
