"""Views/s of a checkpoint's field at one keyframe (what the bake does per keyframe).

    python bench/nerf_render_bench.py CKPT [--size 256] [--views 6] [--device cpu]

Prints the first view (includes the per-keyframe blend + occupancy, done once) and the median of
the rest (cached keyframe), wall time and this process's CPU time (all its threads): on a shared
box the wall time depends on the neighbours' load, the CPU time much less. Medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bake.fields.registry import load_field
from formats.camera import Camera, orbit_pose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    fld = load_field(args.checkpoint, args.device)
    cap = fld.capture
    radius = float(np.mean(cap.view_angles()[:, 2]))
    h = int(round(args.size * cap.height / cap.width))
    intr = cap.intrinsics.scaled(args.size, h)
    expr = cap.expressions[len(cap.expressions) // 2]
    times, cpu = [], []
    for i, yaw in enumerate(np.linspace(-30, 30, args.views)):
        t0, c0 = time.perf_counter(), time.process_time()
        _, alpha, _ = fld.render(Camera(intr, orbit_pose(float(yaw), 5.0, radius)), expr)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    rest = statistics.median(times[1:]) if len(times) > 1 else times[0]
    rest_cpu = statistics.median(cpu[1:]) if len(cpu) > 1 else cpu[0]
    print(f"{fld.kind} at {args.size}x{h}: first view {times[0]:.2f} s (keyframe setup included), "
          f"then median {rest:.3f} s/view = {1 / rest:.2f} views/s; CPU {rest_cpu:.3f} s/view "
          f"(all threads); foreground {float(alpha.mean()):.2f}")


if __name__ == "__main__":
    main()
