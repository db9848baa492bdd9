"""``bake``: the offline side's one command.

``bake CKPT -o OUT.p4d`` is the main job (``bake.cli.job``); the words below are subcommands,
one module each in ``bake.cli``, each owning its argparse and exposing ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import os
import sys

from formats.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

SUBCOMMANDS = {
    "synth": "write a synthetic subject: capture video, dataset and checkpoint",
    "track": "track a video into a dataset (pose, expression, mask per frame)",
    "train": "train a NeRFBlendShape head from a dataset into a checkpoint",
    "eval": "PSNR / SSIM / L1 of a checkpoint on its held-out frames",
    "render": "render one image of a checkpoint at an expression and view",
    "eval-portrait": "a baked portrait, as the player draws it, against its video (replay, held-out, sharpness)",
    "normals": "add normals and the fitted light to a .p4d baked without them (relightable, format 1.2)",
}

USAGE = """usage: bake CKPT -o OUT.p4d [options]     (bake a portrait; `bake CKPT --help` for options)
       bake DATASET/ -o OUT.p4d [options] (a quick portrait from a tracked dataset, no training)
       bake SUBCOMMAND [options]          (`bake SUBCOMMAND --help`)

subcommands:
""" + "".join(f"  {name:<14} {text}\n" for name, text in SUBCOMMANDS.items())


# Commands whose numba kernels run from one thread only and were measured faster on workqueue: the
# bake (None; its anchored tiles' kernels). Training's steps (bench/nerf_train_bench.py beside a
# training run) gave no clear answer either way, so it keeps numba's default.
ONE_THREAD_CALLERS = (None,)


def prefer_workqueue(command: str | None) -> None:
    """numba's workqueue threading layer for ``command`` (a subcommand, None for the bake) when
    it launches its kernels from one thread and NUMBA_THREADING_LAYER is not set. numba picks
    OpenMP by default, whose idle threads sleep: on a busy machine a kernel of a few ms then
    waits longer for them than it runs (a quick portrait's tile: 36 ms with workqueue against
    55 ms, bench/anchor_threads.py). Not for commands with threads of their own that call kernels
    (track's crop pool, eval-portrait's prefetch): workqueue aborts on concurrent launches."""
    if command in ONE_THREAD_CALLERS and "NUMBA_THREADING_LAYER" not in os.environ:
        import numba

        numba.config.THREADING_LAYER = "workqueue"


def _run_sub(name: str, argv: list[str]) -> int:
    # Imported on demand: `bake track` should not load torch, nor `bake synth` mediapipe.
    module = importlib.import_module(f"bake.cli.{name.replace('-', '_')}")
    return module.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help"):
            from bake.cli.job import build_parser  # on demand, as the subcommands
            print(USAGE)
            print(build_parser().format_help())
            return EXIT_OK if argv else EXIT_USAGE
        if argv[0] in SUBCOMMANDS:
            prefer_workqueue(argv[0])
            return _run_sub(argv[0], argv[1:])
        prefer_workqueue(None)
        from bake.cli.job import main as bake_main  # on demand, as the subcommands
        return bake_main(argv)
    except KeyboardInterrupt:  # while a command module loads; each command reports its own
        print("bake: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `bake --help | head`: the reader went away, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
