"""``bake eval CKPT [DATASET]``: PSNR / SSIM / L1 of a checkpoint on held-out frames."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bake.cli.exits import run_command
from bake.cli.png import write_png
from bake.data.load import load_dataset
from bake.fields.base import load_checkpoint
from bake.fields.registry import load_field
from bake.nerf.metrics import edge_band, l1, psnr, ssim
from bake.nerf.trainer import load_frame_at
from formats.atomic import check_writable_dir
from formats.camera import Camera
from formats.errors import EXIT_OK, UsageError
from formats.progress import Progress


def build_parser() -> argparse.ArgumentParser:
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


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return run_command("bake eval", lambda: _eval(args))


def _eval(args: argparse.Namespace) -> int:
    if args.edge < 0:
        raise UsageError(f"--edge must be >= 0, got {args.edge}")
    if args.size is not None and not 8 <= args.size <= 4096:
        raise UsageError(f"--size must be between 8 and 4096, got {args.size}")
    ckpt_path = Path(args.checkpoint)
    sheet = Path(args.sheet) if args.sheet else ckpt_path.with_name(ckpt_path.stem + ".eval.png")
    check_writable_dir(sheet)  # before minutes of rendering, not after
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
    write_png(sheet, (np.concatenate(rows, 0) * 255 + 0.5).astype(np.uint8))
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
    return EXIT_OK
