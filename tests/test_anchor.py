"""The capture-anchored bake (bake/anchor): reprojection of a captured frame through the proxy,
its soft z-test, the seam to the field's fill, leave-out, and the command line."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from bake.anchor.blend import AnchorConfig, angle_weight, colour_transfer, compose, feathered, nearest_inside
from bake.anchor.kernels import reproject
from bake.synthetic import SyntheticField
from formats import P4DReader
from formats.camera import Camera, Intrinsics, orbit_pose, pixel_rays
from testkit.naive import anchor as n_anchor
from tests.conftest import run_cli

SIZE = 96
EXPR = np.full(8, 0.3)


@pytest.fixture(scope="module")
def head():
    return SyntheticField()


def view(yaw: float, pitch: float = 0.0, size: int = SIZE) -> Camera:
    return Camera(Intrinsics.from_fov(30.0, size, size), orbit_pose(yaw, pitch, 0.5))


def capture(head, cam: Camera, room=(0.2, 0.6, 0.3)):
    """A 'captured frame' of the exact head: its colour over a room, the matte, the proxy depth."""
    rgb, a, d = head.render(cam, EXPR)
    img = rgb + (1 - a[..., None]) * np.asarray(room, np.float32)
    return (np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8), a.astype(np.float32), d.astype(np.float32))


def psnr(a, b, mask):
    mse = float(((a - b) ** 2)[mask].mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


@pytest.mark.parametrize("yaw_s,pitch_s", [(12.0, 0.0), (-25.0, 8.0), (40.0, -5.0)])
def test_reprojection_kernel_matches_twin(head, yaw_s, pitch_s):
    tgt, src = view(0.0), view(yaw_s, pitch_s, size=80)
    _, _, depth = head.render(tgt, EXPR)
    img, mask, sdepth = capture(head, src)
    got = reproject(depth, tgt, img, mask, sdepth, src, 0.02)
    ref = n_anchor.reproject(depth, tgt, img, mask, sdepth, src, 0.02)
    for g, r, name in zip(got, ref, ("rgb", "vis", "mask", "cos")):
        np.testing.assert_allclose(g, r, atol=2e-5, err_msg=name)
    assert (got[1] * got[2] > 0.9).sum() > 0.3 * (depth > 0).sum()  # the source sees most of the head


def test_reprojected_frame_matches_the_exact_view(head):
    # A frame captured 10 degrees off, carried into the target through the exact proxy, is the
    # exact render there wherever it counts, to within resampling.
    tgt, src = view(0.0), view(10.0, 3.0)
    rgb_t, a_t, depth = head.render(tgt, EXPR)
    img, mask, sdepth = capture(head, src)
    s_rgb, vis, m, cos = reproject(depth, tgt, img, mask, sdepth, src, 0.02)
    w = vis * m
    straight = rgb_t / np.maximum(a_t, 1e-4)[..., None]
    seen = (w > 0.9) & (a_t > 0.99)
    assert seen.sum() > 0.6 * (a_t > 0.99).sum()
    assert psnr(s_rgb, straight, seen) >= 30
    # The angle between the rays, from the points in the head frame and the cameras' centres.
    o, d = pixel_rays(tgt)
    pts = o + d * depth[..., None]
    ra, rb = pts - tgt.cam_to_head[:3, 3], pts - src.cam_to_head[:3, 3]
    with np.errstate(invalid="ignore"):  # the background's points are the camera centre itself
        want = (ra * rb).sum(-1) / (np.linalg.norm(ra, axis=-1) * np.linalg.norm(rb, axis=-1))
    np.testing.assert_allclose(cos[seen], want[seen], atol=1e-5)
    # Not a no-op: the frame itself, unwarped, is far off.
    assert psnr(img.astype(np.float32) / 255, straight, seen) < psnr(s_rgb, straight, seen) - 8


def test_soft_z_test_drops_what_the_source_cannot_see(head):
    # Seen from 50 degrees to the side, the far cheek is behind the face: those target pixels
    # must get no weight, though they project inside the source's image and matte.
    tgt, src = view(0.0), view(50.0)
    _, a_t, depth = head.render(tgt, EXPR)
    img, mask, sdepth = capture(head, src)
    _, w, _, _ = reproject(depth, tgt, img, mask, sdepth, src, 0.02)
    # Which target points does the source truly see? Its depth along their projection.
    h, wd = depth.shape
    y, x = np.mgrid[0:h, 0:wd]
    k = tgt.intrinsics
    p = np.stack([(x + 0.5 - k.cx) / k.fx * depth, (y + 0.5 - k.cy) / k.fy * depth, depth, np.ones_like(depth)], -1)
    q = p @ (np.linalg.inv(src.cam_to_head) @ tgt.cam_to_head).T
    ks = src.intrinsics
    u = np.clip((ks.fx * q[..., 0] / q[..., 2] + ks.cx).astype(int), 0, wd - 1)
    v = np.clip((ks.fy * q[..., 1] / q[..., 2] + ks.cy).astype(int), 0, h - 1)
    hidden = (depth > 0) & (sdepth[v, u] > 0) & (q[..., 2] > sdepth[v, u] * 1.08)
    assert hidden.sum() > 100
    assert (w[hidden] == 0).all()
    visible = (depth > 0) & (np.abs(q[..., 2] - sdepth[v, u]) < 0.002 * q[..., 2]) & (mask[v, u] > 0.99)
    assert (w[visible] > 0.5).mean() > 0.95


def test_angle_weight_and_feather():
    assert angle_weight(np.cos(np.radians(np.array([0.0, 12.0, 40.0, 60.0]))), 12, 40).tolist() == [1, 1, 0, 0]
    w = np.zeros((40, 40), np.float32)
    w[10:30, 10:30] = 1
    f = feathered(w, 4)
    assert f[20, 20] == 1 and f[10, 20] < 0.5 and (f <= w).all()
    assert np.all(np.diff(f[20, 10:21]) >= 0)  # a ramp, not a step


def test_fill_is_colour_matched_without_a_seam():
    # The field is 0.15 too bright everywhere; the source covers the left half. The fill on the
    # right must take the source's shading (the offset removed near the seam), and no step may
    # show across the seam.
    h, w = 64, 96
    y, x = np.mgrid[0:h, 0:w]
    truth = np.stack([0.4 + 0.2 * np.sin(x / 9.0), 0.35 + 0.1 * np.cos(y / 7.0), 0.3 + 0 * x], -1).astype(np.float32)
    field = np.clip(truth + 0.15, 0, 1)
    vis = (x < 48).astype(np.float32)
    ones = np.ones((h, w), np.float32)
    near = nearest_inside(ones > 0, 0)
    cfg = AnchorConfig(feather=4 / w, colour_sigma=10 / w)
    out, alpha = compose(field, ones, truth, vis, vis, ones, near, cfg)
    assert (alpha == 1).all()
    near_seam = (x >= 50) & (x < 60)
    assert np.abs(out[near_seam] - truth[near_seam]).mean() < 0.03  # without the transfer it would be 0.15
    step = np.abs(np.diff(out, axis=1)).max(axis=(0, 2))
    assert step[40:56].max() < 0.05  # no seam at x = 48
    np.testing.assert_allclose(out[:, :40], truth[:, :40], atol=1e-6)  # the source itself, untouched
    unchanged = colour_transfer(field, truth, np.zeros((h, w), np.float32), 3.0)
    assert unchanged is field  # nothing to match: the field as it is


def test_the_frames_matte_draws_the_outline():
    # The field's alpha is a ragged disc; the frame's matte a clean, slightly larger one. Where
    # the frame sees the points from close by, the tile's alpha is the matte, including a shell
    # beyond the field's silhouette; where it does not (vis 0 on the right), the field's alpha
    # stays, and where it sees them from too far for its matte (the middle band), the field's
    # alpha stays under the frame's colour.
    h, w = 64, 64
    y, x = np.mgrid[0:h, 0:w]
    r = np.hypot(x - 31.5, y - 31.5)
    rng = np.random.default_rng(3)
    field_a = (r < 20 + rng.integers(-2, 3, (h, w))).astype(np.float32)
    matte = np.clip(23 - r, 0, 1).astype(np.float32)
    vis = (x < 40).astype(np.float32)
    vis_matte = (x < 24).astype(np.float32)
    rgb = np.full((h, w, 3), 0.5, np.float32) * field_a[..., None]
    near = nearest_inside(field_a > 0, 6)
    out, alpha = compose(rgb, field_a, np.full((h, w, 3), 0.5, np.float32), vis, vis_matte, matte, near,
                         AnchorConfig(feather=2 / w))
    left = x < 20
    np.testing.assert_allclose(alpha[left], matte[left], atol=1e-6)
    right = x >= 26  # past the matte's feathered edge
    np.testing.assert_array_equal(alpha[right], field_a[right])
    assert np.allclose(out, 0.5 * alpha[..., None], atol=1e-6)  # premultiplied by the new alpha
    assert (near[0][r > 20 + 2 + 6 + 1] == -1).all()  # the shell ends 6 px out


def test_anchor_sharpens_a_soft_field_and_leave_out_keeps_the_field(synth_dir):
    # A field that renders the head blurred (as a learned one does), anchored on the capture:
    # the tiles come closer to the exact render; a keyframe whose frame is left out keeps the
    # blurred field's tile exactly.
    from bake.anchor.tiles import CaptureAnchor
    from bake.data.load import load_dataset

    exact = SyntheticField()

    class Blurred:
        kind = "test"

        def render(self, cam, e):
            rgb, a, d = exact.render(cam, e)
            return cv2.GaussianBlur(rgb, (0, 0), 1.5), a, d

    soft = Blurred()
    ds = load_dataset(synth_dir)
    times = ds.times() - ds.times()[0]
    k = len(times) // 2
    anchor = CaptureAnchor(ds).for_keyframes(times)
    i = anchor.frame_of(k)
    e = ds.frames[i].expression
    yaw0 = float(np.degrees(np.arctan2(*np.linalg.inv(ds.frames[i].pose)[[0, 2], 3])))
    gains = []
    for dyaw in (0.0, 8.0):
        cam = Camera(ds.intrinsics, orbit_pose(yaw0 + dyaw, 0.0, 0.5))
        rgb_x, a_x, _ = exact.render(cam, e)
        rgb_s, a_s, d_s = soft.render(cam, e)
        tile, _, _ = anchor.tile(soft, k, e, cam, rgb_s, a_s, d_s)
        inner = cv2.erode((a_x > 0.99).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        gains.append(psnr(tile, rgb_x, inner) - psnr(rgb_s, rgb_x, inner))
        # And the anchored tile is as sharp as the exact render, not as the blurred one.
        lap = lambda im: np.abs(cv2.Laplacian(im.mean(-1), cv2.CV_32F))[inner].mean()  # noqa: E731
        assert lap(tile) > 0.7 * lap(rgb_x) > lap(rgb_s)
    assert min(gains) > 2, gains
    left = CaptureAnchor(ds, leave_out=frozenset({i})).for_keyframes(times)
    assert left.frame_of(k) is None
    cam = Camera(ds.intrinsics, orbit_pose(yaw0, 0.0, 0.5))
    rgb_s, a_s, d_s = soft.render(cam, e)
    got = left.tile(soft, k, e, cam, rgb_s, a_s, d_s)
    assert got[0] is rgb_s and got[1] is a_s and got[2] is d_s


def test_bake_source_flags(synth_dir, tmp_path):
    ckpt = str(synth_dir / "subject.ckpt")
    small = ["--views", "3x1", "--size", "48", "--fps", "2", "-q"]
    out = tmp_path / "a.p4d"
    run_cli("bake", ckpt, "-o", str(out), "--source", "anchored", "--leave-out", "test", *small)
    with P4DReader(out) as r:
        src = r.meta["source"]
        test = json.loads((synth_dir / "dataset.json").read_text())["split"]["test"]
        assert src["tiles"] == "anchored" and src["left_out_frames"] == sorted(test)
    plain = tmp_path / "f.p4d"
    run_cli("bake", ckpt, "-o", str(plain), *small)  # the synthetic head: field tiles by default
    with P4DReader(plain) as r:
        assert r.meta["source"]["tiles"] == "field"
    # Bad combinations: one line, exit 2, nothing written.
    for args in (["--source", "field", "--leave-out", "test"], ["--source", "anchored", "--dataset", str(tmp_path)]):
        bad = tmp_path / "bad.p4d"
        proc = run_cli("bake", ckpt, "-o", str(bad), *args, *small, check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert not bad.exists()
