"""``bake train DATASET -o subject.ckpt``: a NeRFBlendShape head from a tracked dataset."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bake.cli.exits import run_command
from bake.cli.options import default
from bake.cli.png import write_png
from bake.data.load import load_dataset
from bake.fields.base import load_checkpoint, resolve_device, save_checkpoint
from bake.nerf.config import PRESETS, NerfConfig, preset
from bake.nerf.field import KIND as NERF_KIND
from bake.nerf.perceptual import PerceptualLoss
from bake.nerf.trainer import Trainer
from formats.atomic import check_writable_dir
from formats.errors import EXIT_OK, UsageError
from formats.progress import Progress

DEFAULT_MINUTES = 20.0
DEFAULT_SIZE = 128
"""training image width: 128 px keeps a CPU step cheap and still resolves eyes and mouth"""


def sheet_path(out: Path) -> Path:
    """Where the validation sheet of checkpoint ``out`` goes."""
    return out.with_name(out.stem + ".val.png")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bake train", description="Train a NeRFBlendShape head from a dataset.")
    p.add_argument("dataset", help="dataset dir (output of `bake track` / `bake synth`)")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (subject.ckpt)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--minutes", type=float, help=f"train for this much wall time (default {DEFAULT_MINUTES:g})")
    g.add_argument("--steps", type=int, help="train for this many steps")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE,
                   help="training image width in pixels (default %(default)s)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint at -o")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="model/training preset (default cpu)")
    p.add_argument("--rays", type=int, help="rays per step (default: the preset's)")
    p.add_argument("--perceptual-weights", metavar="PATH",
                   help="local VGG16 state dict enabling the perceptual loss (off without it)")
    p.add_argument("--seed", type=int, default=default(NerfConfig, "seed"), help="random seed (default %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return run_command("bake train", lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    out = Path(args.output)
    check_writable_dir(out)
    if args.steps is not None and args.steps <= 0 or args.minutes is not None and args.minutes <= 0:
        raise UsageError("--steps / --minutes must be positive")
    if args.size < 8:
        raise UsageError("--size must be at least 8")
    ds = load_dataset(args.dataset)
    device = resolve_device(args.device)
    ckpt = None
    if args.resume:
        if not out.is_file():
            raise UsageError(f"--resume: no checkpoint at {out} to resume from")
        ckpt = load_checkpoint(out)
        if ckpt.get("kind") != NERF_KIND:
            raise UsageError(f"--resume: {out} is a {ckpt.get('kind')!r} checkpoint, not {NERF_KIND}")
        try:
            cfg = NerfConfig.from_dict(ckpt["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"--resume: {out} holds an unusable config ({exc})") from None
        size = int(ckpt.get("train_stats", {}).get("size", args.size))
    else:
        overrides = {"seed": args.seed}
        if args.rays is not None:
            overrides["rays_per_batch"] = args.rays
        try:
            cfg = preset(args.preset, **overrides)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        size = args.size
    perceptual = None
    if args.perceptual_weights:
        try:
            perceptual = PerceptualLoss.from_file(args.perceptual_weights).to(device)
        except Exception as exc:  # a wrong file: say which and why, no traceback
            raise UsageError(f"--perceptual-weights {args.perceptual_weights}: not a VGG16 state dict "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    elif not args.quiet:
        print("bake train: perceptual loss off (no --perceptual-weights file given; nothing is downloaded)",
              file=sys.stderr)
    trainer = Trainer(cfg, ds, size, device, perceptual)
    if ckpt is not None:
        trainer.restore(ckpt)
    if not args.quiet:
        print(f"bake train: {len(trainer.train.positions)} train frames at {trainer.train.images.shape[2]}x"
              f"{trainer.train.images.shape[1]}, {device}, {trainer.model!r}", file=sys.stderr)
    by_time = args.steps is None
    minutes = args.minutes if args.minutes is not None else DEFAULT_MINUTES
    total = int(round(minutes * 60)) if by_time else int(args.steps)
    t_start = time.monotonic() - trainer.elapsed
    last_ckpt = time.monotonic()
    loss = psnr = float("nan")

    def done() -> int:
        return int(trainer.elapsed) if by_time else trainer.step_count

    def save(final: bool = False) -> float:
        sheet, val_psnr = trainer.validation_sheet()
        trainer.history.append([trainer.step_count, round(trainer.elapsed, 2), round(psnr, 3)])
        save_checkpoint(trainer.checkpoint({"val_psnr": round(val_psnr, 3), "final": final,
                                            "dataset": str(Path(args.dataset).resolve())}), out)
        write_png(sheet_path(out), sheet)
        return val_psnr

    with Progress(total, "train", initial=min(done(), total), disable=args.quiet) as bar:
        while done() < total:
            frac = trainer.elapsed / total if by_time else trainer.step_count / total
            loss, psnr = trainer.step(frac)
            before = bar.n
            trainer.elapsed = time.monotonic() - t_start
            bar.update(min(done(), total) - before, step=trainer.step_count, loss=loss, psnr=psnr)
            if trainer.step_count % 50 == 0:
                trainer.history.append([trainer.step_count, round(trainer.elapsed, 2), round(psnr, 3)])
            if time.monotonic() - last_ckpt > cfg.checkpoint_every:
                save()
                last_ckpt = time.monotonic()
                t_start = time.monotonic() - trainer.elapsed  # checkpoint time is not training time
    val_psnr = save(final=True)
    if not args.quiet:
        print(f"bake train: {trainer.step_count} steps in {trainer.elapsed:.0f}s, val PSNR {val_psnr:.2f} dB -> "
              f"{out} (sheet {sheet_path(out)})", file=sys.stderr)
    return EXIT_OK
