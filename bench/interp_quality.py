"""In-between view quality of the player against exact renders of the synthetic head.

Bakes the synthetic head (bake.synthetic.SyntheticField, exact ground truth) on a yaw x pitch
grid into a small .p4d with the shipped bake settings (webp at the bake's quality for the tile
size, depth stored at 1/4), then renders every grid cell centre (or its quarter points) with the
player's kernels and compares against a direct render at that viewpoint: PSNR for depth-aware
reprojection and for plain bilinear blending of the 4 views. The mean hides the outline, a few
per cent of the pixels and most of what the eye sees, so the reprojection is also scored on the
interior (the exact render's alpha > 1/2, eroded by 4 px), on the outline band (pixels within
4 px of that alpha edge, on either side) and on the worst 1 % of the frame's pixels (the PSNR of
the 1 % with the largest error). Prints a table and a summary (``--json`` for machines);
``--sheet`` writes the worst cells beside the exact renders.

    python bench/interp_quality.py [--size 256] [--views 7x3] [--codec webp] [--depth-scale 4]
                                   [--at centre|quarter|grid] [--view-sharpen 1] [--sheet PNG] [--json]

Targets: reprojection >= 33 dB, and >= 2 dB above plain blending; the outline band within 3 dB
of the interior.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]  # testkit/ is not installed with the package
sys.path.insert(0, str(REPO_ROOT))
from formats import P4DReader, P4DWriter
from formats.camera import Camera, Intrinsics, orbit_pose
from formats.codecs import quantize_depth
from formats.p4d import downscale_depth
from bake.job.config import BakeConfig, auto_quality
from testkit.sample import sample_meta

RADIUS, FOV = 0.5, 30.0


def synth_meta(yaws, pitches, size: int, n_keyframes: int, codec: str, quality: int | None,
               near: float, far: float, fps: float = 12.5, depth_scale: int = 1) -> dict:
    meta = sample_meta(n_keyframes, yaws, pitches, (size, size),
                       codecs={"color": codec, "alpha": "png", "depth": "png"}, quality=quality,
                       near=near, far=far, n_groups=3, depth_scale=depth_scale)
    meta["grid"]["radius"] = RADIUS
    meta["grid"]["intrinsics"] = Intrinsics.from_fov(FOV, size, size).to_dict()
    meta["keyframes"]["fps"] = fps
    meta["keyframes"]["times"] = [k / fps for k in range(n_keyframes)]
    g = meta["graph"]["groups"]["count"]
    span = (yaws[-1] - yaws[0]) / 2
    meta["graph"]["groups"]["centers"] = [[yaws[0] + span * (2 * i + 1) / g, 0.0] for i in range(g)]
    return meta


def expression(k: int) -> np.ndarray:
    """A smooth expression sequence over the synthetic head's 8 coefficients."""
    t = k / 6.0
    return np.clip(0.5 + 0.5 * np.sin(t * np.array([1.0, 0.7, 2.3, 2.1, 0.9, 1.3, 0.5, 0.8])), 0, 1)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_synth_p4d(path, size: int = 128, yaws=(-30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0),
                    pitches=(-10.0, 0.0, 10.0), n_keyframes: int = 2, codec: str = "jpeg",
                    quality: int | None = 92, field=None, depth_scale: int = 1) -> pathlib.Path:
    """Bake the synthetic head into ``path`` directly (no checkpoint), depth stored at
    1/``depth_scale`` resolution. Returns the path."""
    from bake.synthetic import SyntheticField
    field = field or SyntheticField()
    near, far = max(RADIUS - 0.3, 0.01), RADIUS + 0.3
    meta = synth_meta(list(yaws), list(pitches), size, n_keyframes, codec, quality, near, far,
                      depth_scale=depth_scale)
    intr = Intrinsics.from_fov(FOV, size, size)
    with P4DWriter(path, depth_scale=depth_scale) as w:
        for k in range(n_keyframes):
            for pi, p in enumerate(pitches):
                for yi, y in enumerate(yaws):
                    rgb, a, d = field.render(Camera(intr, orbit_pose(y, p, RADIUS)), expression(k))
                    v = pi * len(yaws) + yi
                    w.add_tile(k, v, "color", to_u8(rgb), codec, quality)
                    w.add_tile(k, v, "alpha", to_u8(a), "png")
                    w.add_tile(k, v, "depth", quantize_depth(downscale_depth(d, depth_scale), near, far), "png")
        return w.finish(meta)


