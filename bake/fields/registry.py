"""``load_field``: any checkpoint kind behind the one field interface (``bake.fields.base.Field``)."""

from __future__ import annotations

import os

from bake.fields.base import CheckpointError, Field, load_checkpoint, resolve_device
from bake.nerf.field import NerfField
from bake.synthetic.field import SyntheticField

KINDS = (SyntheticField.kind, NerfField.kind)


def load_field(path: str | os.PathLike, device: str = "auto", implementation: str = "auto") -> Field:
    """Load any checkpoint kind behind the one field interface.

    ``implementation`` picks a learned head's renderer (``NerfField``): ``auto`` (fused numba on CPU,
    torch elsewhere), ``fused`` or ``torch``; other kinds have one renderer and ignore it.
    """
    return _field(load_checkpoint(path), path, device, implementation)


def load_field_and_dataset_hint(path: str | os.PathLike, device: str = "auto") -> tuple[Field, str | None]:
    """(the field, the dataset folder ``bake train`` recorded in the checkpoint or None)."""
    ckpt = load_checkpoint(path)
    hint = ckpt.get("train_stats", {}).get("dataset") if isinstance(ckpt.get("train_stats"), dict) else None
    return _field(ckpt, path, device), (str(hint) if hint else None)


def _field(ckpt: dict, path, device: str, implementation: str = "auto") -> Field:
    kind = ckpt.get("kind")
    if kind == SyntheticField.kind:
        return SyntheticField.from_checkpoint(ckpt)
    if kind == NerfField.kind:
        return NerfField.from_checkpoint(ckpt, resolve_device(device), implementation)
    raise CheckpointError(f"{path}: unknown checkpoint kind {kind!r} (known: {', '.join(KINDS)})")
