"""`player FILE.p4d` (window), `player FILE.p4d --export OUT` (headless), `player bench FILE.p4d`,
`player web FILE.p4d -o SITE/` (the browser player, ``player.site``).

Exit codes as every command of the project (``formats.errors``): 0 done, 1 a failure while
playing or writing, 2 bad usage or a file that cannot be played, 130 interrupted. A damaged tile
is not a failure: playback goes on with a stand-in and the tile is named once on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from formats.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, OneLineParser, UsageError, check_input_file
from player.encoders import DITHERS

PROG = "player"


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("file", metavar="FILE.p4d", help="the portrait to play")
    ap.add_argument("--size", type=int, default=None, help="longest side of the output in pixels (default: tile size)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the graph walk and head-motion replay (default 0)")
    ap.add_argument("--view-sharpen", type=float, default=1.0, metavar="G",
                    help="G >= 1 favours the nearest baked view: fewer views to warp per frame (faster), "
                         "at some cost between views (G = 2: -1.9 dB at cell quarter points with jpeg tiles and "
                         "full-resolution depth, bench/interp_quality.py); default 1, plain bilinear view weights")
    ap.add_argument("--light", metavar="YAW,PITCH[,STRENGTH]", default=None,
                    help="relight the portrait (format 1.2 files): a key light at YAW, PITCH degrees in the head "
                         "frame (yaw > 0 towards the subject's left, pitch > 0 above, as `bake render`; it turns "
                         "with the head) of STRENGTH times the capture's mean light (0..4; default: as strong as "
                         "the captured key; 1 gives a flat-lit capture a clear key); 'off' = the captured light "
                         "(default). A negative yaw needs '=': --light=-40,10. In the window, shift + drag moves the light, "
                         "l toggles it")
    ap.add_argument("--threads", type=int, default=1,
                    help="numba threads for the kernels (default 1: the kernels fit one core's budget, and "
                         "on a busy machine more threads spin and lose)")


def play_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(
        prog=PROG, description="Play a .p4d 4D portrait: a window, or a headless export with --export. "
        "Run `player bench FILE.p4d` for frame-time figures, `player web FILE.p4d -o SITE/` for a web page "
        "that plays it.",
        epilog="window keys: drag orbit, shift + drag move the light (format 1.2 files), l light on/off, "
               "wheel zoom, arrows nudge, space pause, m mode, h HUD, s screenshot, f fullscreen, q/esc quit")
    _common(ap)
    ap.add_argument("--mode", choices=["free", "capture", "orbit", "fixed"], default=None,
                    help="viewpoint: free (drag; auto-orbit when idle), capture (replays the captured head "
                         "motion), orbit (slow auto-orbit), fixed (default: free in a window, orbit for --export)")
    ap.add_argument("--yaw", type=float, default=0.0, help="fixed-mode yaw in degrees (default 0)")
    ap.add_argument("--pitch", type=float, default=0.0, help="fixed-mode pitch in degrees (default 0)")
    ap.add_argument("--keyframe", type=int, default=None, metavar="K",
                    help="start the walk at keyframe K (default 0); with --mode fixed --yaw --pitch and "
                         "--export still.png it draws that one state (the browser player's ?k=&yaw=&pitch=&paused=1)")
    ap.add_argument("--export", metavar="OUT", default=None,
                    help="render headless to OUT, the type from its name: .mp4 (H.264, plays in browsers and "
                         "messaging apps), .webp (animated WebP: smaller and sharper than GIF), .gif, .png (one "
                         "still: the first frame), or a "
                         "folder ending in / (PNG frames). H.264, WebP and GIF come with the video extra "
                         "(pip install 'portrait4d[video]'); without it .mp4 is MPEG-4 Part 2, which browsers "
                         "do not play")
    ap.add_argument("--seconds", type=float, default=10.0, help="export length in seconds (default 10)")
    ap.add_argument("--fps", type=float, default=25.0, help="export frame rate (default 25)")
    ap.add_argument("--crf", type=int, default=20,
                    help=".mp4 quality: x264's constant rate factor, 1-51, lower is sharper and larger "
                         "(default 20; 18 looks lossless, each +6 about halves the file)")
    ap.add_argument("--quality", type=int, default=80, help=".webp quality, 0-100 (default 80)")
    ap.add_argument("--dither", choices=DITHERS, default="bayer",
                    help=".gif dithering onto the clip's 256-colour palette (default bayer: an ordered pattern "
                         "that stays still between frames and compresses well)")
    ap.add_argument("--paused", action="store_true", help="start paused (window)")
    ap.add_argument("--hud", action="store_true", help="start with the HUD shown (window)")
    ap.add_argument("--frames", type=int, default=None, help=argparse.SUPPRESS)  # tests: quit after N draws
    ap.add_argument("--screenshot", default=None, help=argparse.SUPPRESS)  # tests: save framebuffer on quit
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return ap


def bench_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(
        prog=f"{PROG} bench", description="Frame-time figures: plays FILE.p4d headless with a slow orbit at "
        "60 Hz and prints p50/p99 frame time (decode of missed tiles included), fps and cache hit rate. With "
        "--light, the relit playback and the plain one frame by frame side by side, and the relight's cost.")
    _common(ap)
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated playback time (default 10)")
    ap.add_argument("--mode", choices=["capture", "orbit", "fixed"], default="orbit", help="viewpoint (default orbit)")
    ap.add_argument("--no-pace", action="store_true",
                    help="render back to back instead of at 60 Hz (leaves the prefetch thread less time)")
    ap.add_argument("--json", action="store_true", help="print one JSON object (keys p50_ms, p99_ms, fps, ...)")
    return ap


def _fail(msg: str, code: int = EXIT_USAGE) -> int:
    print(f"{PROG}: {msg}", file=sys.stderr)
    return code


def damage_reporter(path: str):
    """on_damaged for ``Playback``: names each damaged tile once on stderr, and the first time
    says how to check the whole file."""
    said: list[bool] = []

    def report(key: tuple[int, int], reason: str) -> None:
        k, v = key
        print(f"{PROG}: {path}: tile keyframe {k} view {v} is damaged ({reason}); drawing its nearest "
              f"keyframe instead", file=sys.stderr)
        if not said:
            said.append(True)
            print(f"{PROG}: run `p4d validate {path}` to check the whole file", file=sys.stderr)
    return report


def _threads(n: int | None) -> int:
    import numba
    n = max(1, min(n or 1, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def _open(path: str):
    from formats import P4DFormatError, P4DReader
    check_input_file(path)
    try:
        return P4DReader(path)
    except P4DFormatError as exc:
        raise UsageError(f"{path}: not a playable .p4d ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _playback(reader, args, mode: str, size: int | None = None):
    from player.light import parse_light
    from player.playback import PlayConfig, Playback
    from player.render import RenderConfig
    if args.size is not None and not 8 <= args.size <= 4096:
        raise UsageError(f"--size must be between 8 and 4096, got {args.size}")
    if not 1.0 <= args.view_sharpen <= 100.0:
        raise UsageError(f"--view-sharpen must be between 1 and 100, got {args.view_sharpen}")
    keyframe = getattr(args, "keyframe", None)
    n = reader.n_keyframes
    if keyframe is not None and not 0 <= keyframe < n:
        raise UsageError(f"--keyframe must be between 0 and {n - 1} (the file has {n} keyframes), got {keyframe}")
    light = parse_light(args.light) if args.light else None
    cfg = PlayConfig(mode=mode, seed=args.seed, yaw=getattr(args, "yaw", 0.0), pitch=getattr(args, "pitch", 0.0),
                     keyframe=keyframe, render=RenderConfig(size=size or args.size, view_sharpen=args.view_sharpen))
    pb = Playback(reader, cfg, on_damaged=damage_reporter(args.file))
    if light is not None and not pb.set_light(light):
        print(f"{PROG}: --light is unavailable: {pb.light_reason}", file=sys.stderr)
    return pb


def bench(args) -> dict:
    """Frame times of one playback; with --light, of the relit playback and of the plain one side by
    side (each frame of one followed by the same frame of the other, same walk and views), so the
    relight's cost is read off one run on one machine state."""
    from player import kernels
    from player.pacing import FrameClock
    n_threads = _threads(args.threads)
    reader = _open(args.file)
    kernels.warm_up()
    pb = _playback(reader, args, args.mode)
    pbs = [pb]
    if pb.light is not None:
        plain_args = argparse.Namespace(**{**vars(args), "light": None})
        pbs.append(_playback(reader, plain_args, args.mode))
    try:
        # Warm-up: first frame (JIT cache load, first decodes) is not playback.
        for p in pbs:
            p.render()
            p.cache.idle()
        bases = [p.cache.stats() for p in pbs]
        dt = 1.0 / 60.0
        n = max(1, int(round(args.seconds * 60)))
        wall, cpu = np.empty((len(pbs), n)), np.empty((len(pbs), n))
        clock = FrameClock(1.0 / dt)
        for i in range(n):
            for j, p in enumerate(pbs):
                t0, c0 = time.perf_counter(), time.thread_time()
                p.step(dt)
                p.render()
                wall[j, i], cpu[j, i] = time.perf_counter() - t0, time.thread_time() - c0
            if not args.no_pace:
                clock.wait()

        def figures(j: int) -> dict:
            st, base = pbs[j].cache.stats(), bases[j]
            looked = (st["hits"] - base["hits"]) + (st["misses"] - base["misses"]) + (st["waits"] - base["waits"])
            return {"p50_ms": float(np.percentile(wall[j], 50) * 1e3), "p99_ms": float(np.percentile(wall[j], 99) * 1e3),
                    "fps": float(1.0 / wall[j].mean()),
                    "cpu_p50_ms": float(np.percentile(cpu[j], 50) * 1e3),
                    "cpu_p99_ms": float(np.percentile(cpu[j], 99) * 1e3),
                    "hit_rate": (st["hits"] - base["hits"]) / looked if looked else 1.0,
                    "misses": st["misses"] - base["misses"], "waits": st["waits"] - base["waits"],
                    "jumps": pbs[j].walker.jumps}

        h, w = pb.renderer.out_shape
        res = {"file": str(args.file), "size": [w, h], "tile": list(reader.tile_shape), "threads": n_threads,
               "frames": n, "mode": args.mode, "paced": not args.no_pace, "view_sharpen": args.view_sharpen,
               "light": None if pb.light is None else [pb.light.yaw, pb.light.pitch, pb.light.strength],
               **figures(0)}
        if len(pbs) > 1:
            res["plain"] = figures(1)
            res["relight_p50_ms"] = res["p50_ms"] - res["plain"]["p50_ms"]
        return res
    finally:
        for p in pbs:
            p.close()
        reader.close()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["web"]:
            from player.site import main as web
            return web(argv[1:])
        if argv[:1] == ["bench"]:
            args = bench_parser().parse_args(argv[1:])
            res = bench(args)
            if args.json:
                print(json.dumps(res))
            else:
                print(f"{res['file']}: {res['size'][0]}x{res['size'][1]} from {res['tile'][1]}x{res['tile'][0]} tiles, "
                      f"{res['threads']} thread(s), {res['frames']} frames ({res['mode']}, "
                      f"view sharpen {res['view_sharpen']:g})")
                print(f"frame time p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  ({res['fps']:.1f} fps)  "
                      f"cpu p50 {res['cpu_p50_ms']:.2f} ms  p99 {res['cpu_p99_ms']:.2f} ms")
                print(f"cache hit rate {res['hit_rate']:.1%} ({res['misses']} misses, {res['waits']} waits)  "
                      f"jumps {res['jumps']}")
                if "plain" in res:
                    pl = res["plain"]
                    print(f"relit to yaw {res['light'][0]:g}, pitch {res['light'][1]:g}; the same frames plain: "
                          f"p50 {pl['p50_ms']:.2f} ms  p99 {pl['p99_ms']:.2f} ms; relight +{res['relight_p50_ms']:.2f} ms "
                          f"p50")
            return 0
        args = play_parser().parse_args(argv)
        return play(args)
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2) printed their one line
        return int(exc.code or 0)
    except UsageError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # `player bench x | head`: the reader went away, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}", EXIT_FAILURE)
    except Exception as exc:  # never a traceback for the user; say what broke in one line
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE)


