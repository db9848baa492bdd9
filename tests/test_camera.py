"""formats/camera.py: the look-at frame the bake's grid and the player's target camera share."""

import numpy as np

from formats.camera import _cross, look_at


def test_cross_is_numpys_to_the_bit():
    rng = np.random.default_rng(4)
    for a, b in rng.normal(0, 3, (500, 2, 3)):
        np.testing.assert_array_equal(_cross(a, b), np.cross(a, b))


def test_look_at_is_an_orthonormal_frame_facing_the_target():
    rng = np.random.default_rng(5)
    for eye, target in rng.normal(0, 1, (200, 2, 3)):
        m = look_at(eye, target)
        r = m[:3, :3]
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) > 0.999  # right-handed: a rotation, no mirror
        np.testing.assert_allclose(m[:3, 3], eye)
        f = (target - eye) / np.linalg.norm(target - eye)
        np.testing.assert_allclose(r[:, 2], f, atol=1e-12)  # +z looks at the target
        assert r[1, 0] == 0.0 or abs(r[1, 0]) < 1e-12  # x stays horizontal (up = +y)
    # Straight down the y axis: the fallback right vector, still a rotation.
    m = look_at((0.0, 2.0, 0.0), (0.0, 0.0, 0.0))
    np.testing.assert_allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-12)
