"""The bake job: a field -> one .p4d (view grid x keyframes of colour/alpha/depth + graph).

Streams tiles into the writer keyframe by keyframe (bounded memory), resumable: the writer keeps a
journalled ``OUT.partial`` and this job keeps ``OUT.partial.bake.json`` with the fingerprint of
its inputs, so ``--resume`` only continues a bake of the very same inputs. Both names are fixed on
purpose (a resume must find them); everything else this job writes goes through
``formats.atomic``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np

from bake.anchor.tiles import CaptureAnchor
from bake.fields.base import Field
from bake.job.config import BakeConfig, auto_quality
from bake.job.graph import build_graph, forced_targets, pose_groups
from bake.job.keyframes import Keyframes, make_keyframes
from bake.job.surface import solid_depth
from bake.job.views import ViewGrid, captured_range, grid_axis
from bake.relight.fit import fit_tiles
from bake.relight.normals import normal_codes, surface_normals
from bake.track.expression_map import map_expressions
from formats import P4DWriter
from formats.atomic import atomic_path, check_writable_dir
from formats.camera import Camera, orbit_pose
from formats.codecs import LOSSY, quantize_depth
from formats.errors import UsageError
from formats.p4d import downscale_depth
from formats.progress import Progress

GENERATOR = "portrait4d 0.1.0 bake"
KINDS = ("color", "alpha", "depth")
NORMAL_KINDS = KINDS + ("normal",)
LOSSLESS_CODEC = {"alpha": "webp", "depth": "webp", "normal": "webp"}  # webp lossless: ~1/3 the bytes of png on alpha


def bake_kinds(cfg: BakeConfig) -> tuple[str, ...]:
    """The tile kinds a bake with ``cfg`` writes: normals too unless normal_scale is 0."""
    return NORMAL_KINDS if cfg.normal_scale else KINDS


def depth_codec(depth_bits: int) -> str:
    """Lossless webp holds 8-bit depth codes (format 1.1) in ~20 % fewer bytes than png; 16-bit depth is png."""
    return LOSSLESS_CODEC["depth"] if depth_bits == 8 else "png"


class BakeError(UsageError, ValueError):
    """A bake that cannot start with these inputs and options; the message says why."""


def partial_paths(out: Path) -> tuple[Path, Path]:
    """(writer's partial file, this job's fingerprint sidecar)."""
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.bake.json")


def _started_with(sidecar: Path) -> str | None:
    """The fingerprint an earlier bake left in its sidecar, None when missing or unreadable."""
    try:
        return json.loads(sidecar.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def fingerprint(cfg: BakeConfig, source_digest: str, drive_digest: str | None, anchor: dict | None = None) -> str:
    doc = {"config": asdict(cfg), "source": source_digest, "drive": drive_digest}
    if anchor is not None:
        doc["anchor"] = anchor
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def view_grid(field: Field, cfg: BakeConfig) -> ViewGrid:
    """Grid over the capture's seen range (or the given one), at the capture's median distance."""
    cap = field.capture
    angles = cap.view_angles()
    yaw = cfg.yaw_range or captured_range(angles[:, 0])
    pitch = cfg.pitch_range or captured_range(angles[:, 1])
    intr = cap.intrinsics.scaled(cfg.size, cfg.size)
    return ViewGrid(grid_axis(*yaw, cfg.views[0]), grid_axis(*pitch, cfg.views[1]),
                    round(float(np.median(angles[:, 2])), 6), intr)  # rounded: the file states what was rendered


def depth_bounds(grid: ViewGrid) -> tuple[float, float]:
    """Quantisation range of depth tiles: a 0.3 m ball around the head centre covers any head."""
    return max(grid.radius - 0.3, 0.01), grid.radius + 0.3


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def frontal_renders(field: Field, keyframes: Keyframes, grid: ViewGrid, size: int,
                    quiet: bool = False, anchor: CaptureAnchor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every keyframe's expression seen from straight ahead (Kimura et al.'s frontalisation):
    the tile the player will show there, the keyframe's frame reprojected when ``anchor`` (bound
    to the keyframes) says so."""
    cam = Camera(grid.intrinsics.scaled(size, size), orbit_pose(0.0, 0.0, grid.radius, grid.center))
    rgbs, alphas = [], []
    with Progress(len(keyframes.times), "graph renders", disable=quiet) as bar:
        for k, e in enumerate(keyframes.expressions):
            rgb, alpha, depth = field.render(cam, e)
            if anchor is not None:
                rgb, alpha, _ = anchor.tile(field, k, e, cam, rgb, alpha, depth)
            rgbs.append(rgb)
            alphas.append(alpha)
            bar.update(1)
    return np.stack(rgbs), np.stack(alphas)


