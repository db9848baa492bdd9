"""``bake synth -o DIR``: write a synthetic subject (capture video, dataset, checkpoint)."""

from __future__ import annotations

import argparse
import sys
import time

from bake.synthetic.capture import SynthConfig, SynthError, write_capture
from bake.synthetic.motion import MotionConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bake synth",
        description="Write a synthetic selfie capture of the analytic head: DIR/capture.mp4, the "
                    "dataset (DIR/dataset.json, images/, masks/, exact poses and expressions) and "
                    "DIR/subject.ckpt (kind 'synthetic', bakeable directly).")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--seconds", type=float, default=20.0, help="capture length in seconds (default 20)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate (default 25)")
    p.add_argument("--size", type=int, default=256, help="image width and height in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of motion, expressions and room (default 0)")
    p.add_argument("--fov", type=float, default=40.0, help="horizontal field of view in degrees (default 40)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier capture in DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.seconds <= 600:
        return _fail(f"--seconds must be in (0, 600], got {args.seconds:g}")
    if not 1 <= args.fps <= 120:
        return _fail(f"--fps must be in [1, 120], got {args.fps:g}")
    if not 16 <= args.size <= 2048:
        return _fail(f"--size must be in [16, 2048], got {args.size}")
    if not 10 <= args.fov <= 120:
        return _fail(f"--fov must be in [10, 120] degrees, got {args.fov:g}")
    cfg = SynthConfig(MotionConfig(args.seconds, args.fps, args.seed), args.size, args.fov)
    t0 = time.monotonic()
    try:
        ds = write_capture(args.out, cfg, overwrite=args.overwrite, quiet=args.quiet)
    except (SynthError, OSError) as exc:
        return _fail(str(exc))
    if not args.quiet:
        print(f"bake synth: {len(ds.frames)} frames {args.size}x{args.size} -> {args.out}/ "
              f"(capture.mp4, dataset.json, subject.ckpt) in {time.monotonic() - t0:.1f} s")
    return 0


def _fail(msg: str) -> int:
    print(f"bake synth: error: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
