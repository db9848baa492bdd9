"""Every numba kernel of the player, each behind a checked public wrapper, one module per stage.

The frame pipeline, per frame (H, W = tile size; Ho, Wo = output size):

1. ``views.view_weights``: the 4 grid views around the viewpoint and their bilinear weights.
2. ``blend.temporal_blend``: per source view, keyframe k and its successor mixed at the
   fractional keyframe time, in the source view's own pixels (same camera, so a pixel-wise mix is
   exact for the colour and a fair guess for the depth), only inside the tiles' row spans. During
   a jump the two streams' tiles are mixed the same way (``fade_blend``, the crossfade in source
   pixels), so a jump frame still warps once.
3. ``splat.splat_depth``: the source depth tiles forward-splatted, subsampled by the z-buffer's
   cell size, into a coarse z-buffer of the target view (z-min), cracks closed, the silhouette
   not grown.
4. ``reprojection.warp``: backward warp. Each target pixel takes its depth from the coarse
   z-buffer, refined on the nearest source's full-resolution depth, becomes a 3-D point, is
   projected into every source and sampled there (bilinear), weighted by view weight x soft z-test (hole fill:
   the plain view weights). Only the lattice nodes are projected where a cell lies on one surface
   (``lattice``: node geometry and cell modes); such a cell's pixels interpolate the nodes'
   coordinates and weights in fixed point (``mesh``); the other pixels are projected one by one
   (``pixels``). The warped frame is premultiplied RGBA in 8 bits.
2b. ``relight.relight`` (format 1.2, when a light is set): each decoded source tile times the
   quotient-relight gain of its normals, in its own pixels (the normals follow the warp exactly),
   once per tile and light (``Renderer`` keeps the relit tiles); step 2 then blends relit tiles.
5. ``compositing.composite``: premultiplied colour over the background, rows flipped bottom-up
   for a GL texture, only inside the row spans of what the warp drew
   (``reprojection.warp_spans``) and of the last frame's. ``compositing.crossfade`` mixes two
   warped frames.

Off the frame path, on the decode thread: ``decode.upsample_depth`` brings a depth tile stored at
1/s to the tile's size and ``decode.interleave_rgba`` packs colour (clamped to alpha) and alpha,
both only inside each row's content span, which they return.

Each public kernel checks its input in plain Python (explicit errors, never ``assert``) and calls
a private ``_kernel`` with explicit dtypes/layouts and ``cache=True``. Its slow numpy twin is the
function of the same name in the module of the same name under ``testkit/naive/`` (tests and
benches only; it does not ship), and the tests hold them against each other. ``intrinsics`` holds
the two LLVM intrinsics numba lacks, ``slots`` the generator of the per-source-slot code,
``cameras`` the camera arrays (K [4] = fx, fy, cx, cy; R [3, 3] camera->head; C [3] centre),
``warmup`` the warm-up. The modules import one another relatively, so a bench can load another
revision's package under another name (``bench/warp_ab.py``).
"""

from . import jit_cache

jit_cache.install()  # before the modules below define their kernels

from .blend import blend_steps, fade_blend, temporal_blend, write_spans
from .cameras import camera_arrays
from .compositing import composite, composite_tables, crossfade
from .decode import interleave_rgba, upsample_depth
from .lattice import MODE_EMPTY, MODE_MESH, MODE_MESH_RAMP, MODE_PIXEL
from .relight import GUIDE_SIGMA, relight, relight_scratch
from .reprojection import WarpScratch, warp, warp_scratch, warp_spans, warp_split
from .splat import splat_depth, splat_rows
from .views import view_weights
from .warmup import warm_up

__all__ = ["view_weights", "blend_steps", "temporal_blend", "fade_blend", "write_spans", "splat_depth",
           "splat_rows", "warp", "warp_scratch", "warp_split", "warp_spans", "WarpScratch", "crossfade",
           "composite", "composite_tables", "camera_arrays", "upsample_depth", "interleave_rgba", "warm_up",
           "relight", "relight_scratch", "GUIDE_SIGMA",
           "MODE_PIXEL", "MODE_EMPTY", "MODE_MESH", "MODE_MESH_RAMP"]