def build_metadata(field: Field, cfg: BakeConfig, grid: ViewGrid, kf: Keyframes, source_digest: str,
                   quiet: bool = False, anchor: CaptureAnchor | None = None) -> dict:
    images, alphas = frontal_renders(field, kf, grid, cfg.graph_size, quiet, anchor)
    graph = build_graph(images, alphas, cfg.fps, cfg.graph)
    groups = pose_groups(kf.capture_view, cfg.groups, cfg.seed)
    forced = forced_targets(graph.distances, groups.labels, len(groups.names))
    near, far = depth_bounds(grid)
    r6 = lambda a: np.round(np.asarray(a, dtype=np.float64), 6).tolist()  # noqa: E731 - stable msgpack floats
    return {
        "generator": GENERATOR,
        "source": {"kind": field.kind, "checkpoint_sha256": source_digest,
                   **({"tiles": "field"} if anchor is None else
                      {"tiles": "anchored", "left_out_frames": sorted(anchor.leave_out)})},
        "grid": {"yaws": list(grid.yaws), "pitches": list(grid.pitches), "radius": grid.radius,
                 "center": list(grid.center), "intrinsics": grid.intrinsics.to_dict(),
                 "depth": {"near": near, "far": far}},
        "tiles": {"kinds": list(bake_kinds(cfg)),
                  "codecs": {"color": cfg.codec, "alpha": LOSSLESS_CODEC["alpha"],
                             "depth": depth_codec(cfg.depth_bits),
                             **({"normal": LOSSLESS_CODEC["normal"]} if cfg.normal_scale else {})},
                  **({"normal_scale": cfg.normal_scale} if cfg.normal_scale else {}),
                  "quality": {"color": cfg.quality, **({"color_predicted": cfg.residual_quality}
                                                       if cfg.chain > 1 and cfg.codec in LOSSY else {})},
                  "color": "srgb-premultiplied",
                  "depth_scale": cfg.depth_scale, **({"depth_bits": 8} if cfg.depth_bits == 8 else {}),
                  **({"chain": cfg.chain} if cfg.chain > 1 else {})},
        "keyframes": {"fps": cfg.fps, "times": r6(kf.times), "expressions": kf.expressions.astype(np.float64).tolist(),  # exactly what was rendered
                      "expression_names": list(field.capture.expression_names),
                      "capture_view": r6(kf.capture_view), "pose_group": groups.labels.tolist(),
                      "source": kf.source},
        "graph": {"transitions": [[s, d, round(p, 6), round(c, 9)] for s, d, p, c in graph.transitions],
                  "p_back": cfg.graph.p_back, "forced": forced.tolist(),
                  "groups": {"count": len(groups.names), "centers": r6(groups.centers), "labels": groups.names},
                  "morph_seconds": cfg.morph_seconds, "pose_switch_prob": cfg.pose_switch_prob},
    }


def keyframes_for(field: Field, cfg: BakeConfig, drive=None) -> Keyframes:
    """The capture's own sequence, or a driver dataset's (reenactment) mapped into our expressions."""
    cap = field.capture
    if drive is None:
        return make_keyframes(cap.times, cap.expressions, cap.poses, cfg.fps, "capture")
    expr = map_expressions(list(drive.expression_names), drive.expressions(), list(cap.expression_names))
    return make_keyframes(drive.times(), expr, drive.poses(), cfg.fps, "drive")


