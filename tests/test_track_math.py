"""bake.track's pure parts on generated data: pose fitting, face personalisation, smoothing, the
virtual-camera crop, the head mask, expression neutralisation, frame sampling, the protobuf
reader. None of these needs mediapipe."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from bake.track import crop as C
from bake.track import pose as P
from bake.track.expression import neutralise
from bake.track.mask import MaskConfig, head_mask, head_shift, person_head_mask, seed_labels, temporal_vote
from bake.track.model import N_MESH, parse_geometry_metadata
from bake.track.video import keep_frame

RNG = np.random.default_rng(3)
K = P.intrinsics_matrix(800.0, 800.0, 256.0, 256.0)


def _face_points(n=200, rng=RNG) -> np.ndarray:
    """A face-sized cloud [n, 3] (head frame, metres) in front of the head centre."""
    u = rng.uniform(-1, 1, (n, 2))
    x, y = 0.07 * u[:, 0], 0.09 * u[:, 1] + 0.0
    z = 0.09 - 0.25 * (x ** 2 + (y / 1.3) ** 2) / 0.07  # a curved face, ~9 cm before the centre
    return np.stack([x, y, z], 1)


def _pose(yaw=0.0, pitch=0.0, roll=0.0, t=(0.0, 0.0, 0.6)) -> np.ndarray:
    """head -> camera: a small rotation after the frontal flip (head +y up -> camera -y, head +z
    out of the face -> towards the camera, i.e. camera -z)."""
    r = cv2.Rodrigues(np.radians(np.array([pitch, yaw, roll])))[0] @ np.diag([1.0, -1.0, -1.0])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, t
    return m


def test_pose_helper_is_a_frontal_camera():
    # Sanity of the test's own helper: a point on +z (out of the face) is nearer the camera,
    # +y (up) projects upwards, +x (subject's left) projects to the image right.
    p = _pose()
    c = P.project(np.array([[0, 0, 0.1], [0, 0.1, 0], [0.1, 0, 0], [0, 0, 0]]), p, K)
    cam = np.array([[0, 0, 0.1], [0, 0, 0]]) @ p[:3, :3].T + p[:3, 3]
    assert cam[0, 2] < cam[1, 2]
    assert c[1, 1] < c[3, 1] and c[2, 0] > c[3, 0]


@pytest.mark.parametrize("yaw,pitch", [(0, 0), (25, -10), (-30, 15)])
def test_solve_pnp_recovers_pose(yaw, pitch):
    pts = _face_points()
    truth = _pose(yaw, pitch, 5, (0.02, -0.01, 0.55))
    px = P.project(pts, truth, K) + RNG.normal(0, 0.3, (len(pts), 2))
    got = P.solve_pnp(pts, px, K)
    assert got is not None
    r_err = np.degrees(np.arccos(np.clip((np.trace(got[:3, :3].T @ truth[:3, :3]) - 1) / 2, -1, 1)))
    assert r_err < 1.0
    assert np.linalg.norm(got[:3, 3] - truth[:3, 3]) < 0.01
    assert np.median(P.reprojection_errors(pts, got[None], px[None], K)) < 0.6


def test_personalise_shape_reduces_error_of_a_wrong_face():
    true_shape = _face_points(150)
    wrong = true_shape * np.array([1.15, 0.9, 1.0])  # a canonical face that is not this person
    poses = np.stack([_pose(y, p, 0, (0.0, 0.0, 0.6)) for y, p in zip(np.linspace(-20, 20, 30),
                                                                       np.linspace(-8, 8, 30))])
    px = P.project(true_shape, poses, K)
    fit = np.stack([P.solve_pnp(wrong, px[t], K) for t in range(len(poses))])
    before = np.median(P.reprojection_errors(wrong, fit, px, K))
    shape = P.personalise_shape(wrong, fit, px, K)
    fit2 = np.stack([P.solve_pnp(shape, px[t], K) for t in range(len(poses))])
    after = np.median(P.reprojection_errors(shape, fit2, px, K))
    # Depth stays tied to the prior (a talking head turns too little to pin it), so not all of
    # the error goes; most of it must.
    assert before > 2.0
    assert after < 0.5 * before


def test_gaussian_smooth_keeps_constants_and_reduces_noise():
    x = np.full((50, 3), 2.5)
    assert np.allclose(P.gaussian_smooth(x, 2.0), 2.5)
    noisy = RNG.normal(0, 1, (400, 1))
    assert P.gaussian_smooth(noisy, 3.0).std() < 0.5 * noisy.std()
    # A kernel wider than the signal (a clip shorter than 6 sigma) keeps the length.
    short = RNG.normal(0, 1, (7, 2))
    out = P.gaussian_smooth(short, 10.0)
    assert out.shape == short.shape and np.allclose(out, out.mean(0), atol=0.2)


def test_smooth_poses_constant_and_jitter():
    truth = _pose(10, 5, 2, (0.01, 0.02, 0.7))
    assert np.allclose(P.smooth_poses(np.stack([truth] * 20), np.arange(20) / 25, 0.1), truth, atol=1e-9)
    jit = []
    for _ in range(60):
        j = truth.copy()
        j[:3, :3] = cv2.Rodrigues(RNG.normal(0, np.radians(1.0), 3))[0] @ truth[:3, :3]
        j[:3, 3] += RNG.normal(0, 0.003, 3)
        jit.append(j)
    jit = np.stack(jit)
    sm = P.smooth_poses(jit, np.arange(60) / 25, 0.12)

    def ang(a):
        return np.degrees(np.arccos(np.clip((np.trace(a[:3, :3].T @ truth[:3, :3]) - 1) / 2, -1, 1)))
    assert np.mean([ang(a) for a in sm]) < 0.6 * np.mean([ang(a) for a in jit])
    assert np.allclose(np.linalg.det(sm[:, :3, :3]), 1.0)


def test_look_rotation_puts_target_on_axis_and_homography_matches_projection():
    targets = np.array([[0.1, -0.05, 0.6], [-0.2, 0.1, 0.9]])
    rv = C.look_rotations(targets)
    for r, t in zip(rv, targets):
        d = r @ t
        assert np.allclose(d[:2], 0, atol=1e-12) and d[2] > 0
        assert np.allclose(r @ r.T, np.eye(3))
        assert abs(r[0, 1]) < 1e-12  # no roll: virtual x stays horizontal
    k_out = P.intrinsics_matrix(600.0, 600.0, 128.0, 128.0)
    pts = _face_points(30)
    pose = _pose(5, 3, 0, (0.1, -0.05, 0.6))
    h = C.homography(K, k_out, rv[0])
    via_h = C.apply_homography(h, P.project(pts, pose, K))
    r4 = np.eye(4)
    r4[:3, :3] = rv[0]
    direct = P.project(pts, r4 @ pose, k_out)
    assert np.allclose(via_h, direct, atol=1e-6)


def test_warp_pixel_convention():
    # A bright pixel must land where the homography sends its centre (edge-origin coordinates).
    src = np.zeros((200, 300), np.uint8)
    src[80, 120] = 255
    h = np.array([[2.0, 0.0, 10.0], [0.0, 2.0, -40.0], [0.0, 0.0, 1.0]])
    out = C.warp(src, h, 256).astype(float)
    u, v = C.apply_homography(h, np.array([[120.5, 80.5]]))[0]
    ys, xs = np.nonzero(out > 0)
    cx, cy = (out[ys, xs] * xs).sum() / out[ys, xs].sum(), (out[ys, xs] * ys).sum() / out[ys, xs].sum()
    assert abs(cx + 0.5 - u) < 0.3 and abs(cy + 0.5 - v) < 0.3


def test_crop_focal_never_wider_than_the_source():
    # Far head: the metric extent decides. Near head: the crop is capped at the short side.
    assert C.crop_focal(512, 0.8, 0.42, 800.0, 480) == pytest.approx(512 * 0.8 / 0.42)
    assert C.crop_focal(512, 0.3, 0.42, 800.0, 480) == pytest.approx(512 * 800 / 480)


def _draw_head(size=256, pose=None, k=None):
    """An image of a head (skin face, dark hair cap, neck) on a blue wall, its true mask, and
    face 'landmarks' (points on the face surface) for the seeds."""
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = (60, 90, 200)  # RGB wall
    truth = np.zeros((size, size), np.uint8)
    proj = lambda p: P.project(np.asarray(p, float)[None], pose, k)[0]  # noqa: E731
    c = proj([0, 0.01, 0])
    s = k[0, 0] / pose[2, 3]
    # Narrower than the mask's seed shapes, so only the colour model can find the edge.
    neck = np.array([proj([-0.035, -0.06, -0.02]), proj([0.035, -0.06, -0.02]),
                     proj([0.035, -0.2, -0.02]), proj([-0.035, -0.2, -0.02])]).astype(np.int32)
    cv2.fillConvexPoly(img, neck, (205, 150, 120))
    cv2.fillConvexPoly(truth, neck, 255)
    cv2.ellipse(img, (int(c[0]), int(c[1] - 0.01 * s)), (int(0.074 * s), int(0.105 * s)), 0, 0, 360, (40, 30, 25), -1)
    cv2.ellipse(truth, (int(c[0]), int(c[1] - 0.01 * s)), (int(0.074 * s), int(0.105 * s)), 0, 0, 360, 255, -1)
    fc = proj([0, -0.015, 0.08])
    cv2.ellipse(img, (int(fc[0]), int(fc[1])), (int(0.06 * s), int(0.085 * s)), 0, 0, 360, (215, 160, 130), -1)
    ang = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    lm = np.stack([fc[0] + 0.055 * s * np.cos(ang), fc[1] + 0.08 * s * np.sin(ang)], 1)
    noise = np.random.default_rng(1).normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8), truth, lm


def test_head_mask_on_a_drawn_head():
    k = P.intrinsics_matrix(420.0, 420.0, 128.0, 128.0)
    pose = _pose(0, 0, 0, (0.0, 0.0, 0.6))
    img, truth, lm = _draw_head(256, pose, k)
    m = head_mask(img, lm, pose, k, cfg=MaskConfig(work=128))
    a, b = m > 0, truth > 0
    iou = (a & b).sum() / (a | b).sum()
    assert iou > 0.85, iou
    # The seeds alone (what the mask would be without GrabCut) are clearly worse.
    lab = seed_labels(lm, pose, k, 256, MaskConfig(work=256))
    seeds = (lab == cv2.GC_FGD) | (lab == cv2.GC_PR_FGD)
    assert (seeds & b).sum() / (seeds | b).sum() < iou - 0.1
    # The wall outside is background and the padding (invalid) region is cut.
    valid = np.ones_like(b)
    valid[:, :40] = False
    m2 = head_mask(img, lm, pose, k, valid, MaskConfig(work=128))
    assert not (m2[:, :40] > 0).any()


def test_person_head_mask_cuts_the_head_out_of_the_person():
    k = P.intrinsics_matrix(420.0, 420.0, 128.0, 128.0)
    pose = _pose(0, 0, 0, (0.0, 0.0, 0.6))
    _, truth, lm = _draw_head(256, pose, k)
    head = truth > 0
    # What a person segmenter sees: the head and neck, the shoulders and chest below them, an
    # object beside the head, a second blob inside the skull ellipse but apart from the head,
    # and a glint it missed in the hair; soft values around 0.5 at the edges.
    person = head.astype(np.float32) * 0.9
    shoulders = np.zeros_like(head)
    shoulders[215:, 20:236] = True
    person[shoulders] = 0.8
    person[20:40, 225:245] = 0.95  # a bottle on the shelf
    person[20:26, 60:66] = 0.7  # a speck of wall the segmenter liked, inside the skull ellipse
    hole = np.zeros_like(head)
    hole[60:66, 120:126] = True
    person[hole] = 0.2
    m = person_head_mask(person, lm, pose, k) > 0
    lab = seed_labels(lm, pose, k, 256, MaskConfig(work=256))
    allowed, face = lab != cv2.GC_BGD, lab == cv2.GC_FGD
    assert not m[~allowed].any()  # no shoulders beside the neck column, no bottle
    assert not m[20:40, 225:245].any() and not m[20:26, 60:66].any()
    assert m[hole].all()  # the glint is filled
    # Within the allowed region the mask is the person (the head, and the neck column's part of
    # the shoulders) and the landmarks' face hull, which is always head.
    assert (m & head).sum() / head.sum() > 0.99
    assert (m & ~head & ~shoulders & ~face).sum() == 0
    # Padding is background.
    valid = np.ones_like(head)
    valid[:, :100] = False
    assert not (person_head_mask(person, lm, pose, k, valid) > 0)[:, :100].any()
    # Given the crop, person pixels below the chin must be skin: the shirt goes, the neck stays.
    img, _, _ = _draw_head(256, pose, k)
    img[shoulders & ~head] = (40, 70, 50)  # a dark green sweater
    with_rgb = person_head_mask(person, lm, pose, k, rgb=img) > 0
    assert not (with_rgb & shoulders & ~head).any() and (m & shoulders & ~head).sum() > 500
    neck = head & shoulders  # the drawn neck where it meets the sweater: skin
    assert with_rgb[neck].mean() > 0.95
    assert (with_rgb ^ m)[:200].sum() == 0  # above the chin nothing changes


def test_person_head_mask_keeps_hair_beyond_the_old_ellipse():
    k = P.intrinsics_matrix(420.0, 420.0, 128.0, 128.0)
    pose = _pose(0, 0, 0, (0.0, 0.0, 0.6))
    img, truth, lm = _draw_head(256, pose, k)
    hair_rgb = (40, 30, 25)  # _draw_head's hair

    def quad(x0, x1, y0, y1):
        q = P.project(np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]]), pose, k)
        out = np.zeros(truth.shape, np.uint8)
        cv2.fillConvexPoly(out, np.round(q - 0.5).astype(np.int32), 1)
        return out > 0

    # A bun on top right reaching past the allowed ellipse, long hair falling beside the neck
    # below the chin, and a dark green sweater on the shoulders (as dark as the hair).
    bun = quad(0.05, 0.16, 0.07, 0.17)
    strands = quad(0.04, 0.12, -0.16, 0.0) & ~(truth > 0)
    sweater = quad(-0.3, 0.3, -0.3, -0.17) & ~(truth > 0) & ~strands
    img[bun | strands] = hair_rgb
    img[sweater] = (30, 50, 35)
    person = ((truth > 0) | bun | strands | sweater).astype(np.float32) * 0.9
    lab = seed_labels(lm, pose, k, 256, MaskConfig(work=256))
    allowed = lab != cv2.GC_BGD
    m = person_head_mask(person, lm, pose, k, rgb=img) > 0
    old = person_head_mask(person, lm, pose, k, cfg=MaskConfig(hair_sigmas=0), rgb=img) > 0
    beyond_bun, beyond_strands = bun & ~allowed, strands & ~allowed
    assert beyond_bun.sum() > 300 and beyond_strands.sum() > 100  # the case reaches past the old cut
    assert m[beyond_bun].mean() > 0.95 and m[strands].mean() > 0.9
    assert not old[beyond_bun].any() and not old[beyond_strands].any()  # the control: the old cut
    assert m[sweater].mean() < 0.01  # clothes stay out
    assert (m & truth.astype(bool)).sum() / truth.astype(bool).sum() > 0.99
    # Beyond the allowed ellipse only hair is kept: the same bun in skin colour is cut.
    img2 = img.copy()
    img2[bun] = (215, 160, 130)
    assert not (person_head_mask(person, lm, pose, k, rgb=img2) > 0)[beyond_bun].any()


def _disc(size: int, centre_px, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] + 0.5  # edge-origin pixel centres
    return (((xx - centre_px[0]) ** 2 + (yy - centre_px[1]) ** 2 <= radius ** 2) * 255).astype(np.uint8)


def test_head_shift_moves_the_head_centre_onto_itself():
    k = P.intrinsics_matrix(300.0, 300.0, 128.0, 128.0)
    centre = np.array(MaskConfig.skull_centre)
    a, b = _pose(4, -3, 0, (0.01, 0.0, 0.6)), _pose(4, -3, 0, (-0.02, 0.015, 0.5))
    pa, pb = P.project(centre[None], a, k)[0], P.project(centre[None], b, k)[0]
    m = head_shift(a, b, k)
    # A disc the size of the head around the centre in frame a lands around the centre in frame
    # b, scaled by the depth ratio (first order), within a fraction of a pixel.
    moved = cv2.warpAffine(_disc(256, pa, 30).astype(np.float32), m, (256, 256), flags=cv2.INTER_LINEAR)
    yy, xx = np.mgrid[:256, :256] + 0.5
    got = np.array([(moved * xx).sum(), (moved * yy).sum()]) / moved.sum()
    assert np.abs(got - pb).max() < 0.05, (got, pb)
    za, zb = (a[:3, :3] @ centre + a[:3, 3])[2], (b[:3, :3] @ centre + b[:3, 3])[2]
    assert np.isclose(np.sqrt(moved.sum() / 255 / np.pi), 30 * za / zb, rtol=0.01)
    assert np.allclose(head_shift(a, a, k), [[1, 0, 0], [0, 1, 0]])


def test_temporal_vote_removes_flicker_and_follows_the_head():
    k = P.intrinsics_matrix(300.0, 300.0, 128.0, 128.0)
    centre = np.array(MaskConfig.skull_centre)
    # The head sways 1.5 cm out and back over 5 frames (~7.5 px in the crop), moving in depth too.
    poses = [_pose(0, 0, 0, (0.0075 * (2 - abs(i - 2)), 0.0, 0.6 - 0.01 * i)) for i in range(5)]
    truth = [_disc(256, P.project(centre[None], p, k)[0], 40) for p in poses]
    valid = [np.ones((256, 256), bool)] * 5
    masks = [t.copy() for t in truth]
    masks[2][40:60, 120:140] = 255  # a blob GrabCut grabbed in one frame only
    masks[1][100:130, 60:100] = 0  # and a bite it lost in another
    shifts = [head_shift(p, poses[2], k) for p in poses]
    out = temporal_vote(masks, valid, shifts, 2) > 127
    t2 = truth[2] > 127
    assert (out != t2).sum() <= 0.005 * t2.sum(), (out != t2).sum()
    # Control: the same votes without the head's motion cut the moving edges away.
    still = temporal_vote(masks, valid, [np.eye(2, 3)] * 5, 2) > 127
    assert (still != t2).sum() > 0.05 * t2.sum()


def test_temporal_vote_ignores_padding():
    m = _disc(64, (32, 32), 20)
    shifts = [np.eye(2, 3)] * 3
    padded = np.ones((64, 64), bool)
    padded[40:] = False  # where the crop left the video: black, mask 0, no evidence
    zero = m.copy()
    zero[40:] = 0
    # Two neighbours lost the chin to padding; the centre frame still shows it, and keeps it.
    out = temporal_vote([zero, m, zero], [padded, np.ones((64, 64), bool), padded], shifts, 1)
    assert (out == m).all()
    # Control: counted as "no head", the padding outvotes the centre.
    assert not (temporal_vote([zero, m, zero], [np.ones((64, 64), bool)] * 3, shifts, 1)[40:] > 0).any()
    # The centre's own padding stays background whatever the others say.
    out = temporal_vote([m, zero, m], [np.ones((64, 64), bool), padded, np.ones((64, 64), bool)], shifts, 1)
    assert not (out[40:] > 0).any() and (out[:40] == m[:40]).all()


def test_neutralise_offsets_by_percentile():
    raw = np.zeros((100, 3), np.float32)
    raw[:, 0] = 0.4  # idles at 0.4: neutral must become 0
    raw[50:, 0] = 0.9
    raw[:, 1] = np.linspace(0, 1, 100)
    e, off = neutralise(raw, 5.0)
    assert off[0] == pytest.approx(0.4)
    assert np.allclose(e[:50, 0], 0) and np.allclose(e[50:, 0], 0.5)
    assert off[1] == pytest.approx(np.percentile(raw[:, 1], 5))
    assert e.min() >= 0 and e.max() <= 1


@pytest.mark.parametrize("src,fps,expect", [(30.0, None, 90), (30.0, 10.0, 30), (25.0, 12.5, 45),
                                            (30.0, 60.0, 90)])
def test_keep_frame_counts(src, fps, expect):
    assert sum(keep_frame(i, src, fps) for i in range(90)) == expect


def _pb_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _pb_field(num: int, wt: int, payload: bytes) -> bytes:
    return _pb_varint(num << 3 | wt) + payload


def test_parse_geometry_metadata_reads_a_written_message():
    verts = RNG.normal(0, 5, (N_MESH, 5)).astype(np.float32)
    tris = RNG.integers(0, N_MESH, (10, 3))
    mesh = _pb_field(1, 0, _pb_varint(0)) + _pb_field(2, 0, _pb_varint(0))
    mesh += b"".join(_pb_field(3, 5, struct.pack("<f", v)) for v in verts.ravel())
    mesh += b"".join(_pb_field(4, 0, _pb_varint(int(i))) for i in tris.ravel())
    blob = _pb_field(3, 0, _pb_varint(1)) + _pb_field(1, 2, _pb_varint(len(mesh)) + mesh)
    for lid, w in ((4, 0.07), (33, 0.05)):
        b = _pb_field(1, 0, _pb_varint(lid)) + _pb_field(2, 5, struct.pack("<f", w))
        blob += _pb_field(2, 2, _pb_varint(len(b)) + b)
    face = parse_geometry_metadata(blob)
    assert np.array_equal(face.vertices_cm, verts[:, :3].astype(np.float64))
    assert np.array_equal(face.triangles, tris)
    assert face.basis_ids.tolist() == [4, 33]
    assert np.allclose(face.basis_weights, [0.07, 0.05])


def test_bounded_smoothing_keeps_fast_motion_and_removes_jitter():
    pts = _face_points(40)
    t = np.arange(80) / 25
    # A fast head shake (±25 deg at 2 Hz) then a still head; both with ~1 px of jitter, the
    # size of mediapipe landmark jitter this smoother is for.
    yaw = np.where(t < 1.6, 25 * np.sin(2 * np.pi * 2 * t), 0.0)
    truth = np.stack([_pose(y, 0, 0, (0.0, 0.0, 0.6)) for y in yaw])
    noisy = truth.copy()
    for i in range(len(t)):
        noisy[i, :3, :3] = cv2.Rodrigues(RNG.normal(0, np.radians(0.15), 3))[0] @ truth[i, :3, :3]
        noisy[i, :3, 3] += RNG.normal(0, 0.0006, 3)
    px_true = P.project(pts, truth, K)

    def err(poses, sl):
        return np.median(np.linalg.norm(P.project(pts, poses[sl], K) - px_true[sl], axis=-1))
    fast, still = slice(0, 40), slice(45, 80)
    plain = P.smooth_poses(noisy, t, 0.06)
    bounded = P.smooth_poses_bounded(noisy, t, 0.06, pts, K, 1.0)
    # The plain Gaussian flattens the shake; the bounded one stays near the per-frame fit ...
    assert err(plain, fast) > 2 * err(noisy, fast)
    assert err(bounded, fast) < 1.3 * err(noisy, fast)
    # ... and still removes most jitter where the head is still.
    assert err(bounded, still) < 0.7 * err(noisy, still)
