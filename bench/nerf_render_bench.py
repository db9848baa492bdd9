"""Views/s of a checkpoint's field at one keyframe (what the bake does per keyframe): the fused numba
renderer (the CPU default) against the torch path, on the same views, in one process.

    python bench/nerf_render_bench.py CKPT [--size 256] [--views 6] [--device cpu] [--impl both|fused|torch]
                                      [--json]

The first view of each path includes the per-keyframe blend + occupancy (done once) and numba's
load; the figures are the median of the rest (cached keyframe). Views alternate between the paths
(fused, torch, fused, torch, ...) so both see the same load on a shared box. Wall time and this
process's CPU time (all its threads): on a shared box the wall time depends on the neighbours' load,
the CPU time much less. ``psnr_vs_torch``: the fused colour against the torch colour over all views
(premultiplied, MSE over every pixel); ``max_rgb_diff`` and ``max_depth_diff_mm`` (where both alphas
exceed 0.5) say the worst pixel.
"""

from __future__ import annotations

import argparse
import json
import math
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
    ap.add_argument("--impl", default="both", choices=["both", "fused", "torch"],
                    help="render path(s) to time (learned heads; other kinds have one path)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = ap.parse_args()
    fld = load_field(args.checkpoint, args.device)
    cap = fld.capture
    radius = float(np.mean(cap.view_angles()[:, 2]))
    h = int(round(args.size * cap.height / cap.width))
    intr = cap.intrinsics.scaled(args.size, h)
    expr = cap.expressions[len(cap.expressions) // 2]
    has_impl = hasattr(fld, "implementation")
    if not has_impl or args.device != "cpu":
        impls = [getattr(fld, "implementation", fld.kind)]
    else:
        impls = ["fused", "torch"] if args.impl == "both" else [args.impl]
    times = {k: [] for k in impls}
    cpu = {k: [] for k in impls}
    outs = {k: [] for k in impls}
    for yaw in np.linspace(-30, 30, args.views):
        cam = Camera(intr, orbit_pose(float(yaw), 5.0, radius))
        for k in impls:
            if has_impl:
                fld.implementation = k
            t0, c0 = time.perf_counter(), time.process_time()
            outs[k].append(fld.render(cam, expr))
            times[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)

    def med(v: list[float]) -> float:
        return statistics.median(v[1:]) if len(v) > 1 else v[0]

    res: dict = {"kind": fld.kind, "size": [args.size, h], "views": args.views}
    for k in impls:
        key = "" if k == impls[0] else f"{k}_"
        res[f"{key}impl" if key else "impl"] = k
        res[f"{key}views_per_s"] = round(1 / med(times[k]), 3)
        res[f"{key}s_per_view"] = round(med(times[k]), 4)
        res[f"{key}cpu_s_per_view"] = round(med(cpu[k]), 4)
        res[f"{key}first_view_s"] = round(times[k][0], 3)
    alpha = outs[impls[0]][-1][1]
    res["foreground"] = round(float(alpha.mean()), 4)
    if len(impls) == 2:
        a, b = outs[impls[0]], outs[impls[1]]
        mse = float(np.mean([np.mean((x[0] - y[0]) ** 2) for x, y in zip(a, b)]))
        res["psnr_vs_torch"] = round(-10 * math.log10(max(mse, 1e-12)), 2)
        res["max_rgb_diff"] = float(max(np.abs(x[0] - y[0]).max() for x, y in zip(a, b)))
        res["max_alpha_diff"] = float(max(np.abs(x[1] - y[1]).max() for x, y in zip(a, b)))
        dz = [np.abs(x[2] - y[2])[(x[1] > 0.5) & (y[1] > 0.5)] for x, y in zip(a, b)]
        res["max_depth_diff_mm"] = round(1e3 * float(max((z.max() if z.size else 0.0) for z in dz)), 4)
        res["speedup"] = round(res["views_per_s"] / res["torch_views_per_s"], 2)
    if args.json:
        print(json.dumps(res))
        return
    for k in impls:
        key = "" if k == impls[0] else f"{k}_"
        print(f"{fld.kind} [{k}] at {args.size}x{h}: first view {res[key + 'first_view_s']:.2f} s (keyframe setup "
              f"included), then median {res[key + 's_per_view']:.3f} s/view = {res[key + 'views_per_s']:.2f} "
              f"views/s; CPU {res[key + 'cpu_s_per_view']:.3f} s/view (all threads)")
    if len(impls) == 2:
        print(f"fused vs torch: {res['speedup']:.2f}x, colour PSNR {res['psnr_vs_torch']:.1f} dB, max |rgb| "
              f"{res['max_rgb_diff']:.2e}, max |alpha| {res['max_alpha_diff']:.2e}, max |depth| "
              f"{res['max_depth_diff_mm']:.3f} mm; foreground {res['foreground']:.2f}")


if __name__ == "__main__":
    main()
