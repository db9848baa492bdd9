"""``bake``: the offline side's one command.

``bake CKPT -o OUT.p4d`` is the main job; the words below are subcommands. Each subcommand's
module owns its own argparse and exposes ``main(argv) -> int``.
"""

from __future__ import annotations

import os
import sys

SUBCOMMANDS = {
    "synth": "write a synthetic subject: capture video, dataset and checkpoint",
    "track": "track a video into a dataset (pose, expression, mask per frame)",
    "train": "train a NeRFBlendShape head from a dataset into a checkpoint",
    "eval": "PSNR / SSIM / L1 of a checkpoint on its held-out frames",
    "render": "render one image of a checkpoint at an expression and view",
}

USAGE = """usage: bake CKPT -o OUT.p4d [options]     (bake a portrait; `bake CKPT --help` for options)
       bake SUBCOMMAND [options]          (`bake SUBCOMMAND --help`)

subcommands:
""" + "".join(f"  {name:<8} {text}\n" for name, text in SUBCOMMANDS.items())


def _run_sub(name: str, argv: list[str]) -> int:
    if name == "synth":
        from bake.synthetic.cli import main
    elif name == "track":
        from bake.track.cli import main
    elif name == "train":
        from bake.nerf.cli import train_main as main
    elif name == "eval":
        from bake.nerf.cli import eval_main as main
    elif name == "render":
        from bake.render_cli import main
    else:
        raise AssertionError(name)
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help"):
            from bake.bake_cli import build_parser
            print(USAGE)
            print(build_parser().format_help())
            return 0 if argv else 2
        if argv[0] in SUBCOMMANDS:
            return _run_sub(argv[0], argv[1:])
        from bake.bake_cli import main as bake_main
        return bake_main(argv)
    except KeyboardInterrupt:
        print("bake: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bake --help | head`: the reader went away, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
