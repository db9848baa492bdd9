"""Training steps/s of the learned head: the fused no-grad marching pass (CPU default) against the
torch-modules one, interleaved step by step on one trainer in one process.

    python bench/nerf_train_bench.py CKPT [--dataset DIR] [--steps 20] [--frac 0.5]

The trainer (model, occupancy grid, optimiser) is restored from the checkpoint, trained on its
dataset (or ``--dataset``) at the checkpoint's size; after two untimed warm-up steps each path takes
``--steps`` steps, alternating (fused, torch, fused, ...), so both see the same load and model.
Medians, wall and this process's CPU time. Both paths make the same step (the density they march
with differs by float rounding only); what differs is how the samples that matter are found.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bake.data.load import load_dataset
from bake.fields.base import load_checkpoint
from bake.nerf.config import NerfConfig
from bake.nerf.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--dataset", help="default: the dataset the checkpoint records")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per path")
    ap.add_argument("--frac", type=float, default=0.5, help="training progress the steps run at (mask loss "
                                                            "on below the config's mask_fraction)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    ds = load_dataset(args.dataset or ckpt["train_stats"]["dataset"])
    cfg = NerfConfig.from_dict(ckpt["config"])
    size = int(ckpt.get("train_stats", {}).get("size", 128))
    tr = Trainer(cfg, ds, size, torch.device("cpu"))
    tr.restore(ckpt)
    for fused in (True, False):
        tr.fused_march = fused
        tr.step(args.frac)
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.steps):
        for fused in (True, False):
            tr.fused_march = fused
            t0, c0 = time.perf_counter(), time.process_time()
            tr.step(args.frac)
            wall[fused].append(time.perf_counter() - t0)
            cpu[fused].append(time.process_time() - c0)
    med = {k: statistics.median(v) for k, v in wall.items()}
    res = {"size": size, "rays": cfg.rays_per_batch, "steps": args.steps,
           "steps_per_s": round(1 / med[True], 3), "s_per_step": round(med[True], 4),
           "cpu_s_per_step": round(statistics.median(cpu[True]), 4),
           "torch_steps_per_s": round(1 / med[False], 3), "torch_s_per_step": round(med[False], 4),
           "torch_cpu_s_per_step": round(statistics.median(cpu[False]), 4),
           "speedup": round(med[False] / med[True], 2)}
    if args.json:
        print(json.dumps(res))
        return
    print(f"training step at {size}px, {cfg.rays_per_batch} rays: fused march {res['s_per_step'] * 1e3:.0f} ms "
          f"({res['steps_per_s']:.2f} steps/s, CPU {res['cpu_s_per_step'] * 1e3:.0f} ms), torch march "
          f"{res['torch_s_per_step'] * 1e3:.0f} ms ({res['torch_steps_per_s']:.2f} steps/s, CPU "
          f"{res['torch_cpu_s_per_step'] * 1e3:.0f} ms): {res['speedup']:.2f}x (medians of {args.steps})")


if __name__ == "__main__":
    main()
