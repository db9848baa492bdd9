"""Side by side, in one process: the warp of this checkout against the warp of another revision.

On a shared machine two runs of the same frame differ by 10-20 %, more than most kernel changes
gain or lose; `player bench` run twice cannot tell them apart. This captures a few frames of an
orbit playback of FILE.p4d (the 4 blended source tiles, weights and cameras of each), then calls
every variant's ``warp`` and ``composite`` on each frame in turn, alternating the order, and
prints per variant the median and minimum time, the median of its per-call ratio to the first
variant and the largest difference of its final image from the working tree's.

    python bench/warp_ab.py FILE.p4d --against HEAD~1 [--against REV ...] [--repeats 10] [--view-sharpen 1]

Each variant is the player's kernels as of a git revision — the ``player/kernels/`` package, or
the one-file ``player/kernels.py`` of older revisions — compiled in this process (no JIT cache),
called with the working tree's ``warp`` arguments and its own output type (uint8, or float32
before the 8-bit warp); a revision that rejects them is reported and left out. One numba thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load_kernels(name: str, source: str) -> types.ModuleType:
    """A one-file kernels module (older revisions) from its source, without the JIT cache."""
    mod = types.ModuleType(name)
    exec(compile(source.replace("cache=True", "cache=False"), f"{name}/kernels.py", "exec"), mod.__dict__)
    mod.warm_up()
    return mod


def load_package(name: str, files: dict[str, str], where: Path) -> types.ModuleType:
    """A kernels package (module file name -> source) written to ``where/name`` without the JIT
    cache and imported as the package ``name``: its modules import one another relatively."""
    pkg = where / name
    pkg.mkdir(parents=True)
    for fname, source in files.items():
        (pkg / fname).write_text(source.replace("cache=True", "cache=False"))
    spec = importlib.util.spec_from_file_location(name, pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    mod.warm_up()
    return mod


def kernels_at(rev: str | None) -> tuple[str, dict[str, str] | str]:
    """("package", {file: source}) or ("file", source): the player's kernels in the working tree
    (rev None) or at a git revision. Raises ValueError when the revision has neither."""
    if rev is None:
        pkg = ROOT / "player" / "kernels"
        return "package", {p.name: p.read_text() for p in sorted(pkg.glob("*.py"))}
    res = subprocess.run(["git", "archive", rev, "player/kernels"], cwd=ROOT, capture_output=True)
    if res.returncode == 0:
        with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
            return "package", {Path(m.name).name: tar.extractfile(m).read().decode()
                               for m in tar.getmembers() if m.isfile() and m.name.endswith(".py")}
    res = subprocess.run(["git", "show", f"{rev}:player/kernels.py"], cwd=ROOT, capture_output=True, text=True)
    if res.returncode == 0:
        return "file", res.stdout
    raise ValueError(f"cannot read player/kernels/ or player/kernels.py at {rev}: {res.stderr.strip()}")


def capture(path: str, n_frames: int, every: int = 20, sharpen: float = 1.0) -> tuple[list[dict], object]:
    """Every ``every``-th frame of an orbit playback: what ``warp`` reads, and the renderer."""
    from formats import P4DReader
    from player.playback import PlayConfig, Playback
    from player.render import RenderConfig
    reader = P4DReader(path)
    pb = Playback(reader, PlayConfig(mode="orbit", render=RenderConfig(view_sharpen=sharpen)))
    ren = pb.renderer
    frames = []
    pb.render()
    pb.cache.idle()
    for i in range(n_frames * every):
        pb.step(1 / 60)
        pb.render()
        pb.cache.idle()
        if i % every == 0:
            yaw, pitch = pb.view()
            frames.append({"rgba": ren.src_rgba.copy(), "depth": ren.src_depth.copy(), "w": ren.w.copy(),
                           "src": (ren.view_k[ren.idx], ren.view_r[ren.idx], ren.view_c[ren.idx]),
                           "tgt": ren.target_camera(yaw, pitch, 1.0)})
    pb.close()
    reader.close()
    return frames, ren


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", metavar="FILE.p4d")
    ap.add_argument("--against", action="append", default=[], metavar="REV",
                    help="a git revision whose player kernels to compare (repeatable)")
    ap.add_argument("--frames", type=int, default=6, help="frames captured (default 6)")
    ap.add_argument("--repeats", type=int, default=10, help="calls per frame and variant (default 10)")
    ap.add_argument("--view-sharpen", type=float, default=1.0,
                    help="RenderConfig.view_sharpen of the captured playback, >= 1 (default 1: bilinear, 4 views)")
    args = ap.parse_args(argv)
    if not args.against:
        ap.error("give at least one --against REV")
    if args.view_sharpen < 1:
        ap.error("--view-sharpen must be >= 1")
    import numba

    from player import kernels as here
    numba.set_num_threads(1)
    names, found = ["working tree"], [kernels_at(None)]
    for rev in args.against:
        try:
            found.append(kernels_at(rev))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        names.append(rev)
    tmp = tempfile.TemporaryDirectory(prefix="warp_ab_")
    mods = [load_package(f"variant{i}", src, Path(tmp.name)) if kind == "package" else load_kernels(f"variant{i}", src)
            for i, (kind, src) in enumerate(found)]
    here.warm_up()
    frames, ren = capture(args.file, args.frames, sharpen=args.view_sharpen)
    f = frames[0]
    here.splat_depth(f["depth"], f["w"], f["src"], f["tgt"], ren.zstride, 1, ren.coarse)
    # A variant's warp writes uint8 (this checkout) or float32 (before the composite was folded
    # into 8-bit stores): each is timed with its own composite, so both make the same image.
    dtypes = [np.dtype(np.uint8)] * len(mods)
    for j in reversed(range(1, len(mods))):
        for dt in (np.uint8, np.float32):
            try:
                mods[j].warp(f["rgba"], f["depth"], f["w"], f["src"], f["tgt"], ren.coarse, ren.stride,
                             np.zeros(ren.warped.shape, dt), zstride=ren.zstride)
                dtypes[j] = np.dtype(dt)
                break
            except (AssertionError, ValueError) as e:  # older wrappers assert
                err = e
        else:
            print(f"left out {names[j]}: its warp rejects this checkout's arguments ({err})", file=sys.stderr)
            del mods[j], names[j], dtypes[j]
    outs = [np.zeros(ren.warped.shape, dt) for dt in dtypes]
    images = [np.zeros(ren.image.shape, np.uint8) for _ in mods]
    scratch = [m.warp_scratch(4, ren.out_shape, ren.stride) for m in mods]  # each its own layout
    times: list[list[float]] = [[] for _ in mods]
    worst = [0] * len(mods)
    for rep in range(args.repeats):
        for f in frames:
            # The same coarse z-buffer for every variant: this compares warp + composite alone.
            here.splat_depth(f["depth"], f["w"], f["src"], f["tgt"], ren.zstride, 1, ren.coarse, scratch[0].geo)
            order = range(len(mods)) if rep % 2 == 0 else reversed(range(len(mods)))
            for j in order:
                c = time.perf_counter()
                mods[j].warp(f["rgba"], f["depth"], f["w"], f["src"], f["tgt"], ren.coarse, ren.stride, outs[j],
                             scratch=scratch[j], zstride=ren.zstride)
                mods[j].composite(outs[j], ren.bg, images[j])
                times[j].append(time.perf_counter() - c)
            for j in range(1, len(mods)):
                worst[j] = max(worst[j], int(np.abs(images[j].astype(int) - images[0]).max()))
    first = np.asarray(times[0])
    n_views = [int((f["w"] > 0).sum()) for f in frames]
    print(f"{args.file}: {len(frames)} frames x {args.repeats} calls, output {ren.out_shape[1]}x{ren.out_shape[0]}, "
          f"views used per frame {n_views}")
    views = np.tile(n_views, args.repeats)
    for name, t in zip(names, times):
        t = np.asarray(t)
        print(f"  {name:>14}: warp+composite p50 {np.median(t) * 1e3:7.2f} ms  min {t.min() * 1e3:7.2f} ms  "
              f"median ratio to the working tree {np.median(t / first):.3f}"
              + (f"  image max diff {worst[names.index(name)]}" if name != names[0] else ""))
        if len(set(n_views)) > 1:
            print(" " * 18 + "by views used: " + ", ".join(
                f"{v}: p50 {np.median(t[views == v]) * 1e3:.2f} ms" for v in sorted(set(n_views))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
