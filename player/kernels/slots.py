"""Code written once and repeated for each of the warp's four source slots.

The warp's vectorised passes (``mesh._mesh_cell``, ``pixels._pixels_blend``) keep up to four
sources in registers, as four slots of scalar locals. Two ways of writing that once were measured
and refused: a loop over the slots inside the pixels' loop stayed a loop, and the pixels' loop was
then not vectorised; a helper per quantity (called once per slot, numba inlining each) made the
player's kernels compile for minutes longer. So a slot's code is written once, as a template in
which ``{s}`` stands for the slot's number, and the function is generated from it when its module
loads: LLVM sees the same straight-line code as the slots written out by hand, and a reader sees
one slot. The generated source is registered with ``linecache``, so tracebacks, ``inspect`` and
numba's error messages show it.
"""

from __future__ import annotations

import linecache

__all__ = ["SLOTS", "per_slot", "terms", "define"]

SLOTS = (0, 1, 2, 3)


def per_slot(template: str, slots=SLOTS) -> str:
    """``template`` once per slot, ``{s}`` replaced by the slot's number.

    >>> per_slot("    w{s} = src_w[{s}]\\n", (0, 1))
    '    w0 = src_w[0]\\n    w1 = src_w[1]\\n'
    """
    return "".join(template.format(s=s) for s in slots)


def terms(template: str, sep: str = " + ", slots=SLOTS) -> str:
    """``template`` once per slot, joined by ``sep``.

    >>> terms("pa{s}")
    'pa0 + pa1 + pa2 + pa3'
    """
    return sep.join(template.format(s=s) for s in slots)


def define(source: str, name: str, namespace: dict):
    """The function ``name`` that ``source`` defines, executed in ``namespace`` (the calling
    module's globals, so it sees that module's helpers and imports)."""
    filename = f"<slots: {namespace['__name__']}.{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]