def run_bake(field: Field, cfg: BakeConfig, out: str | os.PathLike, *, source_digest: str,
             drive=None, drive_digest: str | None = None, resume: bool = False, quiet: bool = False,
             on_tile: Callable[[int], None] | None = None, anchor: CaptureAnchor | None = None) -> Path:
    """Render every (keyframe, view) tile into ``out``; returns the final path.

    ``quiet``: no progress bars. ``on_tile(n)`` is called after the n-th tile this call rendered
    (1, 2, ...; tiles a resume finds on disk are not rendered and not counted) has reached the
    partial file: whatever it raises stops the bake right there, exactly as Ctrl-C would, which
    is how tests interrupt a bake after a known number of tiles.
    """
    out = Path(out)
    check_writable_dir(out)  # before anything is rendered or written: one clear line, nothing left
    if cfg.quality is None:
        cfg = replace(cfg, quality=auto_quality(cfg.size, cfg.chain))
    if cfg.residual_quality is None and cfg.chain > 1:
        cfg = replace(cfg, residual_quality=auto_quality(cfg.size, cfg.chain, predicted=True))
    kf = keyframes_for(field, cfg, drive)
    if len(kf.times) < 2:
        raise BakeError(f"the sequence gives {len(kf.times)} keyframe(s) at {cfg.fps} fps; need at least 2")
    grid = view_grid(field, cfg)
    near, far = depth_bounds(grid)

    partial, sidecar = partial_paths(out)
    if anchor is not None:
        if drive is not None:
            raise BakeError("a bake driven by another video (--drive) has no captured frame to anchor on")
        anchor = anchor.for_keyframes(kf.times)
    fp = fingerprint(cfg, source_digest, drive_digest, None if anchor is None else anchor.describe())
    if resume and partial.exists():
        if _started_with(sidecar) != fp:
            raise BakeError(f"{partial} was started with other inputs or options; "
                            f"delete it or bake without --resume")
    else:
        resume = False
        with atomic_path(sidecar) as tmp:
            tmp.write_text(json.dumps({"fingerprint": fp}))

    meta = build_metadata(field, cfg, grid, kf, source_digest, quiet, anchor)
    n_tiles = len(kf.times) * grid.n_views
    s = cfg.depth_scale
    kinds = bake_kinds(cfg)
    with P4DWriter(out, resume=resume, depth_scale=s, depth_bits=cfg.depth_bits, chain=cfg.chain) as writer:
        done = set(writer.done)
        n_done = sum(all((k, v, kind) in done for kind in kinds)
                     for k in range(len(kf.times)) for v in range(grid.n_views)) if done else 0
        if not done:
            yaw0, pitch0 = grid.view(grid.nearest_view(0.0, 0.0))
            cam0 = Camera(grid.intrinsics, orbit_pose(yaw0, pitch0, grid.radius, grid.center))
            rgb, alpha, depth0 = field.render(cam0, kf.expressions[0])
            depth0 = solid_depth(depth0, alpha)
            if anchor is not None:  # the preview shows what the tiles will
                rgb, alpha, _ = anchor.tile(field, 0, kf.expressions[0], cam0, rgb, alpha, depth0)
            writer.set_preview(to_u8(rgb), to_u8(alpha))
        rendered = 0
        with Progress(n_tiles, f"bake {out.name}", initial=n_done, disable=quiet) as bar:
            for k, expr in enumerate(kf.expressions):
                for v in range(grid.n_views):
                    missing = [kind for kind in kinds if (k, v, kind) not in done]
                    if not missing:
                        continue
                    yaw, pitch = grid.view(v)
                    cam = Camera(grid.intrinsics, orbit_pose(yaw, pitch, grid.radius, grid.center))
                    rgb, alpha, depth = field.render(cam, expr)
                    depth = solid_depth(depth, alpha)
                    if anchor is not None:
                        rgb, alpha, depth = anchor.tile(field, k, expr, cam, rgb, alpha, depth)
                    tiles = {"color": (to_u8(rgb), cfg.codec, cfg.quality),
                             "alpha": (to_u8(alpha), LOSSLESS_CODEC["alpha"], None),
                             "depth": (quantize_depth(downscale_depth(depth, s), near, far),
                                       depth_codec(cfg.depth_bits), None)}
                    if "normal" in missing:
                        normals = surface_normals(field, cam, expr, depth, exact=anchor is None)
                        tiles["normal"] = (normal_codes(normals, cfg.normal_scale), LOSSLESS_CODEC["normal"], None)
                    for kind in missing:  # a kill can land between the kinds of one view
                        writer.add_tile(k, v, kind, *tiles[kind],
                                        residual_quality=cfg.residual_quality if kind == "color" else None)
                    bar.update(1)
                    rendered += 1
                    if on_tile is not None:
                        on_tile(rendered)
        if cfg.normal_scale:  # over the stored tiles, so a resumed bake fits what the file holds
            meta["lighting"] = fit_tiles(writer.tile, len(kf.times), grid.n_views, cfg.normal_scale)
        path = writer.finish(meta)
    sidecar.unlink(missing_ok=True)
    return path

