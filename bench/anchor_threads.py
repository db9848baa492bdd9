"""numba's threading layers for the bake's kernels: a quick portrait's tiles (the shell field's
render and the anchored tile, whose reprojection kernel is parallel) timed in child processes
that alternate between OpenMP (numba's default) and workqueue (what `bake` and `bake train`
choose, bake.cli.main.prefer_workqueue), so both see the same load on a shared box.

    python bench/anchor_threads.py [DATASET] [--rounds 4] [--tiles 15] [--json]

Without DATASET a synthetic subject is written to a temp dir. Prints the median ms per tile of
each layer and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time, numpy as np, numba
from bake.data.load import load_dataset
from bake.anchor.shell import ShellField, fit_shell
from bake.anchor.tiles import CaptureAnchor
from bake.cli.job import QUICK_ANCHOR
from formats.camera import Camera, orbit_pose
ds = load_dataset(sys.argv[1]); n = int(sys.argv[2])
field = ShellField(ds, fit_shell(ds))
times = ds.times() - ds.times()[0]
anchor = CaptureAnchor(ds, QUICK_ANCHOR).for_keyframes(times)
cams = [Camera(ds.intrinsics, orbit_pose(y, p, 0.6)) for y in (-20, -10, 0, 10, 20) for p in (-10, 0, 10)][:n]
e = ds.expressions()
def tiles(k):
    for cam in cams:
        rgb, a, d = field.render(cam, e[k])
        anchor.tile(field, k, e[k], cam, rgb, a, d)
tiles(0)  # numba's load, the sources' proxies
t = time.perf_counter()
tiles(0)
print((time.perf_counter() - t) / len(cams) * 1e3, numba.threading_layer())
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", nargs="?", help="a tracked dataset (default: a synthetic subject)")
    ap.add_argument("--rounds", type=int, default=4, help="child processes per layer (default 4)")
    ap.add_argument("--tiles", type=int, default=15, help="tiles timed per child (default 15)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ds = a.dataset
        if ds is None:
            ds = str(Path(tmp) / "subject")
            subprocess.run([sys.executable, "-m", "bake.cli", "synth", "-o", ds, "--seconds", "4", "--size", "256",
                            "-q"], check=True, cwd=REPO_ROOT)
        ms = {"omp": [], "workqueue": []}
        for _ in range(a.rounds):
            for layer in ms:
                env = {**os.environ, "NUMBA_THREADING_LAYER": layer}
                out = subprocess.run([sys.executable, "-c", CHILD, ds, str(a.tiles)], capture_output=True, text=True,
                                     env=env, cwd=REPO_ROOT, check=True).stdout.split()
                ms[layer].append(float(out[0]))
    res = {f"{k}_ms_per_tile": round(statistics.median(v), 2) for k, v in ms.items()}
    res["workqueue_over_omp"] = round(res["workqueue_ms_per_tile"] / res["omp_ms_per_tile"], 3)
    if a.json:
        print(json.dumps(res))
    else:
        print(f"ms per anchored tile, median of {a.rounds}: OpenMP {res['omp_ms_per_tile']}, "
              f"workqueue {res['workqueue_ms_per_tile']} ({res['workqueue_over_omp']}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
