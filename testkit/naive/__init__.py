"""Slow, readable numpy twins of the numba kernels; tests hold the two together.

One module per module of ``player/kernels/``, each twin named as the kernel it mirrors: same
arguments and shapes as the public wrapper there, but returning fresh arrays; and ``synthetic``,
the twin of the synthetic head's kernels (``bake/synthetic/``). Tests and benches only: this does
not ship.
"""
