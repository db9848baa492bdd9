"""Bake throughput on the synthetic subject: views/s, total time, file size, bits/pixel, tile PSNR.

    python bench/bake_bench.py [--seconds 20] [--views 7x3] [--size 256] [--workdir /tmp/bakebench]

Runs `bake synth` (unless the subject already exists in --workdir), then `bake` at the defaults
(or the given grid) and prints one table. Every figure comes from this run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", *args], check=True, cwd=REPO)
    return time.monotonic() - t0


def tile_psnr(p4d: Path, ckpt: Path, samples: int = 12, seed: int = 0) -> list[float]:
    from bake.fields.registry import load_field
    from formats import P4DReader
    from formats.camera import Camera, Intrinsics, orbit_pose

    field = load_field(ckpt)
    rng = np.random.default_rng(seed)
    out = []
    with P4DReader(p4d) as r:
        g = r.meta["grid"]
        intr = Intrinsics.from_dict(g["intrinsics"])
        for _ in range(samples):
            k, v = int(rng.integers(r.n_keyframes)), int(rng.integers(r.n_views))
            yaw, pitch = g["yaws"][v % len(g["yaws"])], g["pitches"][v // len(g["yaws"])]
            rgb, _, _ = field.render(Camera(intr, orbit_pose(yaw, pitch, g["radius"], g["center"])),
                                     np.asarray(r.meta["keyframes"]["expressions"][k], np.float32))
            want = np.clip(rgb * 255 + 0.5, 0, 255)
            mse = np.mean((r.tile(k, v, "color").astype(np.float64) - want) ** 2)
            out.append(10 * np.log10(255 ** 2 / max(mse, 1e-12)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--views", default=None, help="YAWxPITCH (default: bake's default)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workdir", default="/tmp/bakebench")
    a = ap.parse_args()
    work = Path(a.workdir)
    subject = work / f"synth{a.seconds:g}s"
    synth_s = 0.0
    if not (subject / "subject.ckpt").exists():
        synth_s = run("bake.cli", "synth", "-o", str(subject), "--seconds", str(a.seconds), "--size", str(a.size))
    out = work / "bench.p4d"
    extra = ["--views", a.views] if a.views else []
    bake_s = run("bake.cli", str(subject / "subject.ckpt"), "-o", str(out), "--size", str(a.size), *extra)
    info = json.loads(subprocess.run([sys.executable, "-m", "formats.cli", "info", str(out), "--json"],
                                     check=True, capture_output=True, text=True, cwd=REPO).stdout)
    n_tiles = info["views"] * info["keyframes"]
    size = out.stat().st_size
    psnrs = tile_psnr(out, subject / "subject.ckpt")
    rows = [
        ("capture seconds", f"{a.seconds:g}"),
        ("bake synth s", f"{synth_s:.1f}" if synth_s else "(reused)"),
        ("views x keyframes", f"{info['views']} x {info['keyframes']} = {n_tiles}"),
        ("bake s", f"{bake_s:.1f}"),
        ("views/s", f"{n_tiles / bake_s:.1f}"),
        ("file MB", f"{size / 1e6:.2f}"),
        ("bits/pixel (all kinds)", f"{8 * size / (n_tiles * a.size * a.size):.3f}"),
        ("tile PSNR dB min/median", f"{min(psnrs):.2f} / {np.median(psnrs):.2f}"),
        ("transitions / pose groups", f"{info['transitions']} / {info['pose_groups']}"),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")


if __name__ == "__main__":
    main()
