"""Playing a chained file (format 1.3) against the same portrait coded whole, side by side (issue 45).

    python bench/chain_bench.py WHOLE.p4d CHAINED.p4d [--size 512] [--seconds 10] [--seed 0] [--json]

Both files are played in one process, one numba thread, the same walk (same seed, same graph) and
the same orbit at 60 Hz, frame by frame in turns (A's frame i, B's frame i, A's frame i+1, ...), so
both meet the same machine state. Two rounds:
  decode counted   no prefetch thread: every tile a frame misses is decoded inside that frame's
                   time (the chained file pays its chain walks there);
  as played        the player as it ships (prefetch thread on): what a viewer sees.
Prints per file and round p50/p99 wall and CPU time of a frame and the chunks decoded per frame;
then per-tile decode times (all kinds of one (keyframe, view), ``player.cache.decode_tile``) played
forward through one view and at random keyframes (the chained file's worst case: a chain walk).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from formats import P4DReader  # noqa: E402
from player import kernels  # noqa: E402
from player.cache import decode_tile  # noqa: E402
from player.pacing import FrameClock  # noqa: E402
from player.playback import PlayConfig, Playback  # noqa: E402
from player.render import RenderConfig  # noqa: E402


def side_by_side(paths: list[str], size: int, seconds: float, seed: int, prefetch: bool) -> list[dict]:
    readers = [P4DReader(p) for p in paths]
    pbs = [Playback(r, PlayConfig(mode="orbit", seed=seed, prefetch=prefetch, render=RenderConfig(size=size)))
           for r in readers]
    try:
        for p in pbs:  # first frame: JIT cache load and first decodes are not playback
            p.render()
            p.cache.idle()
        d0 = [r.decodes for r in readers]
        n = int(round(seconds * 60))
        wall, cpu = np.empty((len(pbs), n)), np.empty((len(pbs), n))
        clock = FrameClock(60.0)
        for i in range(n):
            for j, p in enumerate(pbs):
                t0, c0 = time.perf_counter(), time.thread_time()
                p.step(1 / 60)
                p.render()
                wall[j, i], cpu[j, i] = time.perf_counter() - t0, time.thread_time() - c0
            clock.wait()
        return [{"file": Path(path).name, "p50_ms": float(np.percentile(wall[j], 50) * 1e3),
                 "p99_ms": float(np.percentile(wall[j], 99) * 1e3),
                 "cpu_p50_ms": float(np.percentile(cpu[j], 50) * 1e3),
                 "cpu_p99_ms": float(np.percentile(cpu[j], 99) * 1e3),
                 "chunks_per_frame": (readers[j].decodes - d0[j]) / n, "jumps": pbs[j].walker.jumps,
                 "misses": pbs[j].cache.stats()["misses"]} for j, path in enumerate(paths)]
    finally:
        for p in pbs:
            p.close()
        for r in readers:
            r.close()


def decode_times(path: str, n: int, seed: int) -> dict:
    """ms to decode one (keyframe, view), all kinds: forward through view 0, then at random keyframes."""
    with P4DReader(path) as r:
        decode_tile(r, 0, 0)
        fwd = []
        for k in range(min(n, r.n_keyframes)):
            t0 = time.perf_counter()
            decode_tile(r, k, 1)
            fwd.append(time.perf_counter() - t0)
    rng = np.random.default_rng(seed)
    with P4DReader(path) as r:
        rnd = []
        for k, v in zip(rng.integers(0, r.n_keyframes, n), rng.integers(0, r.n_views, n)):
            t0 = time.perf_counter()
            decode_tile(r, int(k), int(v))
            rnd.append(time.perf_counter() - t0)
    ms = lambda a, q: float(np.percentile(a, q) * 1e3)  # noqa: E731
    return {"forward_p50_ms": ms(fwd, 50), "forward_p99_ms": ms(fwd, 99),
            "random_p50_ms": ms(rnd, 50), "random_p99_ms": ms(rnd, 99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("whole", help="the portrait with every tile whole (format 1.2 or older)")
    ap.add_argument("chained", help="the same portrait with chained tiles (format 1.3)")
    ap.add_argument("--size", type=int, default=512, help="output side in pixels (default 512)")
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated playback per round (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiles", type=int, default=100, help="tiles timed per decode test (default 100)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import numba
    numba.set_num_threads(1)
    kernels.warm_up()
    paths = [a.whole, a.chained]
    res = {"size": a.size, "threads": 1, "seconds": a.seconds,
           "decode_counted": side_by_side(paths, a.size, a.seconds, a.seed, prefetch=False),
           "as_played": side_by_side(paths, a.size, a.seconds, a.seed, prefetch=True),
           "decode": {Path(p).name: decode_times(p, a.tiles, a.seed) for p in paths}}
    if a.json:
        print(json.dumps(res))
        return
    print(f"{a.size}x{a.size}, 1 thread, {a.seconds:g} s orbit at 60 Hz per round, frames interleaved")
    for rnd in ("decode_counted", "as_played"):
        for f in res[rnd]:
            print(f"  {rnd:15s} {f['file']:28s} p50 {f['p50_ms']:6.2f} ms  p99 {f['p99_ms']:6.2f} ms  "
                  f"(cpu p50 {f['cpu_p50_ms']:6.2f}  p99 {f['cpu_p99_ms']:6.2f})  "
                  f"{f['chunks_per_frame']:5.2f} chunks/frame  {f['jumps']} jumps")
    for name, d in res["decode"].items():
        print(f"  decode one (keyframe, view) {name:28s} forward p50 {d['forward_p50_ms']:6.2f} p99 "
              f"{d['forward_p99_ms']:6.2f} ms; random p50 {d['random_p50_ms']:6.2f} p99 {d['random_p99_ms']:6.2f} ms")


if __name__ == "__main__":
    main()
