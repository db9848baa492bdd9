"""Where a player frame's time goes: thread CPU time per kernel stage over an orbit playback.

Plays FILE.p4d headless like `player bench` (orbit, 60 Hz steps) with one numba thread, waits for
the prefetch thread between frames (so decode is left out: this is the render cost alone), and
prints per-frame CPU p50/p99 and the mean per stage. CPU time, not wall time, because the
machines this runs on are often shared.

By default frames run back to back. With --paced each frame starts on a 60 Hz tick, as in
`player bench` and a window: on the 2-core VMs this project is measured on, a frame after an idle
gap costs up to ~1.5x a back-to-back one, and not evenly across stages, so judge a change on
`player bench`'s frame time with --paced stage figures beside it.

    python bench/player_stages.py FILE.p4d [--seconds 5] [--view-sharpen 1] [--paced] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

STAGES = ("temporal_blend", "fade_blend", "splat_depth", "warp", "composite")


def run(path: str, seconds: float, sharpen: float, paced: bool = False) -> dict:
    import numba

    from formats import P4DReader
    from player import kernels as K
    from player.pacing import FrameClock
    from player.playback import PlayConfig, Playback
    from player.render import RenderConfig
    numba.set_num_threads(1)
    K.warm_up()
    spent = dict.fromkeys(STAGES, 0.0)
    originals = {name: getattr(K, name) for name in STAGES}

    def timed(name):
        f = originals[name]

        def g(*a, **kw):
            c = time.thread_time()
            try:
                return f(*a, **kw)
            finally:
                spent[name] += time.thread_time() - c
        return g

    with P4DReader(path) as r:
        pb = Playback(r, PlayConfig(mode="orbit", render=RenderConfig(view_sharpen=sharpen)))
        try:
            pb.render()
            pb.cache.idle()
            for name in STAGES:  # the renderer calls them as K.<name>: patch the module
                setattr(K, name, timed(name))
            n = max(1, int(round(seconds * 60)))
            cpu, sources = np.empty(n), np.empty(n, np.int64)
            clock = FrameClock(60.0)
            for i in range(n):
                c = time.thread_time()
                pb.step(1 / 60)
                pb.render()
                cpu[i] = time.thread_time() - c
                sources[i] = int((pb.renderer.w > 0).sum())
                pb.cache.idle()
                if paced:
                    clock.wait()
        finally:
            for name, f in originals.items():
                setattr(K, name, f)
            pb.close()
    stages = {k: v / n * 1e3 for k, v in spent.items()}
    stages["other"] = float(cpu.mean() * 1e3 - sum(stages.values()))
    by_src = {int(s): float(np.median(cpu[sources == s]) * 1e3) for s in np.unique(sources)}
    return {"file": path, "frames": n, "paced": paced, "cpu_p50_ms": float(np.percentile(cpu, 50) * 1e3),
            "cpu_p99_ms": float(np.percentile(cpu, 99) * 1e3), "cpu_mean_ms": float(cpu.mean() * 1e3),
            "stage_mean_ms": stages, "p50_ms_by_sources": by_src,
            "frames_by_sources": {int(s): int((sources == s).sum()) for s in np.unique(sources)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", metavar="FILE.p4d")
    ap.add_argument("--seconds", type=float, default=5.0, help="simulated playback time (default 5)")
    ap.add_argument("--view-sharpen", type=float, default=1.0,
                    help="RenderConfig.view_sharpen, >= 1 (default 1: bilinear view weights)")
    ap.add_argument("--paced", action="store_true",
                    help="start each frame on a 60 Hz tick, as player bench does (default: back to back)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if not Path(args.file).is_file():
        print(f"player_stages: {args.file}: no such file", file=sys.stderr)
        return 2
    if args.view_sharpen < 1:
        ap.error("--view-sharpen must be >= 1")
    res = run(args.file, args.seconds, args.view_sharpen, args.paced)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['file']}: {res['frames']} frames, CPU per frame p50 {res['cpu_p50_ms']:.2f} ms, "
          f"p99 {res['cpu_p99_ms']:.2f} ms, mean {res['cpu_mean_ms']:.2f} ms (decode excluded, "
          f"{'paced at 60 Hz' if res['paced'] else 'back to back'})")
    print("  mean per stage: " + ", ".join(f"{k} {v:.2f} ms" for k, v in res["stage_mean_ms"].items()))
    print("  p50 by views used: " + ", ".join(f"{k}: {v:.2f} ms ({res['frames_by_sources'][k]} frames)"
                                              for k, v in res["p50_ms_by_sources"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