def play(args) -> int:
    from player.export import export, output_kind
    _threads(args.threads)
    if args.export:
        output_kind(args.export)  # fail on a bad name before any work
    reader = _open(args.file)
    mode = args.mode or ("orbit" if args.export else "free")
    size = None
    if not args.export and args.size is None:
        # A window: the tile scaled up to a comfortable size where the screen fits it.
        from player.window import comfortable_size, screen_size
        screen = screen_size()
        if screen is not None:
            size = comfortable_size(reader.tile_shape, screen)
    pb = _playback(reader, args, mode, size)
    try:
        if args.export:
            out = export(pb, args.export, args.seconds, args.fps, quiet=args.quiet,
                         crf=args.crf, quality=args.quality, dither=args.dither)
            what = "one still" if output_kind(args.export) == "png" else f"{args.seconds:g} s at {args.fps:g} fps"
            print(f"{PROG}: wrote {out} ({what})")
            return 0
        from player.window import NoDisplayError, run
        pb.paused = args.paused
        try:
            return run(pb, title=f"Portrait4D - {Path(args.file).name}", frames=args.frames,
                       screenshot=args.screenshot, hud=args.hud)
        except NoDisplayError as exc:
            return _fail(f"{exc}; play headless with --export out.mp4 --seconds N", EXIT_FAILURE)
    finally:
        pb.close()
        reader.close()


if __name__ == "__main__":
    sys.exit(main())
