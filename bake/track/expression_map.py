"""Mapping expression vectors between named expression spaces (for reenactment and sliders).

``map_expressions(src_names, values, dst_names)`` resolves, in order:

1. equal name lists: identity (a copy);
2. every destination name present in the source: pick by name (reordering / subsetting);
3. a documented linear table between two known spaces (below), ``dst = clip(src @ M, 0, 1)``;
4. otherwise ``ValueError`` naming both spaces (e.g. NeRFace's 76 and NeRFBlendShape's 46 unnamed
   tracker coefficients have no semantic correspondence: drive those subjects with their own space).

Tables (all coefficients in [0, 1], 0 = neutral; ``Left``/``_l`` = the subject's left, which is
what mediapipe's ARKit names mean: on the shared clip with winks (d14), eyeBlinkLeft tracks the
eye on the image right of a frontal face, measured by correlating it with the lid landmarks):

ARKit-51 (``bake track``) -> synthetic head (``bake.synthetic.EXPRESSION_NAMES``):

=========== ===========================================================
jaw_open    jawOpen
smile       (mouthSmileLeft + mouthSmileRight) / 2
blink_l     eyeBlinkLeft
blink_r     eyeBlinkRight
brow_up     browInnerUp / 2 + (browOuterUpLeft + browOuterUpRight) / 4
brow_frown  (browDownLeft + browDownRight) / 2
pucker      mouthPucker
cheek_puff  cheekPuff
=========== ===========================================================

synthetic -> ARKit-51: each ARKit channel named above receives the synthetic coefficient it
feeds (both sides for symmetric ones: smile -> mouthSmileLeft and mouthSmileRight, brow_up ->
browInnerUp, browOuterUpLeft, browOuterUpRight, ...); the other 39 ARKit channels are 0. The
round trip synthetic -> ARKit -> synthetic is the identity.
"""

from __future__ import annotations

import numpy as np

ARKIT_TO_SYNTHETIC: dict[str, dict[str, float]] = {
    "jaw_open": {"jawOpen": 1.0},
    "smile": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5},
    "blink_l": {"eyeBlinkLeft": 1.0},
    "blink_r": {"eyeBlinkRight": 1.0},
    "brow_up": {"browInnerUp": 0.5, "browOuterUpLeft": 0.25, "browOuterUpRight": 0.25},
    "brow_frown": {"browDownLeft": 0.5, "browDownRight": 0.5},
    "pucker": {"mouthPucker": 1.0},
    "cheek_puff": {"cheekPuff": 1.0},
}


def _synthetic_to_arkit() -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for syn, srcs in ARKIT_TO_SYNTHETIC.items():
        for ark in srcs:
            out.setdefault(ark, {})[syn] = 1.0
    return out


SYNTHETIC_TO_ARKIT = _synthetic_to_arkit()
_TABLES = (ARKIT_TO_SYNTHETIC, SYNTHETIC_TO_ARKIT)


def mapping_matrix(src_names: list[str], dst_names: list[str]) -> np.ndarray | None:
    """[Ds, Dd] linear map from a table whose every destination entry is known and whose source
    names all exist in ``src_names``; None if no table covers the pair."""
    src_pos = {n: i for i, n in enumerate(src_names)}
    for table in _TABLES:
        covered = [d for d in dst_names if d in table]
        if not covered:
            continue
        needed = {s for d in covered for s in table[d]}
        if not needed <= src_pos.keys():
            continue
        m = np.zeros((len(src_names), len(dst_names)), dtype=np.float64)
        for j, d in enumerate(dst_names):
            for s, w in table.get(d, {}).items():
                m[src_pos[s], j] = w
        return m
    return None


def map_expressions(src_names, values, dst_names) -> np.ndarray:
    """Map expression vectors ``values`` [N, Ds] (or [Ds]) named ``src_names`` into the space
    named ``dst_names``; returns float32 [N, Dd] (or [Dd]). See the module doc for the rules.

    >>> map_expressions(["a", "b"], [[0.25, 0.75]], ["b", "a"]).tolist()
    [[0.75, 0.25]]
    >>> map_expressions(["smile", "jaw_open"], [1.0, 0.5], ["mouthSmileLeft", "jawOpen"]).tolist()
    [1.0, 0.5]
    """
    src_names, dst_names = list(src_names), list(dst_names)
    v = np.asarray(values, dtype=np.float64)
    single = v.ndim == 1
    v = v[None] if single else v
    if v.ndim != 2 or v.shape[1] != len(src_names):
        raise ValueError(f"expression values have shape {np.shape(values)}, expected [N, {len(src_names)}] "
                         f"for the source space")
    if src_names == dst_names:
        out = v.copy()
    elif set(dst_names) <= set(src_names):
        pos = {n: i for i, n in enumerate(src_names)}
        out = v[:, [pos[n] for n in dst_names]]
    else:
        m = mapping_matrix(src_names, dst_names)
        if m is None:
            raise ValueError(f"no mapping from a {len(src_names)}-d expression space "
                             f"({', '.join(src_names[:3])}, ...) to a {len(dst_names)}-d one "
                             f"({', '.join(dst_names[:3])}, ...); drive a subject with a dataset "
                             f"tracked in its own space, or with `bake track` (ARKit-51)")
        out = np.clip(v @ m, 0.0, 1.0)
    out = out.astype(np.float32)
    return out[0] if single else out
