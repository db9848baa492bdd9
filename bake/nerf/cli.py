"""``bake train`` and ``bake eval``."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from bake.dataset import DatasetError, load_dataset
from bake.field import CheckpointError, load_checkpoint, resolve_device, save_checkpoint
from bake.nerf.config import PRESETS, preset
from formats.camera import Camera
from formats.progress import Progress


class UsageError(ValueError):
    pass


def _write_png(path: Path, rgb: np.ndarray) -> None:
    """Atomic PNG write of uint8 RGB or RGBA."""
    img = rgb[..., [2, 1, 0, 3]] if rgb.shape[-1] == 4 else rgb[..., ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise OSError(f"cannot encode {path}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def _sheet_path(out: Path) -> Path:
    return out.with_name(out.stem + ".val.png")


# -- train -------------------------------------------------------------------------------------------
def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bake train", description="Train a NeRFBlendShape head from a dataset.")
    p.add_argument("dataset", help="dataset dir (output of `bake track` / `bake synth`)")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (subject.ckpt)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--minutes", type=float, help="train for this much wall time (default 20)")
    g.add_argument("--steps", type=int, help="train for this many steps")
    p.add_argument("--size", type=int, default=128, help="training image width in pixels (default 128)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint at -o")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="model/training preset (default cpu)")
    p.add_argument("--rays", type=int, help="rays per step (default: the preset's)")
    p.add_argument("--perceptual-weights", metavar="PATH",
                   help="local VGG16 state dict enabling the perceptual loss (off without it)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def train_main(argv: list[str]) -> int:
    args = train_parser().parse_args(argv)
    try:
        return _train(args)
    except (DatasetError, CheckpointError, UsageError, OSError) as exc:
        print(f"bake train: error: {exc}", file=sys.stderr)
        return 1


def _train(args) -> int:
    from bake.nerf.trainer import Trainer

    out = Path(args.output)
    if not out.parent.is_dir():
        raise UsageError(f"output folder {out.parent} does not exist")
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
        if ckpt.get("kind") != "nerf-blendshape":
            raise UsageError(f"--resume: {out} is a {ckpt.get('kind')!r} checkpoint, not nerf-blendshape")
        from bake.nerf.config import NerfConfig
        cfg = NerfConfig.from_dict(ckpt["config"])
        size = int(ckpt.get("train_stats", {}).get("size", args.size))
    else:
        overrides = {"seed": args.seed}
        if args.rays:
            overrides["rays_per_batch"] = args.rays
        cfg = preset(args.preset, **overrides)
        size = args.size
    perceptual = None
    if args.perceptual_weights:
        from bake.nerf.perceptual import PerceptualLoss
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
    total = int(round((args.minutes if args.minutes is not None else 20.0) * 60)) if by_time else int(args.steps)
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
        _write_png(_sheet_path(out), sheet)
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
              f"{out} (sheet {_sheet_path(out)})", file=sys.stderr)
    return 0


# -- eval --------------------------------------------------------------------------------------------
def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bake eval",
                                description="PSNR / SSIM / L1 of a checkpoint on the test split "
                                            "(full image over black, and inside the mask).")
    p.add_argument("checkpoint", help="checkpoint (.ckpt)")
    p.add_argument("dataset", nargs="?", help="dataset dir (default: the one recorded at training, if found)")
    p.add_argument("--size", type=int, help="evaluation width (default: the training size)")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--sheet", help="side-by-side PNG (default CKPT stem + .eval.png)")
    p.add_argument("--edge", type=int, default=4, metavar="PX",
                   help="also split the masked PSNR into the mask's outline band (pixels within PX of "
                        "its edge, where a tracked mask is noisy) and the interior (default 4; 0 = off)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON (key psnr = full image)")
    return p


def eval_main(argv: list[str]) -> int:
    args = eval_parser().parse_args(argv)
    try:
        return _eval(args)
    except (DatasetError, CheckpointError, UsageError, OSError, ValueError) as exc:
        print(f"bake eval: error: {exc}", file=sys.stderr)
        return 1


def _eval(args) -> int:
    if args.edge < 0:
        raise UsageError(f"--edge must be >= 0, got {args.edge}")
    from bake.field import load_field
    from bake.nerf.metrics import edge_band, l1, psnr, ssim
    from bake.nerf.trainer import load_frame_at

    ckpt_path = Path(args.checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    ds_path = args.dataset or ckpt.get("train_stats", {}).get("dataset")
    if not ds_path:
        raise UsageError("no DATASET given and the checkpoint does not record one")
    ds = load_dataset(ds_path)
    fld = load_field(ckpt_path, args.device)
    positions = ds.split.get(args.split)
    if not positions:
        raise UsageError(f"dataset {ds_path} has no frames in split {args.split!r}")
    size = args.size or int(ckpt.get("train_stats", {}).get("size", ds.width))
    w, h = size, max(1, int(round(size * ds.height / ds.width)))
    intr = ds.intrinsics.scaled(w, h)
    names = ("psnr", "ssim", "l1", "psnr_masked", "ssim_masked", "l1_masked", "psnr_interior", "psnr_edge",
             "edge_share")
    vals: dict[str, list[float]] = {k: [] for k in names}
    rows = []
    t0 = time.monotonic()
    with Progress(len(positions), "eval", disable=args.json) as bar:
        for i in positions:
            img, m = load_frame_at(ds, i, w, h)
            mf = m.astype(np.float32) / 255.0
            gt = img.astype(np.float32) / 255.0 * mf[..., None]  # the head over black, like the render
            cam = Camera(intr, np.linalg.inv(ds.frames[i].pose))
            rgb, _, _ = fld.render(cam, ds.frames[i].expression)
            valid = ds.valid_mask(i, w, h)
            inside = (m > 127) & valid
            rgb = rgb * valid[..., None]  # where the crop left the video there is nothing to compare
            vals["psnr"].append(psnr(rgb, gt, valid))
            vals["ssim"].append(ssim(rgb, gt, valid))
            vals["l1"].append(l1(rgb, gt, valid))
            if inside.any():
                vals["psnr_masked"].append(psnr(rgb, gt, inside))
                vals["ssim_masked"].append(ssim(rgb, gt, inside))
                vals["l1_masked"].append(l1(rgb, gt, inside))
                inner, band = edge_band(inside, args.edge)
                if args.edge > 0 and inner.any() and band.any():
                    vals["psnr_interior"].append(psnr(rgb, gt, inner))
                    vals["psnr_edge"].append(psnr(rgb, gt, band))
                    vals["edge_share"].append(float(band.sum() / inside.sum()))
            if len(rows) < 6:
                rows.append(np.concatenate([gt, rgb, np.clip(np.abs(rgb - gt) * 4, 0, 1)], 1))
            bar.update(1)
    res = {k: (float(np.mean(v)) if v else float("nan")) for k, v in vals.items()
           if v or k not in ("psnr_interior", "psnr_edge", "edge_share")}  # absent with --edge 0
    res.update(frames=len(positions), split=args.split, width=w, height=h, kind=ckpt.get("kind"),
               seconds_per_frame=round((time.monotonic() - t0) / len(positions), 4))
    sheet = Path(args.sheet) if args.sheet else ckpt_path.with_name(ckpt_path.stem + ".eval.png")
    _write_png(sheet, (np.concatenate(rows, 0) * 255 + 0.5).astype(np.uint8))
    res["sheet"] = str(sheet)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{ckpt_path.name} on {args.split} ({len(positions)} frames, {w}x{h}): "
              f"PSNR {res['psnr']:.2f} dB  SSIM {res['ssim']:.4f}  L1 {res['l1']:.4f} | masked: "
              f"PSNR {res['psnr_masked']:.2f} dB  SSIM {res['ssim_masked']:.4f}  L1 {res['l1_masked']:.4f}")
        if "psnr_edge" in res:
            print(f"  inside the mask: interior PSNR {res['psnr_interior']:.2f} dB, outline band "
                  f"({args.edge} px, {100 * res['edge_share']:.0f} % of the mask) {res['psnr_edge']:.2f} dB")
        print(f"sheet: {sheet}")
    return 0
