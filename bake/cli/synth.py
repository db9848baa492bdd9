"""``bake synth -o DIR``: write a synthetic subject (capture video, dataset, checkpoint)."""

from __future__ import annotations

import argparse
import sys
import time

from bake.cli.exits import run_command
from bake.cli.options import build, default
from bake.synthetic.capture import SynthConfig, write_capture
from bake.synthetic.motion import MotionConfig
from formats.errors import EXIT_OK, UsageError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bake synth",
        description="Write a synthetic selfie capture of the analytic head: DIR/capture.mp4, the "
                    "dataset (DIR/dataset.json, images/, masks/, exact poses and expressions) and "
                    "DIR/subject.ckpt (kind 'synthetic', bakeable directly).")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--seconds", type=float, default=default(MotionConfig, "seconds"),
                   help="capture length in seconds (default %(default)s)")
    p.add_argument("--fps", type=float, default=default(MotionConfig, "fps"), help="frame rate (default %(default)s)")
    p.add_argument("--size", type=int, default=default(SynthConfig, "size"),
                   help="image width and height in pixels (default %(default)s)")
    p.add_argument("--seed", type=int, default=default(MotionConfig, "seed"),
                   help="seed of motion, expressions and room (default %(default)s)")
    p.add_argument("--fov", type=float, default=default(SynthConfig, "fov_deg"),
                   help="horizontal field of view in degrees (default %(default)s)")
    p.add_argument("--light", metavar="YAW,PITCH",
                   help="key light direction in degrees in the head frame, as `bake render`'s camera: yaw > 0 "
                        "towards the subject's left, pitch > 0 above (e.g. --light=-40,10; default 23.1,26.8). "
                        "The same subject under another light, to compare a relit portrait with")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier capture in DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def parse_light(text: str | None) -> tuple[float, float] | None:
    """'YAW,PITCH' -> (yaw, pitch) in degrees; UsageError otherwise."""
    if text is None:
        return None
    try:
        yaw, pitch = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--light {text!r}: expected YAW,PITCH in degrees, e.g. --light=-40,10") from None
    return yaw, pitch


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("bake synth", lambda: _synth(args))


def _synth(args: argparse.Namespace) -> int:
    motion = build(MotionConfig, seconds=args.seconds, fps=args.fps, seed=args.seed)
    cfg = build(SynthConfig, motion=motion, size=args.size, fov_deg=args.fov, light=parse_light(args.light))
    t0 = time.monotonic()
    ds = write_capture(args.out, cfg, overwrite=args.overwrite, quiet=args.quiet)
    if not args.quiet:
        print(f"bake synth: {len(ds.frames)} frames {args.size}x{args.size} -> {args.out}/ "
              f"(capture.mp4, dataset.json, subject.ckpt) in {time.monotonic() - t0:.1f} s")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
