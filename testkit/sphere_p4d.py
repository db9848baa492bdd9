"""A small .p4d of a ray-traced textured sphere (with a bump in front, so some surface is hidden
from some views) on a yaw x pitch grid: geometry every view agrees on, without a bake. The
browser player's tests and bench compare the page against the Python player on it."""

from __future__ import annotations

import pathlib

import numpy as np

from formats import P4DWriter
from formats.camera import Camera, Intrinsics, orbit_pose, pixel_rays
from formats.codecs import quantize_depth
from formats.p4d import downscale_depth
from formats.lighting import direction, lobe, oct_encode
from testkit.sample import portrait_tile, sample_meta

RADIUS, SPHERE, FOV = 0.6, 0.15, 30.0
NEAR, FAR = 0.3, 0.9
# The relightable sphere's light: the key of ``trace``'s shading (yaw, pitch, amount, wrap) and
# its ambient 0.45 as SH (Y00 only).
SPHERE_KEY = (32.997705, 23.542004, 0.55, 0.0)
SPHERE_AMBIENT = np.eye(9)[0] * 0.45 / 0.282095


def trace(yaw: float, pitch: float, intr: Intrinsics, k: int = 0, normals: bool = False):
    """(premultiplied RGBA uint8 [H, W, 4], z-depth float32 [H, W]) of the sphere seen from
    (yaw, pitch); keyframe k shifts its texture (so keyframes differ). ``normals``: the head-frame
    unit normals float64 [H, W, 3] (0 where empty) come third."""
    o, d = pixel_rays(Camera(intr, orbit_pose(yaw, pitch, RADIUS)))
    best_t = np.full(d.shape[:2], np.inf)
    best_p = np.zeros(d.shape)
    best_n = np.zeros(d.shape)
    for c, r in (((0.0, 0.0, 0.0), SPHERE), ((0.06, 0.03, 0.14), 0.04)):
        oc = o - np.asarray(c)
        a = (d * d).sum(-1)
        b = 2 * (oc * d).sum(-1)
        cc = (oc * oc).sum(-1) - r * r
        disc = b * b - 4 * a * cc
        t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
        closer = (t > 0) & (t < best_t)
        best_t = np.where(closer, t, best_t)
        best_p = np.where(closer[..., None], o + t[..., None] * d, best_p)
        best_n = np.where(closer[..., None], (best_p - np.asarray(c)) / r, best_n)
    hit = np.isfinite(best_t)
    p = best_p
    col = 0.5 + 0.5 * np.stack([np.sin(40 * p[..., 0] + 0.7 * k), np.cos(33 * p[..., 1] + 0.3 * k),
                                np.sin(25 * p[..., 2] + 20 * p[..., 0])], -1)
    rgba = np.zeros(d.shape[:2] + (4,), np.uint8)
    rgba[..., :3] = np.where(hit[..., None], np.round(col * 255), 0)
    rgba[..., 3] = np.where(hit, 255, 0)
    # lit from the subject's left and above, over an ambient, so that a relight has light to move
    key = direction(*SPHERE_KEY[:2])
    shade = 0.45 + SPHERE_KEY[2] * np.maximum(best_n @ key, 0)
    rgba[..., :3] = np.round(rgba[..., :3] * np.where(hit, shade, 1.0)[..., None]).astype(np.uint8) if normals \
        else rgba[..., :3]
    depth = np.where(hit, best_t, 0).astype(np.float32)
    return (rgba, depth, best_n) if normals else (rgba, depth)


def write_sphere(path, size: int = 64, yaws=(-12.0, 0.0, 12.0), pitches=(-8.0, 8.0), n_keyframes: int = 4,
                 codecs: dict | None = None, quality: int | None = 92, depth_scale: int = 1,
                 fps: float = 12.5, preview: bool = True, depth_bits: int = 16,
                 normal_scale: int = 0, chain: int = 1) -> pathlib.Path:
    """Write the sphere portrait to ``path`` (colour, alpha and depth tiles; default codecs jpeg,
    png, png). The graph is ``sample_meta``'s (a chain with a loop back and a skip) and three
    pose groups across the yaws. ``normal_scale`` n > 0: a relightable file (format 1.2), the
    colour shaded by a key light (``SPHERE_KEY``) over an ambient, exact normal tiles at 1/n and
    that light as ``lighting``. ``chain`` N > 1: chained tiles (format 1.3). Returns the path."""
    codecs = dict(codecs or {"color": "jpeg", "alpha": "png", "depth": "png"})
    kinds = ("color", "alpha", "depth") + (("normal",) if normal_scale else ())
    codecs.setdefault("normal", "webp")
    meta = sample_meta(n_keyframes, yaws, pitches, (size, size), kinds=kinds, codecs=codecs, quality=quality,
                       near=NEAR, far=FAR, n_groups=3, depth_scale=depth_scale, depth_bits=depth_bits,
                       normal_scale=normal_scale or 1, chain=chain)
    if normal_scale:
        meta["lighting"] = {"sh": (SPHERE_AMBIENT + 0.55 * lobe(direction(*SPHERE_KEY[:2]))).round(6).tolist(),
                            "key": list(SPHERE_KEY)}
    intr = Intrinsics.from_fov(FOV, size, size)
    meta["grid"]["radius"] = RADIUS
    meta["grid"]["intrinsics"] = intr.to_dict()
    meta["keyframes"]["fps"] = fps
    meta["keyframes"]["times"] = [k / fps for k in range(n_keyframes)]
    g = meta["graph"]["groups"]["count"]
    span = (yaws[-1] - yaws[0]) / 2
    meta["graph"]["groups"]["centers"] = [[yaws[0] + span * (2 * i + 1) / g, 0.0] for i in range(g)]
    with P4DWriter(path, depth_scale=depth_scale, depth_bits=depth_bits, chain=chain) as w:
        if preview:
            rgb, alpha, _ = portrait_tile(size, size, seed=99)
            w.set_preview(rgb, alpha)
        for k in range(n_keyframes):
            for pi, p in enumerate(pitches):
                for yi, y in enumerate(yaws):
                    rgba, depth, normals = trace(y, p, intr, k, normals=True) if normal_scale else (*trace(y, p, intr, k), None)
                    v = pi * len(yaws) + yi
                    q = None if codecs["color"] not in ("jpeg", "webp") else quality
                    w.add_tile(k, v, "color", np.ascontiguousarray(rgba[..., :3]), codecs["color"], q)
                    w.add_tile(k, v, "alpha", np.ascontiguousarray(rgba[..., 3]), codecs["alpha"])
                    w.add_tile(k, v, "depth", quantize_depth(downscale_depth(depth, depth_scale), NEAR, FAR),
                               codecs["depth"])
                    if normal_scale:
                        code = oct_encode(np.where((depth > 0)[..., None], normals, [0.0, 0.0, 1.0]))
                        code = downscale_depth(np.dstack([code, np.zeros(depth.shape, np.uint8)]), normal_scale)
                        w.add_tile(k, v, "normal", np.ascontiguousarray(code), codecs["normal"])
        return w.finish(meta)
