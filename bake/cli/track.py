"""``bake track VIDEO -o DATASET/``: track a face video into a training dataset."""

from __future__ import annotations

import argparse
import sys

from bake.cli.exits import run_command
from bake.cli.options import build, default
from bake.track.mask import MASK_METHODS, MaskConfig
from bake.track.pipeline import TrackConfig, track_video
from formats.errors import EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bake track",
        description="Track a face video into a dataset: per-frame head pose (4x4 head->camera), "
                    "51 ARKit-named expression coefficients, a head+hair+neck mask, and a square "
                    "crop that follows the head (docs/tracking.md).")
    p.add_argument("video", help="input video (anything OpenCV reads: mp4, mov, ...)")
    p.add_argument("-o", "--output", required=True, metavar="DATASET", help="output dataset directory")
    p.add_argument("--size", type=int, default=default(TrackConfig, "size"), choices=(256, 512),
                   help="crop size in pixels (default %(default)s)")
    p.add_argument("--fps", type=float, default=default(TrackConfig, "fps"), metavar="F",
                   help="resample to F frames/s (default: every frame of the video)")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--focal", type=float, default=default(TrackConfig, "focal"), metavar="PX",
                     help="focal length of the video in pixels, if known")
    cam.add_argument("--fov", type=float, default=default(TrackConfig, "fov"), metavar="DEG",
                     help="horizontal field of view of the video (default %(default)s; a phone's main "
                          "camera is ~65, a cropped talking-head clip ~20-40)")
    p.add_argument("--max-seconds", type=float, default=default(TrackConfig, "max_seconds"), metavar="S",
                   help="track only the first S seconds")
    p.add_argument("--mask-method", choices=MASK_METHODS, default=default(MaskConfig, "method"),
                   help="head mask from the bundled person segmentation model, cut to the head "
                        "(default), or from GrabCut on colour alone (loses dark hair against a dark room)")
    p.add_argument("--mask-vote", type=float, default=default(MaskConfig, "vote_half_window_s"), metavar="S",
                   help="each mask is the majority of the head-aligned masks within S seconds of its "
                        "frame, which steadies GrabCut's flickering edge (default %(default)s; 0 = off)")
    p.add_argument("--overwrite", action="store_true", help="replace DATASET if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("bake track", lambda: _track(args))


def _track(args: argparse.Namespace) -> int:
    mask = build(MaskConfig, method=args.mask_method, vote_half_window_s=args.mask_vote)
    cfg = build(TrackConfig, size=args.size, fps=args.fps, focal=args.focal, fov=args.fov,
                max_seconds=args.max_seconds, progress=not args.quiet, mask=mask)
    summary = track_video(args.video, args.output, cfg, overwrite=args.overwrite)
    print(f"wrote {args.output}")
    for line in summary.lines():
        print("  " + line)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
