"""Do jumps show? Frame-to-frame change at graph jumps against ordinary playback.

Plays FILE.p4d headless in ``capture`` mode (the viewpoint replays the captured head motion, as
an export does), records the mean absolute RGB difference between consecutive output frames and
marks the frames of every jump and its crossfade. A jump that shows is a spike: the bar is that
the largest change during a jump stays under 1.5x the 99th percentile of ordinary change.

    python bench/jump_spikes.py FILE.p4d [--seconds 40] [--fps 25] [--seeds 0,1,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def measure(path: str, seconds: float, fps: float, seed: int) -> dict:
    from formats import P4DReader
    from player.playback import PlayConfig, Playback

    with P4DReader(path) as r:
        pb = Playback(r, PlayConfig(mode="capture", seed=seed))
        jumps: list[tuple[int, str]] = []
        pb.walker.push_handlers(on_jump=lambda kind, src, dst: jumps.append((pb.frames, kind)))
        prev = None
        diffs = []
        try:
            for _ in range(int(round(seconds * fps))):
                img = pb.render()[..., :3].astype(np.int16)
                if prev is not None:
                    diffs.append(float(np.abs(img - prev).mean()))
                prev = img
                pb.step(1.0 / fps)
            morph_s = pb.walker.morph_seconds
            switches = pb.motion.switches
        finally:
            pb.close()
    d = np.asarray(diffs)
    # diffs[i] is the change from frame i to frame i + 1; a jump at frame f fades over the morph.
    at = np.zeros(len(d), bool)
    span = int(np.ceil(morph_s * fps)) + 1
    for f, _ in jumps:
        at[max(f - 1, 0):min(f - 1 + span, len(d))] = True
    p99 = float(np.percentile(d[~at], 99))
    worst = float(d[at].max()) if at.any() else 0.0
    return {"file": path, "seed": seed, "frames": len(d) + 1, "jumps": len(jumps),
            "forced": sum(k == "forced" for _, k in jumps), "motion_switches": int(switches),
            "ordinary_p99": p99, "jump_max": worst, "ratio": worst / p99 if p99 > 0 else float("inf")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", metavar="FILE.p4d")
    ap.add_argument("--seconds", type=float, default=40.0, help="playback time (default 40)")
    ap.add_argument("--fps", type=float, default=25.0, help="output frame rate (default 25)")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated walk seeds (default 0,1,2)")
    ap.add_argument("--json", action="store_true", help="print one JSON object per seed")
    args = ap.parse_args(argv)
    if not Path(args.file).is_file():
        print(f"jump_spikes: {args.file}: no such file", file=sys.stderr)
        return 2
    for seed in (int(s) for s in args.seeds.split(",")):
        res = measure(args.file, args.seconds, args.fps, seed)
        if args.json:
            print(json.dumps(res))
            continue
        print(f"seed {seed}: {res['frames']} frames, {res['jumps']} jumps ({res['forced']} forced), "
              f"{res['motion_switches']} motion switches; ordinary change p99 {res['ordinary_p99']:.3f}, "
              f"worst at a jump {res['jump_max']:.3f} = {res['ratio']:.2f}x (bar: < 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
