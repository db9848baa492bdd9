"""Command-line options <-> the config dataclasses: the dataclass holds each default once.

``default(Cfg, "size")`` is the value argparse shows and uses; ``build(Cfg, ...)`` constructs the
config and turns its ``__post_init__`` check into a ``UsageError`` (exit 2) with the same message.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from formats.errors import UsageError

T = TypeVar("T")


def default(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (calling a ``default_factory``)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def build(cls: type[T], **values: Any) -> T:
    """``cls(**values)``, with a bad value reported as a ``UsageError``."""
    try:
        return cls(**values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
