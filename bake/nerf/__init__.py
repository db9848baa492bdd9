"""NeRFBlendShape (Gao et al. 2022): an expression-driven radiance field learned from a tracked video.

Layers, bottom up: ``kernels`` (numba hash-grid encode fwd/bwd) and ``encoding`` (its autograd
wrapper + pure-torch twin), ``sh`` (view encoding), ``model`` (K+1 blended hash bases + MLPs),
``occupancy`` (expression-aware density grid), ``render`` (ray marching + volume rendering),
``trainer``, ``field`` (the bake's ``render(camera, expression)``). Its commands are ``bake.cli.train``
and ``bake.cli.eval``.
"""
