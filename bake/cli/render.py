"""``bake render CKPT --expr name=value,... --yaw D --pitch D [--size S] -o img.png``.

Renders one RGBA image of any checkpoint kind (via ``bake.fields.registry.load_field``) from the orbit
camera at (yaw, pitch) around the head centre, at the capture's mean camera distance, with the
capture's intrinsics scaled to ``--size`` pixels wide. Unnamed coefficients are 0 (neutral).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from bake.cli.exits import run_command
from bake.fields.registry import load_field
from formats.atomic import atomic_path, check_writable_dir
from formats.camera import Camera, orbit_pose
from formats.errors import EXIT_OK, UsageError


def parse_expression(text: str, names: list[str]) -> np.ndarray:
    """``"jaw_open=0.8,smile=0.3"`` -> [D] float32 over ``names`` (others 0).

    >>> parse_expression("b=0.5", ["a", "b"]).tolist()
    [0.0, 0.5]
    """
    w = np.zeros(len(names), np.float32)
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"--expr item {part!r} is not name=value")
        if name not in names:
            raise UsageError(f"--expr: unknown coefficient {name!r} (this checkpoint has: {', '.join(names)})")
        try:
            w[names.index(name)] = float(value)
        except ValueError:
            raise UsageError(f"--expr: {name}={value!r} is not a number") from None
    return w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bake render", description="Render one image of a checkpoint "
                                "at an expression and an orbit view (RGBA PNG, straight alpha).")
    p.add_argument("checkpoint", help="checkpoint (.ckpt), any kind")
    p.add_argument("--expr", default="", help="name=value,... expression coefficients (others 0)")
    p.add_argument("--yaw", type=float, default=0.0, help="degrees, > 0 towards the subject's left")
    p.add_argument("--pitch", type=float, default=0.0, help="degrees, > 0 above the head")
    p.add_argument("--size", type=int, help="image width in pixels (default: the capture's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("-o", "--output", required=True, help="output .png")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("bake render", lambda: _render(args))


def _render(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise UsageError(f"-o {out}: the output must be a .png")
    check_writable_dir(out)
    if args.size is not None and not 8 <= args.size <= 4096:
        raise UsageError("--size must be between 8 and 4096")
    fld = load_field(args.checkpoint, args.device)
    cap = fld.capture
    w = parse_expression(args.expr, cap.expression_names)
    radius = float(np.mean(cap.view_angles()[:, 2]))
    width = args.size or cap.width
    height = max(1, int(round(width * cap.height / cap.width)))
    cam = Camera(cap.intrinsics.scaled(width, height), orbit_pose(args.yaw, args.pitch, radius))
    rgb, alpha, _ = fld.render(cam, w)
    straight = np.where(alpha[..., None] > 1e-6, rgb / np.maximum(alpha[..., None], 1e-6), 0.0)
    rgba = np.concatenate([np.clip(straight, 0, 1), np.clip(alpha, 0, 1)[..., None]], -1)
    img = (rgba * 255 + 0.5).astype(np.uint8)[..., [2, 1, 0, 3]]
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError(f"cannot encode {out}")
    with atomic_path(out) as tmp:
        tmp.write_bytes(buf.tobytes())
    print(f"bake render: {out} ({width}x{height}, yaw {args.yaw:g}, pitch {args.pitch:g}, radius {radius:.3f} m)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
