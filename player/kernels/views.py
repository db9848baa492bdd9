"""Frame step 1: the 4 grid views around the viewpoint and their bilinear weights."""

from __future__ import annotations

import numpy as np
from numba import njit

from .checks import require


@njit("UniTuple(f8, 3)(f8[::1], f8)", cache=True, nogil=True)
def _axis_cell(vals, x):
    """(i0, i1, t) of ``x`` on the ascending axis ``vals``, clamped at the ends."""
    n = vals.shape[0]
    if n == 1 or x <= vals[0]:
        return 0.0, 0.0, 0.0
    if x >= vals[n - 1]:
        return float(n - 1), float(n - 1), 0.0
    i = 0
    while i < n - 2 and x >= vals[i + 1]:
        i += 1
    t = (x - vals[i]) / (vals[i + 1] - vals[i])
    return float(i), float(i + 1), t


@njit("f8(f8, f8)", cache=True, nogil=True)
def _sharpen(t, g):
    """Cell coordinate t in [0, 1] stretched by g >= 1 about the centre and clamped: near a grid
    view (t < (1 - 1/g) / 2 or the mirror) only that view is used."""
    return min(max((t - 0.5) * g + 0.5, 0.0), 1.0)


@njit("void(f8[::1], f8[::1], f8, f8, f8, i4[::1], f4[::1])", cache=True, nogil=True)
def _view_weights(yaws, pitches, yaw, pitch, sharpen, idx, w):
    i0, i1, ty = _axis_cell(yaws, yaw)
    j0, j1, tp = _axis_cell(pitches, pitch)
    ty = _sharpen(ty, sharpen)
    tp = _sharpen(tp, sharpen)
    ny = yaws.shape[0]
    idx[0] = int(j0) * ny + int(i0)
    idx[1] = int(j0) * ny + int(i1)
    idx[2] = int(j1) * ny + int(i0)
    idx[3] = int(j1) * ny + int(i1)
    w[0] = (1.0 - tp) * (1.0 - ty)
    w[1] = (1.0 - tp) * ty
    w[2] = tp * (1.0 - ty)
    w[3] = tp * ty


def view_weights(yaws: np.ndarray, pitches: np.ndarray, yaw: float, pitch: float,
                 idx: np.ndarray | None = None, w: np.ndarray | None = None, sharpen: float = 1.0):
    """The 4 grid views around (yaw, pitch) in degrees and their bilinear weights.

    yaws [NY], pitches [NP] ascending; view index = pitch_index * NY + yaw_index.
    Returns idx int32 [4], w float32 [4] (sum 1; outside the grid the viewpoint is clamped).
    sharpen g >= 1 stretches each axis' cell coordinate t to clip((t - 1/2) g + 1/2, 0, 1): the
    weights stay bilinear and continuous, but within (1 - 1/g) / 2 of a cell side only that side's
    views are used (less ghosting from far sources, fewer views to warp). g = 1: plain bilinear.

    >>> i, w = view_weights(np.array([-10., 0, 10]), np.array([0., 10]), 5.0, 2.5)
    >>> i.tolist(), np.round(w, 3).tolist()
    ([1, 2, 4, 5], [0.375, 0.375, 0.125, 0.125])
    """
    yaws = np.ascontiguousarray(yaws, dtype=np.float64)
    pitches = np.ascontiguousarray(pitches, dtype=np.float64)
    require(yaws.ndim == 1 and pitches.ndim == 1 and yaws.size and pitches.size, "non-empty 1-D grid axes")
    require(sharpen >= 1.0, "view sharpen >= 1", sharpen)
    idx = np.empty(4, np.int32) if idx is None else idx
    w = np.empty(4, np.float32) if w is None else w
    _view_weights(yaws, pitches, float(yaw), float(pitch), float(sharpen), idx, w)
    return idx, w
