"""Measure `bake track` on the shared face videos and write a contact sheet of frames + masks.

    python bench/track_bench.py /path/to/d9.mp4 [--size 512] [--max-seconds 20] [--sheet sheet.jpg]

Prints frames/s end to end, frames kept, landmark reprojection error and the yaw/pitch range
(the same figures ``bake track`` prints), plus a sheet of 8 evenly spaced frames with the mask
outline (green) and the projected fitted landmarks (red) for checking by eye.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from bake.data.load import load_dataset
from bake.track.model import load_canonical_face
from bake.track.pipeline import TrackConfig, track_video
from bake.track.pose import canonical_to_head, intrinsics_matrix, project


def contact_sheet(root: Path, out: Path, n: int = 8, tile: int = 256) -> None:
    ds = load_dataset(root)
    k = ds.intrinsics
    kk = intrinsics_matrix(k.fx, k.fy, k.cx, k.cy)
    pts = canonical_to_head(load_canonical_face().vertices_cm)  # canonical face, not the personalised one
    idx = np.linspace(0, len(ds.frames) - 1, n).round().astype(int)
    rows = []
    for i in idx:
        img = ds.load_image(i)[..., ::-1].copy()
        m = ds.load_mask(i)
        over = img.copy()
        over[m == 0] = (over[m == 0] * 0.35).astype(np.uint8)
        cs, _ = cv2.findContours((m > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(over, cs, -1, (0, 255, 0), 2)
        for u, v in project(pts, ds.frames[i].pose, kk):
            cv2.circle(over, (int(u), int(v)), 1, (0, 0, 255), -1)
        pair = np.concatenate([cv2.resize(img, (tile, tile)), cv2.resize(over, (tile, tile)),
                               cv2.resize(np.repeat(m[..., None], 3, 2), (tile, tile))], axis=1)
        cv2.putText(pair, f"#{i} t={ds.frames[i].time:.2f}s", (6, 18), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (255, 255, 255), 1)
        rows.append(pair)
    half = (len(rows) + 1) // 2
    left, right = rows[:half], rows[half:] + [np.zeros_like(rows[0])] * (2 * half - len(rows))
    sheet = np.concatenate([np.concatenate(left, 0), np.concatenate(right, 0)], axis=1)
    cv2.imwrite(str(out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 88])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--fov", type=float, default=TrackConfig.fov)
    ap.add_argument("--sheet", type=Path, default=None, help="write a contact sheet JPEG here")
    ap.add_argument("--keep", type=Path, default=None, help="keep the dataset here")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as td:
        out = a.keep or Path(td) / "ds"
        s = track_video(a.video, out, TrackConfig(size=a.size, max_seconds=a.max_seconds, fov=a.fov),
                        overwrite=True)
        print(f"{Path(a.video).name} @ {a.size}^2:")
        for line in s.lines():
            print("  " + line)
        print(f"  kept: {100.0 * s.frames_kept / s.frames_read:.1f} %")
        if a.sheet:
            contact_sheet(out, a.sheet)
            print(f"  contact sheet: {a.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
