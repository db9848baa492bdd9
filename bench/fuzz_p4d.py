"""Long mutation-fuzzing runs of the .p4d reader (CI runs 10,000 cases; this runs as many as you like).

    python bench/fuzz_p4d.py --cases 1000000 --seed 1 [--size 16]

Exits 1 with the failing case number and seed on any outcome other than a clean read or
P4DFormatError; prints outcome counts and cases/s otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]  # testkit/ is not installed with the package
sys.path.insert(0, str(REPO_ROOT))
from formats.progress import Progress
from testkit.fuzz import fuzz
from testkit.sample import write_sample


def seed_files(d: Path, size: int) -> list[bytes]:
    raw = {"color": "raw+zstd", "alpha": "raw+zstd", "depth": "raw+zstd"}
    s = (size, size)
    return [
        write_sample(d / "a.p4d", n_keyframes=2, yaws=(0.0, 10.0), size=s).read_bytes(),
        write_sample(d / "b.p4d", n_keyframes=2, yaws=(0.0,), pitches=(0.0, 5.0), size=(size, size + 4), codecs=raw,
                     preview=False).read_bytes(),
        write_sample(d / "c.p4d", n_keyframes=3, yaws=(0.0,), size=s, kinds=("color", "alpha"),
                     codecs={"color": "webp", "alpha": "webp"}).read_bytes(),
        write_sample(d / "d.p4d", n_keyframes=2, yaws=(0.0,), size=s, kinds=("color",),
                     codecs={"color": "png"}).read_bytes(),
        write_sample(d / "e.p4d", n_keyframes=2, yaws=(0.0, 5.0), size=s, quality=40).read_bytes(),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000, help="number of mutated files to read")
    ap.add_argument("--seed", type=int, default=0, help="first rng seed; each batch of 10,000 uses the next")
    ap.add_argument("--size", type=int, default=8, help="tile side of the seed files")
    args = ap.parse_args(argv)
    totals = {"ok": 0, "rejected": 0, "problems": 0}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = seed_files(Path(tmp), args.size)
        batch = 10_000
        with Progress(args.cases, "fuzz") as bar:
            done = 0
            while done < args.cases:
                n = min(batch, args.cases - done)
                seed = args.seed + done // batch
                try:
                    counts = fuzz(seeds, n, seed, tmp)
                except AssertionError as e:
                    print(f"FAIL: {e}", file=sys.stderr)
                    return 1
                for k, v in counts.items():
                    totals[k] += v
                done += n
                bar.update(n, **totals)
    dt = time.perf_counter() - t0
    print(f"{args.cases} cases in {dt:.1f} s ({args.cases / dt:.0f}/s): {totals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
