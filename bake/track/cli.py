"""``bake track VIDEO -o DATASET/``: track a face video into a training dataset."""

from __future__ import annotations

import argparse
import sys

from bake.track.mask import MaskConfig
from bake.track.pipeline import TrackConfig, TrackError, track_video


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bake track",
        description="Track a face video into a dataset: per-frame head pose (4x4 head->camera), "
                    "51 ARKit-named expression coefficients, a head+hair+neck mask, and a square "
                    "crop that follows the head (docs/tracking.md).")
    p.add_argument("video", help="input video (anything OpenCV reads: mp4, mov, ...)")
    p.add_argument("-o", "--output", required=True, metavar="DATASET", help="output dataset directory")
    p.add_argument("--size", type=int, default=512, choices=(256, 512), help="crop size in pixels (default 512)")
    p.add_argument("--fps", type=float, default=None, metavar="F",
                   help="resample to F frames/s (default: every frame of the video)")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--focal", type=float, default=None, metavar="PX",
                     help="focal length of the video in pixels, if known")
    cam.add_argument("--fov", type=float, default=None, metavar="DEG",
                     help="horizontal field of view of the video (default 40; a phone's main "
                          "camera is ~65, a cropped talking-head clip ~20-40)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S", help="track only the first S seconds")
    p.add_argument("--mask-method", choices=("segmenter", "grabcut"), default=MaskConfig.method,
                   help="head mask from the bundled person segmentation model, cut to the head "
                        "(default), or from GrabCut on colour alone (loses dark hair against a dark room)")
    p.add_argument("--mask-vote", type=float, default=MaskConfig.vote_half_window_s, metavar="S",
                   help="each mask is the majority of the head-aligned masks within S seconds of its "
                        f"frame, which steadies GrabCut's flickering edge (default {MaskConfig.vote_half_window_s}; "
                        "0 = off)")
    p.add_argument("--overwrite", action="store_true", help="replace DATASET if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("fps", "focal", "max_seconds"):
        v = getattr(args, name)
        if v is not None and not v > 0:
            print(f"bake track: --{name.replace('_', '-')} must be > 0", file=sys.stderr)
            return 2
    if not 0 <= args.mask_vote <= 1:
        print("bake track: --mask-vote must be between 0 and 1 seconds", file=sys.stderr)
        return 2
    if args.fov is not None and not 1 < args.fov < 170:
        print("bake track: --fov must be between 1 and 170 degrees", file=sys.stderr)
        return 2
    cfg = TrackConfig(size=args.size, fps=args.fps, focal=args.focal,
                      fov=args.fov if args.fov is not None else TrackConfig.fov,
                      max_seconds=args.max_seconds, progress=not args.quiet,
                      mask=MaskConfig(method=args.mask_method, vote_half_window_s=args.mask_vote))
    from bake.track.model import TrackerUnavailable
    from bake.track.video import VideoError
    try:
        summary = track_video(args.video, args.output, cfg, overwrite=args.overwrite)
    except (TrackError, VideoError, TrackerUnavailable) as exc:
        print(f"bake track: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    for line in summary.lines():
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
