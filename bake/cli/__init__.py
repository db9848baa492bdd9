"""The ``bake`` command line: ``main`` dispatches to one module per command (``job`` for
``bake CKPT -o OUT.p4d``, then ``synth``, ``track``, ``train``, ``eval``, ``render``). Each
command only parses: defaults come from the config dataclasses (``options``), and errors become
exit codes in one place (``exits``).

``main`` is re-exported here because it is the console script's entry point (``bake.cli:main``).
"""

from bake.cli.main import main

__all__ = ["main"]
