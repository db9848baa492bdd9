"""bake.track.expression_map: identity, by-name, the ARKit <-> synthetic tables, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from bake.track.expression_map import ARKIT_TO_SYNTHETIC, map_expressions

# mediapipe's 51 ARKit names (ARKit's 52 minus tongueOut), in mediapipe's order.
ARKIT_51 = [
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
]
SYNTH = ["jaw_open", "smile", "blink_l", "blink_r", "brow_up", "brow_frown", "pucker", "cheek_puff"]


def test_synthetic_names_match_the_synthetic_head():
    synthetic = pytest.importorskip("bake.synthetic")
    assert list(synthetic.EXPRESSION_NAMES) == SYNTH
    assert set(ARKIT_TO_SYNTHETIC) == set(SYNTH)


def test_identity_and_by_name():
    v = np.random.default_rng(0).uniform(0, 1, (5, 8)).astype(np.float32)
    assert np.array_equal(map_expressions(SYNTH, v, SYNTH), v)
    rev = map_expressions(SYNTH, v, SYNTH[::-1])
    assert np.array_equal(rev, v[:, ::-1])
    sub = map_expressions(SYNTH, v, ["smile", "jaw_open"])
    assert np.array_equal(sub, v[:, [1, 0]])


def test_arkit_to_synthetic_values():
    n = len(ARKIT_51)
    v = np.zeros((3, n), np.float32)
    ix = {name: i for i, name in enumerate(ARKIT_51)}
    v[0, ix["jawOpen"]] = 0.8
    v[1, ix["mouthSmileLeft"]], v[1, ix["mouthSmileRight"]] = 0.6, 0.2
    v[2, ix["eyeBlinkLeft"]] = 1.0
    v[2, ix["browInnerUp"]], v[2, ix["browOuterUpLeft"]] = 0.4, 0.8
    v[:, ix["eyeLookInLeft"]] = 0.9  # no synthetic counterpart: must not leak anywhere
    out = map_expressions(ARKIT_51, v, SYNTH)
    s = {name: i for i, name in enumerate(SYNTH)}
    want = np.zeros((3, 8), np.float32)
    want[0, s["jaw_open"]] = 0.8
    want[1, s["smile"]] = 0.4
    want[2, s["blink_l"]] = 1.0
    want[2, s["brow_up"]] = 0.4
    assert np.allclose(out, want, atol=1e-6)


def test_synthetic_to_arkit_round_trip():
    v = np.random.default_rng(1).uniform(0, 1, (20, 8))
    ark = map_expressions(SYNTH, v, ARKIT_51)
    assert ark.shape == (20, 51)
    ix = {name: i for i, name in enumerate(ARKIT_51)}
    assert np.allclose(ark[:, ix["mouthSmileLeft"]], v[:, 1]) and np.allclose(ark[:, ix["mouthSmileRight"]], v[:, 1])
    assert np.allclose(ark[:, ix["eyeBlinkRight"]], v[:, 3])
    assert np.all(ark[:, ix["eyeLookUpLeft"]] == 0)
    assert np.allclose(map_expressions(ARKIT_51, ark, SYNTH), v, atol=1e-6)


def test_single_vector_and_clipping():
    one = map_expressions(SYNTH, np.full(8, 2.0), ARKIT_51)
    assert one.shape == (51,) and one.max() == 1.0


def test_refusals():
    with pytest.raises(ValueError, match="no mapping"):
        map_expressions([f"nerface_{i}" for i in range(76)], np.zeros((2, 76)), SYNTH)
    with pytest.raises(ValueError, match="shape"):
        map_expressions(SYNTH, np.zeros((2, 7)), SYNTH)
