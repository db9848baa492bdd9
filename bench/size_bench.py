"""Where a portrait's bytes go, and what each kind would cost coded otherwise (issue 45).

    python bench/size_bench.py LOSSLESS.p4d [OTHER.p4d ...] [--every 10] [--runs 4] [--quick]

LOSSLESS.p4d: a bake with lossless colour (`bake CKPT -o L.p4d --codec png`), the reference every
lossy setting is scored against, as `p4d compare` scores a file. Prints
  1. bytes per kind (colour, alpha, depth, index + metadata + header + preview) of each file given;
  2. per kind and codec setting, the bytes the whole file's tiles would take (measured on every
     --every-th keyframe, all views, scaled to all keyframes) and the error against the reference:
     colour PSNR inside the alpha (mean over tiles, worst tile), alpha mean absolute error in
     levels, depth RMS in mm inside the alpha;
  3. how much neighbouring keyframes (same view) and neighbouring views (same keyframe) share:
     the share of equal samples and what coding the difference instead of the tile would take;
     and colour coded as chains (one tile, then differences to the previous decoded keyframe).
Single-threaded encoders, deterministic; wall time is not measured here.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from formats import P4DReader, codecs  # noqa: E402
from formats.compare import tile_psnr  # noqa: E402
from formats.p4d import DEPTH_STEP8, depth_code, depth_decode, upsample_depth_nearest  # noqa: E402

try:  # Pillow exposes libwebp's method (effort) and alpha_quality; opencv only the quality
    from PIL import Image
except ImportError:  # pragma: no cover - optional
    Image = None


def file_bytes(path: str) -> dict:
    with P4DReader(path) as r:
        out = {k: int(r.index["length"][:, :, i].sum()) for i, k in enumerate(r.kinds)}
        out["other"] = r.file_size - sum(out.values())
        out["total"] = r.file_size
        out["codecs"] = dict(r.codecs)
        out["depth_scale"] = r.depth_scale
        out["chain"] = r.chain
    return out


def mb(n: float) -> str:
    return f"{n / 1e6:7.2f} MB"


def pil_webp(img: np.ndarray, quality: int, method: int, lossless: bool = False) -> bytes:
    buf = io.BytesIO()
    mode = {2: "L", 3: "RGB"}[img.ndim if img.ndim == 2 else 3]
    Image.fromarray(img, mode).save(buf, "WEBP", quality=quality, method=method, lossless=lossless)
    return buf.getvalue()


def cv_webp_decode(data: bytes, ch: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if ch == 3 else cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if ch == 3 else img


def bleed(rgb_premul: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight colour inside the alpha, pushed outward into the empty pixels (a smooth fill, so
    the codec spends nothing on a black edge): what a straight-colour coding would store."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    straight = np.where(a > 0, np.clip(rgb_premul.astype(np.float32) / np.maximum(a, 1e-6), 0, 255), 0)
    filled = straight.copy()
    known = alpha > 0
    w = known.astype(np.float32)
    acc = straight * w[..., None]
    for _ in range(6):  # pyramid-free push: repeated blurs of (colour * known, known)
        acc = cv2.blur(acc, (9, 9))
        w = cv2.blur(w, (9, 9))
        fill = acc / np.maximum(w[..., None], 1e-6)
        filled = np.where(known[..., None], straight, np.where(w[..., None] > 1e-6, fill, filled))
        acc, w = filled * (w[..., None] > 1e-6), (w > 1e-6).astype(np.float32)
    return np.clip(np.rint(filled), 0, 255).astype(np.uint8)


def premultiply(straight: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return ((straight.astype(np.uint32) * alpha[..., None] + 127) // 255).astype(np.uint8)


def depth_rms_mm(qa, qb, alpha, near, far, s, shape) -> float:
    da = upsample_depth_nearest(codecs.dequantize_depth(qa, near, far), s, shape)
    db = upsample_depth_nearest(codecs.dequantize_depth(qb, near, far), s, shape)
    both = (alpha > 0) & (da > 0) & (db > 0)
    return float(np.sqrt(np.mean((da[both] - db[both]).astype(np.float64) ** 2)) * 1e3) if both.any() else math.nan


def step_code(q: np.ndarray, step: int) -> np.ndarray:
    """q (uint16, 0 = empty) -> n: 0 = empty, else round((q - 1) / step) + 1."""
    n = np.rint((q.astype(np.float64) - 1) / step) + 1
    return np.where(q > 0, n, 0).astype(np.uint16 if n.max() > 255 else np.uint8)


def step_decode(n: np.ndarray, step: int) -> np.ndarray:
    return np.where(n > 0, np.minimum(1 + (n.astype(np.int64) - 1) * step, 65535), 0).astype(np.uint16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lossless")
    ap.add_argument("others", nargs="*")
    ap.add_argument("--every", type=int, default=10, help="measure every N-th keyframe (default 10)")
    ap.add_argument("--quick", action="store_true", help="fewer settings")
    ap.add_argument("--runs", type=int, default=4, help="runs of 8 keyframes for the prediction test (default 4)")
    args = ap.parse_args()

    print("== bytes per kind (whole files) ==")
    for p in [args.lossless, *args.others]:
        fb = file_bytes(p)
        print(f"{Path(p).name}: total {mb(fb['total'])}  " + "  ".join(
            f"{k} {mb(fb[k])} ({fb['codecs'].get(k, '')})" for k in ("color", "alpha", "depth", "normal") if k in fb)
            + f"  index+meta+header+preview {mb(fb['other'])}  depth_scale {fb['depth_scale']}  chain {fb['chain']}")

    r = P4DReader(args.lossless)
    K, V = r.n_keyframes, r.n_views
    H, W = r.tile_shape
    near, far = r.meta["grid"]["depth"]["near"], r.meta["grid"]["depth"]["far"]
    s = r.depth_scale
    ks = list(range(0, K, args.every))
    scale = K / len(ks)
    ny = len(r.meta["grid"]["yaws"])
    print(f"\n{K} keyframes x {V} views, {W}x{H} tiles, depth 1/{s}, depth range [{near:.3f}, {far:.3f}] m "
          f"(q step {(far - near) / 65534 * 1e3:.4f} mm); measuring {len(ks)} keyframes x {V} views, "
          f"bytes x {scale:.1f}")
    tiles = {(k, v): (r.tile(k, v, "color"), r.tile(k, v, "alpha"), r.tile(k, v, "depth"))
             for k in ks for v in range(V)}
    prev = {(k, v): (r.tile(k + 1, v, "color"), r.tile(k + 1, v, "alpha"), r.tile(k + 1, v, "depth"))
            for k in ks if k + 1 < K for v in range(V)}

    def report(kind, name, nbytes, errs, err_name):
        errs = np.array([e for e in errs if not math.isnan(e)])
        worst = errs.min() if err_name == "dB" else errs.max()
        print(f"  {kind:6s} {name:38s} {mb(nbytes * scale)}  {errs.mean():7.2f} {err_name} mean  "
              f"{worst:7.2f} {'min' if err_name == 'dB' else 'max'}")

    print("\n== colour (PSNR inside the reference alpha, against the lossless tile) ==")

    def colour_row(name, encode, decode):
        """One codec setting over every tile: encode(c, a) -> bytes, decode(data, c, a) -> rgb."""
        n, e = 0, []
        for (c, a, _) in tiles.values():
            data = encode(c, a)
            n += len(data)
            e.append(tile_psnr(decode(data, c, a), c, a > 0))
        report("color", name, n, e, "dB")

    def cv_decode(data, c, a, codec="webp"):
        return codecs.decode(data, codec, c.shape, np.uint8)

    for q in (60, 70, 80) if args.quick else (50, 60, 65, 70, 75, 80, 85, 90):
        colour_row(f"webp q{q} (opencv, premultiplied)", lambda c, a, q=q: codecs.encode(c, "webp", q), cv_decode)
    if Image is not None:
        for q in ((70, 80) if args.quick else (60, 70, 80)):
            for m in (4, 6):
                colour_row(f"webp q{q} method {m} (libwebp via Pillow)", lambda c, a, q=q, m=m: pil_webp(c, q, m),
                           lambda data, c, a: cv_webp_decode(data, 3))
    for q in ((70, 80) if args.quick else (60, 70, 80)):
        colour_row(f"webp q{q} straight, bled (opencv)", lambda c, a, q=q: codecs.encode(bleed(c, a), "webp", q),
                   lambda data, c, a: premultiply(cv_decode(data, c, a), a))
    for q in ((60, 70) if args.quick else (50, 60, 70, 80)):  # AVIF: browsers decode it; not a .p4d codec yet
        n, e, t = 0, [], []
        for (c, a, _) in tiles.values():
            ok, buf = cv2.imencode(".avif", cv2.cvtColor(c, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_AVIF_QUALITY, q, cv2.IMWRITE_AVIF_SPEED, 6])
            if not ok:
                break
            n += len(buf)
            t0 = time.perf_counter()
            d = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            t.append(time.perf_counter() - t0)
            e.append(tile_psnr(cv2.cvtColor(d, cv2.COLOR_BGR2RGB), c, a > 0))
        if e:
            report("color", f"avif q{q} (opencv; decode {np.median(t) * 1e3:.1f} ms)", n, e, "dB")
    t = []
    for (c, a, _) in list(tiles.values())[:200]:
        data = codecs.encode(c, "webp", 80)
        t0 = time.perf_counter()
        codecs.decode(data, "webp", c.shape, np.uint8)
        t.append(time.perf_counter() - t0)
    print(f"  (webp q80 decode {np.median(t) * 1e3:.1f} ms a tile, median)")
    for q in (85, 90):
        colour_row(f"jpeg q{q}", lambda c, a, q=q: codecs.encode(c, "jpeg", q),
                   lambda data, c, a: cv_decode(data, c, a, "jpeg"))

    print("\n== alpha (mean absolute error in levels over the tile) ==")
    variants = [("webp lossless (opencv)", lambda a: codecs.encode(a, "webp", codecs.WEBP_LOSSLESS), None),
                ("png", lambda a: codecs.encode(a, "png", 9), None)]
    if Image is not None:
        variants.append(("webp lossless method 6 (Pillow)", lambda a: pil_webp(a, 100, 6, True), None))
    for lv in (8, 16, 32):
        def qa(a, lv=lv):
            step = 255 / (lv - 1)
            return np.clip(np.rint(np.rint(a / step) * step), 0, 255).astype(np.uint8)
        variants.append((f"{lv} levels, webp lossless", lambda a, qa=qa: codecs.encode(qa(a), "webp", 101), qa))
    for name, enc, quant in variants:
        n, e = 0, []
        for (_, a, _) in tiles.values():
            n += len(enc(a))
            e.append(float(np.abs((quant(a) if quant else a).astype(np.int32) - a).mean()))
        report("alpha", name, n, e, "lv ")

    print("\n== depth (RMS mm inside the alpha against the stored uint16) ==")
    n = sum(len(codecs.encode(d, "png", 9)) for (_, _, d) in tiles.values())
    report("depth", "png 16-bit (v1.0)", n, [0.0], "mm ")
    for step in (16, 64, 128):  # coarser q in 16-bit samples: no format change, but png keeps the noise byte
        n, e = 0, []
        for (_, a, d) in tiles.values():
            code = step_code(d, step)
            n += len(codecs.encode(code, "png", 9))
            e.append(depth_rms_mm(step_decode(code, step), d, a, near, far, s, (H, W)))
        report("depth", f"q rounded to {step} ({step * (far - near) / 65534 * 1e3:.2f} mm), 16-bit png", n, e, "mm ")
    for codec in ("png", "webp", "raw+zstd"):  # the 1.1 coding: 8-bit codes (formats.p4d.depth_code)
        n, e = 0, []
        for (_, a, d) in tiles.values():
            code = depth_code(d, 8)
            n += len(codecs.encode(code, codec, {"png": 9, "webp": 101, "raw+zstd": 19}[codec]))
            e.append(depth_rms_mm(depth_decode(code, 8), d, a, near, far, s, (H, W)))
        report("depth", f"8-bit codes, step {DEPTH_STEP8} ({DEPTH_STEP8 * (far - near) / 65534 * 1e3:.2f} mm), "
               f"{codec}", n, e, "mm ")

    print("\n== sharing between neighbours ==")
    def share(kind_i, name, fn_code, enc):
        eq_t, eq_v, nb_intra, nb_t, nb_v, cnt_t, cnt_v = [], [], 0, 0, 0, 0, 0
        for (k, v), t in tiles.items():
            x = fn_code(t[kind_i]).astype(np.int32)
            nb_intra += len(enc(x.astype(np.uint8)))
            if (k, v) in prev:
                y = fn_code(prev[(k, v)][kind_i]).astype(np.int32)
                eq_t.append(float((x == y).mean()))
                nb_t += len(enc(((x - y) % 256).astype(np.uint8)))
                cnt_t += 1
            if v % ny + 1 < ny:
                y = fn_code(tiles[(k, v + 1)][kind_i]).astype(np.int32)
                eq_v.append(float((x == y).mean()))
                nb_v += len(enc(((x - y) % 256).astype(np.uint8)))
                cnt_v += 1
        per = nb_intra / len(tiles)
        print(f"  {name:28s} equal samples: next keyframe {np.mean(eq_t):.3f}, next yaw {np.mean(eq_v):.3f};  "
              f"bytes/tile intra {per:6.0f}, difference to next keyframe {nb_t / cnt_t:6.0f}, "
              f"to next yaw {nb_v / cnt_v:6.0f}")
    webp_ll = lambda x: codecs.encode(x, "webp", 101)  # noqa: E731
    share(1, "alpha (webp lossless)", lambda a: a, webp_ll)
    share(2, "depth, 8-bit codes (webp ll)", lambda d: depth_code(d, 8), webp_ll)
    share(0, "colour luma (webp lossless)", lambda c: cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), webp_ll)

    print("\n== colour predicted from the previous keyframe (closed loop, a chain of G tiles: 1 intra + G-1 "
          "differences, webp) ==")
    runs = [k for k in range(0, K - 8, max(1, (K - 8) // args.runs))][:args.runs]
    settings = ((1, 80, 0), (8, 80, 80), (8, 80, 60)) if args.quick else \
        ((1, 80, 0), (1, 90, 0), (4, 80, 80), (8, 80, 80), (8, 80, 60), (8, 90, 80), (8, 90, 90), (4, 90, 90))
    for g, qi, qd in settings:
        n, e, cnt = 0, [], 0
        for k0 in runs:
            for v in range(V):
                dec = None
                for k in range(k0, k0 + 8):
                    c, a = r.tile(k, v, "color"), r.tile(k, v, "alpha")
                    if (k - k0) % g == 0:
                        data = codecs.encode(c, "webp", qi)
                        dec = codecs.decode(data, "webp", c.shape, np.uint8)
                    else:  # the difference to what the player already decoded, around 128
                        diff = np.clip(c.astype(np.int16) - dec + 128, 0, 255).astype(np.uint8)
                        data = codecs.encode(diff, "webp", qd)
                        dd = codecs.decode(data, "webp", c.shape, np.uint8).astype(np.int16) - 128
                        dec = np.clip(dec + dd, 0, 255).astype(np.uint8)
                    n += len(data)
                    cnt += 1
                    e.append(tile_psnr(dec, c, a > 0))
        report("color", f"chain {g}: intra q{qi}, differences q{qd}", n * K * V / cnt / scale, e, "dB")

    print("\n== alpha and 8-bit depth as lossless chains of 8 (1 tile + 7 differences mod 256, webp lossless) ==")
    for kind_i, name, fn in ((1, "alpha", lambda a: a), (2, "depth", lambda d: depth_code(d, 8))):
        n, cnt = 0, 0
        for k0 in runs:
            for v in range(V):
                prev_code = None
                for k in range(k0, k0 + 8):
                    x = fn(r.tile(k, v, ("color", "alpha", "depth")[kind_i])).astype(np.int16)
                    img = x if prev_code is None else (x - prev_code) % 256
                    n += len(webp_ll(img.astype(np.uint8)))
                    prev_code, cnt = x, cnt + 1
        print(f"  {name:6s} chain 8, lossless                      {mb(n * K * V / cnt)}")


if __name__ == "__main__":
    main()