EDGE_PX = 4  # the outline band's half width, as ``bake eval --edge 4`` counts it


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = np.mean(err if mask is None else err[mask])
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def regions(alpha: np.ndarray, px: int = EDGE_PX) -> tuple[np.ndarray, np.ndarray]:
    """(interior, band) of an exact render's alpha [H, W] in [0, 1]: the interior is alpha > 1/2
    eroded by ``px`` (a (2 px + 1)^2 square), the band every pixel within ``px`` of its edge on
    either side (dilated minus eroded)."""
    import cv2
    m = (alpha > 0.5).astype(np.uint8)
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    inner = cv2.erode(m, k, borderType=cv2.BORDER_REPLICATE).astype(bool)
    outer = cv2.dilate(m, k).astype(bool)
    return inner, outer & ~inner


def worst_psnr(a: np.ndarray, b: np.ndarray, share: float = 0.01) -> float:
    """The PSNR of the ``share`` of pixels with the largest error (mean over channels)."""
    err = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(-1).ravel()
    n = max(1, int(round(share * err.size)))
    return float(10 * np.log10(255.0 ** 2 / max(np.partition(err, -n)[-n:].mean(), 1e-10)))


POSITIONS = {"centre": ((0.5, 0.5),),
             "quarter": ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)),
             "grid": ((0.0, 0.0),)}  # each cell's first grid view itself: what the warp loses with no baseline


def measure(p4d, field=None, keyframes=(0,), expressions=None, at: str = "centre", sharpen: float = 1.0,
            keep_images: bool = False) -> dict:
    """PSNR in every grid cell (and keyframe) for reprojection and plain blending, at the cell
    centre or at its 4 quarter points (``POSITIONS``: fractions of the cell along yaw, pitch),
    and the reprojection's interior, outline band and worst 1 % (``regions``, ``worst_psnr``);
    ``sharpen``: the reprojection's ``RenderConfig.view_sharpen``; keep_images: each cell keeps
    (exact render, reprojection) for ``write_sheet``."""
    from bake.synthetic import SyntheticField
    from player.cache import TileCache
    from player.render import RenderConfig, Renderer
    field = field or SyntheticField()
    r = P4DReader(p4d)
    meta = r.meta
    yaws, pitches = meta["grid"]["yaws"], meta["grid"]["pitches"]
    intr = Intrinsics.from_dict(meta["grid"]["intrinsics"])
    bg = np.array([0.0, 0.0, 0.0], np.float32)
    cache = TileCache(r, prefetch=False)
    warp = Renderer(meta, cache, RenderConfig(background=tuple(bg), view_sharpen=sharpen))
    plain = Renderer(meta, cache, RenderConfig(background=tuple(bg), depth_aware=False))
    rows = []
    for k in keyframes:
        for pi in range(len(pitches) - 1):
            for yi, (fy, fp) in ((yi, f) for yi in range(len(yaws) - 1) for f in POSITIONS[at]):
                y = (1 - fy) * yaws[yi] + fy * yaws[yi + 1]
                p = (1 - fp) * pitches[pi] + fp * pitches[pi + 1]
                ex = expression(k) if expressions is None else np.asarray(expressions[k], np.float64)
                cam = Camera(intr, orbit_pose(y, p, meta["grid"]["radius"], meta["grid"]["center"]))
                rgb, a, _ = field.render(cam, ex)
                truth = to_u8(rgb)  # premultiplied = over black
                got_w = warp.render(y, p, 1.0, [(k, k, 0.0, 1.0)])[::-1, :, :3].copy()
                got_p = plain.render(y, p, 1.0, [(k, k, 0.0, 1.0)])[::-1, :, :3]
                inner, band = regions(a)
                rows.append({"keyframe": k, "yaw": y, "pitch": p,
                             "reproject_db": psnr(got_w, truth), "bilinear_db": psnr(got_p, truth),
                             "reproject_db_interior": psnr(got_w, truth, inner),
                             "reproject_db_edge": psnr(got_w, truth, band),
                             "reproject_db_worst1pct": worst_psnr(got_w, truth)})
                if keep_images:
                    rows[-1]["images"] = (truth, got_w)
    cache.close()
    r.close()
    rw = np.array([x["reproject_db"] for x in rows])
    rp = np.array([x["bilinear_db"] for x in rows])
    mean = lambda key: float(np.mean([x[key] for x in rows]))  # noqa: E731
    return {"cells": rows, "reproject_db_mean": float(rw.mean()), "reproject_db_min": float(rw.min()),
            "bilinear_db_mean": float(rp.mean()), "bilinear_db_min": float(rp.min()),
            "gain_db_mean": float((rw - rp).mean()), "gain_db_min": float((rw - rp).min()),
            "reproject_db_interior": mean("reproject_db_interior"), "reproject_db_edge": mean("reproject_db_edge"),
            "reproject_db_worst1pct": mean("reproject_db_worst1pct"),
            "reproject_db_edge_min": float(min(x["reproject_db_edge"] for x in rows)),
            "reproject_db_worst1pct_min": float(min(x["reproject_db_worst1pct"] for x in rows))}


