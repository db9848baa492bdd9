"""Input checks of the kernels' public wrappers.

Explicit, never ``assert`` (which ``python -O`` removes): a kernel called with the wrong shapes or
dtypes would read or write past its arrays, so the wrappers refuse such input with a
``ValueError`` that says what was expected and what came.
"""

from __future__ import annotations

__all__ = ["require"]


def require(ok, expected: str, got=None) -> None:
    """Raise ``ValueError("expected <expected>, got <got>")`` unless ``ok``.

    >>> require(2 > 1, "two above one")
    >>> require(1 > 2, "x > 2", 1)
    Traceback (most recent call last):
    ...
    ValueError: expected x > 2, got 1
    """
    if not ok:
        raise ValueError(f"expected {expected}" + ("" if got is None else f", got {got!r}"))
