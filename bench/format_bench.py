"""Tile codec throughput and rate/distortion on portrait-like tiles, plus the .p4d tile-fetch latency.

    python bench/format_bench.py [--size 256] [--tiles 24] [--repeats 5] [--synthetic-only]

Also: depth tile bytes at each depth_scale (1, 2, 4, 8) and the error of its nearest upsampling.

Tiles are renders of bake.synthetic.SyntheticField (a real shaded head with expressions) at a
spread of yaws/pitches when the bake is importable, else testkit.sample.portrait_tile ellipses.
Throughput is single-threaded; each figure is the median over --repeats passes (the box may be shared).
PSNR is over the whole tile and, in "face", over pixels with alpha > 0 only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]  # testkit/ is not installed with the package
sys.path.insert(0, str(REPO_ROOT))
from formats import P4DReader, P4DWriter
from formats import codecs
from formats.p4d import DEPTH_SCALES, downscale_depth, upsample_depth_nearest
from testkit.sample import portrait_tile, sample_meta


def synthetic_tiles(n: int, size: int, force_ellipse: bool) -> tuple[list, str]:
    """n tiles of (rgb uint8 [S,S,3] premultiplied, alpha uint8 [S,S], depth uint16 [S,S])."""
    rng = np.random.default_rng(0)
    near, far = 0.3, 1.0
    if not force_ellipse:
        try:
            from bake.synthetic.field import SyntheticField
            from formats.camera import Camera, Intrinsics, orbit_pose
            f = SyntheticField()
            intr = Intrinsics.from_fov(30, size, size)
            out = []
            for i in range(n):
                yaw, pitch = rng.uniform(-40, 40), rng.uniform(-15, 15)
                expr = rng.uniform(0, 1, len(f.expression_names))
                rgb, a, d = f.render(Camera(intr, orbit_pose(yaw, pitch, 0.6)), expr)
                out.append((np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8),
                            np.clip(np.rint(a * 255), 0, 255).astype(np.uint8),
                            codecs.quantize_depth(d, near, far)))
            return out, "bake.synthetic.SyntheticField renders"
        except ImportError:
            pass
    out = []
    for i in range(n):
        rgb, a, d = portrait_tile(size, size, rng.uniform(-40, 40), rng.uniform(-15, 15), t=i, seed=i)
        out.append((rgb, a, codecs.quantize_depth(d, near, far)))
    return out, "testkit.sample.portrait_tile ellipses"


def psnr(a, b, mask=None) -> float:
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        err = err[mask]
    mse = err.mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def timed(fn, items, repeats: int) -> float:
    """Median seconds for one pass of fn over items."""
    for x in items[:2]:
        fn(x)  # warm-up: first calls pay for library initialisation
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for x in items:
            fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def codec_row(kind, codec, quality, arrays, masks, repeats):
    enc = [codecs.encode(a, codec, quality) for a in arrays]
    shape, dtype = arrays[0].shape, arrays[0].dtype
    t_enc = timed(lambda a: codecs.encode(a, codec, quality), arrays, repeats)
    t_dec = timed(lambda b: codecs.decode(b, codec, shape, dtype), enc, repeats)
    dec = [codecs.decode(b, codec, shape, dtype) for b in enc]
    n, px = len(arrays), arrays[0].shape[0] * arrays[0].shape[1]
    bpp = 8 * sum(map(len, enc)) / (n * px)
    if dtype == np.uint8:
        p_all = statistics.mean(min(psnr(a, d), 99.0) for a, d in zip(arrays, dec))
        p_face = statistics.mean(min(psnr(a, d, m), 99.0) for a, d, m in zip(arrays, dec, masks))
    else:
        p_all = p_face = 99.0 if all(np.array_equal(a, d) for a, d in zip(arrays, dec)) else float("nan")
    q = "-" if quality is None else str(quality)
    return (f"{kind:<6} {codec:<9} {q:>4} {n / t_enc:9.0f} {n * px / t_enc / 1e6:8.1f} {n / t_dec:9.0f} "
            f"{n * px / t_dec / 1e6:8.1f} {bpp:7.3f} {p_all:7.2f} {p_face:7.2f}")


def depth_scale_rows(depths, alphas, near: float = 0.3, far: float = 1.0) -> list[str]:
    """Per depth_scale and lossless codec: KB per tile, bits per stored / per tile pixel, and the
    error of nearest upsampling back to the tile over face pixels (alpha == 255 and depth > 0)."""
    rows = [f"{'depth_scale':>11} {'codec':<9} {'stored':>9} {'KB/tile':>8} {'bits/stored px':>14} "
            f"{'bits/tile px':>12} {'|err| mean mm':>13} {'p99 mm':>7}"]
    step = (far - near) / 65534 * 1e3  # mm per quantisation step
    h, w = depths[0].shape
    for s in DEPTH_SCALES:
        small = [downscale_depth(d, s) for d in depths]
        errs = []
        for d, sd, a in zip(depths, small, alphas):
            up = upsample_depth_nearest(sd, s, (h, w)).astype(np.int64)
            face = (a == 255) & (d > 0) & (up > 0)
            errs.append(np.abs(up[face] - d[face].astype(np.int64)) * step)
        e = np.concatenate(errs) if errs else np.zeros(1)
        sh, sw = small[0].shape
        for codec in KIND_DEPTH_CODECS:
            n = sum(len(codecs.encode(x, codec)) for x in small)
            rows.append(f"{s:>11} {codec:<9} {f'{sw}x{sh}':>9} {n / len(small) / 1e3:8.2f} "
                        f"{8 * n / (len(small) * sh * sw):14.3f} {8 * n / (len(small) * h * w):12.3f} "
                        f"{e.mean():13.2f} {np.percentile(e, 99):7.1f}")
    return rows


KIND_DEPTH_CODECS = ("png", "raw+zstd")


def fetch_latency(tiles, repeats: int) -> str:
    """p50/p90 of P4DReader.tile() (pread + crc + decode) for jpeg q90 colour tiles."""
    size = tiles[0][0].shape[0]
    n = len(tiles)
    with tempfile.TemporaryDirectory() as tmp:
        meta = sample_meta(n, yaws=(0.0,), size=(size, size), kinds=("color",), codecs={"color": "jpeg"},
                           quality=90)
        with P4DWriter(Path(tmp) / "b.p4d") as w:
            for k, (rgb, _, _) in enumerate(tiles):
                w.add_tile(k, 0, "color", rgb, "jpeg", 90)
            path = w.finish(meta)
        lat = []
        with P4DReader(path) as r:
            for _ in range(repeats):
                for k in range(n):
                    t = time.perf_counter()
                    r.tile(k, 0, "color")
                    lat.append(time.perf_counter() - t)
        lat.sort()
        return (f"P4DReader.tile() {size}x{size} jpeg q90 colour: p50 {1e3 * lat[len(lat) // 2]:.2f} ms, "
                f"p90 {1e3 * lat[int(len(lat) * 0.9)]:.2f} ms over {len(lat)} fetches")


def _proc_io() -> dict:
    try:
        with open("/proc/self/io") as f:
            return {k: int(v) for k, v in (line.split(":") for line in f)}
    except OSError:
        return {}


def big_file_info(gib: float, workdir: str) -> None:
    """Write a ~gib GiB file of incompressible raw+zstd tiles, time `p4d info` on it, delete it."""
    import os
    import subprocess
    import zstandard
    from formats.cli import main as p4d_main
    size, yaws, pitches = 256, [float(y) for y in range(-45, 46, 10)], [-10.0, 0.0, 10.0]
    per_kf = len(yaws) * len(pitches) * size * size * 6  # color 3 + alpha 1 + depth 2 bytes
    K = max(1, int(gib * 2**30 / per_kf))
    rng = np.random.default_rng(0)
    z = zstandard.ZstdCompressor(level=1, write_content_size=True)
    pool = {kind: [z.compress(rng.integers(0, 256, size * size * c, dtype=np.uint8).tobytes()) for _ in range(8)]
            for kind, c in (("color", 3), ("alpha", 1), ("depth", 2))}
    meta = sample_meta(K, yaws, pitches, (size, size), codecs={k: "raw+zstd" for k in pool})
    path = Path(workdir) / "big.p4d"
    t = time.perf_counter()
    with P4DWriter(path) as w:
        i = 0
        for k in range(K):
            for v in range(len(yaws) * len(pitches)):
                for kind in ("color", "alpha", "depth"):
                    w.add_encoded(k, v, kind, pool[kind][i % 8], "raw+zstd", (size, size))
                    i += 1
        w.finish(meta)
    fsize = path.stat().st_size
    print(f"# wrote {fsize / 2**30:.2f} GiB ({K} keyframes x {len(yaws) * len(pitches)} views x 3 kinds) "
          f"in {time.perf_counter() - t:.1f} s")
    try:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # evict this file only: a cold-ish open
        os.close(fd)
        io0, t = _proc_io(), time.perf_counter()
        with P4DReader(path) as r:
            opened = time.perf_counter() - t
            read = r.bytes_read
        io1 = _proc_io()
        print(f"P4DReader open (cold page cache for the file): {1e3 * opened:.1f} ms, {read} bytes read by the "
              f"reader ({read / 2**20:.3f} MiB), /proc/self/io rchar +{io1.get('rchar', 0) - io0.get('rchar', 0)}, "
              f"read_bytes +{io1.get('read_bytes', 0) - io0.get('read_bytes', 0)}")
        io0, t = _proc_io(), time.perf_counter()
        with open(os.devnull, "w") as null:
            saved, sys.stdout = sys.stdout, null
            try:
                p4d_main(["info", str(path), "--json"])
            finally:
                sys.stdout = saved
        io1 = _proc_io()
        print(f"p4d info --json in-process: {1e3 * (time.perf_counter() - t):.1f} ms, rchar "
              f"+{io1.get('rchar', 0) - io0.get('rchar', 0)} bytes")
        walls = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "formats.cli", "info", str(path)], check=True,
                           stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import formats.cli"], check=True)
        imp = time.perf_counter() - t
        print(f"`python -m formats.cli info` end to end: median {1e3 * statistics.median(walls):.0f} ms "
              f"(of which interpreter + imports {1e3 * imp:.0f} ms)")
    finally:
        path.unlink(missing_ok=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="tile side in pixels")
    ap.add_argument("--tiles", type=int, default=24, help="distinct tiles per measurement")
    ap.add_argument("--repeats", type=int, default=5, help="passes; the median is reported")
    ap.add_argument("--synthetic-only", action="store_true", help="use the ellipse tiles even if bake is present")
    ap.add_argument("--info-gib", type=float, default=0.0,
                    help="also write a file of this many GiB in --workdir, time `p4d info` on it, delete it")
    ap.add_argument("--workdir", default=tempfile.gettempdir(), help="where the big file goes")
    args = ap.parse_args(argv)
    if args.info_gib > 0:
        big_file_info(args.info_gib, args.workdir)
    tiles, source = synthetic_tiles(args.tiles, args.size, args.synthetic_only)
    rgbs, alphas, depths = ([t[i] for t in tiles] for i in range(3))
    masks = [a > 0 for a in alphas]
    print(f"# {args.tiles} tiles of {args.size}x{args.size} ({source}); single thread; median of {args.repeats}")
    print(f"{'kind':<6} {'codec':<9} {'q':>4} {'enc t/s':>9} {'enc MP/s':>8} {'dec t/s':>9} {'dec MP/s':>8} "
          f"{'bits/px':>7} {'PSNR':>7} {'face':>7}")
    rows = [("color", "jpeg", q) for q in (30, 50, 70, 80, 90, 95)]
    rows += [("color", "webp", q) for q in (30, 50, 70, 80, 90, 95)]
    rows += [("color", "png", None), ("color", "raw+zstd", None),
             ("alpha", "png", None), ("alpha", "raw+zstd", None), ("alpha", "webp", codecs.WEBP_LOSSLESS),
             ("depth", "png", None), ("depth", "raw+zstd", None)]
    data = {"color": rgbs, "alpha": alphas, "depth": depths}
    for kind, codec, q in rows:
        print(codec_row(kind, codec, q, data[kind], masks, args.repeats), flush=True)
    print("(PSNR 99 = lossless)")
    for line in depth_scale_rows(depths, alphas):
        print(line)
    print(fetch_latency(tiles, args.repeats * 4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
