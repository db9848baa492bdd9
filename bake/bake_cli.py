"""``bake CKPT -o OUT.p4d``: the main job's command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bake.bake_job import BakeConfig, BakeError, partial_paths, run_bake
from bake.graph import GraphConfig
from bake.keyframes import parse_range, parse_views

_DEFAULTS = BakeConfig()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bake",
        description="Bake a checkpoint into a .p4d portrait: renders a yaw x pitch grid of views for every "
                    "expression keyframe and computes the transition graph (Kimura et al. / Video Textures).",
        epilog="Ctrl-C or a crash leaves nothing at -o; run the same command with --resume to continue.")
    p.add_argument("checkpoint", metavar="CKPT", help="subject.ckpt from `bake train` or `bake synth`")
    p.add_argument("-o", "--output", required=True, metavar="OUT.p4d", help="portrait file to write")
    g = p.add_argument_group("view grid")
    g.add_argument("--views", default="%dx%d" % _DEFAULTS.views, metavar="YAWxPITCH",
                   help="number of yaw x pitch views (default %(default)s)")
    g.add_argument("--yaw-range", metavar="LO,HI", help="yaw range in degrees (default: what the capture saw)")
    g.add_argument("--pitch-range", metavar="LO,HI", help="pitch range in degrees (default: what the capture saw)")
    g.add_argument("--size", type=int, default=_DEFAULTS.size, help="tile size in pixels (default %(default)s)")
    g.add_argument("--codec", default=_DEFAULTS.codec, choices=["jpeg", "webp", "png", "raw+zstd"],
                   help="colour codec (default %(default)s); alpha and depth are always lossless")
    g.add_argument("--quality", type=int, default=None,
                   help="colour quality 1-100 for jpeg/webp (default: 80 for tiles of 192 px and more, "
                        "90 below, which keeps tiles >= 38 dB from the render)")
    g.add_argument("--depth-scale", type=int, default=_DEFAULTS.depth_scale, choices=[1, 2, 4, 8],
                   help="store depth at 1/N resolution (default %(default)s; full resolution costs ~10x "
                        "the colour tile, and the player warps with coarse depth)")
    k = p.add_argument_group("keyframes and graph")
    k.add_argument("--fps", type=float, default=_DEFAULTS.fps, help="keyframe rate (default %(default)s)")
    k.add_argument("--transitions", type=int, default=_DEFAULTS.graph.transitions,
                   help="backward transitions to keep (default %(default)s, as Kimura et al.)")
    k.add_argument("--p-back", type=float, default=_DEFAULTS.graph.p_back,
                   help="probability of taking a backward transition (default %(default)s)")
    k.add_argument("--groups", type=int, default=_DEFAULTS.groups, help="pose groups, k-means k (default %(default)s)")
    k.add_argument("--morph-seconds", type=float, default=_DEFAULTS.morph_seconds,
                   help="crossfade length of a jump in the player (default %(default)s)")
    k.add_argument("--drive", metavar="DATASET",
                   help="take keyframes from another tracked dataset (reenactment)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="seed of k-means (default %(default)s)")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where a learned field renders (default %(default)s: CUDA when present)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted bake of the same inputs")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no summary line")
    return p


def config_from_args(a: argparse.Namespace) -> BakeConfig:
    if not 16 <= a.size <= 2048:
        raise ValueError(f"--size must be between 16 and 2048, got {a.size}")
    if a.quality is not None and not 1 <= a.quality <= 100:
        raise ValueError(f"--quality must be between 1 and 100, got {a.quality}")
    if not 0.0 <= a.p_back <= 1.0:
        raise ValueError(f"--p-back must be a probability, got {a.p_back}")
    if a.transitions < 0 or a.groups < 1 or a.morph_seconds < 0 or not 0 < a.fps <= 120:
        raise ValueError("--transitions >= 0, --groups >= 1, --morph-seconds >= 0 and 0 < --fps <= 120")
    return BakeConfig(
        views=parse_views(a.views),
        yaw_range=parse_range(a.yaw_range) if a.yaw_range else None,
        pitch_range=parse_range(a.pitch_range) if a.pitch_range else None,
        size=a.size, fps=a.fps, codec=a.codec, quality=a.quality, depth_scale=a.depth_scale,
        graph=GraphConfig(transitions=a.transitions, p_back=a.p_back),
        groups=a.groups, morph_seconds=a.morph_seconds, seed=a.seed)


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    from bake.dataset import DatasetError, load_dataset
    from bake.field import CheckpointError, file_digest, load_field
    from formats import P4DFormatError

    out = Path(a.output)
    try:
        cfg = config_from_args(a)
        if not out.parent.is_dir():
            raise ValueError(f"output folder {out.parent} does not exist")
        field = load_field(a.checkpoint, a.device)
        drive = load_dataset(a.drive) if a.drive else None
        drive_digest = file_digest(Path(a.drive) / "dataset.json") if drive else None
        t0 = time.monotonic()
        path = run_bake(field, cfg, out, source_digest=file_digest(a.checkpoint), drive=drive,
                        drive_digest=drive_digest, resume=a.resume, quiet=a.quiet)
    except KeyboardInterrupt:
        print(f"bake: interrupted; `bake ... --resume` continues from {partial_paths(out)[0]}", file=sys.stderr)
        return 130
    except (BakeError, CheckpointError, DatasetError, P4DFormatError, ValueError, OSError) as exc:
        print(f"bake: error: {exc}", file=sys.stderr)
        return 1
    size = path.stat().st_size
    if not a.quiet:
        print(f"wrote {path} ({size / 1e6:.1f} MB) in {time.monotonic() - t0:.0f} s")
    return 0
