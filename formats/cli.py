"""The `p4d` tool: inspect, check, export and repack .p4d portraits.

    p4d info FILE [--json]
    p4d validate FILE
    p4d extract FILE --keyframe K --view I|YAW,PITCH -o out.png [--depth [--upsample]] [--premultiplied]
    p4d extract FILE --all -o DIR/ [--depth [--upsample]]
    p4d contact-sheet FILE -o sheet.png [--keyframe K | --view I|YAW,PITCH]
    p4d quilt FILE -o NAME.png [--keyframe K] [--pitch DEG] [--cols C --rows R]
    p4d repack FILE -o OUT.p4d [--codec C] [--quality Q] [--chain N] [--views SEL] [--keyframes SEL] ...
    p4d graph FILE -o graph.dot|graph.json|graph.png
    p4d compare A.p4d B.p4d [--json]

Every error is one line on stderr. Exit codes (formats/errors.py): 0 done; 1 a failure while
working (a broken tile, a full disk), and `validate`'s answer "this file is not sound"; 2 bad usage
or an input that cannot be used (bad flags, a missing, unreadable or non-.p4d file, an output
folder that cannot be written); 130 interrupted. Every output goes through
``formats.atomic.atomic_path``, so a failed command never leaves a half-written file behind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import re
import sys

import cv2
import numpy as np

from formats import codecs
from formats.atomic import atomic_path, check_writable_dir
from formats.errors import (EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, OneLineParser, UsageError,
                            check_input_file)
from formats.p4d import FLAG_PREDICTED, KIND_CODECS, MAX_CHAIN, P4DFormatError, upsample_depth_nearest
from formats.progress import Progress
from formats.reader import P4DReader
from formats.writer import P4DWriter


# ------------------------------------------------------------------------------------- helpers

def _open(path) -> P4DReader:
    """The input opened; a file the reader refuses to open is an unusable input (exit 2), unlike a
    tile found broken later while working (exit 1)."""
    p = check_input_file(path)
    try:
        return P4DReader(p)
    except P4DFormatError as e:
        raise UsageError(str(e)) from None


def _imwrite(path, img: np.ndarray) -> pathlib.Path:
    """img: RGB(A) or gray, uint8/uint16. PNG via opencv, written atomically."""
    path = pathlib.Path(path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"{path}: output must be a .png file")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), img):
            raise OSError(f"{path}: opencv could not write the image")
    return path


def parse_selection(sel: str, n: int, what: str) -> list[int]:
    """'0,3,5-8' -> sorted unique indices in [0, n). Negative ends count from the end ('-3--1')."""
    out: set[int] = set()
    for part in sel.split(","):
        part = part.strip()
        m = re.fullmatch(r"(-?\d+)(?:\s*(?:-|:)\s*(-?\d+))?", part)
        if not m:
            raise UsageError(f"{what} selection {sel!r}: {part!r} is not N or A-B")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        a, b = (a + n if a < 0 else a), (b + n if b < 0 else b)
        if not (0 <= a <= b < n):
            raise UsageError(f"{what} selection {sel!r}: {part!r} is outside 0..{n - 1}")
        out.update(range(a, b + 1))
    return sorted(out)


def resolve_view(r: P4DReader, spec: str) -> int:
    """'I' (view index) or 'YAW,PITCH' (degrees, nearest grid view) -> view index."""
    yaws, pitches = r.meta["grid"]["yaws"], r.meta["grid"]["pitches"]
    if "," in spec:
        try:
            yaw, pitch = (float(x) for x in spec.split(","))
        except ValueError:
            raise UsageError(f"--view {spec!r}: expected an index or YAW,PITCH in degrees") from None
        yi = int(np.argmin(np.abs(np.asarray(yaws) - yaw)))
        pi = int(np.argmin(np.abs(np.asarray(pitches) - pitch)))
        return pi * len(yaws) + yi
    try:
        v = int(spec)
    except ValueError:
        raise UsageError(f"--view {spec!r}: expected an index or YAW,PITCH in degrees") from None
    if not 0 <= v < r.n_views:
        raise UsageError(f"--view {v} is outside 0..{r.n_views - 1}")
    return v


def _check_keyframe(r: P4DReader, k: int) -> int:
    if not 0 <= k < r.n_keyframes:
        raise UsageError(f"--keyframe {k} is outside 0..{r.n_keyframes - 1}")
    return k


def unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Premultiplied uint8 [H,W,3] + alpha [H,W] -> straight uint8 [H,W,3] (0 where alpha == 0)."""
    a = alpha.astype(np.float32)[..., None]
    out = np.where(a > 0, rgb.astype(np.float32) * 255.0 / np.maximum(a, 1.0), 0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _alpha(r: P4DReader, k: int, v: int) -> np.ndarray:
    return r.tile(k, v, "alpha") if "alpha" in r.kinds else np.full(r.tile_shape, 255, np.uint8)


def _over(rgb: np.ndarray, alpha: np.ndarray, bg: int) -> np.ndarray:
    """Premultiplied colour over a flat grey ``bg`` -> RGB uint8."""
    out = rgb.astype(np.float32) + (255.0 - alpha.astype(np.float32))[..., None] * (bg / 255.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _grid_image(cells: list[np.ndarray | None], cols: int, rows: int, h: int, w: int,
                channels: int = 3) -> np.ndarray:
    """Cells in row-major order from the top-left -> one image [rows*h, cols*w, channels]."""
    sheet = np.zeros((rows * h, cols * w, channels), np.uint8)
    for i, c in enumerate(cells):
        if c is not None:
            y, x = divmod(i, cols)
            sheet[y * h:(y + 1) * h, x * w:(x + 1) * w] = c
    return sheet


# ---------------------------------------------------------------------------------------- info

def file_info(r: P4DReader) -> dict:
    """Machine-readable summary (what `p4d info --json` prints)."""
    m = r.meta
    h, w = r.tile_shape
    per_kind = {}
    n_tiles = r.n_keyframes * r.n_views
    for ki, kind in enumerate(r.kinds):
        nbytes = int(r.index["length"][:, :, ki].sum(dtype=np.int64))
        sh, sw = r.kind_shape(kind)
        # bits_per_pixel: per pixel of the H x W tile (what the kind costs on screen);
        # bits_per_stored_pixel: per sample actually stored (differs for depth at depth_scale > 1).
        per_kind[kind] = {"codec": r.codecs[kind], "bytes": nbytes, "bytes_per_tile": nbytes / n_tiles,
                          "stored_shape": [sh, sw],
                          "predicted": int((r.index["flags"][:, :, ki] & FLAG_PREDICTED).astype(bool).sum()),
                          "bits_per_pixel": 8.0 * nbytes / (n_tiles * h * w),
                          "bits_per_stored_pixel": 8.0 * nbytes / (n_tiles * sh * sw)}
    K = r.n_keyframes
    return {
        "file": str(r.path), "bytes": r.file_size, "version": "{}.{}".format(*r.version),
        "generator": m["generator"], "source": m["source"],
        "views": r.n_views, "keyframes": K,
        "transitions": len(m["graph"]["transitions"]), "pose_groups": m["graph"]["groups"]["count"],
        "grid": {"yaws": m["grid"]["yaws"], "pitches": m["grid"]["pitches"], "width": w, "height": h,
                 "radius": m["grid"]["radius"], "depth": m["grid"]["depth"]},
        "codecs": dict(r.codecs), "quality": m["tiles"].get("quality", {}),
        "depth_scale": r.depth_scale, "depth_bits": r.depth_bits, "kinds": per_kind,
        "normal_scale": r.normal_scale if "normal" in r.kinds else None, "chain": r.chain,
        "lighting": r.lighting,
        "fps": m["keyframes"]["fps"], "duration_s": K / m["keyframes"]["fps"],
        "keyframe_source": m["keyframes"]["source"],
        "graph": {"transitions": len(m["graph"]["transitions"]), "pose_groups": m["graph"]["groups"]["count"],
                  "group_labels": m["graph"]["groups"]["labels"], "p_back": m["graph"]["p_back"],
                  "morph_seconds": m["graph"]["morph_seconds"],
                  "pose_switch_prob": m["graph"]["pose_switch_prob"]},
        "preview": r.has_preview,
    }


def cmd_info(args) -> int:
    with _open(args.file) as r:
        info = file_info(r)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    g = info["grid"]
    n_tiles = info["views"] * info["keyframes"]
    span = lambda a: f"{len(a)} ({a[0]:g}..{a[-1]:g} deg)" if len(a) > 1 else f"1 ({a[0]:g} deg)"
    print(f"{info['file']}: .p4d {info['version']}, {info['bytes'] / 2**20:.2f} MiB, by {info['generator']}")
    print(f"  grid      {g['width']}x{g['height']} tiles, yaws {span(g['yaws'])}, pitches {span(g['pitches'])} "
          f"= {info['views']} views, radius {g['radius']:g} m, depth {g['depth']['near']:g}..{g['depth']['far']:g} m")
    print(f"  keyframes {info['keyframes']} at {info['fps']:g} fps ({info['duration_s']:.2f} s, "
          f"{info['keyframe_source']})")
    print(f"  {'kind':<9} {'codec':<9} {'MiB':>9} {'KB/tile':>8} {'bits/tile px':>12} {'bits/stored px':>14}"
          f"  stored")
    for kind, k in info["kinds"].items():
        sh, sw = k["stored_shape"]
        note = f"  {sw}x{sh}" + (f" (depth_scale {info['depth_scale']}, {info['depth_bits']}-bit)"
                                 if kind == "depth" else f" (normal_scale {info['normal_scale']})"
                                 if kind == "normal" else "")
        print(f"  {kind:<9} {k['codec']:<9} {k['bytes'] / 2**20:9.2f} {k['bytes_per_tile'] / 1e3:8.2f} "
              f"{k['bits_per_pixel']:12.3f} {k['bits_per_stored_pixel']:14.3f}{note}")
    gr = info["graph"]
    n_pred = sum(k["predicted"] for k in info["kinds"].values())
    print(f"  chains    " + (f"of {info['chain']} tiles (format 1.3): {n_pred} of {len(info['kinds']) * n_tiles} "
                             f"tiles predicted from the keyframe before" if info["chain"] > 1 else
                             "none (every tile whole)"))
    print(f"  graph     {gr['transitions']} transitions, {gr['pose_groups']} pose groups "
          f"({', '.join(gr['group_labels'])}), p_back {gr['p_back']:g}, morph {gr['morph_seconds']:g} s")
    print(f"  preview   {'yes' if info['preview'] else 'no (falls back to a tile)'}")
    light = info["lighting"]
    print(f"  lighting  " + (f"captured key light at yaw {light['key'][0]:.1f}, pitch {light['key'][1]:.1f} deg, "
                             f"amount {light['key'][2]:.3f} (relightable)" if light else
                             "none (format 1.2 normals absent: the player cannot relight this file)"))
    return EXIT_OK


def cmd_validate(args) -> int:
    path = check_input_file(args.file)
    try:
        r = P4DReader(path)
    except P4DFormatError as e:  # validate's answer, not a usage error: this file is not sound
        print(e)  # already names the file
        return EXIT_FAILURE
    with r:
        problems = r.verify()
    for p in problems:
        print(p)
    if not problems:
        print(f"{args.file}: ok ({r.n_keyframes} keyframes x {r.n_views} views x {len(r.kinds)} kinds, every crc "
              f"and tile checked)")
    return EXIT_FAILURE if problems else EXIT_OK


# ------------------------------------------------------------------------------------- extract

def _extract_one(r: P4DReader, k: int, v: int, out: pathlib.Path, depth: bool, premultiplied: bool,
                 upsample: bool = False) -> None:
    if depth:
        if "depth" not in r.kinds:
            raise UsageError(f"{r.path}: this file has no depth tiles")
        d = r.tile(k, v, "depth")  # [ceil(H/s), ceil(W/s)] as stored
        _imwrite(out, upsample_depth_nearest(d, r.depth_scale, r.tile_shape) if upsample else d)
        return
    rgb = r.tile(k, v, "color")
    if "alpha" not in r.kinds:
        _imwrite(out, rgb)
        return
    alpha = r.tile(k, v, "alpha")
    _imwrite(out, np.dstack([rgb if premultiplied else unpremultiply(rgb, alpha), alpha]))


def cmd_extract(args) -> int:
    if args.upsample and not args.depth:
        raise UsageError("--upsample applies to --depth")
    out = pathlib.Path(args.output)
    if args.all and out.exists() and not out.is_dir():
        raise UsageError(f"{out}: not a folder (--all writes one PNG per tile into -o DIR)")
    if not args.all:
        check_writable_dir(out)
    with _open(args.file) as r:
        if args.depth and "depth" not in r.kinds:
            raise UsageError(f"{r.path}: this file has no depth tiles")
        if args.all:
            if args.keyframe is not None or args.view is not None:
                raise UsageError("--all extracts every tile; drop --keyframe/--view")
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"{out}: cannot create the output folder ({e.strerror})") from None
            check_writable_dir(out / "k0000_v000.png")  # the folder the tiles go into
            n = r.n_keyframes * r.n_views
            with Progress(n, "extract") as bar:
                for k in range(r.n_keyframes):
                    for v in range(r.n_views):
                        stem = f"k{k:04d}_v{v:03d}"
                        _extract_one(r, k, v, out / f"{stem}.png", False, args.premultiplied)
                        if args.depth:
                            _extract_one(r, k, v, out / f"{stem}_depth.png", True, False, args.upsample)
                        bar.update(1)
            print(f"wrote {n} tiles to {out}/")
            return EXIT_OK
        if args.keyframe is None or args.view is None:
            raise UsageError("give --keyframe K and --view I|YAW,PITCH, or --all")
        k, v = _check_keyframe(r, args.keyframe), resolve_view(r, args.view)
        _extract_one(r, k, v, out, args.depth, args.premultiplied, args.upsample)
        print(f"wrote keyframe {k} view {v} ({'depth' if args.depth else 'colour+alpha'}) to {out}")
    return EXIT_OK


# ------------------------------------------------------------------------------ sheets & quilts

def cmd_contact_sheet(args) -> int:
    check_writable_dir(args.output)
    with _open(args.file) as r:
        h, w = r.tile_shape
        yaws, pitches = r.meta["grid"]["yaws"], r.meta["grid"]["pitches"]
        if args.view is not None:  # one view across keyframes, row-major
            v = resolve_view(r, args.view)
            n = r.n_keyframes
            cols = args.cols or math.ceil(math.sqrt(n))
            rows = math.ceil(n / cols)
            cells = [_over(r.tile(k, v, "color"), _alpha(r, k, v), args.background) for k in range(n)]
            what = f"view {v} across {n} keyframes"
        else:  # all views of one keyframe: a row per pitch (highest on top), yaw left to right
            k = _check_keyframe(r, args.keyframe or 0)
            cols, rows = len(yaws), len(pitches)
            cells = []
            for pi in reversed(range(rows)):
                for yi in range(cols):
                    v = pi * cols + yi
                    cells.append(_over(r.tile(k, v, "color"), _alpha(r, k, v), args.background))
            what = f"{r.n_views} views of keyframe {k}"
        sheet = _grid_image(cells, cols, rows, h, w)
    _imwrite(args.output, sheet)
    print(f"wrote {what} ({cols}x{rows}) to {args.output}")
    return EXIT_OK


QUILT_NAME = re.compile(r"_qs(\d+)x(\d+)a([0-9.]+)\.png$")


def quilt_layout(n: int, cols: int | None, rows: int | None) -> tuple[int, int]:
    """Columns x rows holding n views: as given, or the most square layout with cols >= rows."""
    if cols and rows:
        if cols * rows < n:
            raise UsageError(f"a {cols}x{rows} quilt holds {cols * rows} views, the file has {n}")
        return cols, rows
    if cols:
        return cols, math.ceil(n / cols)
    if rows:
        return math.ceil(n / rows), rows
    rows = max(1, int(math.floor(math.sqrt(n))))
    return math.ceil(n / rows), rows


def cmd_quilt(args) -> int:
    check_writable_dir(args.output)
    with _open(args.file) as r:
        h, w = r.tile_shape
        yaws, pitches = r.meta["grid"]["yaws"], r.meta["grid"]["pitches"]
        pi = int(np.argmin(np.abs(np.asarray(pitches) - args.pitch)))
        k = _check_keyframe(r, args.keyframe)
        # Yaw ascending moves the camera to the viewer's right (formats/camera.py): that is the
        # Looking Glass order, view 0 = leftmost camera.
        views = [pi * len(yaws) + yi for yi in range(len(yaws))]
        out = pathlib.Path(args.output)
        m = QUILT_NAME.search(out.name)
        cols, rows = (int(m.group(1)), int(m.group(2))) if m else (args.cols, args.rows)
        cols, rows = quilt_layout(len(views), cols, rows)
        aspect = w / h
        if m:
            if abs(float(m.group(3)) - aspect) > 0.01:
                raise UsageError(f"{out.name}: name says aspect {m.group(3)}, tiles are {aspect:.4g}")
        else:
            stem = out.name[:-4] if out.name.lower().endswith(".png") else out.name
            out = out.with_name(f"{stem}_qs{cols}x{rows}a{aspect:.4g}.png")
        cells: list[np.ndarray | None] = [None] * (cols * rows)
        for i, v in enumerate(views):
            row_from_bottom, col = divmod(i, cols)  # view 0 bottom-left, left->right then upward
            cells[(rows - 1 - row_from_bottom) * cols + col] = r.tile(k, v, "color")  # premultiplied = over black
        quilt = _grid_image(cells, cols, rows, h, w)
    _imwrite(out, quilt)
    print(f"wrote {len(views)} views (keyframe {k}, pitch {pitches[pi]:g}) as a {cols}x{rows} quilt to {out}")
    return EXIT_OK


# -------------------------------------------------------------------------------------- repack

def subset_meta(meta: dict, keep_k: list[int], keep_yaws: list[int], keep_pitches: list[int],
                codecs_: dict, quality: dict) -> tuple[dict, list[str]]:
    """Metadata for a file keeping keyframes ``keep_k`` and a yaw x pitch sub-grid; (meta, notes).

    Keyframes are renumbered in order; transitions between kept keyframes are remapped, others are
    dropped; forced jumps to a dropped keyframe go to the first kept keyframe of that group (or -1).
    The last keyframe gets a jump back to the first if it would otherwise be a dead end.
    """
    notes = []
    new = {int(old): i for i, old in enumerate(keep_k)}
    m = json.loads(json.dumps(meta))  # deep copy of plain data
    kf = m["keyframes"]
    for key in ("times", "expressions", "capture_view", "pose_group"):
        kf[key] = [kf[key][k] for k in keep_k]
    g = m["graph"]
    trans = [[new[s], new[d], p, c] for s, d, p, c in g["transitions"] if s in new and d in new]
    if len(trans) < len(g["transitions"]):
        notes.append(f"dropped {len(g['transitions']) - len(trans)} transitions to or from removed keyframes")
    K = len(keep_k)
    if not any(t[0] == K - 1 for t in trans):
        trans.append([K - 1, 0, 1.0, 0.0])
        notes.append(f"added a jump {K - 1} -> 0 so the last keyframe is not a dead end")
    g["transitions"] = trans
    G = g["groups"]["count"]
    first_in = [next((new[k] for k in keep_k if meta["keyframes"]["pose_group"][k] == grp), -1) for grp in range(G)]
    forced = []
    for k in keep_k:
        row = []
        for grp, t in enumerate(meta["graph"]["forced"][k]):
            row.append(-1 if t == -1 else new.get(t, first_in[grp]))
        forced.append(row)
    g["forced"] = forced
    m["grid"]["yaws"] = [meta["grid"]["yaws"][i] for i in keep_yaws]
    m["grid"]["pitches"] = [meta["grid"]["pitches"][i] for i in keep_pitches]
    m["tiles"]["codecs"] = codecs_
    m["tiles"]["quality"] = quality
    return m, notes


def cmd_repack(args) -> int:
    out = pathlib.Path(args.output)
    if out.resolve() == pathlib.Path(args.file).resolve():
        raise UsageError("-o must differ from the input file")
    check_writable_dir(out)
    with _open(args.file) as r:
        m = r.meta
        ny, npi = len(m["grid"]["yaws"]), len(m["grid"]["pitches"])
        keep_k = parse_selection(args.keyframes, r.n_keyframes, "--keyframes") if args.keyframes \
            else list(range(r.n_keyframes))
        keep_y = parse_selection(args.yaws, ny, "--yaws") if args.yaws else list(range(ny))
        keep_p = parse_selection(args.pitches, npi, "--pitches") if args.pitches else list(range(npi))
        if args.views:
            sel = parse_selection(args.views, r.n_views, "--views")
            ys, ps = sorted({v % ny for v in sel}), sorted({v // ny for v in sel})
            if len(sel) != len(ys) * len(ps):
                raise UsageError(f"--views {args.views} is not a yaw x pitch sub-grid; use --yaws/--pitches")
            keep_y = [y for y in keep_y if y in ys]
            keep_p = [p for p in keep_p if p in ps]
        if not keep_y or not keep_p:
            raise UsageError("the view selection is empty")
        cod = dict(r.codecs)
        quality = dict(m["tiles"].get("quality", {}))
        for kind, name in (("color", args.codec), ("alpha", args.alpha_codec), ("depth", args.depth_codec)):
            if name is None:
                continue
            if kind not in r.kinds:
                raise UsageError(f"this file has no {kind} tiles")
            if name not in KIND_CODECS[kind]:
                raise UsageError(f"{kind} tiles cannot use {name}; use one of {', '.join(KIND_CODECS[kind])}")
            cod[kind] = name
        if args.codec is not None or args.quality is not None:
            quality["color"] = args.quality if cod["color"] in codecs.LOSSY else None
        if args.quality is not None and not 1 <= args.quality <= 100:
            raise UsageError(f"--quality {args.quality} is outside 1..100")
        bits = r.depth_bits if args.depth_bits is None else args.depth_bits
        if args.depth_bits is not None and "depth" not in r.kinds:
            raise UsageError("this file has no depth tiles (--depth-bits)")
        if cod.get("depth") == "webp" and bits != 8:
            raise UsageError("depth tiles can be webp only at 8 bits; add --depth-bits 8 or use --depth-codec png")
        chain = r.chain if args.chain is None else args.chain
        if not 1 <= chain <= MAX_CHAIN:
            raise UsageError(f"--chain {chain} is outside 1..{MAX_CHAIN} (1: no chains)")
        new_meta, notes = subset_meta(m, keep_k, keep_y, keep_p, cod, quality)
        new_meta["tiles"].pop("depth_bits", None)
        if bits != 16:
            new_meta["tiles"]["depth_bits"] = bits
        new_meta["tiles"].pop("chain", None)
        if chain > 1:
            new_meta["tiles"]["chain"] = chain
        # A predicted chunk is a difference to its keyframe's predecessor: it copies as is only into
        # the same chains over the same keyframes; otherwise every tile is decoded and coded anew.
        same_chains = chain == r.chain and (chain == 1 or keep_k == list(range(r.n_keyframes)))
        reencode = {k: cod[k] != r.codecs[k] or (k == "color" and args.quality is not None)
                    or (k == "depth" and bits != r.depth_bits) or not same_chains for k in r.kinds}
        colour_q = args.quality if args.quality is not None else quality.get("color")
        if args.residual_quality is not None and not 1 <= args.residual_quality <= 100:
            raise UsageError(f"--residual-quality {args.residual_quality} is outside 1..100")
        residual_q = args.residual_quality if args.residual_quality is not None else \
            colour_q if args.quality is not None else quality.get("color_predicted", colour_q)
        if residual_q is not None and chain > 1 and cod["color"] in codecs.LOSSY:
            new_meta["tiles"]["quality"]["color_predicted"] = residual_q
            reencode["color"] = reencode["color"] or args.residual_quality is not None
        else:
            new_meta["tiles"]["quality"].pop("color_predicted", None)
        views = [(pi * ny + yi, npj * len(keep_y) + nyj) for npj, pi in enumerate(keep_p)
                 for nyj, yi in enumerate(keep_y)]
        total = len(keep_k) * len(views)

        # The writer's partial and journal sit beside the temp name; a failed repack removes all
        # three (unlike a bake, a repack is cheap to redo, so it keeps nothing to resume from).
        with atomic_path(out) as tmp:
            w = P4DWriter(tmp, depth_scale=r.depth_scale, depth_bits=bits, chain=chain)  # depth keeps its scale
            try:
                if r.has_preview:
                    w.set_preview(*r.preview())
                with Progress(total, "repack") as bar:
                    for nk, k in enumerate(keep_k):
                        for v, nv in views:
                            for kind in r.kinds:
                                if reencode[kind]:
                                    q = colour_q if kind == "color" else None
                                    w.add_tile(nk, nv, kind, r.tile(k, v, kind), cod[kind], q,
                                               residual_q if kind == "color" else None)
                                else:
                                    codec, data = r.tile_encoded(k, v, kind)
                                    w.add_encoded(nk, nv, kind, data, codec, r.kind_shape(kind),
                                                  predicted=r.predicted(k, v, kind))
                            bar.update(1)
                w.finish(new_meta)
            except BaseException:
                w.discard()
                raise
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    before, after = pathlib.Path(args.file).stat().st_size, out.stat().st_size
    print(f"wrote {out}: {len(keep_k)} keyframes x {len(views)} views, codecs {cod}, "
          f"{after / 2**20:.2f} MiB ({after / before:.0%} of the input)")
    return EXIT_OK


# --------------------------------------------------------------------------------------- graph

def graph_dict(r: P4DReader) -> dict:
    m = r.meta
    K = r.n_keyframes
    nodes = [{"id": k, "time": m["keyframes"]["times"][k], "group": m["keyframes"]["pose_group"][k]}
             for k in range(K)]
    edges = [{"src": k, "dst": k + 1, "kind": "next"} for k in range(K - 1)]
    edges += [{"src": s, "dst": d, "prob": p, "cost": c, "kind": "jump"} for s, d, p, c in m["graph"]["transitions"]]
    return {"nodes": nodes, "edges": edges, "groups": m["graph"]["groups"], "forced": m["graph"]["forced"],
            "p_back": m["graph"]["p_back"], "morph_seconds": m["graph"]["morph_seconds"],
            "pose_switch_prob": m["graph"]["pose_switch_prob"]}


def graph_dot(g: dict) -> str:
    lines = ["digraph p4d {", "  rankdir=LR;", '  node [shape=circle, style=filled, fontname="Helvetica"];']
    palette = ["#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5"]
    labels = g["groups"]["labels"]
    for n in g["nodes"]:
        lines.append(f'  k{n["id"]} [label="{n["id"]}", fillcolor="{palette[n["group"] % len(palette)]}", '
                     f'tooltip="t={n["time"]:.2f}s {labels[n["group"]]}"];')
    for e in g["edges"]:
        if e["kind"] == "next":
            lines.append(f'  k{e["src"]} -> k{e["dst"]};')
        else:
            lines.append(f'  k{e["src"]} -> k{e["dst"]} [style=dashed, color="#c0392b", '
                         f'label="{e["prob"]:.2f}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_png(g: dict, size: int = 800) -> np.ndarray:
    """Keyframes on a circle (colour = pose group), chain edges grey, jumps red with arrowheads."""
    img = np.full((size, size, 3), 255, np.uint8)
    K = len(g["nodes"])
    c, rad = size / 2, size * 0.4
    ang = [2 * math.pi * k / K - math.pi / 2 for k in range(K)]
    pts = [(int(c + rad * math.cos(a)), int(c + rad * math.sin(a))) for a in ang]
    palette = [(141, 211, 199), (255, 237, 111), (190, 186, 218), (251, 128, 114), (128, 177, 211),
               (253, 180, 98), (179, 222, 105), (252, 205, 229)]
    node_r = max(3, min(14, int(size * 1.2 / max(K, 1))))
    for e in g["edges"]:
        a, b = pts[e["src"]], pts[e["dst"]]
        if e["kind"] == "next":
            cv2.line(img, a, b, (170, 170, 170), 1, cv2.LINE_AA)
        else:
            thick = 1 + int(2 * e["prob"])
            cv2.arrowedLine(img, a, b, (40, 40, 200), thick, cv2.LINE_AA, tipLength=min(0.3, 20 / max(
                1.0, math.dist(a, b))))
    for n, p in zip(g["nodes"], pts):
        cv2.circle(img, p, node_r, palette[n["group"] % len(palette)][::-1], -1, cv2.LINE_AA)
        cv2.circle(img, p, node_r, (60, 60, 60), 1, cv2.LINE_AA)
        if K <= 64:
            cv2.putText(img, str(n["id"]), (p[0] - node_r // 2, p[1] + node_r // 3), cv2.FONT_HERSHEY_SIMPLEX,
                        0.3 + node_r / 40, (0, 0, 0), 1, cv2.LINE_AA)
    return img[..., ::-1].copy()  # BGR drawing -> RGB for _imwrite


def cmd_graph(args) -> int:
    out = pathlib.Path(args.output)
    ext = out.suffix.lower()
    if ext not in (".dot", ".json", ".png"):
        raise UsageError(f"{out}: output must end in .dot, .json or .png")
    check_writable_dir(out)
    with _open(args.file) as r:
        g = graph_dict(r)
    if ext == ".png":
        _imwrite(out, graph_png(g))
    else:
        text = graph_dot(g) if ext == ".dot" else json.dumps(g, indent=1) + "\n"
        with atomic_path(out) as tmp:
            tmp.write_text(text)
    print(f"wrote {len(g['nodes'])} keyframes, {sum(e['kind'] == 'jump' for e in g['edges'])} jumps to {out}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------- main

def cmd_compare(args) -> int:
    from formats.compare import compare
    with _open(args.a) as a, _open(args.b) as b:
        res = compare(a, b, quiet=args.json or args.quiet)
    if args.json:
        print(json.dumps(res))
        return EXIT_OK
    c, al, d = res["color"], res["alpha"], res["depth"]
    print(f"{args.a} against {args.b}: {res['keyframes']} keyframes x {res['views']} views")
    print(f"  colour PSNR inside B's alpha: mean {c['psnr_mean']:.2f} dB, worst tile {c['psnr_min']:.2f} dB")
    if al is not None:
        print(f"  alpha mean abs error: mean {al['mae_mean']:.3f} levels, worst tile {al['mae_max']:.3f}")
    if d is not None and d["rms_mm_mean"] is not None:
        print(f"  depth RMS error inside the alpha: mean {d['rms_mm_mean']:.3f} mm, worst tile {d['rms_mm_max']:.3f} mm")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="p4d", description="Inspect, check, export and repack .p4d 4D portraits.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True

    s = sub.add_parser("info", help="grid, keyframes, codecs, sizes and graph summary")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("validate", help="check structure and every crc; exit 0 when sound, 1 otherwise")
    s.add_argument("file")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("extract", help="write one tile (or all) as PNG",
                       description="Colour+alpha become one RGBA PNG with straight (un-premultiplied) "
                                   "colour, as image viewers expect; --premultiplied keeps the stored "
                                   "premultiplied colour. --depth writes the 16-bit depth q "
                                   "(0 = empty, 1..65535 linear over meta grid.depth near..far; 8-bit depth "
                                   "decoded to the q its codes stand for) at its stored "
                                   "size ceil(H/s) x ceil(W/s) for the file's depth_scale s; --upsample "
                                   "repeats each sample over its s x s block to the tile size.")
    s.add_argument("file")
    s.add_argument("--keyframe", "-k", type=int, help="keyframe index")
    s.add_argument("--view", "-v", help="view index, or YAW,PITCH in degrees (nearest grid view)")
    s.add_argument("--all", action="store_true", help="every tile into -o DIR as kKKKK_vVVV.png")
    s.add_argument("--depth", action="store_true", help="write the 16-bit depth tile (with --all: as well)")
    s.add_argument("--upsample", action="store_true",
                   help="with --depth: nearest-neighbour upsample to the tile size (default: stored size)")
    s.add_argument("--premultiplied", action="store_true", help="keep premultiplied colour")
    s.add_argument("-o", "--output", required=True, help="out.png, or a directory with --all")
    s.set_defaults(func=cmd_extract)

    s = sub.add_parser("contact-sheet", help="all views of one keyframe, or one view across keyframes",
                       description="Views are laid out with yaw left to right and the highest pitch on top; "
                                   "with --view, keyframes in reading order.")
    s.add_argument("file")
    s.add_argument("--keyframe", "-k", type=int, help="keyframe to show (default 0)")
    s.add_argument("--view", "-v", help="show this view (index or YAW,PITCH) across all keyframes")
    s.add_argument("--cols", type=int, help="columns with --view (default: square)")
    s.add_argument("--background", type=int, default=128, help="grey level behind transparent pixels")
    s.add_argument("-o", "--output", required=True, help="sheet.png")
    s.set_defaults(func=cmd_contact_sheet)

    s = sub.add_parser("quilt", help="Looking Glass quilt NAME_qs{cols}x{rows}a{aspect}.png",
                       description="View 0 (leftmost camera) is the bottom-left tile, then left to right "
                                   "and upward. If -o does not already end in _qsCxRaA.png the suffix is added.")
    s.add_argument("file")
    s.add_argument("--keyframe", "-k", type=int, default=0, help="keyframe (default 0)")
    s.add_argument("--pitch", type=float, default=0.0, help="use the grid row nearest this pitch (degrees)")
    s.add_argument("--cols", type=int, help="quilt columns")
    s.add_argument("--rows", type=int, help="quilt rows")
    s.add_argument("-o", "--output", required=True, help="NAME.png or NAME_qsCxRaA.png")
    s.set_defaults(func=cmd_quilt)

    s = sub.add_parser("repack", help="re-encode and/or subset views and keyframes",
                       description="Tiles whose codec does not change are copied without re-encoding. "
                                   "SEL is a list like 0,3,5-9 (negative counts from the end). The graph is "
                                   "kept consistent: transitions to removed keyframes are dropped, forced "
                                   "jumps remapped.")
    s.add_argument("file")
    s.add_argument("-o", "--output", required=True, help="output .p4d")
    s.add_argument("--codec", choices=KIND_CODECS["color"], help="colour codec")
    s.add_argument("--quality", type=int, help="colour quality 1..100 (jpeg/webp; ignored by lossless codecs)")
    s.add_argument("--residual-quality", type=int,
                   help="colour quality 1..100 of predicted tiles (with --chain; default: --quality when given, "
                        "else the file's)")
    s.add_argument("--alpha-codec", choices=KIND_CODECS["alpha"], help="alpha codec")
    s.add_argument("--depth-codec", choices=KIND_CODECS["depth"], help="depth codec (webp: lossless, 8-bit depth only)")
    s.add_argument("--depth-bits", type=int, choices=(8, 16),
                   help="depth sample size: 8 stores each depth as one of 255 steps over near..far (format 1.1, "
                        "a quarter of the bytes); 16 the full precision (default: keep the file's)")
    s.add_argument("--views", help="view indices SEL (must form a yaw x pitch sub-grid)")
    s.add_argument("--yaws", help="yaw indices SEL")
    s.add_argument("--pitches", help="pitch indices SEL")
    s.add_argument("--keyframes", help="keyframe indices SEL")
    s.add_argument("--chain", type=int,
                   help="chains of N tiles (format 1.3): each view's keyframe k with k %% N != 0 stores its "
                        "difference to keyframe k-1, so a decode needs at most N chunks; 1: every tile whole "
                        "(default: keep the file's). Changing it re-encodes every tile (lossy colour loses a "
                        "little at each re-encoding: convert from a lossless file where there is one)")
    s.set_defaults(func=cmd_repack)

    s = sub.add_parser("compare", help="A's tiles against B's on the same grid and keyframes: colour PSNR, "
                                       "alpha and depth error",
                       description="A's tiles against B's (the reference) on the same view grid and keyframes: "
                                   "colour PSNR over B's alpha (identical tiles count as 100 dB), alpha mean "
                                   "absolute error in levels, depth RMS error in mm inside the alpha.")
    s.add_argument("a", metavar="A.p4d", help="the portrait to score")
    s.add_argument("b", metavar="B.p4d", help="the reference")
    s.add_argument("--json", action="store_true",
                   help='one JSON object: {"color": {"psnr_mean", "psnr_min", "per_view"}, "alpha": {"mae_mean", '
                        '...}, "depth": {"rms_mm_mean", ...}}')
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("graph", help="the keyframe graph as .dot, .json or .png")
    s.add_argument("file")
    s.add_argument("-o", "--output", required=True, help="graph.dot | graph.json | graph.png")
    s.set_defaults(func=cmd_graph)
    return ap


def main(argv=None) -> int:
    """Entry point of the `p4d` console script."""
    ap = build_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:  # --help (0) and usage errors (2) already printed their one line
        return int(e.code or 0)
    except BrokenPipeError:  # `p4d --help | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    try:
        return args.func(args)
    except UsageError as e:
        print(f"p4d {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except P4DFormatError as e:  # found while working (a broken tile); opening errors are UsageError
        print(f"p4d {args.command}: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # `p4d info x | head`: the reader went away, nothing to report
        # (before OSError, which it is a case of)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"p4d {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"p4d {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # never a traceback for the user; say what broke in one line
        print(f"p4d {args.command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
