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


@pytest.mark.parametrize("yaw_s,pitch_s", [(15.0, 0.0), (-60.0, 10.0)])
def test_footprint_kernel_matches_twin(head, yaw_s, pitch_s):
    from bake.anchor.kernels import footprint
    from bake.anchor.tiles import TileSurface

    tgt, src = view(0.0), view(yaw_s, pitch_s, size=80)
    _, _, depth = head.render(tgt, EXPR)
    surf = TileSurface.of(depth, tgt, AnchorConfig())
    _, mask, _ = capture(head, src)
    from bake.anchor.blend import core_weight
    core = core_weight(mask, 1.5)
    normals = surf.normals.copy()
    normals[::7, ::5] = np.nan  # pixels without a normal (a lone pixel of the proxy) weigh fully
    args = (surf.points, normals, surf.seen, surf.on, src, core, 0.25, 0.6)
    got, want = footprint(*args), n_anchor.footprint(*args)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert (got[::7, ::5][surf.on[::7, ::5]] == core_weight(mask, 1.5).max()).mean() > 0.5
    assert 0.02 < (got[surf.on] < 0.5).mean() < 0.98  # the weights are neither all 0 nor all 1


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


def _blurred(exact):
    class Blurred:
        kind = "test"

        def render(self, cam, e):
            rgb, a, d = exact.render(cam, e)
            return cv2.GaussianBlur(rgb, (0, 0), 1.5), a, d
    return Blurred()


