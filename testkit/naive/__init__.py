"""Slow, readable numpy twins of the player's kernels; tests hold the two together.

One module per module of ``player/kernels/``, each twin named as the kernel it mirrors: same
arguments and shapes as the public wrapper there, but returning fresh arrays. Tests and benches
only: this does not ship with the player.
"""
