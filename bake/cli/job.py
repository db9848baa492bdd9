"""``bake CKPT -o OUT.p4d``: the main job's command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bake.anchor.blend import AnchorConfig
from bake.anchor.shell import SHELL_KIND, ShellField, fit_shell
from bake.anchor.tiles import CaptureAnchor
from bake.cli.exits import run_command
from bake.cli.options import build, default
from bake.data.load import load_dataset
from bake.fields.base import file_digest
from bake.fields.registry import load_field_and_dataset_hint
from bake.job.config import COLOR_CODECS, DEPTH_BITS, DEPTH_SCALES, NORMAL_SCALES, BakeConfig
from bake.job.graph import GraphConfig
from bake.job.run import partial_paths, run_bake
from bake.job.views import parse_range, parse_views
from bake.synthetic.field import SyntheticField
from formats.atomic import check_writable_dir
from formats.errors import EXIT_OK, UsageError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bake",
        description="Bake a checkpoint into a .p4d portrait: renders a yaw x pitch grid of views for every "
                    "expression keyframe and computes the transition graph (Kimura et al. / Video Textures). "
                    "Given a tracked dataset instead, bakes a quick portrait from its frames alone.",
        epilog="Ctrl-C or a crash leaves nothing at -o; run the same command with --resume to continue.")
    p.add_argument("checkpoint", metavar="CKPT|DATASET",
                   help="subject.ckpt from `bake train` or `bake synth`; or a tracked dataset folder from `bake "
                        "track` for a quick portrait with no training (the captured frames through a head shell)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.p4d", help="portrait file to write")
    g = p.add_argument_group("view grid")
    g.add_argument("--views", default="%dx%d" % default(BakeConfig, "views"), metavar="YAWxPITCH",
                   help="number of yaw x pitch views (default %(default)s)")
    g.add_argument("--yaw-range", metavar="LO,HI",
                   help="yaw range in degrees, e.g. --yaw-range=-30,30 (with '=': a value starting with '-' "
                        "would read as an option; default: what the capture saw)")
    g.add_argument("--pitch-range", metavar="LO,HI",
                   help="pitch range in degrees, e.g. --pitch-range=-10,15 (default: what the capture saw)")
    g.add_argument("--size", type=int, default=default(BakeConfig, "size"),
                   help="tile size in pixels (default %(default)s)")
    g.add_argument("--codec", default=default(BakeConfig, "codec"), choices=COLOR_CODECS,
                   help="colour codec (default %(default)s); alpha and depth are always lossless")
    g.add_argument("--quality", type=int, default=default(BakeConfig, "quality"),
                   help="colour quality 1-100 for jpeg/webp (default: 80 for tiles of 192 px and more, "
                        "90 below, which keeps tiles >= 38 dB from the render; with --chain: 92 from 192 px)")
    g.add_argument("--residual-quality", type=int, default=default(BakeConfig, "residual_quality"),
                   help="colour quality 1-100 of a chain's predicted tiles, their differences to the keyframe "
                        "before (default: 85 for tiles of 192 px and more, 90 below; with --quality given, "
                        "that quality)")
    g.add_argument("--depth-scale", type=int, default=default(BakeConfig, "depth_scale"), choices=DEPTH_SCALES,
                   help="store depth at 1/N resolution (default %(default)s; full resolution costs ~10x "
                        "the colour tile, and the player warps with coarse depth)")
    g.add_argument("--depth-bits", type=int, default=default(BakeConfig, "depth_bits"), choices=DEPTH_BITS,
                   help="bits per stored depth sample (default %(default)s: 2.4 mm steps over the 0.6 m depth "
                        "range, RMS error 0.7 mm, a quarter of 16-bit's bytes; 16: 0.01 mm steps, for "
                        "players of format 1.0)")
    g.add_argument("--normal-scale", type=int, default=default(BakeConfig, "normal_scale"), choices=NORMAL_SCALES,
                   help="store surface normals at 1/N resolution, with the capture's light fitted over the tiles, "
                        "so the player can relight (format 1.2; default %(default)s); 0: no normals")
    g.add_argument("--chain", type=int, default=default(BakeConfig, "chain"),
                   help="chains of N tiles (format 1.3; default %(default)s): a view's keyframe k with k %% N != 0 "
                        "stores only its difference to keyframe k-1, so a player decodes at most N tiles to "
                        "reach any keyframe; 1: every tile whole, for players of format 1.2")
    k = p.add_argument_group("keyframes and graph")
    k.add_argument("--fps", type=float, default=default(BakeConfig, "fps"), help="keyframe rate (default %(default)s)")
    k.add_argument("--transitions", type=int, default=default(GraphConfig, "transitions"),
                   help="backward transitions to keep (default %(default)s, as Kimura et al.)")
    k.add_argument("--p-back", type=float, default=default(GraphConfig, "p_back"),
                   help="probability of taking a backward transition (default %(default)s)")
    k.add_argument("--groups", type=int, default=default(BakeConfig, "groups"),
                   help="pose groups, k-means k (default %(default)s)")
    k.add_argument("--morph-seconds", type=float, default=default(BakeConfig, "morph_seconds"),
                   help="crossfade length of a jump in the player (default %(default)s)")
    k.add_argument("--drive", metavar="DATASET",
                   help="take keyframes from another tracked dataset (reenactment)")
    t = p.add_argument_group("tile source")
    t.add_argument("--source", choices=["anchored", "field"], default=None,
                   help="anchored: the captured frame at each keyframe's time carries its tiles, frames seen "
                        "from nearer a view lend what it sees badly (hair, ears, the far cheek), the field fills "
                        "what none sees; field: the field's render alone (default: anchored for a "
                        "learned checkpoint whose dataset is found, else field, with a notice; field for the "
                        "synthetic head, which renders its own truth)")
    t.add_argument("--dataset", metavar="DIR",
                   help="the tracked dataset the checkpoint was trained on (default: the folder `bake train` "
                        "recorded in it, or the checkpoint's own folder)")
    t.add_argument("--leave-out", choices=["none", "test"], default="none",
                   help="frames that never give a pixel: test = the dataset's test split, for a held-out "
                        "`bake eval-portrait` (default %(default)s)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=default(BakeConfig, "seed"),
                   help="seed of k-means (default %(default)s)")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where a learned field renders (default %(default)s: CUDA when present)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted bake of the same inputs")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no summary line")
    return p


def config_from_args(a: argparse.Namespace) -> BakeConfig:
    """The parsed flags as a checked ``BakeConfig`` (a bad value raises ``UsageError``)."""
    try:
        views = parse_views(a.views)
        yaw_range = parse_range(a.yaw_range) if a.yaw_range else None
        pitch_range = parse_range(a.pitch_range) if a.pitch_range else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return build(BakeConfig, views=views, yaw_range=yaw_range, pitch_range=pitch_range, size=a.size,
                 fps=a.fps, codec=a.codec, quality=a.quality,
                 residual_quality=a.residual_quality if a.residual_quality is not None else a.quality,
                 depth_scale=a.depth_scale, depth_bits=a.depth_bits,
                 normal_scale=a.normal_scale, chain=a.chain,
                 graph=build(GraphConfig, transitions=a.transitions, p_back=a.p_back),
                 groups=a.groups, morph_seconds=a.morph_seconds, seed=a.seed)


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    out = Path(a.output)
    hint = f"interrupted; `bake ... --resume` continues from {partial_paths(out)[0]}"
    return run_command("bake", lambda: _bake(a, out), interrupted=hint)


def _bake(a: argparse.Namespace, out: Path) -> int:
    cfg = config_from_args(a)
    check_writable_dir(out)  # before the checkpoint loads: a wrong -o fails at once
    if a.source == "field" and (a.dataset or a.leave_out != "none"):
        raise UsageError("--dataset and --leave-out choose the frames of an anchored bake; drop them or "
                         "use --source anchored")
    if Path(a.checkpoint).is_dir():
        field, anchor, digest = quick_source(a)
        drive = drive_digest = None
    else:
        field, hint = load_field_and_dataset_hint(a.checkpoint, a.device)
        drive = load_dataset(a.drive) if a.drive else None
        drive_digest = file_digest(Path(a.drive) / "dataset.json") if drive else None
        anchor = anchor_for(a, field, hint)
        digest = file_digest(a.checkpoint)
    t0 = time.monotonic()
    path = run_bake(field, cfg, out, source_digest=digest, drive=drive,
                    drive_digest=drive_digest, resume=a.resume, quiet=a.quiet, anchor=anchor)
    if not a.quiet:
        quick = "quick portrait, " if field.kind == SHELL_KIND else ""
        how = "the field's renders" if anchor is None else f"{quick}anchored on the frames of {anchor.dataset.root}"
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {how}) in {time.monotonic() - t0:.0f} s")
    return EXIT_OK


# The fill of a quick portrait is another frame, often with another expression: the keyframe's
# own frame keeps its weight further off its view than over a learned field's fill (a stretched
# face there reads better than a ghost of two expressions).
QUICK_ANCHOR = AnchorConfig(angle_full=25.0, angle_zero=60.0)


def quick_source(a: argparse.Namespace) -> tuple[ShellField, CaptureAnchor, str]:
    """(the shell field, the anchor, the source digest) of ``bake DATASET/``: a portrait from the
    tracked frames alone, no checkpoint."""
    root = Path(a.checkpoint)
    if not (root / "dataset.json").is_file():
        raise UsageError(f"{root}: a folder, but no dataset.json in it (give a checkpoint, or a dataset from "
                         f"`bake track`)")
    if a.source == "field":
        raise UsageError("--source field needs a trained checkpoint: a dataset has no field to render")
    if a.drive:
        raise UsageError("--drive needs a trained checkpoint: a quick portrait shows only the captured frames")
    if a.dataset and Path(a.dataset).resolve() != root.resolve():
        raise UsageError(f"--dataset {a.dataset} differs from the dataset being baked ({root})")
    ds = load_dataset(root)
    left_out = frozenset(ds.split.get("test", []) if a.leave_out == "test" else [])
    try:
        field = ShellField(ds, fit_shell(ds), left_out)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return field, CaptureAnchor(ds, QUICK_ANCHOR, left_out), file_digest(root / "dataset.json")


def anchor_for(a: argparse.Namespace, field, hint: str | None) -> CaptureAnchor | None:
    """The ``CaptureAnchor`` the flags ask for, None for field tiles. With no --source, a
    checkpoint whose dataset cannot be found (or does not match it) bakes field tiles after a
    notice on stderr; with --source anchored that is an error."""
    if a.source == "field":
        return None
    explicit = a.source == "anchored" or a.dataset is not None
    if not explicit and field.kind == SyntheticField.kind:
        return None  # the analytic head renders its own truth: its captured frames add only jpeg loss
    if a.drive:
        if explicit:
            raise UsageError("--drive takes keyframes from another video: there is no captured frame to anchor "
                             "its tiles on; use --source field")
        return None
    candidates = [a.dataset] if a.dataset else [c for c in (hint, str(Path(a.checkpoint).parent)) if c]
    found = next((Path(c) for c in candidates if (Path(c) / "dataset.json").is_file()), None)
    if found is None:
        why = (f"{a.dataset}: no dataset.json there" if a.dataset else
               "the checkpoint's dataset was not found" + (f" (it names {hint})" if hint else ""))
        if explicit:
            raise UsageError(f"--source anchored needs the tracked dataset: {why}; give it with --dataset DIR")
        print(f"bake: notice: {why}; baking the field's renders alone (--dataset DIR anchors the tiles on "
              f"the captured frames)", file=sys.stderr)
        return None
    ds = load_dataset(found)
    cap = field.capture
    if len(ds.frames) != len(cap.times) or not np.allclose(ds.times(), cap.times, atol=1e-4):
        why = (f"{found}: not the capture this checkpoint was trained on ({len(ds.frames)} frames, "
               f"it has {len(cap.times)})")
        if explicit:
            raise UsageError(why)
        print(f"bake: notice: {why}; baking the field's renders alone", file=sys.stderr)
        return None
    left_out = ds.split.get("test", []) if a.leave_out == "test" else []
    return CaptureAnchor(ds, AnchorConfig(), frozenset(left_out))