def write_sheet(path: str, cells: list[dict], n: int = 4) -> None:
    """The ``n`` cells with the worst outline band: exact render, reprojection, 4 x |difference|."""
    import cv2
    worst = sorted(cells, key=lambda c: c["reproject_db_edge"])[:n]
    rows = []
    for c in worst:
        truth, got = c["images"]
        diff = np.clip(np.abs(got.astype(np.int16) - truth.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
        row = np.concatenate([truth, got, diff], 1)
        cv2.putText(row, f"k {c['keyframe']} yaw {c['yaw']:.1f} pitch {c['pitch']:.1f}: edge "
                         f"{c['reproject_db_edge']:.1f} dB, worst 1% {c['reproject_db_worst1pct']:.1f} dB",
                    (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(row)
    if not cv2.imwrite(path, np.concatenate(rows, 0)[..., ::-1]):
        raise OSError(f"{path}: could not write the sheet")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256, help="tile size in pixels (default 256)")
    ap.add_argument("--views", default="7x3", help="yaw x pitch grid over yaw -30..30, pitch -10..10 (default 7x3)")
    ap.add_argument("--codec", default=BakeConfig.codec, choices=["jpeg", "webp", "png", "raw+zstd"],
                    help=f"colour codec (default {BakeConfig.codec}, as `bake`)")
    ap.add_argument("--quality", type=int, default=None,
                    help="colour quality (default: the bake's for the tile size, auto_quality)")
    ap.add_argument("--depth-scale", type=int, default=BakeConfig.depth_scale, choices=[1, 2, 4, 8],
                    help=f"store depth at 1/N resolution (default {BakeConfig.depth_scale}, as `bake`)")
    ap.add_argument("--sheet", default=None, help="write the worst cells beside the exact renders to this PNG")
    ap.add_argument("--at", default="centre", choices=sorted(POSITIONS),
                    help="where in each grid cell: its centre (the targets), its 4 quarter points, or its first "
                         "grid view itself (what the warp loses at a view it has; default centre)")
    ap.add_argument("--view-sharpen", type=float, default=1.0,
                    help="RenderConfig.view_sharpen of the reprojection, >= 1 (default 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--p4d", default=None, help="measure this bake of a synthetic checkpoint instead (needs --ckpt)")
    ap.add_argument("--ckpt", default=None, help="the synthetic subject.ckpt the --p4d was baked from")
    ap.add_argument("--keyframes", default="0", help="comma-separated keyframes to measure with --p4d (default 0)")
    args = ap.parse_args(argv)
    if args.view_sharpen < 1:
        ap.error("--view-sharpen must be >= 1")
    ny, np_ = (int(x) for x in args.views.lower().split("x"))
    yaws = tuple(np.linspace(-30, 30, ny).round(6)) if ny > 1 else (0.0,)
    pitches = tuple(np.linspace(-10, 10, np_).round(6)) if np_ > 1 else (0.0,)
    quality = (args.quality or auto_quality(args.size)) if args.codec in ("jpeg", "webp") else None
    if args.p4d:
        if not args.ckpt:
            ap.error("--p4d needs --ckpt (the synthetic checkpoint it was baked from)")
        from bake.fields.registry import load_field
        field = load_field(args.ckpt, device="cpu")
        with P4DReader(args.p4d) as r:
            meta = r.meta
        res = measure(args.p4d, field, [int(k) for k in args.keyframes.split(",")],
                      meta["keyframes"]["expressions"], at=args.at, sharpen=args.view_sharpen,
                      keep_images=bool(args.sheet))
        g = meta["grid"]
        res.update(p4d=args.p4d, size=g["intrinsics"]["width"], views=f"{len(g['yaws'])}x{len(g['pitches'])}",
                   codec=meta["tiles"]["codecs"]["color"], quality=meta["tiles"]["quality"]["color"])
    else:
        with tempfile.TemporaryDirectory() as d:
            path = write_synth_p4d(pathlib.Path(d) / "synth.p4d", args.size, yaws, pitches, 1, args.codec, quality,
                                   depth_scale=args.depth_scale)
            res = measure(path, at=args.at, sharpen=args.view_sharpen, keep_images=bool(args.sheet))
        res.update(size=args.size, views=args.views, codec=args.codec, quality=quality, depth_scale=args.depth_scale)
    res.update(at=args.at, view_sharpen=args.view_sharpen)
    if args.sheet:
        write_sheet(args.sheet, res["cells"])
        res["sheet"] = args.sheet
    for c in res["cells"]:
        c.pop("images", None)
    if args.json:
        print(json.dumps(res))
        return 0
    for c in res["cells"]:
        print(f"yaw {c['yaw']:6.1f} pitch {c['pitch']:6.1f}: reprojection {c['reproject_db']:6.2f} dB"
              f" (interior {c['reproject_db_interior']:6.2f}, edge {c['reproject_db_edge']:6.2f}, worst 1% "
              f"{c['reproject_db_worst1pct']:6.2f})   bilinear {c['bilinear_db']:6.2f} dB")
    print(f"mean: reprojection {res['reproject_db_mean']:.2f} dB (min {res['reproject_db_min']:.2f}), "
          f"bilinear {res['bilinear_db_mean']:.2f} dB (min {res['bilinear_db_min']:.2f}), "
          f"gain {res['gain_db_mean']:.2f} dB (min {res['gain_db_min']:.2f})")
    print(f"reprojection: interior {res['reproject_db_interior']:.2f} dB, outline band "
          f"{res['reproject_db_edge']:.2f} dB (min {res['reproject_db_edge_min']:.2f}), worst 1 % "
          f"{res['reproject_db_worst1pct']:.2f} dB (min {res['reproject_db_worst1pct_min']:.2f})")
    ok = res["reproject_db_min"] >= 33 and res["gain_db_min"] >= 2
    print("targets (>= 33 dB, >= +2 dB):", "met" if ok else "NOT met")
    edge_ok = res["reproject_db_edge"] >= res["reproject_db_interior"] - 3
    print("outline target (band >= interior - 3 dB):", "met" if edge_ok else "NOT met")
    if args.sheet:
        print(f"sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
