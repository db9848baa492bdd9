"""Portrait4D runtime: plays a .p4d with numba kernels in a pyglet window. Never imports torch."""
