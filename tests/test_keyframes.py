"""Keyframe resampling and the view grid."""

import numpy as np
import pytest

from bake.job.keyframes import make_keyframes, resample
from bake.job.views import ViewGrid, captured_range, grid_axis, parse_range, parse_views
from formats.camera import Intrinsics, orbit_pose, view_angles


def test_resample_is_linear_interpolation_at_fps():
    times = np.array([0.0, 0.1, 0.35, 1.0])
    vals = np.stack([times * 2, 1 - times], axis=1)
    t, v = resample(times, vals, 12.5)
    assert len(t) == 13 and t[-1] == pytest.approx(0.96)
    np.testing.assert_allclose(v[:, 0], 2 * t, atol=1e-12)
    np.testing.assert_allclose(v[:, 1], 1 - t, atol=1e-12)


def test_keyframes_carry_the_captured_view():
    times = np.arange(50) / 25.0
    yaws = 30 * np.sin(times * 3)
    pitches = 10 * np.cos(times * 2)
    poses = np.stack([np.linalg.inv(orbit_pose(y, p, 0.5)) for y, p in zip(yaws, pitches)])
    expr = np.random.default_rng(0).random((50, 4)).astype(np.float32)
    kf = make_keyframes(times, expr, poses, 12.5)
    assert len(kf.times) == 25
    np.testing.assert_allclose(kf.capture_view[:, 0], yaws[::2], atol=1e-6)
    np.testing.assert_allclose(kf.capture_view[:, 1], pitches[::2], atol=1e-6)
    np.testing.assert_allclose(kf.expressions, expr[::2], atol=1e-6)


def test_orbit_pose_and_view_angles_are_inverse():
    for y, p in [(0, 0), (35, -15), (-20, 10), (80, 40)]:
        yy, pp, r = view_angles(orbit_pose(y, p, 0.6, (0.0, 0.02, 0.0)), (0.0, 0.02, 0.0))
        assert (yy, pp, r) == pytest.approx((y, p, 0.6), abs=1e-9)


def test_view_grid_indexing():
    g = ViewGrid(grid_axis(-30, 30, 5), grid_axis(-10, 10, 3), 0.5, Intrinsics.from_fov(30, 64, 64))
    assert g.n_views == 15 and g.view(0) == (-30, -10) and g.view(7) == (0, 0) and g.view(14) == (30, 10)
    assert g.nearest_view(2, -1) == 7


def test_parsers_reject_bad_text():
    assert parse_views("9x5") == (9, 5)
    assert parse_range("-35,20") == (-35, 20)
    for bad in ["9", "0x3", "ax3"]:
        with pytest.raises(ValueError):
            parse_views(bad)
    for bad in ["10", "20,-20", "-100,10"]:
        with pytest.raises(ValueError):
            parse_range(bad)


def test_captured_range_ignores_outliers_and_rounds_out():
    vals = np.concatenate([np.linspace(-31.2, 28.7, 500), [80.0]])
    assert captured_range(vals) == (-31.0, 29.0)
