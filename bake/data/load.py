"""``load_dataset``: the one entry point that reads any dataset folder ``bake train`` accepts.

Our own layout (``dataset.json``, ``bake.data.dataset``) first, then the foreign layouts that are
converted on the fly (NeRFace, NeRFBlendShape: ``bake.data.foreign``).
"""

from __future__ import annotations

import os
from pathlib import Path

from bake.data.dataset import Dataset, DatasetError, read_dataset_json
from bake.data.foreign import load_foreign


def load_dataset(root: str | os.PathLike) -> Dataset:
    """Read a dataset directory; raises DatasetError with a one-line reason."""
    root = Path(root)
    if (root / "dataset.json").is_file():
        return read_dataset_json(root)
    foreign = load_foreign(root) if root.is_dir() else None
    if foreign is not None:
        return foreign
    raise DatasetError(f"{root}: no dataset.json (expected the output of `bake track` or `bake synth`, "
                       f"or a NeRFace / NeRFBlendShape directory)")
