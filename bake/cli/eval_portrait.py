"""``bake eval-portrait OUT.p4d DATASET``: a baked portrait, as the player draws it, against its video.

The protocol is ``bake.evaluation.portrait``'s: replay (each keyframe at the camera of its own
captured frame), held-out (each test-split frame against the keyframe nearest to it in expression,
from outside the test split) and sharpness against the video, all inside the head mask at the
dataset's image size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bake.cli.exits import run_command
from bake.cli.png import write_png
from bake.data.load import load_dataset
from bake.evaluation.portrait import (PortraitEvaluation, field_heldout_psnr, heldout_pairs, replay_pairs, sheet,
                                      summarise, worst_and_median)
from formats import P4DFormatError, P4DReader
from formats.atomic import check_writable_dir
from formats.errors import EXIT_OK, UsageError, check_input_file
from formats.progress import Progress


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bake eval-portrait",
        description="Score a baked portrait, drawn by the player's renderer at each captured frame's full camera, "
                    "against the video it was made from, inside the head mask at the dataset's size: replay "
                    "(each keyframe at its own frame, unless the bake left that frame out), held-out (each "
                    "test-split frame against the keyframe nearest in expression from outside the test split) and sharpness (mean |Laplacian| as a "
                    "ratio to the video's: 1 = as sharp).")
    p.add_argument("portrait", metavar="OUT.p4d", help="the baked portrait")
    p.add_argument("dataset", metavar="DATASET", help="the dataset it was made from (bake track / bake synth)")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="also score the learned field on the held-out frames with their own expressions "
                        "(field_heldout_psnr: the best a field-only portrait can do)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="for --checkpoint")
    p.add_argument("--sheet", metavar="PNG",
                   help="worst and median cases beside the video frames (default OUT stem + .portrait.png)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (replay_psnr, replay_psnr_p10, replay_ssim, replay_sharpness, "
                        "heldout_psnr, heldout_ssim, heldout_sharpness, heldout_frames, field_heldout_psnr, ...)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return run_command("bake eval-portrait", lambda: evaluate(args))


def evaluate(args: argparse.Namespace) -> int:
    path = check_input_file(args.portrait)
    out_sheet = Path(args.sheet) if args.sheet else path.with_name(path.stem + ".portrait.png")
    check_writable_dir(out_sheet)  # before the work, not after
    ds = load_dataset(args.dataset)
    field = None
    if args.checkpoint:
        from bake.fields.registry import load_field
        field = load_field(args.checkpoint, args.device)
    try:
        reader = P4DReader(path)
    except P4DFormatError as exc:
        raise UsageError(f"{path}: not a portrait file ({exc})") from None
    with reader:
        ev = PortraitEvaluation(reader, ds)
        try:
            test = list(ds.split.get("test", []))
            replay = replay_pairs(ev.kf_frames, reader.meta.get("source", {}).get("left_out_frames", []))
            held = heldout_pairs(ev.kf_frames, ds.expressions(), test)
            with Progress(len(replay) + len(held), "eval-portrait", disable=args.json or args.quiet) as bar:
                replayed = ev.run(replay, bar)
                heldout = ev.run(held, bar)
            res = {**summarise([d.score for d in replayed], "replay"),
                   **summarise([d.score for d in heldout], "heldout")}
            if field is not None:
                res["field_heldout_psnr"] = field_heldout_psnr(field, ds, [b for _, b in held], ev.truth)
        finally:
            ev.close()
    res.update(width=ds.width, height=ds.height, keyframes=len(ev.kf_frames),
               heldout_keyframes=sorted({k for k, _ in held}),
               heldout_frames_list=[b for _, b in held])
    rows = [(f"replay {label}", d) for label, d in worst_and_median(replayed)] + \
           [(f"held-out {label}", d) for label, d in worst_and_median(heldout)]
    write_png(out_sheet, sheet(rows))
    res["sheet"] = str(out_sheet)
    if args.json:
        print(json.dumps(_plain(res)))
        return EXIT_OK
    print(f"{path.name} against {Path(args.dataset).name} ({ds.width}x{ds.height}, inside the head mask)")
    print(f"  replay   ({res['replay_frames']} keyframes): PSNR {res['replay_psnr']:.2f} dB (p10 "
          f"{res['replay_psnr_p10']:.2f})  SSIM {res['replay_ssim']:.4f}  sharpness {res['replay_sharpness']:.2f}")
    if res["heldout_frames"]:
        print(f"  held-out ({res['heldout_frames']} frames): PSNR {res['heldout_psnr']:.2f} dB (p10 "
              f"{res['heldout_psnr_p10']:.2f})  SSIM {res['heldout_ssim']:.4f}  sharpness "
              f"{res['heldout_sharpness']:.2f}")
    else:
        print("  held-out: no frames (the dataset has no test split, or every keyframe lies in it)")
    if "field_heldout_psnr" in res:
        print(f"  field on the held-out frames, own expressions: PSNR {res['field_heldout_psnr']:.2f} dB")
    print(f"sheet: {out_sheet}")
    return EXIT_OK


def _plain(res: dict) -> dict:
    """JSON-safe: NaN (which json.dumps would write as the non-JSON NaN) becomes null."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in res.items()}