def test_extra_frames_lend_what_the_keyframes_own_frame_sees_badly(synth_dir):
    # Seen 30 degrees from the keyframe's own frame, the head's far side is better shown by the
    # frames captured from there: with them the tile comes closer to the exact render than with
    # the own frame and the (blurred) field alone. They are the frames seen from nearest the
    # view, never the own one, never a left-out one.
    from bake.anchor.tiles import CaptureAnchor
    from bake.data.load import load_dataset
    from formats.camera import view_angles

    exact = SyntheticField()
    soft = _blurred(exact)
    ds = load_dataset(synth_dir)
    times = ds.times() - ds.times()[0]
    k = len(times) // 2
    alone = CaptureAnchor(ds, AnchorConfig(extra_sources=0)).for_keyframes(times)
    helped = CaptureAnchor(ds, AnchorConfig(extra_sources=2, expression_weight=0.0)).for_keyframes(times)
    i = alone.frame_of(k)
    e = ds.frames[i].expression
    yaw0, pitch0, _ = view_angles(np.linalg.inv(ds.frames[i].pose))
    cam = Camera(ds.intrinsics, orbit_pose(yaw0 + 30.0, pitch0, 0.5))
    rgb_x, a_x, _ = exact.render(cam, e)
    rgb_s, a_s, d_s = soft.render(cam, e)
    inner = cv2.erode((a_x > 0.99).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    t0 = alone.tile(soft, k, e, cam, rgb_s, a_s, d_s)[0]
    t2 = helped.tile(soft, k, e, cam, rgb_s, a_s, d_s)[0]
    assert psnr(t2, rgb_x, inner) > psnr(t0, rgb_x, inner) + 1.0, (psnr(t2, rgb_x, inner), psnr(t0, rgb_x, inner))
    extra = helped.extra_frames(k, cam, e)
    assert len(extra) == 2 and i not in extra
    # The nearest views, from the angle between the cameras' centres seen from the head centre.
    centres = np.array([np.linalg.inv(f.pose)[:3, 3] for f in ds.frames])
    want = cam.cam_to_head[:3, 3]
    cos = centres @ want / (np.linalg.norm(centres, axis=1) * np.linalg.norm(want))
    pool = helped.pool()
    cos[i] = -2
    cos[~pool] = -2
    assert sorted(extra) == sorted(np.argsort(-cos)[:2].tolist())
    # The pool: every keyframe's own frame and source_pool more, evenly spread; none left out.
    assert pool[helped.frames].all() and pool.sum() <= len(set(helped.frames)) + AnchorConfig().source_pool
    gaps = np.diff(np.nonzero(pool)[0])
    assert gaps.max() <= np.ceil(len(ds.frames) / AnchorConfig().source_pool) + 1
    banned = CaptureAnchor(ds, AnchorConfig(extra_sources=2), leave_out=frozenset(extra)).for_keyframes(times)
    assert not set(banned.extra_frames(k, cam, e)) & set(extra)
    # Every other frame left out: the own frame alone, exactly.
    only = CaptureAnchor(ds, AnchorConfig(extra_sources=2),
                         leave_out=frozenset(set(range(len(ds.frames))) - {i})).for_keyframes(times)
    assert only.extra_frames(k, cam, e) == []
    np.testing.assert_array_equal(only.tile(soft, k, e, cam, rgb_s, a_s, d_s)[0], t0)


def test_extra_frames_lend_no_face_with_another_expression(synth_dir):
    # With an expression likeness that nothing passes, the extra frames lend hair, ears and
    # neck but not one pixel of the face (where expressions act).
    from bake.anchor.blend import face_share
    from bake.anchor.tiles import CaptureAnchor
    from bake.data.load import load_dataset
    from formats.camera import view_angles

    exact = SyntheticField()
    ds = load_dataset(synth_dir)
    times = ds.times() - ds.times()[0]
    k = len(times) // 2
    strict = CaptureAnchor(ds, AnchorConfig(extra_sources=2, expression_sigma=1e-9)).for_keyframes(times)
    i = strict.frame_of(k)
    e = ds.frames[i].expression
    yaw0, pitch0, _ = view_angles(np.linalg.inv(ds.frames[i].pose))
    cam = Camera(ds.intrinsics, orbit_pose(yaw0 + 25.0, pitch0, 0.5))
    _, _, depth = exact.render(cam, e)
    *_, weights = strict.gather(exact, k, e, cam, depth)
    assert list(weights)[0] == i and len(weights) == 3
    o, d = pixel_rays(cam)
    face = face_share(o + d * depth[..., None], AnchorConfig().face_cone)
    on_face, off_face = (face >= 1.0) & (depth > 0), (face <= 0.0) & (depth > 0)
    assert on_face.sum() > 200 and off_face.sum() > 200
    assert weights[i][on_face].max() > 0.5  # the own frame does lend the face
    for j in list(weights)[1:]:
        assert weights[j][on_face].max() == 0
        assert (weights[j][off_face] > 0.5).sum() > 50  # but hair and neck


def test_an_edge_on_source_pixel_weighs_nothing():
    # A wall facing the tile's camera, seen by the source from 30 and from 72 degrees: the
    # weight follows the ratio of the footprints' foreshortening, which for a plane is, per
    # camera, cos(angle to the normal) x distance / z-depth (pixels per area: f^2 cos r / z^3,
    # with the f^2 z^-2 of a face-on footprint divided out).
    from bake.anchor.blend import stretch_weight
    from bake.anchor.tiles import SourceFrame, TileSurface, source_footprint

    size = 64
    tgt = view(0.0, size=size)
    o, d = pixel_rays(tgt)
    depth = (-o[..., 2] / d[..., 2]).astype(np.float32)  # the plane z = 0 of the head frame
    pts = o + d * depth[..., None]
    cfg = AnchorConfig()

    def foreshortening(cam):
        c = cam.cam_to_head[:3, 3]
        ray = c - pts
        r = np.linalg.norm(ray, axis=-1)
        z = (pts - c) @ cam.cam_to_head[:3, 2]
        return np.abs(ray[..., 2]) / r * r / z

    for angle in (30.0, 72.0):
        cam = view(angle, size=size)
        src = SourceFrame(0, np.zeros((size, size, 3), np.uint8), np.ones((size, size), np.float32), cam,
                          np.zeros((size, size), np.float32), np.ones((size, size), np.float32))
        ratio = foreshortening(cam) / foreshortening(tgt)
        t = np.clip((ratio - cfg.stretch[0]) / (cfg.stretch[1] - cfg.stretch[0]), 0, 1)
        want = t * t * (3 - 2 * t)
        got = source_footprint(TileSurface.of(depth, tgt, cfg), src, cfg)
        np.testing.assert_allclose(got[2:-2, 2:-2], want[2:-2, 2:-2], atol=0.01)
        assert (got.min() == 1.0) if angle == 30 else (got.mean() < 0.2)
    # Where no neighbour tells the footprint, nothing is known: full weight.
    assert stretch_weight(np.full((3, 3), np.nan), 0.2, 0.5).min() == 1.0
    # The matte's core: the outline's pixels, part room, weigh less.
    src = SourceFrame(0, np.zeros((size, size, 3), np.uint8), np.pad(np.ones((size - 8, size - 8), np.float32), 4),
                      tgt, np.zeros((size, size), np.float32), None)
    from bake.anchor.blend import core_weight
    src.core = core_weight(src.mask, cfg.core)
    got = source_footprint(TileSurface.of(depth, tgt, cfg), src, cfg)
    assert got[32, 4] < 0.7 and got[32, 6] == 1.0 and got[32, 2] == 0.0
