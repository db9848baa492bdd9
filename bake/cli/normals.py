"""``bake normals IN.p4d -o OUT.p4d``: add normals and the fitted light to a file baked without them."""

from __future__ import annotations

import argparse
import sys
import time

from bake.cli.exits import run_command
from bake.job.config import BakeConfig
from formats.atomic import check_writable_dir
from formats.errors import EXIT_OK, check_input_file


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bake normals",
        description="Make a .p4d baked without normals (format 1.0 or 1.1) relightable: copies every tile as it "
                    "is, adds normal tiles derived from its depth tiles (smoothed: the 8-bit depth's steps and a "
                    "learned depth's noise stay out) and the capture's light fitted over the stored tiles "
                    "(format 1.2). A new bake stores exact normals where the field has them.")
    p.add_argument("file", metavar="IN.p4d", help="the portrait to read")
    p.add_argument("-o", "--output", required=True, metavar="OUT.p4d", help="where to write the relightable copy")
    p.add_argument("--normal-scale", type=int, default=BakeConfig.normal_scale, choices=(1, 2, 4, 8),
                   help=f"normal tiles at 1/N resolution (default {BakeConfig.normal_scale}, as `bake`)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("bake normals", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from bake.relight.add import add_normals
    from formats import P4DReader
    check_input_file(args.file)
    check_writable_dir(args.output)
    t0 = time.monotonic()
    out = add_normals(args.file, args.output, args.normal_scale, args.quiet)
    if not args.quiet:
        with P4DReader(out) as r:
            yaw, pitch, amount, wrap = r.lighting["key"]
        print(f"bake normals: {out} (format 1.2, normals at 1/{args.normal_scale}; captured key light at yaw "
              f"{yaw:.1f}, pitch {pitch:.1f} deg, wrap {wrap:g}) in {time.monotonic() - t0:.1f} s")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
