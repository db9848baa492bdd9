"""Small valid .p4d files from synthetic tiles, for tests and benches (no bake needed).

``sample_meta`` builds metadata that satisfies the v1.3 schema (a chain graph with a loop back);
``portrait_tile`` draws a shaded textured ellipse "face" whose look follows yaw/pitch/keyframe;
``write_sample`` puts them together.
"""

from __future__ import annotations

import pathlib

import numpy as np

from formats import P4DWriter
from formats.codecs import quantize_depth
from formats.lighting import lobe, oct_encode
from formats.p4d import downscale_depth

# The sample files' captured light (format 1.2): ambient 0.4 plus a key light of 0.8 from yaw 20,
# pitch 20 (the lobe's SH at that direction, written out so a file states plain numbers).
SAMPLE_KEY = (20.0, 20.0, 0.8, 0.0)  # yaw, pitch, amount, wrap
SAMPLE_SH = tuple(round(float(x), 6) for x in np.eye(9)[0] * 0.4 / 0.282095
                  + 0.8 * lobe(np.array([0.321394, 0.342020, 0.883022])))


def sample_meta(n_keyframes: int = 3, yaws=(-20.0, 0.0, 20.0), pitches=(0.0,), size: tuple[int, int] = (16, 16),
                kinds=("color", "alpha", "depth"), codecs: dict | None = None, quality: int | None = None,
                near: float = 0.3, far: float = 1.0, n_groups: int = 2, depth_scale: int = 1,
                depth_bits: int = 16, normal_scale: int = 1, chain: int = 1) -> dict:
    """Metadata for a grid of ``len(yaws) * len(pitches)`` views of (H, W) = ``size`` tiles.

    ``tiles.depth_scale`` is written only when it is not 1 and ``tiles.depth_bits`` only when it is
    not 16, so full-resolution 16-bit files keep their bytes. With a "normal" kind (format 1.2)
    ``tiles.normal_scale`` and ``lighting`` (SAMPLE_SH, its key light) are set too; ``tiles.chain``
    (format 1.3) only when ``chain`` is not 1."""
    h, w = size
    K = n_keyframes
    codecs = dict(codecs or {"color": "jpeg", "alpha": "png", "depth": "png", "normal": "webp"})
    codecs = {k: codecs[k] for k in kinds}
    G = max(1, min(n_groups, K))
    group = [k * G // K for k in range(K)]
    # chain k -> k+1 is implicit; add a loop back from the last keyframe and a skip from 0 when possible
    transitions = [[K - 1, 0, 1.0, 0.0]]
    if K > 2:
        transitions.append([0, K - 1, 0.25, 1.5])
    first_of = [group.index(g) for g in range(G)]
    forced = [[-1 if group[k] == g else first_of[g] for g in range(G)] for k in range(K)]
    tiles = {"kinds": list(kinds), "codecs": codecs, "quality": {"color": quality}, "color": "srgb-premultiplied"}
    if depth_scale != 1:
        tiles["depth_scale"] = depth_scale
    if depth_bits != 16:
        tiles["depth_bits"] = depth_bits
    if chain != 1:
        tiles["chain"] = chain
    extra = {}
    if "normal" in kinds:
        tiles["normal_scale"] = normal_scale
        extra["lighting"] = {"sh": list(SAMPLE_SH), "key": list(SAMPLE_KEY)}
    return {**extra,
        # The module's name before it moved to testkit/: sample files keep the bytes they always had.
        "generator": "formats.sample",
        "source": {"kind": "synthetic", "checkpoint_sha256": "0" * 64},
        "grid": {"yaws": [float(y) for y in yaws], "pitches": [float(p) for p in pitches], "radius": 1.0,
                 "center": [0.0, 0.0, 0.0],
                 "intrinsics": {"fx": 1.2 * w, "fy": 1.2 * w, "cx": w / 2, "cy": h / 2, "width": w, "height": h},
                 "depth": {"near": near, "far": far}},
        "tiles": tiles,
        "keyframes": {"fps": 25.0, "times": [k / 25.0 for k in range(K)],
                      "expressions": [[float(np.sin(k)), float(np.cos(k))] for k in range(K)],
                      "expression_names": ["jaw_open", "smile"],
                      "capture_view": [[0.0, 0.0] for _ in range(K)],
                      "pose_group": group, "source": "capture"},
        "graph": {"transitions": transitions, "p_back": 0.1, "forced": forced,
                  "groups": {"count": G, "centers": [[10.0 * g, 0.0] for g in range(G)],
                             "labels": [f"group{g}" for g in range(G)]},
                  "morph_seconds": 0.2, "pose_switch_prob": 0.03},
    }


def portrait_tile(h: int, w: int, yaw: float = 0.0, pitch: float = 0.0, t: float = 0.0,
                  seed: int = 0, noise: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A portrait-like tile: (rgb uint8 [h,w,3] premultiplied, alpha uint8 [h,w], depth float32 [h,w] metres).

    A Lambert-shaded ellipsoid head with a skin-ish albedo, eyes/mouth marks, fine texture and
    sensor noise, over an empty (black, alpha 0) background.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = w * (0.5 + 0.15 * np.sin(np.radians(yaw)))
    cy = h * (0.5 - 0.1 * np.sin(np.radians(pitch)))
    u, v = (x - cx) / (0.32 * w), (y - cy) / (0.42 * h)
    r2 = u * u + v * v
    inside = r2 < 1.0
    nz = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    light = np.clip(0.35 + 0.65 * (0.4 * u * -1 + 0.3 * -v + 0.85 * nz), 0, 1)
    albedo = np.stack([0.86 + 0 * u, 0.64 + 0 * u, 0.52 + 0 * u], -1)
    texture = 0.04 * np.sin(37 * u + 3 * t) * np.sin(29 * v) + rng.normal(0, 0.015, (h, w))
    for ex in (-0.38, 0.38):  # eyes
        albedo[((u - ex) ** 2 / 0.02 + (v + 0.2) ** 2 / 0.006) < 1] = (0.25, 0.18, 0.15)
    mouth = ((u ** 2 / 0.09 + (v - 0.45) ** 2 / (0.004 + 0.01 * (1 + np.sin(t)))) < 1)
    albedo[mouth] = (0.6, 0.25, 0.25)
    rgb = np.clip(albedo * (light + texture)[..., None], 0, 1) * 255
    rgb += rng.normal(0, noise, rgb.shape)
    # soft alpha edge over ~1.5 px
    edge = np.clip((1.0 - np.sqrt(r2)) * 0.32 * min(h, w) / 1.5, 0, 1)
    alpha = edge
    rgb = np.clip(rgb, 0, 255) * alpha[..., None]
    depth = np.where(inside, 0.6 - 0.1 * nz, 0.0).astype(np.float32)
    return rgb.round().astype(np.uint8), (alpha * 255).round().astype(np.uint8), depth


def portrait_normals(depth: np.ndarray, normal_scale: int = 1) -> np.ndarray:
    """Normal tile codes uint8 [ceil(H/n), ceil(W/n), 3] of ``portrait_tile``'s ellipsoid (from its
    depth: a bulge towards the camera), stored at 1/``normal_scale`` by point sampling."""
    h, w = depth.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = (x - w / 2) / (0.32 * w), (y - h / 2) / (0.42 * h)
    n = np.stack([u, -v, np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, 1.0)) + 0.2], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    code = oct_encode(downscale_depth(n, normal_scale))
    return np.ascontiguousarray(np.dstack([code, np.zeros(code.shape[:2], np.uint8)]))


def write_sample(path, n_keyframes: int = 3, yaws=(-20.0, 0.0, 20.0), pitches=(0.0,), size=(16, 16),
                 kinds=("color", "alpha", "depth"), codecs: dict | None = None, quality: int | None = None,
                 preview: bool = True, depth_scale: int = 1, depth_bits: int = 16, normal_scale: int = 1,
                 chain: int = 1, **meta_kw) -> pathlib.Path:
    """Write a complete small .p4d of synthetic portrait tiles; returns its path.

    Depth is rendered at full resolution and stored at 1/``depth_scale`` by ``downscale_depth``;
    ``chain`` N > 1 writes chained tiles (format 1.3)."""
    meta = sample_meta(n_keyframes, yaws, pitches, size, kinds, codecs, quality, depth_scale=depth_scale,
                       depth_bits=depth_bits, normal_scale=normal_scale, chain=chain, **meta_kw)
    cod = meta["tiles"]["codecs"]
    near, far = meta["grid"]["depth"]["near"], meta["grid"]["depth"]["far"]
    with P4DWriter(path, depth_scale=depth_scale, depth_bits=depth_bits, chain=chain) as w:
        if preview:
            rgb, alpha, _ = portrait_tile(*size, seed=99)
            w.set_preview(rgb, alpha)
        for k in range(n_keyframes):
            for pi, pitch in enumerate(pitches):
                for yi, yaw in enumerate(yaws):
                    v = pi * len(yaws) + yi
                    rgb, alpha, depth = portrait_tile(*size, yaw, pitch, t=k, seed=k * 1000 + v)
                    tiles = {"color": rgb, "alpha": alpha,
                             "depth": quantize_depth(downscale_depth(depth, depth_scale), near, far)}
                    if "normal" in kinds:
                        tiles["normal"] = portrait_normals(depth, normal_scale)
                    for kind in kinds:
                        w.add_tile(k, v, kind, tiles[kind], cod[kind], quality if kind == "color" else None)
        return w.finish(meta)
