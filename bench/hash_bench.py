"""Points/s of the hash encoding, forward + backward: fused numba kernel vs the pure-torch twin.

    python bench/hash_bench.py [--points N] [--preset cpu|paper|tiny] [--repeats R]

Prints the median over repeats (the box may be shared: medians, not best cases).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bake.nerf.config import preset
from bake.nerf.encoding import dense_levels, hash_encode, level_resolutions


def bench(impl: str, x, bidx, table, res, dense, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # first run warms up (numba loads its cache)
        tab = table.detach().requires_grad_(True)
        t0 = time.perf_counter()
        out = hash_encode(x, bidx, tab, res, dense, implementation=impl)
        out.backward(torch.ones_like(out))
        times.append(time.perf_counter() - t0)
    return x.shape[0] / statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1 << 17)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--batch", type=int, default=4, help="tables in the batch (images per step)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cfg = preset(args.preset)
    torch.manual_seed(0)
    r = level_resolutions(cfg.levels, cfg.base_res, cfg.finest_res)
    res = torch.tensor(r, dtype=torch.int32)
    dense = torch.tensor(dense_levels(r, 2 ** cfg.log2_table), dtype=torch.uint8)
    table = torch.randn(args.batch, cfg.levels, 2 ** cfg.log2_table, cfg.features) * 1e-2
    x = torch.rand(args.points, 3)
    bidx = torch.randint(0, args.batch, (args.points,), dtype=torch.int32)
    print(f"hash encoding fwd+bwd, preset {args.preset}: L={cfg.levels} T=2^{cfg.log2_table} F={cfg.features} "
          f"B={args.batch}, {args.points} points, torch threads {torch.get_num_threads()}")
    pts_numba = bench("numba", x, bidx, table, res, dense, args.repeats)
    pts_torch = bench("torch", x, bidx, table, res, dense, args.repeats)
    print(f"  numba (fused kernel): {pts_numba / 1e6:8.3f} M points/s")
    print(f"  torch (reference)   : {pts_torch / 1e6:8.3f} M points/s")
    print(f"  speed-up            : {pts_numba / pts_torch:8.2f}x")


if __name__ == "__main__":
    main()
