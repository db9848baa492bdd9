"""Where a render and a training step of the learned head spend their time, as a tree of stages.

    python bench/nerf_profile.py CKPT [--dataset DIR] [--size 256] [--views 4] [--steps 20]
                                      [--impl fused|torch]

Render: views of one keyframe at ``--size`` (the keyframe's blend + occupancy is done once before the
timed views, as the bake does). Training: ``--steps`` steps of ``Trainer.step`` on the checkpoint's
dataset (or ``--dataset``), the model and occupancy grid restored from the checkpoint, after two
untimed warm-up steps. Each stage is timed by wrapping the function that does it; a stage's "self"
time is its time minus that of the stages inside it, so the "self" column of a parent is the Python
and torch glue between its children (packing samples, indexing, allocation). Wall-clock seconds
summed over all timed views / steps; the box may be shared, so read shares, not absolutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch

from bake.fields.base import load_checkpoint
from bake.fields.registry import load_field


class Tree:
    """Inclusive and exclusive wall time per call path (a tuple of stage labels)."""

    def __init__(self) -> None:
        self.incl: dict[tuple, float] = defaultdict(float)
        self.child: dict[tuple, float] = defaultdict(float)
        self.calls: dict[tuple, int] = defaultdict(int)
        self.stack: list[str] = []
        self._undo: list = []

    @contextmanager
    def stage(self, label: str):
        self.stack.append(label)
        path = tuple(self.stack)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.stack.pop()
            self.incl[path] += dt
            self.calls[path] += 1
            if len(path) > 1:
                self.child[path[:-1]] += dt

    def wrap(self, owner, name: str, label: str) -> None:
        """Time every call of ``owner.name`` (module attribute, class or instance) as ``label``."""
        orig = getattr(owner, name)
        tree = self

        def timed(*a, **k):
            with tree.stage(label):
                return orig(*a, **k)

        setattr(owner, name, timed)
        self._undo.append((owner, name, orig, name in getattr(owner, "__dict__", {})))

    def unwrap(self) -> None:
        for owner, name, orig, own in reversed(self._undo):
            if own or isinstance(owner, type) or type(owner).__name__ == "module":
                setattr(owner, name, orig)
            else:
                delattr(owner, name)
        self._undo.clear()

    def table(self, root: str, per: int, unit: str) -> str:
        total = self.incl[(root,)]
        lines = [f"{'stage':<44} {'ms/' + unit:>10} {'self ms':>9} {'share':>6} {'calls/' + unit:>9}"]

        def rec(path: tuple) -> None:
            kids = sorted((p for p in self.incl if len(p) == len(path) + 1 and p[:-1] == path),
                          key=lambda p: -self.incl[p])
            name = "  " * (len(path) - 1) + path[-1]
            self_t = self.incl[path] - self.child[path]
            lines.append(f"{name:<44} {1e3 * self.incl[path] / per:10.1f} {1e3 * self_t / per:9.1f} "
                         f"{100 * self_t / total:5.1f}% {self.calls[path] / per:9.1f}")
            for k in kids:
                rec(k)

        rec((root,))
        return "\n".join(lines)


def wrap_model(tree: Tree, model) -> None:
    tree.wrap(model, "density", "density (softplus, split)")
    tree.wrap(model.encoding, "forward", "hash encoding (numba)")
    tree.wrap(model.density_net, "forward", "density MLP")
    tree.wrap(model, "color", "colour MLP + SH")
    tree.wrap(model, "color_rays", "colour MLP + SH")


def wrap_kernels(tree: Tree) -> None:
    from bake.nerf import kernels
    tree.wrap(kernels, "_next_occupied", "occupancy walk (numba)")
    tree.wrap(kernels, "_transmit", "transmittance (numba)")
    tree.wrap(kernels, "_hash_bwd", "hash backward (numba)")
    if hasattr(kernels, "_render_fused"):
        tree.wrap(kernels, "_render_fused", "fused march+MLPs+composite (numba)")


def profile_render(ckpt_path: str, size: int, views: int, impl: str) -> str:
    from bake.nerf import field as field_mod
    from formats.camera import Camera, orbit_pose
    fld = load_field(ckpt_path, "cpu")
    if hasattr(fld, "implementation"):
        fld.implementation = impl
    cap = fld.capture
    radius = float(np.mean(cap.view_angles()[:, 2]))
    h = int(round(size * cap.height / cap.width))
    intr = cap.intrinsics.scaled(size, h)
    expr = cap.expressions[len(cap.expressions) // 2]
    fld.render(Camera(intr, orbit_pose(0.0, 5.0, radius)), expr)  # keyframe setup + numba load, untimed
    tree = Tree()
    wrap_model(tree, fld.model)
    wrap_kernels(tree)
    tree.wrap(field_mod, "march", "march: sampling + packing (torch glue)")
    tree.wrap(field_mod, "composite", "composite")
    tree.wrap(field_mod, "median_depth", "median depth")
    tree.wrap(fld, "render_rays", "render_rays (glue)")
    if hasattr(fld, "render_rays_fused"):
        tree.wrap(fld, "render_rays_fused", "render_rays_fused (glue)")
    for yaw in np.linspace(-30, 30, views):
        with tree.stage("render"):
            fld.render(Camera(intr, orbit_pose(float(yaw), 5.0, radius)), expr)
    tree.unwrap()
    per = 1e3 * tree.incl[("render",)] / views
    return (f"render {size}x{h}, impl {impl}: {per:.0f} ms/view = {1e3 / per:.2f} views/s "
            f"(median-free sum over {views} views)\n" + tree.table("render", views, "view"))


def profile_train(ckpt_path: str, dataset: str | None, steps: int, fused: bool) -> str:
    from bake.data.load import load_dataset
    from bake.nerf import trainer as trainer_mod
    from bake.nerf.config import NerfConfig
    ckpt = load_checkpoint(ckpt_path)
    ds_path = dataset or ckpt.get("train_stats", {}).get("dataset")
    if not ds_path:
        return "training: no --dataset given and the checkpoint records none; skipped"
    ds = load_dataset(ds_path)
    cfg = NerfConfig.from_dict(ckpt["config"])
    size = int(ckpt.get("train_stats", {}).get("size", 128))
    tr = trainer_mod.Trainer(cfg, ds, size, torch.device("cpu"))
    tr.restore(ckpt)
    tr.fused_march = fused
    frac = 0.5
    for _ in range(2):
        tr.step(frac)
    tree = Tree()
    wrap_model(tree, tr.model)
    wrap_kernels(tree)
    tree.wrap(tr, "sample_rays", "sample rays")
    tree.wrap(tr.model, "blend", "blend tables (einsum)")
    tree.wrap(tr, "render_train", "render_train (glue: gather, clamp)")
    tree.wrap(trainer_mod, "march", "march, no grad: sampling + packing")
    tree.wrap(trainer_mod, "march_fused", "march, no grad: fused (numba)")
    tree.wrap(trainer_mod, "composite", "composite")
    tree.wrap(torch.Tensor, "backward", "backward (autograd)")
    tree.wrap(tr.optimizer, "step", "Adam step (fused)")
    tree.wrap(tr.optimizer, "zero_grad", "zero grad")
    tree.wrap(trainer_mod, "update_grid", "occupancy grid update")
    tree.wrap(tr.model, "density_fused", "density, fused no-grad (numba)")
    try:
        for _ in range(steps):
            with tree.stage("train step"):
                tr.step(frac)
    finally:
        tree.unwrap()
    per = 1e3 * tree.incl[("train step",)] / steps
    return (f"training step at {size}px, {cfg.rays_per_batch} rays, {cfg.images_per_batch} images: "
            f"{per:.0f} ms/step = {1e3 / per:.2f} steps/s over {steps} steps (frac {frac}: mask loss off), "
            f"{'fused' if fused else 'torch'} no-grad march\n"
            + tree.table("train step", steps, "step"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--dataset", help="dataset for the training profile (default: the one the checkpoint records)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--impl", default="torch", choices=["fused", "torch"],
                    help="field render path and training no-grad march (default torch)")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-render", action="store_true")
    args = ap.parse_args()
    print(f"torch threads {torch.get_num_threads()}", file=sys.stderr)
    if not args.skip_render:
        print(profile_render(args.checkpoint, args.size, args.views, args.impl))
        print()
    if not args.skip_train and args.steps > 0:
        print(profile_train(args.checkpoint, args.dataset, args.steps, args.impl == "fused"))


if __name__ == "__main__":
    main()
