"""Normals and the fitted light for a file baked without them (format 1.0 or 1.1 -> 1.2): every
tile is copied as it is, each view's normals are derived from its stored depth (the geometry
the player warps with) and the light is fitted over the stored tiles, as a bake does."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from bake.relight.fit import fit_tiles
from bake.relight.normals import depth_normals, normal_codes
from formats import P4DReader, P4DWriter
from formats.atomic import atomic_path
from formats.camera import Camera, Intrinsics, orbit_pose
from formats.codecs import dequantize_depth
from formats.errors import UsageError
from formats.p4d import upsample_depth_nearest
from formats.progress import Progress


def add_normals(src: str | Path, out: str | Path, normal_scale: int = 2, quiet: bool = False) -> Path:
    """Write ``out``: ``src`` with normal tiles at 1/normal_scale and ``lighting``."""
    out = Path(out)
    with P4DReader(src) as r:
        if "normal" in r.kinds:
            raise UsageError(f"{src} already has normals (format {r.version[0]}.{r.version[1]})")
        if "depth" not in r.kinds:
            raise UsageError(f"{src} has no depth tiles to derive normals from")
        meta = copy.deepcopy(r.meta)
        meta["tiles"]["kinds"] = list(r.kinds) + ["normal"]
        meta["tiles"]["codecs"]["normal"] = "webp"
        meta["tiles"]["normal_scale"] = normal_scale
        g = meta["grid"]
        intr = Intrinsics.from_dict(g["intrinsics"])
        near, far = g["depth"]["near"], g["depth"]["far"]
        ny = len(g["yaws"])
        h, w = r.tile_shape
        # Smooth over at least a depth sample: nearest-upsampled depth steps at its block edges.
        sigma = max(max(h, w) / 128, float(r.depth_scale))
        with atomic_path(out) as tmp:
            wr = P4DWriter(tmp, depth_scale=r.depth_scale, depth_bits=r.depth_bits, chain=r.chain)  # chains stay
            try:
                if r.has_preview:
                    wr.set_preview(*r.preview())
                with Progress(r.n_keyframes * r.n_views, f"normals {out.name}", disable=quiet) as bar:
                    for k in range(r.n_keyframes):
                        for v in range(r.n_views):
                            for kind in r.kinds:
                                codec, data = r.tile_encoded(k, v, kind)
                                wr.add_encoded(k, v, kind, data, codec, r.kind_shape(kind),
                                               predicted=r.predicted(k, v, kind))
                            q = upsample_depth_nearest(r.tile(k, v, "depth"), r.depth_scale, (h, w))
                            cam = Camera(intr, orbit_pose(g["yaws"][v % ny], g["pitches"][v // ny], g["radius"],
                                                          g["center"]))
                            n = depth_normals(cam, dequantize_depth(q, near, far), sigma)
                            wr.add_tile(k, v, "normal", normal_codes(n, normal_scale), "webp")
                            bar.update(1)
                meta["lighting"] = fit_tiles(wr.tile, r.n_keyframes, r.n_views, normal_scale)
                wr.finish(meta)
            except BaseException:
                wr.discard()
                raise
    return out
