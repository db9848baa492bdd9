"""Render speed of the synthetic head: median wall and CPU time per frame at a few sizes.

    python bench/synth_bench.py [--sizes 256 512] [--repeats 9]

Views and expressions cycle through the capture's range (yaw +-35, pitch +-15, mixed
expressions) so the figure is what the bake and `bake synth` see. Work counts (distance
evaluations per pixel) are printed too: unlike times they do not depend on machine load.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from bake.synthetic import SyntheticField
from bake.synthetic import kernels as K
from formats.camera import Camera, Intrinsics, orbit_pose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    field = SyntheticField()
    t0 = time.perf_counter()
    field.warmup()
    print(f"warm-up (JIT compile or cache load): {time.perf_counter() - t0:.1f} s; "
          f"threads={numba.get_num_threads()} ({numba.threading_layer()})")
    rng = np.random.default_rng(0)
    views = [(rng.uniform(-35, 35), rng.uniform(-15, 15), rng.uniform(0, 1, 8) * (rng.uniform(size=8) < 0.4))
             for _ in range(args.repeats)]
    for size in args.sizes:
        intr = Intrinsics.from_fov(40, size, size)
        walls, cpus, evals = [], [], []
        for yaw, pitch, e in views:
            cam = Camera(intr, orbit_pose(yaw, pitch, 0.52))
            w, c = time.perf_counter(), time.process_time()
            field.render(cam, e)
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
            P, S = field.params(e)
            n = K.trace_stats(P, S, cam.cam_to_head, intr.fx, intr.fy, intr.cx, intr.cy, size, size)
            evals.append((n[0] + n[1]) / n[2])
        print(f"{size}x{size}: median wall {1e3 * np.median(walls):.1f} ms (min {1e3 * min(walls):.1f}), "
              f"median cpu {1e3 * np.median(cpus):.1f} ms, {np.mean(evals):.2f} marching evals/pixel")


if __name__ == "__main__":
    main()
