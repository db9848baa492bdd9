"""``load_field``: any checkpoint kind behind the one field interface (``bake.fields.base.Field``)."""

from __future__ import annotations

import os

from bake.fields.base import CheckpointError, Field, load_checkpoint, resolve_device
from bake.nerf.field import NerfField
from bake.synthetic.field import SyntheticField

KINDS = (SyntheticField.kind, NerfField.kind)


def load_field(path: str | os.PathLike, device: str = "auto") -> Field:
    """Load any checkpoint kind behind the one field interface."""
    ckpt = load_checkpoint(path)
    kind = ckpt.get("kind")
    if kind == SyntheticField.kind:
        return SyntheticField.from_checkpoint(ckpt)
    if kind == NerfField.kind:
        return NerfField.from_checkpoint(ckpt, resolve_device(device))
    raise CheckpointError(f"{path}: unknown checkpoint kind {kind!r} (known: {', '.join(KINDS)})")
