"""Frame time of the browser player in headless Chromium with software GL, beside the Python
player on the same file.

Writes the site (`player web`), serves it with range requests, plays it at ``--size`` (orbit,
seed 0) for ``--seconds`` in headless Chromium on SwiftShader (WebGL2 on the CPU), and prints
the page's frame time p50 / p99: ``draw`` is one frame's work with the GPU waited for
(``?sync=1``), ``frame`` the interval between drawn frames (requestAnimationFrame: at most
60 Hz). Then ``player bench`` on the same file and size. Without FILE, a sphere portrait of
512 px tiles (3 x 2 views, 4 keyframes, testkit/sphere_p4d.py) is made.

A floor, not what viewers see: SwiftShader runs the shaders on this machine's CPU cores, where
a phone or laptop draws them on its GPU.

    python bench/web_player_bench.py [FILE.p4d] [--size 512] [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from player import site  # noqa: E402
from testkit.sphere_p4d import write_sphere  # noqa: E402
from testkit.static_servers import serve  # noqa: E402


def page_times(url: str, seconds: float, chromium: str) -> dict:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        page = b.new_page()
        page.goto(url)
        page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=120000)
        if page.evaluate("document.body.dataset.state") != "ready":
            raise SystemExit(page.evaluate("document.getElementById('p4d-error').textContent"))
        page.wait_for_function("window.p4d.state().time >= 1", timeout=120000)  # past the first decodes
        n0 = len(page.evaluate("window.p4d.stats().draw_ms"))
        time.sleep(seconds)
        st = page.evaluate("window.p4d.stats()")
        gl = page.evaluate("""() => { const gl = document.createElement('canvas').getContext('webgl2');
            const x = gl.getExtension('WEBGL_debug_renderer_info');
            return x ? gl.getParameter(x.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER); }""")
        version = b.version
        b.close()
    draw, frame = np.array(st["draw_ms"][n0:]), np.array(st["frame_ms"][n0:])
    return {"draw_p50_ms": float(np.percentile(draw, 50)), "draw_p99_ms": float(np.percentile(draw, 99)),
            "frame_p50_ms": float(np.percentile(frame, 50)), "frame_p99_ms": float(np.percentile(frame, 99)),
            "frames": int(len(draw)), "gl": gl, "chromium": version}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", help="a .p4d (default: a 512 px sphere portrait)")
    ap.add_argument("--size", type=int, default=512, help="canvas / output side in pixels (default 512)")
    ap.add_argument("--seconds", type=float, default=10.0, help="playback time measured (default 10)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(args.file) if args.file else write_sphere(Path(tmp) / "sphere.p4d", size=512)
        out, _ = site.build(site.SiteConfig(src, Path(tmp) / "site", quiet=True))
        srv = serve(out, ranges=True)
        try:
            web = page_times(f"http://127.0.0.1:{srv.server_port}/?size={args.size}&mode=orbit&sync=1", args.seconds,
                             args.chromium)
        finally:
            srv.shutdown()
        r = subprocess.run([sys.executable, "-m", "player.cli", "bench", str(src), "--size", str(args.size),
                            "--seconds", str(args.seconds), "--json"], capture_output=True, text=True, cwd=REPO)
        if r.returncode:
            raise SystemExit(r.stderr)
        py = json.loads(r.stdout)
    machine = f"{platform.machine()}, {os.cpu_count()} cores ({platform.processor() or platform.node()})"
    res = {"file": args.file or "sphere 512 px (testkit/sphere_p4d.py)", "size": args.size, "machine": machine,
           "page": web, "python": {k: py[k] for k in ("p50_ms", "p99_ms", "fps", "threads")}}
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['file']} at {args.size}x{args.size}, {machine}")
    print(f"page   (headless Chromium {web['chromium']}, {web['gl']}): draw p50 {web['draw_p50_ms']:.1f} ms  "
          f"p99 {web['draw_p99_ms']:.1f} ms;  frame interval p50 {web['frame_p50_ms']:.1f} ms  "
          f"p99 {web['frame_p99_ms']:.1f} ms  ({web['frames']} frames)")
    print(f"python (player bench, {py['threads']} thread): p50 {py['p50_ms']:.1f} ms  p99 {py['p99_ms']:.1f} ms  "
          f"({py['fps']:.1f} fps)")
    print("software GL is a floor: a phone or laptop draws the page's shaders on its GPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
