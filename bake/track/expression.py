"""Per-frame expression vectors from mediapipe's ARKit-named blendshape scores.

mediapipe's blendshape head outputs 52 scores: ``_neutral`` (a constant-ish catch-all with no
face meaning, dropped) and 51 of ARKit's 52 names (all but ``tongueOut``). The dataset keeps
those 51 names in mediapipe's order; the space is called ``arkit-51``.

The raw scores are not zero on a neutral face (eyeSquint, browInnerUp and others idle at
0.1-0.6 for many people), so each video gets a per-channel neutral offset: the ``percentile``-th
percentile of that channel over the video, subtracted and clipped to [0, 1]. The assumption is
that the subject is at rest in each channel for at least that fraction of the video; a channel
held the whole time (a permanent smile) reads as neutral. The offset is stored in the dataset's
``extra.expression_offset`` so raw = expression + offset. A light Gaussian smoothing removes the
frame-to-frame jitter of the scores without eating blinks (~100 ms).
"""

from __future__ import annotations

import numpy as np

from bake.track.pose import gaussian_smooth

EXPRESSION_SPACE = "arkit-51"  # mediapipe: ARKit's 52 minus tongueOut


def neutralise(raw: np.ndarray, percentile: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """raw [T, D] in [0, 1] -> (expression [T, D] in [0, 1] with neutral ~ 0, offset [D])."""
    offset = np.percentile(raw, percentile, axis=0) if len(raw) else np.zeros(raw.shape[1])
    return np.clip(raw - offset, 0.0, 1.0).astype(np.float32), offset.astype(np.float32)


def expressions(raw: np.ndarray, times: np.ndarray, sigma_s: float = 0.02,
                percentile: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed, neutralised expressions [T, D] and the offset [D] (see module doc)."""
    if len(raw) > 1 and sigma_s > 0:
        dt = float(np.median(np.diff(times)))
        raw = np.clip(gaussian_smooth(raw.astype(np.float64), sigma_s / max(dt, 1e-6)), 0.0, 1.0)
    return neutralise(raw, percentile)
